-- wrk script: POST one AdmissionReview again and again, over the connections wrk keeps open.
-- REVIEW_BODY names the file holding the review; MAX_REQUESTS bounds each wrk thread.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local file = assert(io.open(os.getenv("REVIEW_BODY"), "rb"))
wrk.body = file:read("*a")
file:close()

local limit = tonumber(os.getenv("MAX_REQUESTS") or "1000000")
local answered = 0

function response(status, headers, body)
  answered = answered + 1
  if answered >= limit then
    wrk.thread:stop()
  end
end

-- One JSON line for the benchmark to read; latencies in microseconds.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"seconds":%.6f,"p50_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50), latency:percentile(99),
    latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
