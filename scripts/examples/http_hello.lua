-- A web server to start from: hello world, a query parameter, a request
-- body, and a response streamed while the handler sleeps.  Each request
-- runs in the greenthread of its connection, so a handler that waits
-- (green.sleep, a socket, an HTTP request of its own) holds up no other.
--
--   greenlua scripts/examples/http_hello.lua [port]     (default 8080; 0: any)
--   curl http://127.0.0.1:8080/
--   curl 'http://127.0.0.1:8080/hello?name=green'
--   curl -d 'some text' http://127.0.0.1:8080/echo
--   curl http://127.0.0.1:8080/count
local green = require "green"
local http = require "green.http"

local port = math.tointeger(tonumber(arg[1])) or 8080
local TEXT = {["Content-Type"] = "text/plain; charset=utf-8"}

local function handler(req, res)
  if req.path == "/" then
    return 200, TEXT, "Hello, World!\n"
  elseif req.path == "/hello" then
    local name = http.parse_query(req.query).name or "stranger"
    return 200, TEXT, ("Hello, %s!\n"):format(name)
  elseif req.path == "/echo" and req.method == "POST" then
    local body, err = req:body()
    if not body then return 400, TEXT, err .. "\n" end
    return 200, TEXT, ("%d bytes: %s\n"):format(#body, body)
  elseif req.path == "/count" then
    res:set_header("Content-Type", "text/plain")
    for i = 1, 3 do  -- each line goes out as it is written (chunked)
      res:write(i .. "\n")
      green.sleep(0.1)
    end
    return
  end
  return 404, TEXT, "not found\n"
end

local srv = assert(http.server("127.0.0.1", port, handler))
assert(srv:start())
print(("listening on http://127.0.0.1:%d/"):format(srv.port))
io.stdout:flush()
srv:serve_forever()
