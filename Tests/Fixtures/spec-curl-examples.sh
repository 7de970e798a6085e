# The runnable curl examples of the ingestion API reference, verbatim, one per block.
# The end-to-end tests run each as written, against a gateway whose address replaces localhost:3001.

curl -X POST http://localhost:3001/events/logs \
-H "Content-Type: application/json" \
-H "x-api-key: your-api-key" \
-H "x-organization-id: org_123456789" \
-d '{
"service": "api-gateway",
"level": "error",
"message": "Upstream timeout connecting to auth-service",
"traceId": "abc-123-def",
"metadata": {
"region": "us-east-1",
"env": "prod",
"team": "platform"
}
}'

curl -X POST http://localhost:3001/events/logs/batch \
-H "Content-Type: application/json" \
-H "x-api-key: your-api-key" \
-H "x-organization-id: org_123456789" \
-d '[
{
"service": "billing-service",
"level": "error",
"message": "Payment failed for customer 42"
},
{
"service": "billing-service",
"level": "warn",
"message": "Retry attempt 3 for payment gateway"
}
]'

curl -X POST http://localhost:3001/events/metrics \
-H "Content-Type: application/json" \
-H "x-api-key: your-api-key" \
-H "x-organization-id: org_123456789" \
-d '{
"service": "api-gateway",
"name": "request_latency_p99",
"value": 2.34,
"unit": "seconds",
"labels": {
"region": "us-east-1",
"env": "prod",
"endpoint": "/api/v1/users"
}
}'

curl -X POST http://localhost:3001/events/deployments \
-H "Content-Type: application/json" \
-H "x-api-key: your-api-key" \
-H "x-organization-id: org_123456789" \
-d '{
"service": "payment-service",
"version": "v2.0.1",
"environment": "production",
"gitHash": "a1b2c3d4",
"metadata": {
"deployedBy": "jenkins",
"deployId": "job-123"
}
}'
