-- green.StreamServer: start, serve_forever, stop, srv.port, the pool
-- bound, handler errors and argument errors; loopback only.

local green = require "green"
local socket = green.socket

local BIN = os.getenv("GREENLUA") or "build/greenlua"

local helpers = require "spec.helpers"
local q, slurp = helpers.q, helpers.slurp

-- Runs Lua source `src` as a child greenlua script; returns its stdout,
-- stderr and exit status.  (io.popen blocks the hub: only for children
-- that talk to nobody but themselves.)
local function runscript(src)
  local path, errfile = os.tmpname(), os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(src)
  f:close()
  local p = assert(io.popen(("</dev/null env -u LUA_INIT -u LUA_INIT_5_4 "
    .. "timeout 20 %s %s 2>%s; echo \"status=$?\""):format(q(BIN), q(path),
                                                          q(errfile))))
  local out = p:read("a")
  p:close()
  local err = slurp(errfile)
  os.remove(path)
  os.remove(errfile)
  local status = tonumber(out:match("status=(%d+)\n$"))
  return (out:gsub("status=%d+\n$", "")), err, status
end

-- A handler that answers each line with the line upper-cased.
local function upper(sock)
  while true do
    local line = sock:receive()
    if not line then return end
    sock:send(line:upper() .. "\n")
  end
end

local function connect(srv)
  return assert(socket.connect("127.0.0.1", srv.port, 5))
end

-- Sends a line on a new connection and returns the answer (or nil, err).
local function ask(srv, line)
  local c = connect(srv)
  c:settimeout(5)
  c:send(line .. "\n")
  local r, err = c:receive()
  c:close()
  return r, err
end

-- Waits (in steps of 1 ms, at most 5 s) until pred() is true.
local function waitfor(pred)
  local deadline = green.now() + 5
  while not pred() do
    assert(green.now() < deadline, "condition not reached in 5 s")
    green.sleep(0.001)
  end
end

describe("green.StreamServer", function()
  local timeout
  before_each(function() timeout = green.Timeout(20):start() end)
  after_each(function() timeout:cancel() end)

  it("runs the handler with the socket and the peer's host and port",
     function()
    local got = {}
    local srv = green.StreamServer("127.0.0.1", 0, function(sock, host, port)
      got.sock, got.host, got.port = sock, host, port
      upper(sock)
    end)
    assert.equal(srv, srv:start())
    local c = connect(srv)
    c:send("hello\n")
    assert.equal("HELLO", c:receive())
    assert.equal("127.0.0.1", got.host)
    assert.equal(select(2, c:getsockname()), got.port)
    assert.equal("green.socket.tcp", getmetatable(got.sock).__name)
    c:close()
    srv:stop()
  end)

  it("picks a free port for port 0 and sets srv.port to it", function()
    local srv = green.StreamServer("127.0.0.1", 0, upper)
    assert.equal(0, srv.port)
    srv:start()
    assert.is_true(srv.port > 0)
    assert.equal("HI", ask(srv, "hi"))
    srv:stop()
  end)

  it("listens on the port it is given", function()
    local probe = assert(socket.listen("127.0.0.1", 0))
    local port = select(2, probe:getsockname())
    probe:close()
    local srv = assert(green.StreamServer("127.0.0.1", port, upper):start())
    assert.equal(port, srv.port)
    assert.equal("OK", ask(srv, "ok"))
    srv:stop()
  end)

  it("does nothing on a second start", function()
    local srv = green.StreamServer("127.0.0.1", 0, upper):start()
    local port = srv.port
    assert.equal(srv, srv:start())
    assert.equal(port, srv.port)
    assert.is_true(srv.started)
    srv:stop()
  end)

  it("returns nil, err from start when the address is in use", function()
    local a = green.StreamServer("127.0.0.1", 0, upper):start()
    local b = green.StreamServer("127.0.0.1", a.port, upper)
    local ok, err = b:start()
    assert.is_nil(ok)
    assert.equal("address already in use", err)
    assert.is_false(b.started)
    a:stop()
  end)

  it("serve_forever starts it and returns true once stop is called",
     function()
    local srv = green.StreamServer("127.0.0.1", 0, upper)
    local g = green.spawn(srv.serve_forever, srv)
    green.sleep(0)
    assert.is_true(srv.started)
    assert.equal("ABC", ask(srv, "abc"))
    assert.is_false(g:ready())
    srv:stop()
    assert.is_true(g:join(1))
    assert.same({true, n = 1}, g.values)
  end)

  it("serve_forever returns nil, err if it cannot start", function()
    local a = green.StreamServer("127.0.0.1", 0, upper):start()
    local b = green.StreamServer("127.0.0.1", a.port, upper)
    local ok, err = b:serve_forever()
    assert.is_nil(ok)
    assert.equal("address already in use", err)
    a:stop()
  end)

  it("serve_forever stops the server when a Timeout interrupts it",
     function()
    local srv = green.StreamServer("127.0.0.1", 0, upper)
    assert.same({nil, "timeout"},
                {green.with_timeout(0.05, srv.serve_forever, srv)})
    assert.is_false(srv.started)
    local c, err = socket.connect("127.0.0.1", srv.port, 1)
    assert.is_nil(c)
    assert.equal("connection refused", err)
  end)

  it("stop closes the listener: new connections are refused", function()
    local srv = green.StreamServer("127.0.0.1", 0, upper):start()
    assert.equal("X", ask(srv, "x"))
    srv:stop()
    assert.is_false(srv.started)
    local c, err = socket.connect("127.0.0.1", srv.port, 1)
    assert.is_nil(c)
    assert.equal("connection refused", err)
    srv:stop()  -- a second stop does nothing
  end)

  it("stop waits for handlers that end within its timeout", function()
    local finished = 0
    local srv = green.StreamServer("127.0.0.1", 0, function(sock)
      sock:receive()
      green.sleep(0.05)
      sock:send("done\n")
      finished = finished + 1
    end):start()
    local c1, c2 = connect(srv), connect(srv)
    c1:send("go\n"); c2:send("go\n")
    waitfor(function() return #srv.pool == 2 end)
    local t0 = green.now()
    srv:stop(5)
    assert.is_true(green.now() - t0 < 1)
    assert.equal(2, finished)
    assert.equal("done", c1:receive())
    assert.equal("done", c2:receive())
    c1:close(); c2:close()
  end)

  it("stop kills the handlers still running after its timeout and closes "
     .. "their sockets", function()
    local reached, killed = false, 0
    local srv = green.StreamServer("127.0.0.1", 0, function(sock)
      local ok, err = pcall(sock.receive, sock)
      if not ok and err == green.GreenletExit then killed = killed + 1 end
      if ok then reached = true end
      error(err, 0)
    end):start()
    local cs = {}
    for i = 1, 3 do cs[i] = connect(srv) end
    waitfor(function() return #srv.pool == 3 end)
    local t0 = green.now()
    srv:stop(0.1)
    local took = green.now() - t0
    assert.is_true(took >= 0.1 and took < 1, "took " .. took)
    assert.equal(3, killed)
    assert.is_false(reached)
    assert.equal(0, #srv.pool)
    for _, c in ipairs(cs) do
      c:settimeout(1)
      assert.same({nil, "closed", ""}, {c:receive()})
      c:close()
    end
  end)

  it("stop(0) kills the handlers at once", function()
    local srv = green.StreamServer("127.0.0.1", 0, function(sock)
      sock:receive()
    end):start()
    local c = connect(srv)
    waitfor(function() return #srv.pool == 1 end)
    local t0 = green.now()
    srv:stop(0)
    assert.is_true(green.now() - t0 < 0.5)
    assert.equal(0, #srv.pool)
    c:close()
  end)

  it("stop gives up on a handler that catches its kill after a second",
     function()
    local released, kills = false, 0
    local srv = green.StreamServer("127.0.0.1", 0, function()
      while not released do
        if not pcall(green.sleep, 0.05) then kills = kills + 1 end
      end
    end):start()
    local c = connect(srv)
    waitfor(function() return #srv.pool == 1 end)
    local t0 = green.now()
    srv:stop(0.1)
    local took = green.now() - t0
    assert.is_true(took >= 1.1 and took < 2, "took " .. took)
    assert.equal(1, kills)
    assert.is_false(srv.started)
    released = true
    waitfor(function() return #srv.pool == 0 end)
    c:close()
  end)

  it("stop called from a handler stops the others, not its caller",
     function()
    local srv
    local other_killed = false
    srv = green.StreamServer("127.0.0.1", 0, function(sock)
      local line = sock:receive()
      if line == "stop" then
        srv:stop(0)
        sock:send("stopped\n")
      else
        local ok = pcall(sock.receive, sock)
        other_killed = not ok
      end
    end):start()
    local idle, boss = connect(srv), connect(srv)
    idle:send("idle\n")
    waitfor(function() return #srv.pool == 2 end)
    local server_done = green.spawn(srv.serve_forever, srv)
    boss:send("stop\n")
    boss:settimeout(2)
    assert.equal("stopped", boss:receive())
    assert.is_true(server_done:join(2))
    assert.is_true(other_killed)
    assert.is_false(srv.started)
    idle:close(); boss:close()
  end)

  it("closes the socket when the handler returns", function()
    local srv = green.StreamServer("127.0.0.1", 0, function(sock)
      sock:send("bye\n")
    end):start()
    local c = connect(srv)
    c:settimeout(2)
    assert.equal("bye", c:receive())
    assert.same({nil, "closed", ""}, {c:receive()})
    c:close()
    srv:stop()
  end)

  it("reports a handler's error and closes its socket; other connections "
     .. "go on", function()
    local out, err, status = runscript([[
      local green = require "green"
      local srv = green.StreamServer("127.0.0.1", 0, function(sock)
        while true do
          local line = sock:receive()
          if not line then return end
          if line == "boom" then error("handler exploded") end
          sock:send(line .. "!\n")
        end
      end):start()
      local a = green.socket.connect("127.0.0.1", srv.port)
      local b = green.socket.connect("127.0.0.1", srv.port)
      a:settimeout(2); b:settimeout(2)
      a:send("hello\n")
      print(a:receive())
      b:send("boom\n")
      print(b:receive())
      a:send("again\n")
      print(a:receive())
      a:close(); b:close()
      srv:stop()
    ]])
    assert.equal("hello!\nnil\tclosed\t\nagain!\n", out)
    assert.equal(0, status)
    assert.truthy(err:find("error in greenthread 'StreamServer%(127%.0%.0%.1:"
                           .. "%d+%) 127%.0%.0%.1:%d+'"), err)
    assert.truthy(err:find("handler exploded", 1, true), err)
    assert.truthy(err:find("stack traceback", 1, true), err)
    local _, count = err:gsub("error in greenthread", "")
    assert.equal(1, count)
  end)

  it("runs at most opts.pool handlers at once: the next connection waits "
     .. "until one ends", function()
    local running, started, gates = 0, {}, {}
    local srv = green.StreamServer("127.0.0.1", 0, function(sock)
      local name = sock:receive()
      running = running + 1
      started[#started + 1] = name
      gates[name] = green.Event()
      gates[name]:wait()
      running = running - 1
      sock:send(name .. " done\n")
    end, {pool = 2}):start()
    local cs = {}
    for i = 1, 3 do
      cs[i] = connect(srv)  -- the third waits in the kernel's backlog
      cs[i]:settimeout(5)
      cs[i]:send("c" .. i .. "\n")
    end
    waitfor(function() return running == 2 end)
    green.sleep(0.05)
    assert.same({"c1", "c2"}, started)
    assert.is_true(srv.pool:full())
    gates.c1:set()
    assert.equal("c1 done", cs[1]:receive())
    waitfor(function() return #started == 3 end)
    assert.equal("c3", started[3])
    assert.equal(2, running)
    gates.c2:set(); gates.c3:set()
    assert.equal("c2 done", cs[2]:receive())
    assert.equal("c3 done", cs[3]:receive())
    for _, c in ipairs(cs) do c:close() end
    srv:stop()
  end)

  it("runs its handlers in the green.Pool given as opts.pool", function()
    local pool = green.Pool(5)
    local srv = green.StreamServer("127.0.0.1", 0, function(sock)
      sock:receive()
    end, {pool = pool}):start()
    assert.equal(pool, srv.pool)
    local c = connect(srv)
    waitfor(function() return #pool == 1 end)
    assert.equal(4, pool:free_count())
    c:close()
    waitfor(function() return #pool == 0 end)
    srv:stop()
  end)

  it("has a pool of 10000 by default", function()
    local srv = green.StreamServer("127.0.0.1", 0, upper)
    assert.equal(10000, srv.pool.size)
  end)

  it("sets opts.timeout on each connection", function()
    local result = green.AsyncResult()
    local srv = green.StreamServer("127.0.0.1", 0, function(sock)
      local t0 = green.now()
      local line, err = sock:receive()
      result:set(line, err, green.now() - t0)
    end, {timeout = 0.05}):start()
    local c = connect(srv)
    local line, err, took = result:get(5)
    assert.is_nil(line)
    assert.equal("timeout", err)
    assert.is_true(took >= 0.05 and took < 1)
    c:close()
    srv:stop()
  end)

  it("turns TCP_NODELAY off with nodelay = false, and on otherwise",
     function()
    local srv = green.StreamServer("127.0.0.1", 0, upper,
                                   {nodelay = false, keepalive = true,
                                    backlog = 16})
    srv:start()
    assert.equal("Y", ask(srv, "y"))
    srv:stop()
  end)

  it("lets two servers share a port with reuseport", function()
    local a = green.StreamServer("127.0.0.1", 0, function(s)
      s:send("a\n")
    end, {reuseport = true}):start()
    local b = green.StreamServer("127.0.0.1", a.port, function(s)
      s:send("b\n")
    end, {reuseport = true})
    assert.equal(b, b:start())
    local seen = {}
    for _ = 1, 40 do
      local c = connect(a)
      c:settimeout(2)
      seen[c:receive()] = true
      c:close()
    end
    assert.is_true(seen.a or seen.b)
    a:stop(); b:stop()
  end)

  it("serves, when it stops, the connections waiting in the backlog of a "
     .. "listener that shares its port", function()
    -- a's pool of one is busy, so its share of the connections waits in
    -- its own backlog; stopping a must answer them, not reset them.
    local go = green.Event()
    local a = green.StreamServer("127.0.0.1", 0, function(s)
      go:wait()
      s:send("a\n")
    end, {reuseport = true, pool = 1}):start()
    local b = green.StreamServer("127.0.0.1", a.port, function(s)
      s:send("b\n")
    end, {reuseport = true}):start()
    local clients = {}
    for i = 1, 40 do clients[i] = connect(a) end
    green.sleep(0.05)  -- the kernel has sorted them out between a and b
    local stopping = green.spawn(a.stop, a, 5)
    green.sleep(0)
    go:set()
    local got = {}
    for i = 1, 40 do
      clients[i]:settimeout(5)
      local line, err = clients[i]:receive()
      got[line or err] = (got[line or err] or 0) + 1
      clients[i]:close()
    end
    stopping:join()
    b:stop()
    assert.is_nil(got["connection reset by peer"])
    assert.equal(40, (got.a or 0) + (got.b or 0))
    assert.is_true((got.a or 0) > 1)  -- more than the one a was serving
  end)

  it("listens on a Unix socket for a host 'unix:PATH'", function()
    local path = os.tmpname()
    os.remove(path)
    local srv = green.StreamServer("unix:" .. path, nil, function(sock, h, p)
      sock:send(("%q %s\n"):format(h, tostring(p)))
      upper(sock)
    end):start()
    assert.equal(path, srv.path)
    local c = socket.unix()
    c:settimeout(2)
    assert(c:connect(path))
    assert.equal('"" nil', c:receive())
    c:send("unix\n")
    assert.equal("UNIX", c:receive())
    c:close()
    srv:stop()
    assert.is_nil(io.open(path))  -- stop removes the socket file
  end)

  it("backs off while out of file descriptors and accepts once some are "
     .. "free", function()
    local p = io.popen("ulimit -n")
    local limit = tonumber(p:read("a"))
    p:close()
    if not limit or limit > 100000 then
      pending("ulimit -n is too large to exhaust the descriptors quickly")
      return
    end
    local srv = green.StreamServer("127.0.0.1", 0, upper):start()
    local files = {}
    while true do
      local f = io.open("/dev/null")
      if not f then break end
      files[#files + 1] = f
    end
    table.remove(files):close()  -- one for the client's socket
    local c, err = socket.connect("127.0.0.1", srv.port, 2)
    local ok = pcall(function()
      assert(c, err)
      c:settimeout(5)
      c:send("starved\n")
      -- The accept fails with EMFILE and retries every 0.1 s: in 0.3 s
      -- the process must stay almost idle.
      local cpu0 = os.clock()
      green.sleep(0.3)
      assert.is_true(os.clock() - cpu0 < 0.1, "accept spins")
    end)
    for _, f in ipairs(files) do f:close() end
    assert(ok)
    assert.equal("STARVED", c:receive())
    c:close()
    assert.equal("AFTER", ask(srv, "after"))
    srv:stop()
  end)

  it("stops at the end of a to-be-closed variable's scope", function()
    local port
    do
      local srv <close> = green.StreamServer("127.0.0.1", 0, upper):start()
      port = srv.port
      assert.equal("IN", ask(srv, "in"))
    end
    local c, err = socket.connect("127.0.0.1", port, 1)
    assert.is_nil(c)
    assert.equal("connection refused", err)
  end)

  it("can be started again after stop", function()
    local srv = green.StreamServer("127.0.0.1", 0, upper):start()
    srv:stop()
    assert.equal(srv, srv:start())
    assert.equal("AGAIN", ask(srv, "again"))
    srv:stop()
  end)

  it("shows its address and state in tostring", function()
    local srv = green.StreamServer("127.0.0.1", 0, upper)
    assert.equal("green.StreamServer(127.0.0.1:0, new)", tostring(srv))
    srv:start()
    assert.equal(("green.StreamServer(127.0.0.1:%d, serving)")
      :format(srv.port), tostring(srv))
    srv:stop()
    assert.truthy(tostring(srv):find("stopped", 1, true))
  end)

  it("accepts a callable table as the handler", function()
    local h = setmetatable({}, {__call = function(_, sock) upper(sock) end})
    local srv = green.StreamServer("127.0.0.1", 0, h):start()
    assert.equal("CALL", ask(srv, "call"))
    srv:stop()
  end)

  it("raises errors naming the argument for bad arguments", function()
    local S = green.StreamServer
    local function f() end
    assert.has_error(function() S(1, 0, f) end,
      "bad argument #1 to 'StreamServer' (string expected, got number)")
    assert.has_error(function() S("127.0.0.1", "80", f) end,
      "bad argument #2 to 'StreamServer' (integer expected, got string)")
    assert.has_error(function() S("127.0.0.1", 1.5, f) end,
      "bad argument #2 to 'StreamServer' (integer expected, got 1.5)")
    assert.has_error(function() S("127.0.0.1", 70000, f) end,
      "bad argument #2 to 'StreamServer' (port out of range)")
    assert.has_error(function() S("127.0.0.1", 0) end,
      "bad argument #3 to 'StreamServer' (function expected, got nil)")
    assert.has_error(function() S("127.0.0.1", 0, f, 5) end,
      "bad argument #4 to 'StreamServer' (table expected, got number)")
    assert.has_error(function() S("127.0.0.1", 0, f, {pol = 1}) end,
      "bad argument #4 to 'StreamServer' (unknown option 'pol')")
    assert.has_error(function() S("127.0.0.1", 0, f, {pool = 0}) end,
      "bad argument #4 to 'StreamServer' (option 'pool': positive integer "
      .. "or green.Pool expected, got 0)")
    assert.has_error(function() S("127.0.0.1", 0, f, {timeout = "1"}) end,
      "bad argument #4 to 'StreamServer' (option 'timeout': non-negative "
      .. "number expected, got string)")
    assert.has_error(function() S("127.0.0.1", 0, f, {reuseport = 1}) end,
      "bad argument #4 to 'StreamServer' (option 'reuseport': boolean "
      .. "expected, got 1)")
    local srv = S("127.0.0.1", 0, f)
    assert.has_error(function() srv:stop("1") end,
      "bad argument #1 to 'stop' (number expected, got string)")
    assert.has_error(function() srv.start({}) end,
      "calling 'start' on bad self (green.StreamServer expected, got table)")
    assert.has_error(function() srv.serve_forever(1) end,
      "calling 'serve_forever' on bad self (green.StreamServer expected, "
      .. "got number)")
  end)
end)
