-- A storm of signed inbound STOPs: POST /v1/inbound, each from a new number.
--
--   wrk ... -s inbound.lua URL -- FILE
--
-- FILE holds one request a line, "<hex signature>\t<raw JSON body>", made by
-- bench/run (HMAC-SHA256 of the body with the inbound secret). Thread t sends
-- lines t, t+n, t+2n, ... so no two requests of a run share a number; past
-- the end it starts over (bench/run sizes the file so that it does not).

dofile((os.getenv("BENCH_LUA_DIR") or ".") .. "/report.lua")

local reqs, i = {}, 0

function init(args)
  local n = nthreads or 1
  local line_no = 0
  for line in io.lines(args[1]) do
    if line_no % n == tid then
      local sig, body = line:match("^(%x+)\t(.*)$")
      reqs[#reqs + 1] = wrk.format("POST", "/v1/inbound", {
        ["Content-Type"] = "application/json",
        ["X-Stopgate-Signature"] = "sha256=" .. sig,
      }, body)
    end
    line_no = line_no + 1
  end
  if #reqs == 0 then
    error("no requests for thread " .. tid .. " in " .. args[1])
  end
end

function request()
  i = i + 1
  if i > #reqs then
    i = 1
  end
  return reqs[i]
end
