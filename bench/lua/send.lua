-- POST one message per request, every recipient new.
--
--   wrk ... -s send.lua URL -- MODE CATEGORY COUNTRY BATCH PREFIX TOKEN
--
-- MODE     direct: the provider's generic format {"to","from","body","reference"}
--          (to the mock, or nginx in front of it);
--          api: stopgate's POST /v1/messages {"to","from","body","category","campaign"}
-- CATEGORY marketing | transactional | otp (api mode)
-- COUNTRY  us: +1 PPP NXX XXXX (link-footer country); fr: +33 6 1X XX XX XX
--          (short-code country)
-- BATCH    recipients per request (api mode; 1 sends "to" as a string)
-- PREFIX   national prefix that keeps this run's numbers apart from other runs:
--          3 digits for us (an area code: 212, 646, ...), 1 digit for fr (0-2, 4-8)
-- TOKEN    Bearer token (the provider token, or the tenant API key)
--
-- Each thread counts through its own slice of the number space, so every
-- recipient of a run is distinct (8,000,000 US or 10,000,000 FR numbers per prefix).

dofile((os.getenv("BENCH_LUA_DIR") or ".") .. "/report.lua")

local mode, category, country, batch, prefix, token
local slice_start, next_local, slice_end, sent = 0, 0, 0, 0
local headers

function init(args)
  mode = args[1] or "direct"
  category = args[2] or "transactional"
  country = args[3] or "us"
  batch = tonumber(args[4] or "1")
  prefix = args[5] or (country == "us" and "212" or "1")
  token = args[6] or "token"
  local space = country == "us" and 8000000 or 10000000
  local n = nthreads or 1
  local per = math.floor(space / n)
  slice_start = tid * per
  next_local = slice_start
  slice_end = slice_start + per
  headers = {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. token,
  }
end

local function number()
  local i = next_local
  next_local = next_local + 1
  if next_local >= slice_end then
    next_local = slice_start -- only after millions of requests: numbers repeat
  end
  if country == "us" then
    -- NXX XXXX with N in 2-9: 2000000 + i
    return string.format("+1%s%07d", prefix, 2000000 + i)
  else
    return string.format("+336%s%07d", prefix, i)
  end
end

function request()
  sent = sent + 1
  local body
  if mode == "direct" then
    body = string.format(
      '{"to":"%s","from":"ACME","body":"Your ACME code is 482913","reference":"bench-%d-%d"}',
      number(), tid, sent)
  else
    local to
    if batch <= 1 then
      to = '"' .. number() .. '"'
    else
      local parts = {}
      for k = 1, batch do
        parts[k] = '"' .. number() .. '"'
      end
      to = "[" .. table.concat(parts, ",") .. "]"
    end
    if category == "marketing" then
      body = '{"to":' .. to .. ',"from":"ACME","body":"ACME: Black Friday, 50% off everything this weekend","category":"marketing","campaign":"bench"}'
    else
      body = '{"to":' .. to .. ',"from":"ACME","body":"Your ACME code is 482913","category":"' .. category .. '"}'
    end
  end
  return wrk.format("POST", nil, headers, body)
end
