-- green.websocket: WebSocket (RFC 6455) on green.http.  The opening
-- handshakes are here: upgrade (a server's, inside an HTTP handler) and
-- connect (a client's, ws:// and wss://), with permessage-deflate (RFC
-- 7692) agreed when the peer offers or accepts it.  The object, its
-- frames and messages are websocket.c's; the keys ws_handshake.c's.
local green = ...
local core = require "green.http.core"
local Group = require "green.group"
local typename = Group._lib.typename

local now, socket = green.now, green.socket
local wsaccept, wskey, wsnew = core.wsaccept, core.wskey, core.wsnew
local type, tostring, tointeger, pairs, ipairs, error = type, tostring,
  math.tointeger, pairs, ipairs, error
local format, lower, concat = string.format, string.lower, table.concat

local MAX_HEADER = 16 * 1024   -- of the server's answer to connect
local TIMEOUT = 30             -- connect's default timeout
local COMPRESS_MIN = 1024      -- shorter messages are sent as they are

local websocket = {}

-- {====== Headers ======

local function trim(s) return (s:match("^%s*(.-)%s*$")) end

-- Whether the comma-separated header value holds `token` (any case).
local function hastoken(value, token)
  if type(value) ~= "string" then return false end
  for t in value:gmatch("[^,]+") do
    if lower(trim(t)) == token then return true end
  end
  return false
end

-- The extensions of a Sec-WebSocket-Extensions value, in order: each
-- {name = "permessage-deflate", params = {name = value or true}, bad =
-- true if a parameter repeats}.
local function extensions(value)
  local list = {}
  for item in value:gmatch("[^,]+") do
    local parts = {}
    for part in item:gmatch("[^;]+") do parts[#parts + 1] = trim(part) end
    local params, bad = {}, false
    for i = 2, #parts do
      local k, v = parts[i]:match("^([^=%s]+)%s*=%s*(.-)$")
      if k then v = v:match('^"(.*)"$') or v else k, v = parts[i], true end
      k = lower(k)
      if params[k] ~= nil then bad = true end
      params[k] = v
    end
    list[#list + 1] = {name = lower(parts[1] or ""), params = params,
                       bad = bad}
  end
  return list
end

-- A window size parameter's value (RFC 7692, 7.1.2), or nil.
local function windowbits(v)
  local n = type(v) == "string" and v:match("^[1-9]%d?$") and tonumber(v)
  return n and n >= 8 and n <= 15 and n or nil
end

-- The server's choice among the client's offers: the first
-- permessage-deflate offer it can honour, answered without context
-- takeover in either direction (so that no connection keeps compression
-- state between messages); returns the answer and the window for what
-- the server sends, or nil, 0.  A server_max_window_bits of 8 cannot be
-- honoured (zlib's raw deflate has no 256-byte window).
local function serveroffer(value)
  if type(value) ~= "string" then return nil, 0 end
  for _, o in ipairs(extensions(value)) do
    if o.name == "permessage-deflate" and not o.bad then
      local ok, wbits = true, 15
      for k, v in pairs(o.params) do
        if k == "server_no_context_takeover" or
           k == "client_no_context_takeover" then
          ok = ok and v == true
        elseif k == "server_max_window_bits" then
          local n = windowbits(v)
          if n and n >= 9 then wbits = n else ok = false end
        elseif k == "client_max_window_bits" then
          ok = ok and (v == true or windowbits(v) ~= nil)
        else
          ok = false
        end
      end
      if ok then
        local answer = "permessage-deflate; server_no_context_takeover; " ..
          "client_no_context_takeover"
        if o.params.server_max_window_bits then
          answer = answer .. "; server_max_window_bits=" .. wbits
        end
        return answer, wbits
      end
    end
  end
  return nil, 0
end

-- What a client offers, and what it accepts in answer: permessage-deflate
-- without context takeover, the server's window as it likes.  Returns
-- the value and our window, nil, 0 when the server declined, or false
-- for an answer that breaks RFC 7692.
local OFFER = "permessage-deflate; server_no_context_takeover; " ..
  "client_no_context_takeover"

local function clientanswer(value, offered)
  if value == nil then return nil, 0 end
  local list = extensions(value)
  local o = list[1]
  if not offered or #list ~= 1 or o.name ~= "permessage-deflate" or o.bad or
     not o.params.server_no_context_takeover then
    return false
  end
  for k, v in pairs(o.params) do
    if k == "server_no_context_takeover" or
       k == "client_no_context_takeover" then
      if v ~= true then return false end
    elseif k ~= "server_max_window_bits" or not windowbits(v) then
      return false
    end
  end
  return value, 15
end

-- The first of the client's subprotocols that the server speaks.
local function pickprotocol(value, protocols)
  if type(value) ~= "string" or not protocols then return nil end
  for t in value:gmatch("[^,]+") do
    t = trim(t)
    for _, p in ipairs(protocols) do
      if p == t then return p end
    end
  end
end

local function checkheader(fname, k, v)
  if type(k) ~= "string" or not k:match("^[!#$%%&'*+%-.^_`|~%w]+$") or
     (type(v) ~= "string" and type(v) ~= "number") or
     tostring(v):find("[\r\n%z]") then
    error(format("bad argument #2 to '%s' (invalid header '%s')", fname,
      tostring(k)), 4)
  end
end
-- }======

-- {====== Options ======

local function argerror(fname, n, msg)
  error(format("bad argument #%d to '%s' (%s)", n, fname, msg), 3)
end

local function checkopts(fname, opts, n)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    argerror(fname, n, "table expected, got " .. typename(opts))
  end
  local function want(k, t, ok)
    local v = opts[k]
    if v ~= nil and (type(v) ~= t or (ok and not ok(v))) then
      argerror(fname, n, format("option '%s': %s expected, got %s", k,
        t == "number" and "non-negative number" or t,
        type(v) == "number" and tostring(v) or typename(v)))
    end
  end
  local function nonneg(v) return v == v and v >= 0 end
  want("max_message", "number", nonneg)
  want("compress", "boolean")
  want("compress_min", "number", nonneg)
  want("send_timeout", "number", nonneg)
  want("timeout", "number", nonneg)
  want("protocols", "table")
  want("headers", "table")
  want("origin", "string")
  want("cafile", "string")
  want("verify", "boolean")
  for _, p in ipairs(opts.protocols or {}) do
    if type(p) ~= "string" or not p:match("^[!#$%%&'*+%-.^_`|~%w]+$") then
      argerror(fname, n, "option 'protocols': tokens expected")
    end
  end
  return opts
end

-- The WebSocket on a socket whose handshake is done.
local function open(sock, client, wbits, opts, info)
  if opts.send_timeout then sock:settimeouts(nil, opts.send_timeout, nil) end
  return wsnew(sock, client, wbits, opts.max_message,
               opts.compress_min or COMPRESS_MIN, info)
end
-- }======

-- {====== Servers ======

-- Answers a request that is not a WebSocket handshake: 400, with `why`.
local function refuse(res, why, headers)
  res:set_status(400)
  res:set_header("Content-Type", "text/plain")
  for k, v in pairs(headers or {}) do res:set_header(k, v) end
  res:finish("400 Bad Request: " .. why .. "\n")
  return nil, why
end

-- green.websocket.upgrade(req, res, [opts]) -> ws | nil, err.  Inside an
-- HTTP handler: answers a WebSocket handshake with 101 and returns the
-- WebSocket on the request's connection (the server closes it when the
-- handler returns); a request that is not one gets 400 (the handler then
-- just returns).  Options: max_message (16 MiB), compress (true:
-- permessage-deflate when the client offers it), compress_min (1024),
-- protocols (the subprotocols spoken, in order of preference), headers
-- (more for the 101), send_timeout.
function websocket.upgrade(req, res, opts)
  if type(req) ~= "table" or type(req.headers) ~= "table" then
    argerror("upgrade", 1, "request expected, got " .. typename(req))
  end
  if type(res) ~= "table" or type(res.hijack) ~= "function" then
    argerror("upgrade", 2, "response expected, got " .. typename(res))
  end
  opts = checkopts("upgrade", opts, 3)
  for k, v in pairs(opts.headers or {}) do checkheader("upgrade", k, v) end
  local h = req.headers
  if req.method ~= "GET" or not hastoken(h.upgrade, "websocket") or
     not hastoken(h.connection, "upgrade") or req.version == "1.0" then
    return refuse(res, "not a websocket handshake")
  end
  if h["sec-websocket-version"] ~= "13" then
    return refuse(res, "unsupported websocket version",
                  {["Sec-WebSocket-Version"] = "13"})
  end
  local key = h["sec-websocket-key"]
  local accept = type(key) == "string" and wsaccept(trim(key))
  if not accept then return refuse(res, "bad sec-websocket-key") end
  local protocol = pickprotocol(h["sec-websocket-protocol"], opts.protocols)
  local ext, wbits = nil, 0
  if opts.compress ~= false then
    ext, wbits = serveroffer(h["sec-websocket-extensions"])
  end
  local lines = {"HTTP/1.1 101 Switching Protocols", "Upgrade: websocket",
                 "Connection: Upgrade", "Sec-WebSocket-Accept: " .. accept}
  if protocol then lines[#lines + 1] = "Sec-WebSocket-Protocol: " .. protocol end
  if ext then lines[#lines + 1] = "Sec-WebSocket-Extensions: " .. ext end
  for k, v in pairs(opts.headers or {}) do lines[#lines + 1] = k .. ": " .. v end
  lines[#lines + 1] = "\r\n"
  local sock = res:hijack()
  local ok, err = sock:send(concat(lines, "\r\n"))
  if not ok then
    sock:close()
    return nil, err
  end
  return open(sock, false, wbits, opts, {protocol = protocol, extensions = ext})
end
-- }======

-- {====== Clients ======

-- The Host header of a URL's authority (as green.http's client).
local function hostheader(scheme, host, port)
  if host:find(":", 1, true) then host = "[" .. host .. "]" end
  if (scheme == "ws" and port == 80) or (scheme == "wss" and port == 443) then
    return host
  end
  return host .. ":" .. port
end

-- Sends the handshake on sock and checks the answer: returns the
-- WebSocket or nil, err.
local function handshake(sock, url, scheme, host, port, target, deadline,
                         opts)
  local key = wskey()
  local lines = {"GET " .. target .. " HTTP/1.1",
                 "Host: " .. hostheader(scheme, host, port),
                 "Upgrade: websocket", "Connection: Upgrade",
                 "Sec-WebSocket-Key: " .. key, "Sec-WebSocket-Version: 13"}
  local offered = opts.compress ~= false
  if offered then lines[#lines + 1] = "Sec-WebSocket-Extensions: " .. OFFER end
  if opts.protocols and #opts.protocols > 0 then
    lines[#lines + 1] = "Sec-WebSocket-Protocol: " .. concat(opts.protocols, ", ")
  end
  if opts.origin then lines[#lines + 1] = "Origin: " .. opts.origin end
  for k, v in pairs(opts.headers or {}) do lines[#lines + 1] = k .. ": " .. v end
  lines[#lines + 1] = "\r\n"
  sock:settimeout(math.max(deadline - now(), 0))
  local ok, err = sock:send(concat(lines, "\r\n"))
  if not ok then return nil, err end
  local conn = core.clientconn(sock, MAX_HEADER)
  local head, status, msg = conn:readhead(false, deadline)
  if not head then
    if type(status) == "number" then return nil, "invalid response (" .. msg .. ")" end
    return nil, status
  end
  if head.status ~= 101 then
    return nil, format("handshake failed (%d %s)", head.status, head.reason or "")
  end
  -- The parser stops before the head's last byte: it ends the message
  -- there (a 101 has no body), and the frames follow.
  local body
  body, status, msg = conn:readbody(deadline)
  if body ~= "" then
    return nil, body and "handshake failed (a body after 101)" or
      type(status) == "number" and "invalid response (" .. msg .. ")" or status
  end
  local h = head.headers
  if not hastoken(h.upgrade, "websocket") or
     not hastoken(h.connection, "upgrade") then
    return nil, "handshake failed (not an upgrade to websocket)"
  end
  if h["sec-websocket-accept"] ~= wsaccept(key) then
    return nil, "handshake failed (wrong sec-websocket-accept)"
  end
  local ext, wbits = clientanswer(h["sec-websocket-extensions"], offered)
  if ext == false then
    return nil, "handshake failed (extensions not offered)"
  end
  local protocol = h["sec-websocket-protocol"]
  if protocol ~= nil and pickprotocol(protocol, opts.protocols) ~= protocol then
    return nil, "handshake failed (subprotocol not offered)"
  end
  sock:settimeout(nil)
  return open(sock, true, wbits, opts, {protocol = protocol,
                                         extensions = ext or nil, url = url})
end

-- green.websocket.connect(url, [opts]) -> ws | nil, err: opens a
-- WebSocket to a ws:// or wss:// URL.  Options: timeout (for DNS, the
-- connection, TLS and the handshake; 30 s), max_message, compress (true:
-- offer permessage-deflate), compress_min, protocols (to offer), origin,
-- headers (more for the request), send_timeout; for wss:// cafile and
-- verify (as green.http's).
function websocket.connect(url, opts)
  if type(url) ~= "string" then
    argerror("connect", 1, "string expected, got " .. typename(url))
  end
  opts = checkopts("connect", opts, 2)
  for k, v in pairs(opts.headers or {}) do checkheader("connect", k, v) end
  local scheme, host, port, path, query = core.parseurl(url)
  if not scheme then return nil, "invalid url" end
  if scheme ~= "ws" and scheme ~= "wss" then
    return nil, "unsupported scheme '" .. scheme .. "'"
  end
  port = port or (scheme == "wss" and 443 or 80)
  local timeout = opts.timeout or TIMEOUT
  local deadline = now() + timeout
  local sock, err = socket.connect(host, port, timeout)
  if not sock then return nil, err end
  local ok, ws = true, nil
  if scheme == "wss" then
    sock:settimeout(math.max(deadline - now(), 0))
    ok, err = sock:sslhandshake(host, opts.verify ~= false,
                                {cafile = opts.cafile})
  end
  if ok then
    ws, err = handshake(sock, url, scheme, host, port,
                        query and path .. "?" .. query or path, deadline, opts)
  end
  if not ws then
    sock:close()
    return nil, err
  end
  return ws
end
-- }======

green.websocket = websocket
return websocket
