-- echo: a TCP echo server on 127.0.0.1, one greenthread per connection.
-- Uses green.StreamServer; with "loop" as second argument (or when there is
-- no StreamServer) a plain green.socket.listen/accept loop instead.
-- Prints "LISTENING <port>" once it accepts connections.
-- Usage: greenlua scripts/bench/echo_server.lua PORT [server|loop]
local lib = dofile((arg[0]:match("^(.*)/") or ".") .. "/lib/benchlib.lua")
local green = lib.green { "spawn", "socket.listen" }

local port = math.tointeger(tonumber(arg[1])) or 18081
local mode = arg[2] or (green.StreamServer and "server" or "loop")

local function handle(sock)
  sock:setoption("tcp-nodelay", true)
  while true do
    local data = sock:receiveany(65536)
    if not data then break end
    if not sock:send(data) then break end
  end
  sock:close()
end

if mode == "server" then
  if not green.StreamServer then lib.unavailable("green.StreamServer missing") end
  local srv = green.StreamServer("127.0.0.1", port, handle, { pool = 10000 })
  srv:start()
  print("LISTENING " .. tostring(srv.port or port)); io.stdout:flush()
  srv:serve_forever()
else
  local socket = green.socket or require "green.socket"
  local ls = assert(socket.listen("127.0.0.1", port, 1024))
  print("LISTENING " .. select(2, ls:getsockname())); io.stdout:flush()
  while true do
    local c, err = ls:accept()
    if c then
      green.spawn(handle, c)
    elseif err ~= "timeout" then
      io.stderr:write("accept: ", tostring(err), "\n")
    end
  end
end
