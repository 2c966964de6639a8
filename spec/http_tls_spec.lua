-- green.http over TLS: green.http.server's opts.tls against curl and
-- Python's ssl module, and https:// in green.http.request against Python's
-- https server and our own, with verification, its failures and the
-- keep-alive pool.  The PKI is spec/tls_helpers.lua's.

local green = require "green"
local h = require "spec.helpers"
local T = require "spec.tls_helpers"
local http, socket = green.http, green.socket
local q, pki, child = h.q, T.pki, T.child
local CA
-- One byte per read: a whole handshake takes longer than a stall may.
local STALL = (os.getenv("GREENLUA_IO_ONEBYTE") or "0") ~= "0" and 2 or 0.1

-- A green.http.server over TLS answering with the method, path and the
-- number of its connection; returns it.
local function server(opts)
  local conns = 0
  opts = opts or {}
  opts.tls = opts.tls or {cert = pki("srv.pem"), key = pki("srv.key")}
  local seen = setmetatable({}, {__mode = "k"})
  local srv = http.server("127.0.0.1", 0, function(req)
    local g = green.getcurrent()
    if not seen[g] then
      conns = conns + 1
      seen[g] = conns
    end
    return 200, {["content-type"] = "text/plain"},
      ("%s %s on connection %d\n"):format(req.method, req.path, seen[g])
  end, opts)
  assert(srv:start())
  return srv
end

describe("green.http over TLS", function()
  setup(function() T.makepki(); CA = T.ca end)
  teardown(T.removepki)

  describe("green.http.server with opts.tls", function()
    it("serves curl --cacert, two requests on one kept-alive connection",
       function()
      local srv = server()
      local out, rc = child(("curl -sS --cacert %s https://localhost:%d/a "
        .. "https://localhost:%d/b"):format(q(CA), srv.port, srv.port)):wait()
      assert.equal(0, rc, out)
      assert.equal("GET /a on connection 1\nGET /b on connection 1\n", out)
      srv:stop()
    end)

    it("serves Python's ssl module (urllib, verifying)", function()
      local srv = server()
      local out, rc = child(("python3 -c %s"):format(q(([[
import ssl, urllib.request
ctx = ssl.create_default_context(cafile=%q)
r = urllib.request.urlopen("https://localhost:%d/py", context=ctx, timeout=10)
print(r.status, r.read().decode().strip())
]]):format(CA, srv.port)))):wait()
      assert.equal(0, rc, out)
      assert.equal("200 GET /py on connection 1\n", out)
      srv:stop()
    end)

    it("closes a stalled handshake after header_timeout, and only that one",
       function()
      local srv = server({header_timeout = STALL})
      local stalled = assert(socket.connect("127.0.0.1", srv.port))
      stalled:settimeout(5)
      local t0 = green.now()
      local _, err = stalled:receive("*a")
      assert.is_true(err == nil or err == "closed"
                     or err == "connection reset by peer")
      assert.is_true(green.now() - t0 < STALL + 3)
      stalled:close()
      local res = assert(http.request(("https://localhost:%d/ok"):format(
        srv.port), {cafile = CA}))
      assert.equal("GET /ok on connection 1\n", res.body)  -- the stalled one never reached it
      srv:stop()
    end)

    it("reports a bad certificate path at creation", function()
      h.raises("cannot open certificate '/no/cert.pem'", function()
        http.server("127.0.0.1", 0, function() end,
          {tls = {cert = "/no/cert.pem", key = pki("srv.key")}})
      end)
    end)
  end)

  describe("green.http.request with https://", function()
    it("gets pages from Python's https server, verifying with a cafile",
       function()
      local py = child(("python3 %s server %s %s"):format(T.peer,
        q(pki("srv.pem")), q(pki("srv.key"))))
      local port = tonumber(py:await("LISTENING (%d+)"))
      local res = assert(http.get(("https://localhost:%d/one"):format(port),
                                  {cafile = CA}))
      assert.equal(200, res.status)
      assert.equal("hello over tls: /one\n", res.body)
      py:kill()
    end)

    it("keeps TLS connections alive in its pool", function()
      local srv = server()
      local url = ("https://localhost:%d/"):format(srv.port)
      for i = 1, 3 do
        local res = assert(http.get(url .. i, {cafile = CA}))
        assert.equal(("GET /%d on connection 1\n"):format(i), res.body)
      end
      srv:stop()
    end)

    it("fails verification with OpenSSL's reason, or skips it", function()
      local srv = server({tls = {cert = pki("wrong.pem"),
                                 key = pki("wrong.key")}})
      local url = ("https://localhost:%d/"):format(srv.port)
      assert.same({nil, "hostname mismatch"}, {http.get(url, {cafile = CA})})
      assert.same({nil, "certificate verify failed: unable to get local "
                   .. "issuer certificate"}, {http.get(url)})
      local res = assert(http.get(url, {verify = false}))
      assert.equal(200, res.status)
      srv:stop()
      srv = server({tls = {cert = pki("expired.pem"),
                           key = pki("expired.key")}})
      assert.same({nil, "certificate verify failed: certificate has expired"},
                  {http.get(("https://localhost:%d/"):format(srv.port),
                            {cafile = CA})})
      srv:stop()
    end)

    it("times out a server that never answers the handshake", function()
      local ls = assert(socket.listen("127.0.0.1", 0))
      local port = select(2, ls:getsockname())
      local t0 = green.now()
      assert.same({nil, "handshake timeout"},
        {http.get(("https://localhost:%d/"):format(port),
                  {cafile = CA, timeout = 0.2})})
      assert.is_true(green.now() - t0 < 2)
      ls:close()
    end)
  end)
end)
