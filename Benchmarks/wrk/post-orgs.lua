-- POSTs the file named by BODY_FILE as JSON for ORGS organizations in turn (x-organization-id: tenant-0 …), so that a
-- Redis Cluster's partitions all get traffic; prints p50/p99/max latency in microseconds and the timeouts at the end.
local file = assert(io.open(os.getenv("BODY_FILE"), "rb"))
local body = file:read("*a")
file:close()
local organizations = tonumber(os.getenv("ORGS") or "48")
local counter = 0

function request()
    counter = counter + 1
    return wrk.format("POST", nil, {
        ["Content-Type"] = "application/json",
        ["x-organization-id"] = "tenant-" .. (counter % organizations),
    }, body)
end

function done(summary, latency, requests)
    io.write(string.format("RESULT requests_per_sec=%.0f p50_us=%d p99_us=%d errors=%d non2xx=%d timeouts=%d max_us=%d\n",
        summary.requests / (summary.duration / 1e6), latency:percentile(50), latency:percentile(99),
        summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
        summary.errors.status, summary.errors.timeout, latency.max))
end
