-- Link page GETs: GET /{code} over minted codes.
--
--   wrk ... -s links.lua URL -- FILE
--
-- FILE holds one code a line (minted through the API by bench/run). GET never
-- changes state, so the codes are cycled through.

dofile((os.getenv("BENCH_LUA_DIR") or ".") .. "/report.lua")

local reqs, i = {}, 0

function init(args)
  for code in io.lines(args[1]) do
    reqs[#reqs + 1] = wrk.format("GET", "/" .. code, {
      ["Accept-Language"] = "en-US,en;q=0.8",
    })
  end
  if #reqs == 0 then
    error("no codes in " .. args[1])
  end
  -- Threads start at different places in the list.
  i = math.floor(#reqs * tid / (nthreads or 1))
end

function request()
  i = i + 1
  if i > #reqs then
    i = 1
  end
  return reqs[i]
end
