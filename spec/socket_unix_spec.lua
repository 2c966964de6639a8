-- green.socket.unix: Unix-domain stream sockets on paths in a temporary
-- directory.  They share the stream code with TCP (socket_tcp_spec.lua
-- covers the receive patterns in depth).

local green = require "green"
local socket = green.socket

local dir

-- A fresh socket path in the temporary directory.
local n = 0
local function path()
  n = n + 1
  return ("%s/s%d.sock"):format(dir, n)
end

-- A listening socket on a fresh path; returns it and the path.
local function listener()
  local p = path()
  local ls = socket.unix()
  assert(ls:bind(p))
  assert(ls:listen())
  return ls, p
end

local function pair()
  local ls, p = listener()
  local c = socket.unix()
  assert(c:connect(p))
  local s = assert(ls:accept())
  ls:close()
  return c, s, p
end

describe("green.socket.unix", function()
  setup(function()
    local f = assert(io.popen("mktemp -d"))
    dir = f:read("l")
    f:close()
  end)

  teardown(function()
    os.execute("rm -rf '" .. dir .. "'")
  end)

  it("binds, listens, accepts and exchanges lines", function()
    local c, s, p = pair()
    assert.equal(6, c:send("hello\n"))
    assert.equal("hello", s:receive())
    s:send("line 1\r\nline 2\n")
    assert.equal("line 1", c:receive())
    assert.equal("line 2", c:receive("*l"))
    assert.equal(p, s:getsockname())
    assert.equal(p, c:getpeername())
    assert.matches("^green.socket.unix{client}: ", tostring(c))
    c:close(); s:close()
  end)

  it("reads to the end with '*a', n bytes, and what is there", function()
    local c, s = pair()
    green.spawn(function()
      s:send("abc"); green.sleep(0)
      s:send("defgh"); s:close()
    end)
    assert.equal("ab", c:receive(2))
    assert.equal("cd", c:receive(2))
    assert.equal("e", c:receiveany(1))
    assert.equal("fgh", c:receive("*a"))
    c:close()
  end)

  it("returns nil, 'timeout', partial and keeps working", function()
    local c, s = pair()
    c:settimeout(0.02)
    s:send("par")
    assert.same({nil, "timeout", "par"}, {c:receive()})
    s:send("tial\n")
    assert.equal("tial", c:receive())
    c:close(); s:close()
  end)

  it("sends 4 MB with backpressure", function()
    local c, s = pair()
    local onebyte = (os.getenv("GREENLUA_IO_ONEBYTE") or "0") ~= "0"
    local data = ("0123456789abcdef"):rep(onebyte and 1024 or 256 * 1024)
    local sent
    green.spawn(function() sent = c:send(data); c:close() end)
    local got = s:receive("*a")
    assert.equal(#data, sent)
    assert.is_true(got == data)
    s:close()
  end)

  it("returns nil, err for a missing path or one already bound", function()
    local c = socket.unix()
    local ok, err = c:connect(dir .. "/missing.sock")
    assert.is_nil(ok)
    assert.equal("no such file or directory", err)
    local ls, p = listener()
    local other = socket.unix()
    ok, err = other:bind(p)
    assert.is_nil(ok)
    assert.equal("address already in use", err)
    ls:close(); other:close(); c:close()
  end)

  it("wakes blocked greenthreads with nil, 'closed' on close", function()
    local c, s = pair()
    local ls = listener()
    local r, a
    green.spawn(function() r = {c:receive()} end)
    green.spawn(function() a = {ls:accept()} end)
    green.sleep(0)
    c:close(); ls:close()
    green.sleep(0)
    assert.same({nil, "closed"}, r)
    assert.same({nil, "closed"}, a)
    s:close()
  end)

  it("is closed by the collector: the peer sees the end", function()
    local ls, p = listener()
    green.spawn(function()
      local c = socket.unix()
      assert(c:connect(p))
      c:send("bye")
    end):join()
    local s = assert(ls:accept())
    collectgarbage(); collectgarbage()
    s:settimeout(5)
    assert.equal("bye", s:receive("*a"))
    s:close(); ls:close()
  end)

  it("has no tcp-nodelay but the socket-level options", function()
    local c, s = pair()
    assert.same({nil, "operation not supported on socket"},
                {c:setoption("tcp-nodelay", true)})
    assert.is_true(c:setoption("keepalive", false))
    assert.is_true(c:getfd() > 2)
    c:close(); s:close()
  end)

  it("raises errors for bad arguments", function()
    local u = socket.unix()
    assert.has_error(function() u:connect() end,
      "bad argument #1 to 'connect' (string expected, got no value)")
    assert.has_error(function() u:bind(("x"):rep(200)) end,
      "bad argument #1 to 'bind' (path empty or too long)")
    assert.has_error(function() socket.tcp().connect(u, "x", 1) end)
    u:close()
  end)
end)
