-- Bounds of a stream socket (issue 12): the longest line a receive
-- accepts ("max-line"), how much a stream buffers (what its waiting
-- receive needs plus one read, nothing at all while idle), one connect
-- or bind at a time, and receive(n) for any n.  s:_buffer() (private)
-- gives the bytes buffered and the buffer's capacity.

local green = require "green"
local socket = green.socket

local ONEBYTE = (os.getenv("GREENLUA_IO_ONEBYTE") or "0") ~= "0"
local MiB = 1024 * 1024

local function listener()
  local ls = assert(socket.listen("127.0.0.1", 0))
  return ls, select(2, ls:getsockname())
end

local function pair()
  local ls, port = listener()
  local c = assert(socket.connect("127.0.0.1", port))
  local s = assert(ls:accept())
  ls:close()
  return c, s
end

-- How many sockets this process has open (files the resolver's threads
-- may be reading, such as /etc/hosts, do not count).
local function nsockets()
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("n")
  f:close()
  local p = assert(io.popen("ls -l /proc/" .. pid .. "/fd 2>/dev/null | grep -c socket:"))
  local n = tonumber(p:read("l"))
  p:close()
  return n
end

describe("s:setoption('max-line', n)", function()
  it("fails a longer line with 'line too long' and the first n bytes,"
     .. " and the socket stays usable", function()
    local c, s = pair()
    assert.is_true(s:setoption("max-line", 10))
    c:send(("x"):rep(25) .. "\nnext\n")
    assert.same({nil, "line too long", ("x"):rep(10)}, {s:receive()})
    assert.same({nil, "line too long", ("x"):rep(10)}, {s:receive("*l")})
    assert.equal("xxxxx", s:receive())
    assert.equal("next", s:receive())
    c:send(("y"):rep(10) .. "\r\n")   -- exactly n bytes before the \n
    assert.equal(("y"):rep(10), s:receive())
    c:send("abc")
    assert.equal("abc", s:receive(3))
    c:close(); s:close()
  end)

  it("applies to a line that arrives in pieces, prefix excluded", function()
    local c, s = pair()
    assert.is_true(s:setoption("max-line", 8))
    green.spawn(function()
      for ch in ("abcdefghijkl\n"):gmatch(".") do
        c:send(ch); green.sleep(0)
      end
    end)
    assert.same({nil, "line too long", ">abcdefgh"}, {s:receive("*l", ">")})
    assert.equal("ijkl", s:receive())
    c:close(); s:close()
  end)

  it("is 16 MiB by default", function()
    if ONEBYTE then return end  -- 16 MiB one byte at a time is too slow
    local c, s = pair()
    local sender = green.spawn(function()
      c:send(("z"):rep(16 * MiB + 5) .. "\nok\n")
    end)
    local data, err, partial = s:receive()
    assert.is_true(data == nil)
    assert.equal("line too long", err)
    assert.is_true(#partial == 16 * MiB)
    assert.equal("zzzzz", s:receive())
    assert.equal("ok", s:receive())
    sender:join()
    c:close(); s:close()
  end)

  it("is inherited by accepted sockets and checks its argument", function()
    local ls, port = listener()
    assert.is_true(ls:setoption("max-line", 4))
    local c = assert(socket.connect("127.0.0.1", port))
    local s = assert(ls:accept())
    c:send("12345\n")
    assert.same({nil, "line too long", "1234"}, {s:receive()})
    assert.has_error(function() s:setoption("max-line", 0) end)
    assert.has_error(function() s:setoption("max-line", "x") end)
    c:close(); s:close(); ls:close()
  end)
end)

describe("a stream's read buffer", function()
  it("holds no more than the waiting receive needs plus one read",
     function()
    local c, s = pair()
    assert.is_true(s:setoption("max-line", 1000))
    local n = ONEBYTE and 4096 or 4 * MiB
    local sender = green.spawn(function() c:send(("q"):rep(n)) end)
    local _, err = s:receive()
    assert.equal("line too long", err)
    local _, cap = s:_buffer()
    assert.is_true(cap <= 256 * 1024, "capacity " .. cap)
    assert.equal(n - 1000, #assert(s:receive(n - 1000)))
    sender:join()
    c:close(); s:close()
  end)

  it("is freed when it empties, so an idle stream holds none", function()
    local c, s = pair()
    assert.same({0, 0}, {s:_buffer()})
    c:send("hello\nworld")
    assert.equal("hello", s:receive())
    local have, cap = s:_buffer()
    assert.equal(5, have)
    assert.is_true(cap > 0)
    assert.equal("world", s:receive(5))
    assert.same({0, 0}, {s:_buffer()})
    -- a large receive leaves no large buffer behind
    local big = ONEBYTE and 4096 or MiB
    green.spawn(function() c:send(("b"):rep(big) .. "tail") end)
    assert.equal(big, #s:receive(big))
    have, cap = s:_buffer()
    assert.is_true(cap <= 64 * 1024 + 4096, "capacity " .. cap)
    assert.equal("tail", s:receive(4))
    assert.same({0, 0}, {s:_buffer()})
    c:close(); s:close()
  end)
end)

describe("connect and bind", function()
  it("return nil, err for a second connect while one is resolving,"
     .. " and the first is unaffected", function()
    local ls, port = listener()
    local s = socket.tcp()
    local first
    local g = green.spawn(function() first = {s:connect("localhost", port)} end)
    green.sleep(0)  -- the first is resolving "localhost"
    local ok, err = s:connect("127.0.0.1", port)
    assert.is_nil(ok)
    assert.equal("connection already in progress", err)
    assert.same({nil, "connection already in progress"},
                {s:bind("127.0.0.1", 0)})
    g:join()
    assert.same({true}, first)
    assert.same({nil, "socket is already connected"},
                {s:connect("127.0.0.1", port)})
    local peer = assert(ls:accept())
    assert(s:send("hi\n"))
    assert.equal("hi", peer:receive())
    s:close(); peer:close(); ls:close()
  end)

  it("return nil, err for a connect while one is in flight", function()
    local ls = assert(socket.listen("127.0.0.1", 0, 0))
    local port = select(2, ls:getsockname())
    local held = {}
    local s, g
    for _ = 1, 6 do  -- fill the backlog until a connect stays pending
      s = socket.tcp()
      s:settimeout(0.3)
      g = green.spawn(function() return s:connect("127.0.0.1", port) end)
      green.sleep(0.02)
      if not g:ready() then break end
      held[#held + 1] = s
    end
    assert.is_false(g:ready())
    assert.matches("^green.socket.tcp{connecting}", tostring(s))
    assert.same({nil, "connection already in progress"},
                {s:connect("127.0.0.1", port)})
    assert.same({nil, "connection already in progress"},
                {s:bind("127.0.0.1", 0)})
    assert.same({nil, "timeout"}, {g:get()})
    for _, h in ipairs(held) do h:close() end
    s:close(); ls:close()
  end)

  it("return nil, err for a second bind while one is resolving, and leak"
     .. " no fd", function()
    local before = nsockets()
    for _ = 1, 5 do
      local s = socket.tcp()
      local first
      local g = green.spawn(function() first = {s:bind("localhost", 0)} end)
      green.sleep(0)
      local ok, err = s:bind("localhost", 0)
      assert.is_nil(ok)
      assert.equal("string", type(err))
      assert.same({nil, "connection already in progress"},
                  {s:connect("127.0.0.1", 1)})
      g:join()
      assert.same({true}, first)
      assert.is_true(s:listen())
      s:close()
    end
    assert.equal(before, nsockets())
  end)

  it("do not bind a socket closed while its name was resolved", function()
    local before = nsockets()
    local s = socket.tcp()
    local res
    local g = green.spawn(function() res = {s:bind("localhost", 0)} end)
    green.sleep(0)
    s:close()
    g:join()
    assert.same({nil, "closed"}, res)
    assert.equal(before, nsockets())
  end)
end)

describe("receive(n)", function()
  for _, n in ipairs{2^62 // 1, 2^62 // 1 + 3, math.maxinteger} do
    it(("waits for %d bytes and returns what came before a close as the"
        .. " partial result"):format(n), function()
      local c, s = pair()
      green.spawn(function()
        green.sleep(0.01)
        c:send("abc")
        green.sleep(0.01)
        c:close()
      end)
      assert.same({nil, "closed", "abc"}, {s:receive(n)})
      s:close()
    end)
  end

  it("times out with what came as the partial result", function()
    local c, s = pair()
    s:settimeout(0.05)
    green.spawn(function() green.sleep(0.01); c:send("xy") end)
    assert.same({nil, "timeout", "xy"}, {s:receive(math.maxinteger)})
    c:close(); s:close()
  end)
end)
