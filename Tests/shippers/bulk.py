"""The Elasticsearch Python client against Operyn's bulk API, as the end-to-end test runs it.

Usage: bulk.py URL ORGANIZATION KEY SERVICE
Checks the node (info, ping), sends documents with the bulk helper by Basic credentials and by an API key, then one
request with a refused document, and prints what it saw as JSON.
"""

import json
import sys

from elasticsearch import Elasticsearch, helpers

url, organization, key, service = sys.argv[1:5]
report = {}

basic = Elasticsearch(url, basic_auth=(organization, key), request_timeout=10)
report["version"] = basic.info()["version"]["number"]
report["ping"] = basic.ping()

documents = [
    {
        "_index": "logs-python",
        "_op_type": "create",
        "_source": {
            "@timestamp": f"2025-11-24T16:00:0{i}.000Z",
            "message": f"order {i} shipped",
            "log": {"level": ["info", "WARN", "error"][i]},
            "service": {"name": service, "version": "2.1"},
            "trace": {"id": "4bf92f3577b34da6a3ce929d0e0e4736"},
            "labels": {"order": i},
        },
    }
    for i in range(3)
]
report["basic"] = list(helpers.bulk(basic, documents))

by_key = Elasticsearch(url, api_key=(organization, key), request_timeout=10)
report["apiKey"] = list(helpers.bulk(by_key, [{"_index": service, "message": "by api key", "severity": 7}]))

try:
    helpers.bulk(by_key, [{"_index": service, "message": "kept"}, {"_index": service, "@timestamp": "not a time"}])
    report["refused"] = None
except helpers.BulkIndexError as error:
    report["refused"] = [item["index"]["error"]["reason"] for item in error.errors]

print(json.dumps(report))
