-- workers: an HTTP/1.1 keep-alive hello world whose handler burns about
-- 1 ms of CPU per request (os.clock, the process's CPU time), on
-- green.http.server with reuseport (or, where green.http is missing, a
-- hand-written handler on a StreamServer), to run as
--   greenlua --workers N scripts/bench/workers_http.lua PORT
-- Requests per second with --workers 2 over --workers 1 shows how the
-- workers use the cores.
local lib = dofile((arg[0]:match("^(.*)/") or ".") .. "/lib/benchlib.lua")
local green = lib.green { "StreamServer", "worker" }

local port = math.tointeger(tonumber(arg[1])) or 18080
local RESP = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
             .. "Content-Length: 13\r\n\r\nHello, World!"
local clock = os.clock

local function burn()  -- about 1 ms of CPU
  local t = clock() + 0.001
  local x = 0
  repeat x = x + 1 until clock() >= t
  return x
end

local function handle(sock)
  local buf = ""
  while true do
    local data = sock:receiveany(65536)
    if not data then break end
    buf = buf .. data
    local n, pos = 0, 1
    while true do
      local e = buf:find("\r\n\r\n", pos, true)
      if not e then break end
      n, pos = n + 1, e + 4
    end
    if n > 0 then
      buf = buf:sub(pos)
      for _ = 1, n do burn() end
      if not sock:send(RESP:rep(n)) then break end
    end
  end
end

local ok, http = pcall(require, "green.http")
local srv
if ok and type(http) == "table" and http.server then
  srv = http.server("127.0.0.1", port, function()
    burn()
    return 200, { ["content-type"] = "text/plain" }, "Hello, World!"
  end, { reuseport = true })
else
  srv = green.StreamServer("127.0.0.1", port, handle, { reuseport = true })
end
assert(srv:start())
if green.worker() == 1 then
  print("LISTENING " .. srv.port)
  io.stdout:flush()
end
srv:serve_forever()
