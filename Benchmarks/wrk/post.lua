-- POSTs the file named by BODY_FILE as JSON (or as CONTENT_TYPE), with CONTENT_ENCODING when set; prints p50/p99/max latency in microseconds and the
-- timeouts at the end.
-- With ORGS=N, each request names one of N organizations in turn (x-organization-id: tenant-0 …), so that a Redis
-- Cluster's partitions all get traffic; without it every request is the same (wrk's fast path: no Lua per request).
wrk.method = "POST"
wrk.headers["Content-Type"] = os.getenv("CONTENT_TYPE") or "application/json"
if os.getenv("CONTENT_ENCODING") then wrk.headers["Content-Encoding"] = os.getenv("CONTENT_ENCODING") end
local file = assert(io.open(os.getenv("BODY_FILE"), "rb"))
wrk.body = file:read("*a")
file:close()

-- With KEYED=yes each request carries an Idempotency-Key of its own; KEYED=no sends a header of the same length that
-- means nothing instead, so that both sides pay wrk's Lua per request alike.
local keyed = os.getenv("KEYED")
local threads = 0
function setup(thread)
    threads = threads + 1
    thread:set("thread_id", threads)
end
if keyed then
    local counter = 0
    local header = keyed == "yes" and "Idempotency-Key" or "X-Bench-Sequence"
    local run = tostring(os.time())
    function request()
        counter = counter + 1
        wrk.headers[header] = string.format("%s-%d-%012d", run, thread_id or 0, counter)
        return wrk.format()
    end
end

local organizations = tonumber(os.getenv("ORGS") or "")
if organizations then
    local counter = 0
    function request()
        counter = counter + 1
        wrk.headers["x-organization-id"] = "tenant-" .. (counter % organizations)
        return wrk.format()
    end
end

function done(summary, latency, requests)
    io.write(string.format("RESULT requests_per_sec=%.0f p50_us=%d p99_us=%d errors=%d non2xx=%d timeouts=%d max_us=%d\n",
        summary.requests / (summary.duration / 1e6), latency:percentile(50), latency:percentile(99),
        summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
        summary.errors.status, summary.errors.timeout, latency.max))
end
