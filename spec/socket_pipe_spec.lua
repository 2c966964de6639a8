-- Streams over fds we did not connect (bindings/net/pipe.c): the ends of
-- a pipe, as a child's stdin and stdout will be, and a socketpair.  They
-- are the same stream as a TCP socket, so every receive pattern, send,
-- timeouts and close work on them; direct buffer reads (glS_fill, the C
-- parsers' access) are checked through the private s:_peek.

local green = require "green"
local socket = green.socket

describe("green.socket.socketpair", function()
  it("gives two connected Unix stream sockets", function()
    local a, b = assert(socket.socketpair())
    assert.matches("^green.socket.unix{client}: ", tostring(a))
    assert.equal(4, a:send("one\n"))
    assert.equal("one", b:receive())
    b:send("back")
    assert.equal("back", a:receive(4))
    a:close()
    assert.same({nil, "closed", ""}, {b:receive("*l")})
    b:close()
  end)
end)

describe("a pipe stream", function()
  it("reads every receive pattern from the pipe's write end", function()
    local r, w = assert(socket._pipe())
    assert.matches("^green.Pipe{client}: ", tostring(r))
    green.spawn(function()
      for _, piece in ipairs{"li", "ne 1\r\nline 2\n", "abc", "defg",
                             "rest", " of it"} do
        assert(w:send(piece))
        green.sleep(0)
      end
      w:close()
    end)
    assert.equal("line 1", r:receive())
    assert.equal("line 2", r:receive("*l"))
    assert.equal("abcde", r:receive(5))
    assert.equal(">fg", r:receive(2, ">"))
    assert.truthy(#r:receiveany(100) > 0)
    local rest = r:receive("*a")
    assert.truthy(("rest of it"):find(rest, 1, true))
    assert.same({nil, "closed", ""}, {r:receive()})
    r:close()
  end)

  it("times out and keeps what came as the partial result", function()
    local r, w = assert(socket._pipe())
    r:settimeout(0.01)
    w:send("part")
    assert.same({nil, "timeout", "part"}, {r:receive(10)})
    w:send("x\n")
    assert.equal("x", r:receive())
    r:close(); w:close()
  end)

  it("wakes a parked receiver with 'closed' when the stream is closed",
     function()
    local r, w = assert(socket._pipe())
    local got
    local g = green.spawn(function() got = {r:receive()} end)
    green.sleep(0)
    r:close()
    g:join()
    assert.same({nil, "closed"}, got)
    w:close()
  end)

  it("is no socket: listen and names fail with a message", function()
    local r, w = assert(socket._pipe())
    assert.same({nil, "not a socket"}, {r:listen()})
    local ok, err = r:getpeername()
    assert.is_nil(ok)
    assert.equal("string", type(err))
    assert.truthy(r:getfd() >= 0)
    r:close(); w:close()
  end)
end)

describe("direct buffer reads (s:_peek)", function()
  it("wait for the bytes asked for and consume nothing", function()
    local a, b = assert(socket.socketpair())
    green.spawn(function()
      for c in ("hello\nworld"):gmatch(".") do a:send(c); green.sleep(0) end
      a:close()
    end)
    assert.equal("hel", b:_peek(3))
    assert.equal("hello\nw", b:_peek(7))
    assert.equal("hello", b:receive())
    assert.equal("world", b:_peek(100))  -- the end came first
    assert.equal("world", b:receive("*a"))
    assert.same({nil, "closed"}, {b:_peek(1)})
    b:close()
  end)

  it("take their turn after earlier receivers", function()
    local a, b = assert(socket.socketpair())
    local order = {}
    green.spawn(function() local v = b:receive(2); order[#order + 1] = v end)
    green.spawn(function() local v = b:_peek(2); order[#order + 1] = v end)
    green.sleep(0)
    a:send("abcd")
    green.sleep(0.01)
    assert.same({"ab", "cd"}, order)
    a:close(); b:close()
  end)

  it("time out with the read timeout", function()
    local a, b = assert(socket.socketpair())
    b:settimeout(0.01)
    a:send("x")
    assert.same({nil, "timeout"}, {b:_peek(2)})
    assert.equal("x", b:receive(1))
    a:close(); b:close()
  end)
end)
