-- The echo server of eventlet's examples: every line a client sends comes
-- back to it.  Each connection is served in its own greenthread, at most
-- 1000 at a time (a green.Pool).  Try it with: nc 127.0.0.1 6000
-- Usage: greenlua scripts/examples/echo_server.lua [port=6000]
-- (port 0 picks a free one; the first line printed tells which).
local green = require "green"

io.stdout:setvbuf("line")  -- each line as it happens, even into a pipe

local port = math.tointeger(tonumber(arg[1] or 6000))
assert(port, "usage: echo_server.lua [port]")

-- Serves one client: reads lines until it goes away, and sends each back.
local function handle(sock, host)
  print("client connected from " .. host)
  while true do
    local line = sock:receive("*l")  -- nil once the client disconnects
    if not line then break end
    sock:send(line .. "\n")
    print("echoed " .. line)
  end
  print("client disconnected")
end  -- the server closes the socket when handle returns

local pool = green.Pool(1000)
local server = assert(green.StreamServer("127.0.0.1", port, handle,
                                         {pool = pool}):start())
print("server socket listening on port " .. server.port)
server:serve_forever()
