-- http: a minimal HTTP/1.1 keep-alive hello world on 127.0.0.1, written the
-- way luv_http.lua and uv_http.c are: every request head ("\r\n\r\n") gets a
-- fixed 13-byte answer (a head asking for "Connection: close" gets it and
-- the connection closes).  One greenthread per connection
-- (green.StreamServer, or a listen/accept loop when there is none); over
-- TLS (StreamServer's opts.tls) when given a certificate and its key.
-- Usage: greenlua scripts/bench/lib/http_server.lua PORT [CERT KEY]
local lib = dofile((arg[0]:match("^(.*)/") or ".") .. "/benchlib.lua")
local green = lib.green { "spawn", "socket.listen" }

local port = math.tointeger(tonumber(arg[1])) or 18080
local cert, key = arg[2], arg[3]
local RESP = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!"
local LAST = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nConnection: close\r\n\r\nHello, World!"

local function handle(sock)
  sock:setoption("tcp-nodelay", true)
  local buf = ""
  while true do
    local data = sock:receiveany(65536)
    if not data then break end
    buf = buf .. data
    local n, pos, close = 0, 1, false
    while true do
      local e = buf:find("\r\n\r\n", pos, true)
      if not e then break end
      local c = buf:find("onnection: close", pos, true)
      close = c ~= nil and c < e
      n, pos = n + 1, e + 4
      if close then break end
    end
    if close then
      sock:send(RESP:rep(n - 1) .. LAST)
      break
    end
    if n > 0 then
      buf = buf:sub(pos)
      if not sock:send(n == 1 and RESP or RESP:rep(n)) then break end
    end
  end
  sock:close()
end

if green.StreamServer then
  if cert and not (green.tls and green.tls.context) then
    lib.unavailable("green.tls missing")
  end
  local srv = green.StreamServer("127.0.0.1", port, handle,
    { pool = 10000, tls = cert and { cert = cert, key = key } or nil })
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
