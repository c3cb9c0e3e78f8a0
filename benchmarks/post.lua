-- wrk script: POST a captured DPS allocation request with the function key, as DPS calls the
-- webhook, and print wrk's summary as one JSON line. Set by benchmarks/local_host.py:
--   BENCH_BODY_FILE     the request body to post
--   BENCH_FUNCTION_KEY  the function key, sent as ?code=<key> (how DPS's webhook URL carries it)
-- No response() callback: wrk would then hand every response to Lua, which slows it down.
-- Non-2xx/3xx answers are counted by wrk itself (errors.status).

local file = assert(io.open(os.getenv("BENCH_BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json"
wrk.path = "/api/allocate?code=" .. os.getenv("BENCH_FUNCTION_KEY")

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "errors": {"connect": %d, "read": %d, "write": %d, '
      .. '"status": %d, "timeout": %d}, "latency_us": {"p50": %d, "p99": %d, "max": %d}}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
