-- ws echo: a WebSocket echo server on green.http and green.websocket (the
-- ws_echo row of scripts/bench/compare): each connection's handler sends
-- every message back as it came.
-- Usage: greenlua scripts/bench/ws_echo.lua PORT
local lib = dofile((arg[0]:match("^(.*)/") or ".") .. "/lib/benchlib.lua")
local green = lib.green { "http.server", "websocket.upgrade" }

local port = math.tointeger(tonumber(arg[1])) or 18082
local upgrade = green.websocket.upgrade

local srv = assert(green.http.server("127.0.0.1", port, function(req, res)
  local ws = upgrade(req, res)
  if not ws then return end
  while true do
    local msg, kind = ws:receive()
    if not msg or not ws:send(msg, kind) then return end
  end
end, {pool = 20000}))
assert(srv:start())
print("LISTENING " .. srv.port); io.stdout:flush()
srv:serve_forever()
