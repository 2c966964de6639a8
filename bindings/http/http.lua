-- green.http (also require "green.http"): the HTTP/1.1 server
-- (http_server.lua), the client (http_client.lua) and parse_query, over
-- the C parts of this folder (parser.c on Debian's http-parser,
-- message.c, codec.c).
local green = ...
local core = require "green.http.core"
local client = require "green.http_client"

local http = {
  server = require "green.http_server",
  request = client.request,
  get = client.get,
  close_idle = client.close_idle,
  resolve = client.resolve,
  parse_query = core.parse_query,
}

green.http = http
return http
