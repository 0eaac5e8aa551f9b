-- wrk script: POST one JSON body again and again, over the connections wrk keeps open (an
-- AdmissionReview to a webhook, or a Pod with a generateName to the API server).
-- POST_BODY names the file holding it; MAX_REQUESTS bounds each wrk thread; AUTHORIZATION,
-- when set, is sent as the Authorization header; DELAY_MS, when set, is the pause of each
-- connection before each request (a paced client rather than one as fast as answered).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local authorization = os.getenv("AUTHORIZATION")
if authorization then
  wrk.headers["Authorization"] = authorization
end
local file = assert(io.open(os.getenv("POST_BODY"), "rb"))
wrk.body = file:read("*a")
file:close()

local limit = tonumber(os.getenv("MAX_REQUESTS") or "1000000")
local pause = tonumber(os.getenv("DELAY_MS") or "0")

if pause > 0 then
  function delay()
    return pause
  end
end
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
