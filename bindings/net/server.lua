-- green.StreamServer: listens on a TCP port (or a Unix path) and runs a
-- handler for each connection in its own greenthread of a green.Pool.
-- Composed from green.socket (accept, close), Pool (group.lua, pool.lua)
-- and green.Event; the sockets themselves are in stream.c.
local green = ...
local Group = require "green.group"
local Pool = require "green.pool"
local lib = Group._lib
local typename, iscallable, isa = lib.typename, lib.iscallable, lib.isa
local checkself, checktimeout = lib.checkself, lib.checktimeout

local spawn, getcurrent, sleep, now = green.spawn, green.getcurrent,
  green.sleep, green.now
local Event, socket = green.Event, green.socket
local max, tointeger, pcall, error = math.max, math.tointeger, pcall, error
local pairs, setmetatable, type = pairs, setmetatable, type

local DEFAULT_POOL = 10000
local DEFAULT_BACKLOG = 1024  -- the kernel caps it at net.core.somaxconn
local DEFAULT_STOP_TIMEOUT = 1
local DEFAULT_HANDSHAKE_TIMEOUT = 10  -- TLS, when opts.timeout is not set
local ACCEPT_BACKOFF = 0.1    -- seconds between retries of a failing accept
local KILL_TIMEOUT = 1        -- how long stop waits for killed handlers

local StreamServer = {__name = "green.StreamServer",
                      _key = "_class_streamserver",
                      _class_streamserver = true}
StreamServer.__index = StreamServer

-- The servers that serve now (a --workers worker stops them all when told
-- to stop: bindings/proc/worker.lua), and a function called with each
-- server that starts, if set (there, to tell the master it serves).
local serving = setmetatable({}, {__mode = "k"})
StreamServer._serving = serving
StreamServer._onstart = nil

-- {====== Argument checks ======

local function argerror(n, msg)
  error(("bad argument #%d to 'StreamServer' (%s)"):format(n, msg), 3)
end

-- The option names and what each accepts: a checker returning the
-- value to keep, or nil and what was expected.
local function isbool(v) return type(v) == "boolean", "boolean" end
local function ispositive(v)
  local i = type(v) == "number" and tointeger(v)
  return i and i > 0, "positive integer"
end
local function isseconds(v)
  return type(v) == "number" and v == v and v >= 0, "non-negative number"
end
local options = {
  pool = function(v)
    if isa(v, Pool) then return true end
    return ispositive(v) and true, "positive integer or green.Pool"
  end,
  backlog = ispositive, reuseport = isbool, nodelay = isbool,
  keepalive = isbool, timeout = isseconds, stop_timeout = isseconds,
  tls = function(v) return type(v) == "table", "table" end,
}

-- opts.tls: the server's context (green.tls.context), made once for
-- every connection, and how long a handshake may take.  A file that
-- cannot be read or a key that does not match is an error here, at
-- creation, rather than at the first connection.
local tlsoptions = {cert = true, key = true, certs = true,
                    handshake_timeout = true}
local function tlscontext(t, opts)
  for k in pairs(t) do
    if not tlsoptions[k] then
      argerror(4, ("option 'tls': unknown field '%s'"):format(tostring(k)))
    end
  end
  local ht = t.handshake_timeout
  if ht ~= nil and not isseconds(ht) then
    argerror(4, "option 'tls': handshake_timeout: non-negative number "
      .. "expected, got " .. typename(ht))
  end
  local ok, ctx, err = pcall(green.tls.context, {mode = "server",
    cert = t.cert, key = t.key, certs = t.certs})
  if not ok or not ctx then argerror(4, "option 'tls': " .. tostring(ok and err or ctx)) end
  return {context = ctx,
          timeout = ht or opts.timeout or DEFAULT_HANDSHAKE_TIMEOUT}
end

local function checkopts(opts)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    argerror(4, "table expected, got " .. typename(opts))
  end
  for k, v in pairs(opts) do
    local check = options[k]
    if check == nil then
      argerror(4, ("unknown option '%s'"):format(tostring(k)))
    end
    local ok, expected = check(v)
    if not ok then
      argerror(4, ("option '%s': %s expected, got %s")
        :format(k, expected, type(v) == "number" and tostring(v)
                               or typename(v)))
    end
  end
  return opts
end
-- }======

-- {====== Connections ======

-- __close of a server's _closer: the handler running it has ended.
local closermeta = {
  __close = function(c) c.srv._handlers[getcurrent()] = nil end,
}

-- The body of a connection's greenthread: handler(sock, host, port).  Its
-- to-be-closed variables close the socket and forget the greenthread
-- however the handler ends (return, error, kill); an error still reaches
-- the greenthread's report untouched.
local function serve(srv, sock)
  local _ <close> = sock
  local _ <close> = srv._closer
  if srv._timeout then sock:settimeout(srv._timeout) end
  local host, port = sock:getpeername()
  if host == nil then port = nil end  -- the peer has gone already
  getcurrent().name = port and ("%s %s:%d"):format(srv._name, host, port)
    or srv._name
  -- A TLS handshake that fails (plain text, garbage, a stall past the
  -- handshake timeout, a client that vanished) ends this connection alone.
  if srv._tls and not sock:sslhandshake(nil, nil, srv._tls) then return end
  return srv._handler(sock, host, port)
end

-- The body of the accept greenthread.  It waits for a free slot in the
-- pool BEFORE accepting, so that while the pool is full the connections
-- wait in the kernel's backlog.  accept itself waits out a lack of file
-- descriptors (EMFILE) in 100 ms steps; any other failure is reported
-- once on stderr and retried every ACCEPT_BACKOFF seconds: the loop never
-- spins and never dies.  It ends when stop closes the listener.
local function acceptloop(srv, ls)
  local pool, handlers, failing = srv.pool, srv._handlers, nil
  while srv._listener == ls do
    pool:wait_available()
    local sock, err = ls:accept()
    if sock then
      failing = nil
      -- spawn waits only if others took the slot (a shared pool); if
      -- stop kills us meanwhile, the socket must not stay open.
      local ok, g = pcall(pool.spawn, pool, serve, srv, sock)
      if not ok then
        sock:close()
        error(g, 0)
      end
      handlers[g] = sock
    elseif err == "closed" then
      break
    elseif err ~= "timeout" then
      if err ~= failing then
        io.stderr:write(("greenlua: %s: accept: %s (retrying)\n")
          :format(srv._name, err))
        failing = err
      end
      sleep(ACCEPT_BACKOFF)
    end
  end
end
-- }======

-- {====== Methods ======

-- Creates the listening socket: returns it or nil, err.
local function listen(srv)
  local opts = srv._opts
  local ls, ok, err
  if srv.path then
    ls = socket.unix()
    ok, err = ls:bind(srv.path)
  else
    ls = socket.tcp()
    if opts.reuseport then ls:setoption("reuseport", true) end
    if opts.nodelay == false then ls:setoption("tcp-nodelay", false) end
    if opts.keepalive then ls:setoption("keepalive", true) end
    ok, err = ls:bind(srv.host, srv._port)
  end
  if ok then ok, err = ls:listen(opts.backlog or DEFAULT_BACKLOG) end
  if not ok then
    ls:close()
    return nil, err
  end
  return ls
end

-- srv:start() -> srv | nil, err: binds, listens and starts accepting in a
-- greenthread of its own.  Port 0 picks a free port: srv.port is the real
-- one afterwards.  Starting a server that serves already does nothing.
function StreamServer:start()
  checkself(self, StreamServer, "start")
  if self._state == "stopping" then self._done:wait() end
  if self._state == "serving" then return self end
  local ls, err = listen(self)
  if not ls then return nil, err end
  if not self.path then
    self.port = select(2, ls:getsockname())
  end
  self._name = self.path and ("StreamServer(%s)"):format(self.path)
    or ("StreamServer(%s:%d)"):format(self.host, self.port)
  self._listener, self._done = ls, Event()
  self._state, self.started = "serving", true
  self._acceptor = spawn(acceptloop, self, ls)
  self._acceptor.name = self._name .. " accept"
  serving[self] = true
  if StreamServer._onstart then StreamServer._onstart(self) end
  return self
end

-- The handlers still registered, but the caller, in spawn order.
local function handlerlist(srv)
  local cur, list = getcurrent(), {}
  for g in pairs(srv._handlers) do
    if g ~= cur then list[#list + 1] = g end
  end
  table.sort(list, function(a, b) return a.id < b.id end)
  return list
end

-- srv:stop([timeout]): stops accepting (closes the listener, and the
-- connections waiting in its backlog with it), waits up to `timeout`
-- seconds (default opts.stop_timeout, else 1) for the handlers to end,
-- then kills the rest and waits for them (one more second at most: a
-- handler that catches its kill goes on running).  A handler may stop its own
-- server: it is neither waited for nor killed.  serve_forever returns
-- once stop is done.
function StreamServer:stop(timeout)
  checkself(self, StreamServer, "stop")
  checktimeout(timeout, 1, "stop")
  if self._state == "stopping" then self._done:wait() end
  if self._state ~= "serving" then return end
  timeout = timeout or self._stop_timeout
  self._state = "stopping"
  serving[self] = nil
  local ls, acceptor = self._listener, self._acceptor
  self._listener, self._acceptor = nil, nil
  ls:close()  -- the accept loop sees "closed" and ends
  if self.path then os.remove(self.path) end
  if acceptor ~= getcurrent() then acceptor:kill() end  -- may wait for room
  local deadline = now() + timeout
  for _, g in ipairs(handlerlist(self)) do
    if not g:join(max(0, deadline - now())) then break end
  end
  local rest = handlerlist(self)
  for _, g in ipairs(rest) do g:kill(nil, false) end
  deadline = now() + KILL_TIMEOUT  -- one that catches the kill is left
  for _, g in ipairs(rest) do
    if not g:join(max(0, deadline - now())) then break end
  end
  -- Those killed before they started never ran serve: close their sockets.
  local cur = getcurrent()
  for g, sock in pairs(self._handlers) do
    if g ~= cur and g:ready() then
      sock:close()
      self._handlers[g] = nil
    end
  end
  self._state, self.started = "stopped", false
  self._done:set()
end

-- srv:serve_forever() -> true once stop has been called and is done, or
-- nil, err if the server could not start.  If the caller is killed (or a
-- green.Timeout fires) while it serves, the server is stopped first, as
-- gevent does.
function StreamServer:serve_forever()
  checkself(self, StreamServer, "serve_forever")
  if self._state ~= "serving" and self._state ~= "stopping" then
    local ok, err = self:start()
    if not ok then return nil, err end
  end
  local done = self._done
  local ok, err = pcall(done.wait, done)
  if not ok then
    if self._state == "serving" then self:stop() end
    error(err, 0)
  end
  return true
end

function StreamServer:__tostring()
  return ("green.StreamServer(%s, %s)"):format(
    self.path or ("%s:%s"):format(self.host, tostring(self.port)),
    self._state)
end

-- local srv <close> = green.StreamServer(...):start() stops it at the end
-- of the scope.
function StreamServer:__close() self:stop() end
-- }======

-- green.StreamServer(host, port, handler, [opts]) -> srv.  host "unix:PATH"
-- listens on a Unix socket at PATH instead (port is then ignored, and the
-- handler's host is the peer's path, usually "", and port nil).  Options:
-- pool (a size or a green.Pool; default 10000), backlog (1024), timeout
-- (each connection's settimeout), nodelay (false turns TCP_NODELAY off),
-- keepalive, reuseport (for several processes on one port), stop_timeout
-- (stop's default, 1 s), tls ({cert=, key=}: PEM files, the handshake
-- done before the handler runs; certs: further {cert=, key=} chosen by
-- the name the client asks for; handshake_timeout: default opts.timeout,
-- else 10 s).
local function new(host, port, handler, opts)
  if type(host) ~= "string" then
    argerror(1, "string expected, got " .. typename(host))
  end
  local path = host:match("^unix:(.+)$")
  if not path then
    local p = type(port) == "number" and tointeger(port)
    if not p then
      argerror(2, "integer expected, got " ..
        (type(port) == "number" and tostring(port) or typename(port)))
    elseif p < 0 or p > 65535 then
      argerror(2, "port out of range")
    end
    port = p
  end
  if not iscallable(handler) then
    argerror(3, "function expected, got " .. typename(handler))
  end
  opts = checkopts(opts)
  local pool = opts.pool or DEFAULT_POOL
  if type(pool) == "number" then pool = green.Pool(pool) end
  local srv = setmetatable({
    host = not path and host or nil, port = not path and port or nil,
    path = path, pool = pool, started = false,
    _port = port, _handler = handler, _opts = opts,
    _timeout = opts.timeout,
    _tls = opts.tls and tlscontext(opts.tls, opts),
    _stop_timeout = opts.stop_timeout or DEFAULT_STOP_TIMEOUT,
    _handlers = {},  -- greenthread -> its socket, until it ends
    _state = "new",  -- "serving", "stopping", "stopped"
  }, StreamServer)
  srv._closer = setmetatable({srv = srv}, closermeta)
  return srv
end

green.StreamServer = setmetatable({}, {
  __call = function(_, ...) return new(...) end,
})

return StreamServer
