-- http: a minimal HTTP/1.1 keep-alive hello world on 127.0.0.1, written the
-- way luv_http.lua and uv_http.c are: every request head ("\r\n\r\n") gets a
-- fixed 13-byte answer.  One greenthread per connection (green.StreamServer,
-- or a listen/accept loop when there is none).
-- Usage: greenlua scripts/bench/lib/http_server.lua PORT
local lib = dofile((arg[0]:match("^(.*)/") or ".") .. "/benchlib.lua")
local green = lib.green { "spawn", "socket.listen" }

local port = math.tointeger(tonumber(arg[1])) or 18080
local RESP = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!"

local function handle(sock)
  sock:setoption("tcp-nodelay", true)
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
      if not sock:send(n == 1 and RESP or RESP:rep(n)) then break end
    end
  end
  sock:close()
end

if green.StreamServer then
  local srv = green.StreamServer("127.0.0.1", port, handle, { pool = 10000 })
  srv:start()
  print("LISTENING " .. tostring(srv.port or port)); io.stdout:flush()
  srv:serve_forever()
else
  local socket = green.socket or require "green.socket"
  local ls = assert(socket.listen("127.0.0.1", port, 1024))
  print("LISTENING " .. select(2, ls:getsockname())); io.stdout:flush()
  while true do
    local c = ls:accept()
    if c then green.spawn(handle, c) end
  end
end
