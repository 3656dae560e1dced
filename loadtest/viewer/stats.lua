-- wrk script: counts every status that is not 200 (wrk's own "Non-2xx or
-- 3xx" line does not count redirects) and prints machine-readable figures.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  non200 = 0
end

function response(status, headers, body)
  if status ~= 200 then
    non200 = non200 + 1
  end
end

function done(summary, latency, requests)
  local bad = 0
  for _, t in ipairs(threads) do
    bad = bad + t:get("non200")
  end
  local e = summary.errors
  io.write(string.format("RESULT requests=%d duration_us=%d non200=%d sockerr=%d p50=%d p90=%d p99=%d p999=%d max=%d\n",
    summary.requests, summary.duration, bad,
    e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max))
end
