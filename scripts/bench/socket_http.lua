-- socket.http: CONC greenthreads fetch URL through LuaSocket's socket.http
-- (Debian's, unchanged, on our socket.core; a new connection per
-- request, as socket.http makes) for SECS seconds (the socket.http row of
-- scripts/bench/compare, against the C libuv peer server).  Run by plain
-- lua5.4 with Debian's LuaSocket, the fetches are sequential (CONC is
-- ignored): the baseline.
-- Usage: greenlua|lua5.4 scripts/bench/socket_http.lua URL SECS CONC
local okh, http = pcall(require, "socket.http")
if not okh then
  print("UNAVAILABLE socket.http (lua-socket) not installed")
  os.exit(0)
end
local ltn12 = require "ltn12"
local socket = require "socket"

local url, secs = arg[1], tonumber(arg[2]) or 10
local conc = math.tointeger(tonumber(arg[3])) or 100
local okg, green = pcall(require, "green")
local now = okg and green.now or socket.gettime
local n, errors = 0, 0
local deadline = now() + secs

local function worker()
  while now() < deadline do
    local t = {}
    local ok, code = http.request{url = url, sink = ltn12.sink.table(t)}
    if ok and code == 200 and #table.concat(t) > 0 then n = n + 1
    else errors = errors + 1 end
  end
end

local t0 = now()
if okg then
  local gs = {}
  for i = 1, conc do gs[i] = green.spawn(worker) end
  green.joinall(gs)
else
  worker()
end
print(("RESULT bench=socket.http peer=%s req_per_s=%.1f errors=%d")
  :format(okg and "greenlua" or "lua5.4", n / (now() - t0), errors))
