-- green.socket.dns: lookups through uv_getaddrinfo, which never block the
-- hub.  Only local names (localhost, numeric addresses, the reserved
-- .invalid domain) are looked up.

local green = require "green"
local dns = green.socket.dns

describe("green.socket.dns", function()
  it("resolves localhost with toip", function()
    local ip = dns.toip("localhost")
    assert.is_truthy(ip == "127.0.0.1" or ip == "::1", tostring(ip))
  end)

  it("returns numeric addresses as they are", function()
    assert.equal("127.0.0.1", dns.toip("127.0.0.1"))
    assert.equal("::1", dns.toip("::1"))
    assert.equal("::1", dns.toip("0:0:0:0:0:0:0:1"))
  end)

  it("lists inet and/or inet6 entries from getaddrinfo", function()
    local list = assert(dns.getaddrinfo("localhost"))
    assert.is_true(#list >= 1)
    for _, e in ipairs(list) do
      assert.is_truthy(e.family == "inet" or e.family == "inet6")
      assert.is_string(e.addr)
      if e.family == "inet" then assert.equal("127.0.0.1", e.addr) end
      if e.family == "inet6" then assert.equal("::1", e.addr) end
    end
    assert.same({{family = "inet6", addr = "::1"}}, dns.getaddrinfo("::1"))
    assert.same({{family = "inet", addr = "127.0.0.1"}},
                dns.getaddrinfo("127.0.0.1"))
  end)

  it("returns nil, err for a name that does not exist", function()
    local ip, err = green.with_timeout(10, dns.toip, "no-such-host.invalid")
    if err == "timeout" then
      pending("the resolver does not fail .invalid names locally here")
      return
    end
    assert.is_nil(ip)
    assert.equal("host not found", err)
    local list, err2 = dns.getaddrinfo("no-such-host.invalid")
    assert.is_nil(list)
    assert.equal("host not found", err2)
  end)

  it("lets other greenthreads run during a lookup", function()
    local ran = false
    green.spawn(function() ran = true end)
    assert.is_string(dns.toip("localhost"))
    assert.is_true(ran)
  end)

  it("serves concurrent lookups", function()
    local res, gs = {}, {}
    for i = 1, 20 do
      gs[i] = green.spawn(function() res[i] = dns.toip("localhost") end)
    end
    for i = 1, 20 do gs[i]:join() end
    for i = 1, 20 do assert.equal(res[1], res[i]) end
    assert.is_string(res[1])
  end)

  it("lets green.Timeout interrupt a lookup", function()
    local ok, err = green.with_timeout(0, dns.getaddrinfo, "localhost")
    assert.is_nil(ok)
    assert.equal("timeout", err)
    assert.is_string(dns.toip("localhost"))   -- still works afterwards
  end)

  it("reports the host's name", function()
    assert.is_string(dns.gethostname())
  end)

  it("raises errors naming the argument", function()
    assert.has_error(function() dns.toip() end,
      "bad argument #1 to 'toip' (string expected, got no value)")
    assert.has_error(function() dns.getaddrinfo({}) end,
      "bad argument #1 to 'getaddrinfo' (string expected, got table)")
  end)
end)
