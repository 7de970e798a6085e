"""Writes the OTLP benchmark's request bodies into DIR, each an ExportLogsServiceRequest of 100 records:

- logs-100.pb and logs-100.json (protobuf, and OTLP's JSON mapping): what the JSON batch of scripts/lib.sh says, the
  OTLP way: resource service.name billing-service, severity WARN (13), the same body, attribute region=eu-west-1;
  no times (the gateway's receipt, as for the JSON events).
- logs-100-sdk.pb: the same records as an OpenTelemetry SDK sends them, with the SDK's resource attributes, a scope,
  both times, severity text, and trace and span ids; more to decode, map and store per record.
- bulk-100.ndjson: the same records as 100 ECS documents for the Elasticsearch bulk API, as a shipper sends them: a
  create action, then @timestamp, message, log.level, service.name and labels.region.

    python bodies.py DIR
"""

import base64
import json
import sys

from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


def request(sdk):
    export = ExportLogsServiceRequest()
    resource_logs = export.resource_logs.add()
    attributes = [("service.name", "billing-service")]
    if sdk:
        attributes += [("telemetry.sdk.language", "python"), ("telemetry.sdk.name", "opentelemetry"), ("telemetry.sdk.version", "1.45.1")]
    for key, value in attributes:
        resource_logs.resource.attributes.add(key=key, value=AnyValue(string_value=value))
    scope_logs = resource_logs.scope_logs.add()
    if sdk:
        scope_logs.scope.name = "billing.payments"
    for i in range(1, 101):
        record = scope_logs.log_records.add()
        record.severity_number = 13
        record.body.string_value = "Retry attempt %d for payment gateway" % i
        record.attributes.add(key="region", value=AnyValue(string_value="eu-west-1"))
        if sdk:
            record.time_unix_nano = 1764000000000000000 + i * 1000000
            record.observed_time_unix_nano = record.time_unix_nano + 50000
            record.severity_text = "WARN"
            record.trace_id = bytes.fromhex("5b8efff798038103d269b633813fc60c")
            record.span_id = bytes.fromhex("eee19b7ec3c1b17%d" % (i % 10))
    return export


directory = sys.argv[1]
with open(f"{directory}/logs-100.pb", "wb") as output:
    output.write(request(sdk=False).SerializeToString())
with open(f"{directory}/logs-100-sdk.pb", "wb") as output:
    output.write(request(sdk=True).SerializeToString())
# OTLP/JSON: the protobuf JSON mapping with enums as numbers, and trace and span ids (none here) in hex.
document = MessageToDict(request(sdk=False), use_integers_for_enums=True)
with open(f"{directory}/logs-100.json", "w") as output:
    json.dump(document, output, separators=(",", ":"))
with open(f"{directory}/bulk-100.ndjson", "w") as output:
    for i in range(1, 101):
        output.write(json.dumps({"create": {"_index": "logs-billing"}}, separators=(",", ":")) + "\n")
        document = {
            "@timestamp": "2025-11-24T16:00:00.%03dZ" % i,
            "message": "Retry attempt %d for payment gateway" % i,
            "log": {"level": "warn"},
            "service": {"name": "billing-service"},
            "labels": {"region": "eu-west-1"},
        }
        output.write(json.dumps(document, separators=(",", ":")) + "\n")
