-- green.http.server: an HTTP/1.1 server on green.StreamServer.  Each
-- connection's greenthread reads its requests with a parser of parser.c,
-- runs the handler for each in turn and writes the response that
-- message.c formats.  Request and response objects are here.
local green = ...
local core = require "green.http.core"
local StreamServer = require "green.server"
local Group = require "green.group"
local lib = Group._lib
local typename, iscallable, checkself = lib.typename, lib.iscallable,
  lib.checkself

local GreenletExit, now = green.GreenletExit, green.now
local serverconn, response, chunk = core.serverconn, core.response,
  core.chunk
local type, tostring, tonumber, tointeger, pairs = type, tostring,
  tonumber, math.tointeger, pairs
local setmetatable, rawget, error, xpcall, pcall = setmetatable, rawget,
  error, xpcall, pcall
local traceback, lower, format = debug.traceback, string.lower, string.format

local LINGER_TIME = 2          -- seconds a closing connection drains
local LINGER_BYTES = 1 << 20   -- ... and at most this much
local DEFAULTS = {
  max_header = 8 * 1024, max_body = 1024 * 1024,
  header_timeout = 10, keepalive_timeout = 60, send_timeout = 60,
}

-- {====== Requests ======

local Request = {__name = "green.http.request"}
Request.__index = Request

-- Before closing a connection whose client may still be sending (a
-- body not read, a request refused): stops sending, then reads and drops
-- what comes for a while, so that the kernel does not answer those bytes
-- with a reset that could destroy the response on its way (nginx's
-- lingering close).
local function linger(sock)
  if not sock:shutdown("send") then return end
  local deadline, got = now() + LINGER_TIME, 0
  while got < LINGER_BYTES do
    local left = deadline - now()
    if left <= 0 then break end
    sock:settimeout(left)
    local data = sock:receiveany(65536)
    if not data then break end
    got = got + #data
  end
end

-- Sends a response of its own for `status` ("400 Bad Request" as text);
-- the connection then closes, unless `keep` (a 500 for a handler error
-- leaves a well-framed connection usable).
local function senderror(c, status, keep)
  c.close = not keep
  local req = c.conn:request()
  if req then  -- what the handler returns is dropped
    req._used, req._sent = true, true
  end
  local reason = core.reason(status) or "Error"
  local ok, out, keepalive = pcall(response, c.conn, status,
    {["Content-Type"] = "text/plain"}, format("%d %s\n", status, reason),
    not keep)
  c.keepalive = ok and keepalive
  if not ok or not c.sock:send(out) then
    c.close = true
  elseif c.close then
    c.linger = true
  end
end

-- req:body() -> the whole body as a string (chunked or not), or nil,
-- err.  A second call returns the same string.  An `expect:
-- 100-continue` is answered here, at the first call.  A body over
-- max_body is answered with 413 at once, a malformed one (a bad chunk)
-- with 400 (what the handler sends after is dropped) and the connection
-- closes.
function Request:body()
  local b = self._body
  if b then return b end
  local c = self._c
  if c == nil or c.conn:request() ~= self then return nil, "closed" end
  local conn = c.conn
  if conn:continue() and not self._sent then
    local ok, err = c.sock:send("HTTP/1.1 100 Continue\r\n\r\n")
    if not ok then
      c.close = true
      return nil, err
    end
  end
  local body, status, msg = conn:readbody()
  if body == nil then
    c.close = true
    if type(status) == "number" and status > 0 and not self._sent then
      senderror(c, status)
    end
    return nil, type(status) == "number" and msg or status
  end
  self._body = body
  return body
end
-- }======

-- {====== Responses ======

-- The response object is the request's own table: its methods are the
-- request's, beside body (a response object of its own would cost every
-- request a table; the handler gets the same table twice).  Its state
-- is in private fields, set once a method is used.
local Response = Request

-- Checks self, and marks the response used: once a method was called,
-- Lua ends the response (finish), not conn:serve's fast path.
local function checkres(res, fname)
  if type(res) ~= "table" or rawget(res, "method") == nil or
     type(res._c) ~= "table" then
    error(format("calling '%s' on bad self (green.http.response expected, "
      .. "got %s)", fname, typename(res)), 3)
  end
  res._used = true
  return res._c
end

-- res:set_status(n): the status of the response (default 200).
function Response:set_status(n)
  checkres(self, "set_status")
  local s = tointeger(n)
  if not s or s < 100 or s > 999 then
    error(format("bad argument #1 to 'set_status' (status expected, got %s)",
      type(n) == "number" and tostring(n) or typename(n)), 2)
  end
  if self._headsent then error("the head of the response was sent", 2) end
  self._status = s
end

-- res:set_header(name, value): sets a header, replacing one of the same
-- name in any case; value a string (or number), or an array of strings
-- for a header that repeats; nil removes it.
function Response:set_header(name, value)
  checkres(self, "set_header")
  if type(name) ~= "string" then
    error(format("bad argument #1 to 'set_header' (string expected, got %s)",
      typename(name)), 2)
  end
  local t = type(value)
  if t ~= "string" and t ~= "number" and t ~= "table" and t ~= "nil" then
    error(format("bad argument #2 to 'set_header' (string expected, got %s)",
      typename(value)), 2)
  end
  if self._headsent then error("the head of the response was sent", 2) end
  local h = self._headers
  if h == nil then
    h = {}
    self._headers, self._names = h, {}
  end
  local key = lower(name)
  local old = self._names[key]
  if old then h[old] = nil end
  self._names[key] = value ~= nil and name or nil
  if value ~= nil then h[name] = value end
  return true
end

-- Merges the headers a handler returned into those set with set_header
-- (the returned ones win).
local function mergeheaders(res, headers)
  local h = res._headers
  if h == nil then return headers end
  if headers == nil then return h end
  if type(headers) ~= "table" then return headers end  -- response() says
  local names, out = res._names, {}
  for k, v in pairs(h) do out[k] = v end
  for k, v in pairs(headers) do
    if type(k) == "string" then
      local old = names[lower(k)]
      if old then out[old] = nil end
    end
    out[k] = v
  end
  return out
end

-- The content-length a handler set, if any.
local function declared(headers)
  for k, v in pairs(headers) do
    if type(k) == "string" and lower(k) == "content-length" then
      return tointeger(tonumber(v))
    end
  end
end

-- Makes the head of a streamed response (the body follows in pieces) and
-- returns its bytes, for the caller to send with the first piece.
local function streamhead(res)
  local c = res._c
  local headers = res._headers
  local out, keepalive, mode = response(c.conn, res._status or 200, headers,
    false, c.close)
  res._headsent, res._sent, c.keepalive, res._mode = true, true, keepalive,
    mode
  if mode == "length" then res._left = declared(headers) end
  return out
end

local function checkdata(data, fname)
  if type(data) == "string" then return data end
  if type(data) ~= "number" then
    error(format("bad argument #1 to '%s' (string expected, got %s)", fname,
      typename(data)), 3)
  end
  return tostring(data)
end

-- Sends bytes of the response; a failure closes the connection after
-- the handler.
local function send(c, data)
  local ok, err = c.sock:send(data)
  if not ok then
    c.close = true
    return nil, err
  end
  return true
end

-- res:write(data) -> true | nil, err: sends data as the next piece of
-- the body; the first write sends the head (chunked unless the handler
-- set content-length; to an HTTP/1.0 client the body ends with the
-- connection; nothing of the body for HEAD).
function Response:write(data)
  local c = checkres(self, "write")
  data = checkdata(data, "write")
  if self._finished then return nil, "finished" end
  if c.conn:request() ~= self or (self._sent and not self._headsent) then
    return nil, "closed"  -- over, or answered by the server (400, 413)
  end
  local head = self._headsent and "" or streamhead(self)
  local mode = self._mode
  if mode == "none" or #data == 0 then
    data = ""
  elseif mode == "chunked" then
    data = chunk(data)
  elseif self._left then
    if #data > self._left then
      if #head > 0 then send(c, head) end
      return nil, "body longer than content-length"
    end
    self._left = self._left - #data
  end
  if #head > 0 then data = head .. data end
  if #data == 0 then return true end
  return send(c, data)
end

-- res:finish([data]) -> true | nil, err: sends data (if any) and ends
-- the response.  Without an earlier write, the whole response goes out
-- at once with a content-length.
function Response:finish(data)
  local c = checkres(self, "finish")
  if data ~= nil then data = checkdata(data, "finish") end
  if self._finished then return nil, "finished" end
  if c.conn:request() ~= self or (self._sent and not self._headsent) then
    return nil, "closed"
  end
  if not self._headsent then
    local out, keepalive, rest = response(c.conn, self._status or 200,
      self._headers, data, c.close)
    self._headsent, self._finished, self._sent = true, true, true
    c.keepalive = keepalive
    local ok, err = send(c, out)
    if ok and rest then ok, err = send(c, rest) end
    return ok, err
  end
  local ok, err = true, nil
  if data and #data > 0 then ok, err = self:write(data) end
  self._finished = true
  if ok and self._mode == "chunked" then ok, err = send(c, "0\r\n\r\n") end
  if self._left and self._left > 0 then c.close = true end  -- cut short
  return ok, err
end

-- res:hijack() -> sock: hands the connection over (to another protocol:
-- WebSocket); bytes the client sent past the request wait in the
-- socket.  The server then writes nothing more on it, and closes it when
-- the handler returns.
function Response:hijack()
  local c = checkres(self, "hijack")
  if self._headsent then error("the head of the response was sent", 2) end
  self._headsent, self._finished, self._sent = true, true, true
  c.close = true
  return c.sock
end

-- After the handler: sends what it returned (status, headers, body), or
-- ends what it started with res.  A string body (or none) goes out in
-- one write with its head; a function is called for each piece of the
-- body until it returns nil.
local function finish(c, res, status, headers, body)
  if res._sent then
    if res._headsent and not res._finished then res:finish() end
    return
  end
  if res._headers then headers = mergeheaders(res, headers) end
  local out, keepalive, rest = response(c.conn, status or res._status or 200,
    headers, body, c.close)
  if out then
    res._sent, c.keepalive = true, keepalive
    local sock = c.sock
    if not sock:send(out) or (rest and not sock:send(rest)) then
      c.close = true
    end
    return
  end
  if type(body) ~= "function" then
    error(format("the handler returned a %s as body", typename(body)), 0)
  end
  if status ~= nil then res._status = status end
  res._headers = headers or res._headers
  while true do
    local piece = body()
    if piece == nil then break end
    if not res:write(piece) then return end
  end
  res:finish()
end
-- }======

-- {====== Connections ======

-- The message handler of the xpcall of the slow path: a kill goes on as
-- it is; another error gets its traceback (as conn.c's onerror).
local function onerror(e)
  if e == GreenletExit then return e end
  return {traceback(tostring(e), 2)}
end

local function logerror(req, err)
  io.stderr:write(format("greenlua: http handler error (%s %s from %s:%s):"
    .. "\n%s\n", req.method, req.target, tostring(req.remote_addr),
    tostring(req.remote_port), err))
  io.stderr:flush()
end

local connmeta = {__close = function(c) c.srv._conns[c] = nil end}

-- The body of a connection's greenthread: request after request.  The
-- connection (conn.c) serves them in C while it can: it reads each head
-- straight from the socket's buffer, waiting keepalive_timeout for a new
-- request (giving its stack up) and header_timeout for the rest of one,
-- drains a body the handler left unread, runs the handler and sends what
-- it returns (conn:serve).  It comes back here for the rest: its answers
-- to bad requests, the responses made with the response object, handler
-- errors, and the end of the connection.  What the requests of the
-- connection share (the peer's address, the connection, the methods) is
-- in their metatable's __index, so that each request table holds only
-- its own six fields.
local function serve(srv, sock, host, port)
  local c = setmetatable({sock = sock, srv = srv, close = false,
                          keepalive = false, linger = false}, connmeta)
  local shared = setmetatable({remote_addr = host, remote_port = port,
                               _c = c}, Request)
  local conn = serverconn(sock, srv._max_header, srv._max_body,
    srv._header_timeout, srv._keepalive_timeout,
    {__index = shared, __name = "green.http.request"}, c)
  c.conn = conn
  srv._conns[c] = true
  local _ <close> = c
  sock:settimeouts(nil, srv._send_timeout, nil)
  local run, app = conn.serve, srv._app
  while true do
    local ok, a, b, d, req = run(conn, app, srv._stopping)
    if ok == nil then
      if type(a) == "number" then  -- a bad request: a is its status
        senderror(c, a)
        linger(sock)
      end
      return
    end
    if ok == true then  -- sent, or what is left to send is in b and d
      c.keepalive = a
      if b and not sock:send(b) then c.keepalive = false end
      if d and not sock:send(d) then c.keepalive = false end
    elseif ok == "res" then
      ok, a = xpcall(finish, onerror, c, req, a, b, d)
    else
      req = b
    end
    if not ok then
      if a == GreenletExit then error(a, 0) end
      logerror(req, a[1])
      if req._sent then return end
      senderror(c, 500, true)
    end
    if c.close or not c.keepalive then
      if c.linger or conn:state() == "body" then linger(sock) end
      return
    end
  end
end
-- }======

-- {====== The server ======

local HTTPServer = setmetatable({
  __name = "green.http.server", _key = "_class_httpserver",
  _class_httpserver = true, _class_streamserver = true,
}, {__index = StreamServer})
HTTPServer.__index = HTTPServer

-- srv:start() -> srv | nil, err (green.StreamServer's)
function HTTPServer:start()
  checkself(self, HTTPServer, "start")
  self._stopping = false
  return StreamServer.start(self)
end

-- srv:stop([timeout]): stops accepting, closes the idle keep-alive
-- connections, lets the requests in flight finish (their connections
-- close after them) for up to `timeout` seconds, then kills the rest.
function HTTPServer:stop(timeout)
  checkself(self, HTTPServer, "stop")
  self._stopping = true
  for c in pairs(self._conns) do
    c.close = true  -- the connection closes after its answer
    if c.conn:idle() then c.sock:close() end
  end
  return StreamServer.stop(self, timeout)
end

function HTTPServer:__tostring()
  return format("green.http.server(%s:%s, %s)", tostring(self.host),
    tostring(self.port), self._state)
end

function HTTPServer:__close() self:stop() end

local function argerror(n, msg)
  error(format("bad argument #%d to 'server' (%s)", n, msg), 3)
end

-- What StreamServer takes from the options (the rest are ours).
local streamopts = {pool = true, backlog = true, reuseport = true,
                    nodelay = true, keepalive = true, stop_timeout = true,
                    tls = true}
local ours = {max_header = "size", max_body = "size",
              header_timeout = "seconds", keepalive_timeout = "seconds",
              send_timeout = "seconds"}

-- green.http.server(host, port, handler, [opts]) -> srv.  Options, with
-- StreamServer's (pool, backlog, reuseport, nodelay, keepalive,
-- stop_timeout, tls): max_header (8 KiB), max_body (1 MiB),
-- header_timeout (10 s), keepalive_timeout (60 s), send_timeout (60 s:
-- how long a send may wait for a client that does not read).
local function new(host, port, handler, opts)
  if type(host) ~= "string" then
    argerror(1, "string expected, got " .. typename(host))
  end
  if not tointeger(port) then
    argerror(2, "integer expected, got " ..
      (type(port) == "number" and tostring(port) or typename(port)))
  end
  if not iscallable(handler) then
    argerror(3, "function expected, got " .. typename(handler))
  end
  if opts ~= nil and type(opts) ~= "table" then
    argerror(4, "table expected, got " .. typename(opts))
  end
  local sopts, conf = {}, {}
  for k, v in pairs(opts or {}) do
    local kind = ours[k]
    if kind then
      local ok = type(v) == "number" and v == v and v >= 0
      if kind == "size" then ok = ok and tointeger(v) and v > 0 end
      if not ok then
        argerror(4, format("option '%s': %s expected, got %s", k,
          kind == "size" and "positive integer" or "non-negative number",
          type(v) == "number" and tostring(v) or typename(v)))
      end
      conf[k] = v
    elseif streamopts[k] then
      sopts[k] = v
    else
      argerror(4, format("unknown option '%s'", tostring(k)))
    end
  end
  -- Over TLS, a handshake gets as long as a request head.
  if type(sopts.tls) == "table" and sopts.tls.handshake_timeout == nil then
    local t = {handshake_timeout = conf.header_timeout or DEFAULTS.header_timeout}
    for k, v in pairs(sopts.tls) do t[k] = v end
    sopts.tls = t
  end
  local srv
  local ok, made = pcall(green.StreamServer, host, port, function(...)
    return serve(srv, ...)
  end, sopts)
  if not ok then error(made, 0) end
  srv = setmetatable(made, HTTPServer)
  srv._app = handler
  srv._conns = {}
  srv._stopping = false
  for k, v in pairs(DEFAULTS) do srv["_" .. k] = conf[k] or v end
  return srv
end

return new
