-- http: hello world on green.http (the http and http_idle rows of
-- scripts/bench/compare): every request is answered by a handler that
-- returns a 13-byte body.
-- Usage: greenlua scripts/bench/http_server.lua PORT
local lib = dofile((arg[0]:match("^(.*)/") or ".") .. "/lib/benchlib.lua")
local green = lib.green { "http.server" }

local port = math.tointeger(tonumber(arg[1])) or 18080
local HEADERS = {["Content-Type"] = "text/plain"}

-- pool: room for the 10,000 idle connections of the http_idle row
local srv = assert(green.http.server("127.0.0.1", port, function()
  return 200, HEADERS, "Hello, World!"
end, {pool = 20000}))
assert(srv:start())
print("LISTENING " .. srv.port); io.stdout:flush()
srv:serve_forever()
