-- A storm of signed inbound STOPs: POST /v1/inbound, each from a new number.
--
--   wrk ... -s inbound.lua URL -- PREFIX
--
-- Thread t reads PREFIX.t, written by bench/run: whole HTTP requests, each
-- ended by a NUL byte, signed with the inbound secret (HMAC-SHA256 of the
-- body) and from numbers no other request of the run uses; past the end it
-- starts over (bench/run sizes the files so that it does not). The requests
-- are made in Python so that init only splits bytes: formatting them here
-- took seconds of CPU, overlapping the first thread's load.

dofile((os.getenv("BENCH_LUA_DIR") or ".") .. "/report.lua")

local reqs, i = {}, 0

function init(args)
  local path = args[1] .. "." .. tid
  local f = assert(io.open(path, "rb"))
  local data = f:read("*a")
  f:close()
  local pos = 1
  while true do
    local e = data:find("\0", pos, true)
    if not e then
      break
    end
    reqs[#reqs + 1] = data:sub(pos, e - 1)
    pos = e + 1
  end
  if #reqs == 0 then
    error("no requests for thread " .. tid .. " in " .. path)
  end
end

function request()
  i = i + 1
  if i > #reqs then
    i = 1
  end
  return reqs[i]
end
