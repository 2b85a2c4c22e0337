-- Shared by the bench scripts: thread numbering and a done() hook that
-- prints one machine-readable line for bench/run:
--   BENCH_JSON {"requests": .., "duration_us": .., "latency_us": {..}, "errors": {..}}
-- wrk counts HTTP statuses > 399 as errors.status; bench/run reports them as non-2xx.

local threads = 0

-- The thread count comes from bench/run (BENCH_THREADS = wrk's -t): wrk
-- calls setup() and init() thread by thread, so setup() cannot count them
-- before the first init() runs.
nthreads = tonumber(os.getenv("BENCH_THREADS") or "1")

-- Runs in the setup environment, once per thread: its number (tid, from 0)
-- becomes a global of the thread's own environment.
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d,"status":%d},' ..
    '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d,"mean":%.1f}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
end
