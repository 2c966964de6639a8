-- lua-http on cqueues (Debian's lua-http): CONC coroutines, each with a
-- kept-alive HTTP/1.1 connection, issue GETs for SECS seconds.
-- Usage: luajit luahttp_client.lua URL SECS CONC
local cqueues = require "cqueues"
local client = require "http.client"
local new_headers = require "http.headers".new

local url, secs, conc = arg[1], tonumber(arg[2]), tonumber(arg[3])
local host, port, path = url:match("^http://([^:/]+):(%d+)(/.*)$")
port = tonumber(port)
local n, errors = 0, 0
local deadline = cqueues.monotime() + secs
local cq = cqueues.new()

local function worker()
  local conn
  while cqueues.monotime() < deadline do
    if not conn then
      conn = client.connect({host = host, port = port, tls = false,
                             version = 1.1}, 10)
    end
    local ok = false
    local stream = conn and conn:new_stream()
    if stream then
      local h = new_headers()
      h:append(":method", "GET")
      h:append(":scheme", "http")
      h:append(":authority", host .. ":" .. port)
      h:append(":path", path)
      if stream:write_headers(h, true, 10) then
        local rh = stream:get_headers(10)
        local body = rh and stream:get_body_as_string(10)
        ok = rh and rh:get(":status") == "200" and body and #body > 0
      end
    end
    if ok then n = n + 1 else
      errors = errors + 1
      if conn then conn:close() end
      conn = nil
    end
  end
  if conn then conn:close() end
end

local t0 = cqueues.monotime()
for _ = 1, conc do cq:wrap(worker) end
assert(cq:loop())
print(("RESULT bench=http_client peer=luahttp req_per_s=%.1f errors=%d")
  :format(n / (cqueues.monotime() - t0), errors))
