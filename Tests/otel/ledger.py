"""Exports COUNT log records, one per export, with the OpenTelemetry Python SDK's exporter, from 4 threads, and keeps
a ledger of what each export's result was.

    ledger.py URL ENCODING API_KEY ORGANIZATION SERVICE COUNT

ENCODING is `protobuf` (OTLP/HTTP) or `grpc` (URL is then the gRPC listener's). Record i's body is `ledger-i`. The
exporters retry as they do in production (timeouts, 429, 503, UNAVAILABLE, RESOURCE_EXHAUSTED with RetryInfo) and
send no Idempotency-Key. Prints one JSON object: {"succeeded": [i...], "failed": [i...]}. The fault test
(Tests/EndToEndTests/OTLPExportTests.swift) stalls Redis meanwhile and counts the stored rows of each record.
"""

import json
import sys
import threading

from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource

url, encoding, api_key, organization, service, count = sys.argv[1:7]
count = int(count)
headers = {"x-api-key": api_key, "x-organization-id": organization}
if encoding == "grpc":
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter

    def make_exporter():
        return OTLPLogExporter(endpoint=url, insecure=True, headers=headers, timeout=20)
else:
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

    def make_exporter():
        return OTLPLogExporter(endpoint=url + "/v1/logs", headers=headers, timeout=20)

resource = Resource.create({"service.name": service})
succeeded, failed = [], []
lock = threading.Lock()
local = threading.local()


class Ledger:
    """Records each export's result against the record it carried."""

    def __init__(self, exporter):
        self.exporter = exporter

    def export(self, batch):
        result = self.exporter.export(batch)
        index = local.index
        with lock:
            (succeeded if result.name == "SUCCESS" else failed).append(index)
        return result

    def shutdown(self):
        self.exporter.shutdown()

    def force_flush(self, timeout_millis=30000):
        return True


def run(indices):
    provider = LoggerProvider(resource=resource)
    provider.add_log_record_processor(SimpleLogRecordProcessor(Ledger(make_exporter())))
    logger = provider.get_logger("ledger")
    for index in indices:
        local.index = index
        logger.emit(timestamp=1764000000000000000 + index, severity_text="INFO", body=f"ledger-{index}")
    provider.shutdown()


threads = [threading.Thread(target=run, args=(range(start, count, 4),)) for start in range(4)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(json.dumps({"succeeded": sorted(succeeded), "failed": sorted(failed)}))
