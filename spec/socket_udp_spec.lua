-- green.socket.udp: datagrams over loopback (127.0.0.1 and ::1).

local green = require "green"
local socket = green.socket

-- A UDP socket bound to a free port of host; returns it and the port.
local function bound(host)
  local u = socket.udp()
  assert(u:setsockname(host or "127.0.0.1", 0))
  local _, port = u:getsockname()
  return u, port
end

describe("green.socket.udp", function()
  it("round-trips sendto and receivefrom over IPv4", function()
    local a, pa = bound()
    local b, pb = bound()
    assert.equal(5, a:sendto("hello", "127.0.0.1", pb))
    local data, host, port = b:receivefrom()
    assert.equal("hello", data)
    assert.equal("127.0.0.1", host)
    assert.equal(pa, port)
    assert.equal(3, b:sendto("ack", host, port))
    assert.equal("ack", a:receive())
    a:close(); b:close()
  end)

  it("round-trips over IPv6 (::1)", function()
    local a = bound("::1")
    local b, pb = bound("::1")
    a:sendto("six", "::1", pb)
    local data, host = b:receivefrom()
    assert.equal("six", data)
    assert.equal("::1", host)
    a:close(); b:close()
  end)

  it("parks a receiver until a datagram arrives", function()
    local a = socket.udp()
    local b, pb = bound()
    local got
    green.spawn(function() got = b:receive() end)
    green.sleep(0)
    assert.is_nil(got)
    a:sendto("late", "127.0.0.1", pb)
    green.sleep(0.01)
    assert.equal("late", got)
    a:close(); b:close()
  end)

  it("hands datagrams to parked receivers in the order they called",
     function()
    local a = socket.udp()
    local b, pb = bound()
    local got = {}
    for i = 1, 3 do
      green.spawn(function()
        local d = b:receive()
        got[#got + 1] = i .. d
      end)
    end
    green.sleep(0)
    for _, d in ipairs {"x", "y", "z"} do a:sendto(d, "127.0.0.1", pb) end
    green.sleep(0.02)
    assert.same({"1x", "2y", "3z"}, got)
    a:close(); b:close()
  end)

  it("sends to and receives from the peer set with setpeername", function()
    local a, pa = bound()
    local b, pb = bound()
    assert.is_true(a:setpeername("127.0.0.1", pb))
    assert.is_true(b:setpeername("localhost", pa))
    assert.equal("127.0.0.1", (a:getpeername()))
    assert.equal(4, a:send("ping"))
    assert.equal("ping", b:receive())
    b:send("pong")
    assert.equal("pong", a:receive())
    assert.is_true(a:setpeername("*"))
    assert.same({nil, "socket is not connected"}, {a:send("x")})
    a:close(); b:close()
  end)

  it("truncates a datagram to the size asked for", function()
    local a = socket.udp()
    local b, pb = bound()
    a:sendto("0123456789", "127.0.0.1", pb)
    assert.equal("0123", b:receive(4))
    a:sendto("abcdef", "127.0.0.1", pb)
    green.sleep(0.01)
    assert.equal("abc", (b:receivefrom(3)))
    a:close(); b:close()
  end)

  it("returns nil, 'timeout' after the timeout and keeps working",
     function()
    local a = socket.udp()
    local b, pb = bound()
    b:settimeout(0.02)
    assert.same({nil, "timeout"}, {b:receive()})
    assert.same({nil, "timeout"}, {b:receivefrom()})
    a:sendto("after", "127.0.0.1", pb)
    assert.equal("after", b:receive())
    a:close(); b:close()
  end)

  it("lets green.Timeout interrupt a receive", function()
    local b = bound()
    assert.same({nil, "timeout"}, {green.with_timeout(0.02, b.receive, b)})
    b:close()
  end)

  it("wakes a parked receiver with nil, 'closed' on close", function()
    local b = bound()
    local res
    green.spawn(function() res = {b:receive()} end)
    green.sleep(0)
    b:close()
    green.sleep(0)
    assert.same({nil, "closed"}, res)
  end)

  it("returns nil, 'closed' from every call on a closed socket", function()
    local u = socket.udp()
    assert.is_true(u:close())
    assert.is_true(u:close())
    assert.same({nil, "closed"}, {u:receive()})
    assert.same({nil, "closed"}, {u:sendto("x", "127.0.0.1", 9)})
    assert.same({nil, "closed"}, {u:setsockname("127.0.0.1", 0)})
    assert.same({nil, "closed"}, {u:getsockname()})
    assert.equal(-1, u:getfd())
    assert.matches("^green.socket.udp{closed}: ", tostring(u))
  end)

  it("reports an unknown host as nil, err", function()
    local u = socket.udp()
    local ok, err = green.with_timeout(10, u.sendto, u, "x",
                                       "no-such-host.invalid", 9)
    assert.is_nil(ok)
    assert.is_string(err)
    u:close()
  end)

  it("sets options, reports its fd and closes with <close> and the collector",
     function()
    local u = bound()
    assert.is_true(u:setoption("broadcast", true))
    assert.is_true(u:setoption("reuseaddr", true))
    assert.is_true(u:getfd() > 2)
    assert.matches("^green.socket.udp{unconnected}: ", tostring(u))
    do
      local v <close> = u
      assert.equal(u, v)
    end
    assert.same({nil, "closed"}, {u:receive()})
    local r = socket.udp()
    assert.is_true(r:setoption("reuseaddr", true))   -- before it is bound
    assert.is_true(r:setsockname("127.0.0.1", 0))
    r:close()
    socket.udp():setsockname("127.0.0.1", 0)   -- left to the collector
    collectgarbage()
    collectgarbage()
  end)

  it("raises errors naming the function and argument", function()
    local u = socket.udp()
    assert.has_error(function() u:sendto() end,
      "bad argument #1 to 'sendto' (string expected, got no value)")
    assert.has_error(function() u:sendto("x", "127.0.0.1") end,
      "bad argument #3 to 'sendto' (number expected, got no value)")
    assert.has_error(function() u:receive(0) end,
      "bad argument #1 to 'receive' (size must be positive)")
    assert.has_error(function() u:setsockname(nil, 0) end)
    assert.has_error(function() u:setoption("nope", true) end)
    assert.has_error(function() u.receive(1) end)
    u:close()
  end)
end)
