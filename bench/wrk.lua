-- POST /calcular for wrk, with an optional fixed rate, and a JSON summary line.
--
-- BENCH_RATE (requests per second, for the whole wrk run with -t1) turns on
-- pacing: requests go out on an absolute schedule, one every 1/rate seconds,
-- so a late response does not push the later sends back (no drift). wrk's
-- delay() has millisecond granularity, so a send may be up to 0.5 ms off its
-- slot; the average rate is exact. Latency is still wrk's: from the moment a
-- request is written to its response. If every connection is busy a slot is
-- sent late: the summary's request count shows it (the caller checks).
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock_id, bench_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local now_spec = ffi.new("bench_timespec")

local function now_ms()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, now_spec)
  return tonumber(now_spec.tv_sec) * 1000 + tonumber(now_spec.tv_nsec) / 1e6
end

wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY") or '{"operacion": "sumar", "numero1": 2, "numero2": 3}'
wrk.headers["Content-Type"] = "application/json"

local rate = tonumber(os.getenv("BENCH_RATE") or "")
if rate and rate > 0 then
  local interval_ms = 1000 / rate
  local next_slot = nil
  -- Called before each request on a free connection: wait for the next slot.
  function delay()
    local now = now_ms()
    if next_slot == nil then
      next_slot = now
    end
    local wait = next_slot - now
    next_slot = next_slot + interval_ms
    if wait <= 0 then
      return 0
    end
    return math.floor(wait + 0.5)
  end
end

-- No response() callback: with one wrk hands every response to Lua, which costs
-- it CPU the servers would otherwise get; summary.errors.status counts non-2xx.
-- One line the runner parses; latencies in microseconds.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "non2xx": %d, "socket_errors": %d, "timeouts": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
