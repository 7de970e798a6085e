"""Exports a fixed set of logs and metrics to an OTLP/HTTP endpoint with the OpenTelemetry Python SDK.

    export.py URL ENCODING API_KEY ORGANIZATION SERVICE

ENCODING is `protobuf` (opentelemetry-exporter-otlp-proto-http), `json` (opentelemetry-exporter-otlp-json-http) or
`grpc` (opentelemetry-exporter-otlp-proto-grpc; URL is then the gRPC listener's, http://host:port).
Prints one JSON object: the exporters' results and the trace and span ids of the span the first log was written in.
The end-to-end test (Tests/EndToEndTests/OTLPExportTests.swift) reads the stored rows back and checks every field.
"""

import json
import logging
import sys

from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

url, encoding, api_key, organization, service = sys.argv[1:6]
headers = {"x-api-key": api_key, "x-organization-id": organization}
if encoding == "protobuf":
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
elif encoding == "grpc":
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
else:
    from opentelemetry.exporter.otlp.json.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.json.http.metric_exporter import OTLPMetricExporter

resource = Resource.create({"service.name": service, "deployment.environment": "test"})
results = {}


class Recording:
    """Wraps an exporter to keep its results."""

    def __init__(self, exporter, name):
        self.exporter, self.name = exporter, name

    def export(self, batch):
        result = self.exporter.export(batch)
        results.setdefault(self.name, []).append(result.name)
        return result

    def __getattr__(self, attribute):
        return getattr(self.exporter, attribute)


# Logs: one at a time, so each export is one request.
def exporter(kind, path):
    """The HTTP exporters take the signal's URL; the gRPC ones the listener's, the method naming the signal."""
    if encoding == "grpc":
        return kind(endpoint=url, insecure=True, headers=headers)
    return kind(endpoint=url + path, headers=headers)


log_exporter = Recording(exporter(OTLPLogExporter, "/v1/logs"), "logs")
logger_provider = LoggerProvider(resource=resource)
logger_provider.add_log_record_processor(SimpleLogRecordProcessor(log_exporter))
logger = logger_provider.get_logger("checkout.orders", "1.2.3")
tracer = TracerProvider(resource=resource).get_tracer("checkout.orders")

with tracer.start_as_current_span("place-order") as span:
    context = span.get_span_context()
    ids = {"traceId": format(context.trace_id, "032x"), "spanId": format(context.span_id, "016x")}
    logger.emit(
        timestamp=1764000000123456789,
        severity_number=SeverityNumber.WARN,
        severity_text="WARN",
        body="disk almost full",
        attributes={"disk": "/dev/sda1", "pct": 91.5, "retries": 3, "ok": True, "tags": ["a", "b"]},
        event_name="disk.usage",
    )
logger.emit(
    observed_timestamp=1764000001000000000,
    severity_number=SeverityNumber.TRACE,
    body={"order": {"id": 42, "items": ["a", "b"]}},
)
logger.emit(timestamp=1764000002000000000, severity_number=SeverityNumber.FATAL2, severity_text="CRITICAL", body=[1, "two", 3.5])
logger.emit(timestamp=1764000003000000000, severity_text="Warning", body="no number, a text")
# The standard library's logging through the SDK's handler, as most Python services send logs.
handler = LoggingHandler(logger_provider=logger_provider)
standard = logging.getLogger("checkout.std")
standard.addHandler(handler)
standard.setLevel(logging.DEBUG)
standard.error("payment declined for order %s", 42)
logger_provider.shutdown()

# Metrics: one collection, exported once.
reader = InMemoryMetricReader()
meter = MeterProvider(resource=resource, metric_readers=[reader]).get_meter("checkout.metrics", "1.0.0")
orders = meter.create_counter("orders_total", unit="1")
orders.add(3, {"route": "/buy"})
orders.add(2, {"route": "/buy"})
depth = meter.create_up_down_counter("queue_depth")
depth.add(7)
depth.add(-2)
latency = meter.create_histogram("latency", unit="ms")
latency.record(12.5, {"route": "/buy"})
latency.record(30, {"route": "/buy"})
temperature = meter.create_gauge("temperature", unit="Cel")
temperature.set(21.5, {"room": "a", "floor": 3})
metric_exporter = Recording(exporter(OTLPMetricExporter, "/v1/metrics"), "metrics")
metric_exporter.export(reader.get_metrics_data())

print(json.dumps({"results": results, **ids}))
