-- http client: CONC greenthreads issue keep-alive GETs of URL with
-- green.http.get for SECS seconds (the http_client row of
-- scripts/bench/compare, against the C libuv peer server).
-- Usage: greenlua scripts/bench/http_client.lua URL SECS CONC
local lib = dofile((arg[0]:match("^(.*)/") or ".") .. "/lib/benchlib.lua")
local green = lib.green { "http.get" }

local url, secs = arg[1], tonumber(arg[2]) or 10
local conc = math.tointeger(tonumber(arg[3])) or 100
local get, now = green.http.get, green.now
local n, errors = 0, 0
local deadline = now() + secs

local function worker()
  while now() < deadline do
    local res = get(url)
    if res and res.status == 200 and #res.body > 0 then n = n + 1
    else errors = errors + 1 end
  end
end

local t0 = now()
local gs = {}
for i = 1, conc do gs[i] = green.spawn(worker) end
green.joinall(gs)
print(("RESULT bench=http_client peer=greenlua req_per_s=%.1f errors=%d")
  :format(n / (now() - t0), errors))
