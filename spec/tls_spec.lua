-- TLS on green streams (bindings/net/tls.c, tls_context.c): the client's
-- s:sslhandshake, green.StreamServer's opts.tls, and every stream call
-- over TLS, against real peers (openssl s_server and s_client, curl,
-- Python's ssl module and https server) and against ourselves.  The
-- certificates are made here, with the openssl command line, in a
-- temporary directory: a CA, a server certificate for localhost and
-- 127.0.0.1, an expired one, one for another host, one for SNI, a
-- self-signed one.

local green = require "green"
local h = require "spec.helpers"
local socket = green.socket
local q = h.q

local T = require "spec.tls_helpers"
local ONEBYTE = (os.getenv("GREENLUA_IO_ONEBYTE") or "0") ~= "0"
local PEER, pki, child = T.peer, T.pki, T.child
local CA

-- {====== Servers of our own ======

-- Starts a StreamServer with opts.tls = tls (default: srv.pem) running
-- handler; returns it.
local function server(handler, tls, opts)
  opts = opts or {}
  opts.tls = tls or {cert = pki("srv.pem"), key = pki("srv.key")}
  return assert(green.StreamServer("127.0.0.1", 0, handler, opts):start())
end

-- Answers lines in upper case until the peer ends the stream.
local function upper(s)
  while true do
    local line = s:receive()
    if not line then return end
    s:send(line:upper() .. "\n")
  end
end

-- A minimal HTTP/1.1 server: answers each request with its target.
local function http(s)
  while true do
    local line = s:receive()
    if not line then return end
    local target = line:match("^%u+ (%S+)")
    repeat line = s:receive() until not line or line == ""
    local body = "tls says " .. tostring(target) .. "\n"
    s:send(("HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s")
      :format(#body, body))
  end
end

-- A client connected to port with the handshake done; or nil, err.
local function connect(port, name, verify, opts)
  local c = assert(socket.connect("127.0.0.1", port))
  local ok, err = c:sslhandshake(name or "localhost", verify,
                                 opts or {cafile = CA})
  if not ok then
    c:close()
    return nil, err
  end
  return c
end
-- }======

describe("TLS", function()
  setup(function() T.makepki(); CA = T.ca end)
  teardown(T.removepki)

  describe("s:sslhandshake", function()
    it("talks to openssl s_server, verifying against a cafile", function()
      local s_server = child(("openssl s_server -accept 0 -naccept 1 -www "
        .. "-cert %s -key %s"):format(q(pki("srv.pem")), q(pki("srv.key"))))
      local port = tonumber(s_server:await("ACCEPT [^\n]-:(%d+)"))
      local c = assert(socket.connect("127.0.0.1", port))
      assert.is_true(c:sslhandshake("localhost", true, {cafile = CA}))
      local info = c:sslinfo()
      assert.equal("TLSv1.3", info.protocol)
      assert.equal("localhost", info.servername)
      assert.equal(18, c:send("GET / HTTP/1.0\r\n\r\n"))
      assert.equal("HTTP/1.0 200 ok", c:receive())
      local rest = assert(c:receive("*a"))
      assert.truthy(rest:find("Ciphers supported", 1, true))
      assert.same({nil, "closed", ""}, {c:receive()})
      c:close()
      s_server:wait()
    end)

    it("gets pages from Python's https server, keep-alive", function()
      local py = child(("python3 %s server %s %s"):format(PEER,
        q(pki("chain.pem")), q(pki("srv.key"))))
      local port = tonumber(py:await("LISTENING (%d+)"))
      local c = assert(connect(port))
      for i = 1, 3 do
        c:send(("GET /page%d HTTP/1.1\r\nhost: localhost\r\n\r\n"):format(i))
        assert.equal("HTTP/1.1 200 OK", c:receive())
        local len
        repeat
          local line = c:receive()
          len = len or tonumber(line:match("^[Cc]ontent%-[Ll]ength: (%d+)"))
        until line == ""
        assert.equal(("hello over tls: /page%d\n"):format(i), c:receive(len))
      end
      c:close()
      py:kill()
    end)

    it("checks 127.0.0.1 against the certificate's IP address", function()
      local srv = server(upper)
      local c = assert(connect(srv.port, "127.0.0.1"))
      c:send("ip\n")
      assert.equal("IP", c:receive())
      c:close()
      srv:stop()
    end)

    it("gives each verification failure its error", function()
      local function failure(cert, name, opts)
        local srv = server(upper, {cert = pki(cert .. ".pem"),
                                   key = pki(cert .. ".key")})
        local _, err = connect(srv.port, name, true, opts)
        srv:stop()
        return err
      end
      assert.equal("certificate verify failed: certificate has expired",
                   failure("expired", "localhost"))
      assert.equal("hostname mismatch", failure("wrong", "localhost"))
      assert.equal("hostname mismatch", failure("srv", "example.com"))
      assert.equal("certificate verify failed: self-signed certificate",
                   failure("self", "localhost"))
      assert.equal("certificate verify failed: unable to get local issuer "
                   .. "certificate", failure("srv", "localhost", {}))
    end)

    it("skips verification with verify = false", function()
      local srv = server(upper, {cert = pki("wrong.pem"),
                                 key = pki("wrong.key")})
      local c = assert(connect(srv.port, "localhost", false, {}))
      c:send("unchecked\n")
      assert.equal("UNCHECKED", c:receive())
      c:close()
      srv:stop()
    end)

    it("resumes the session it last had with a host", function()
      local srv = server(upper)
      local c = assert(connect(srv.port))
      c:send("one\n")
      assert.equal("ONE", c:receive())  -- the tickets come after the handshake
      assert.is_false(c:sslinfo().resumed)
      c:close()
      c = assert(connect(srv.port))
      assert.is_true(c:sslinfo().resumed)
      c:close()
      srv:stop()
    end)

    it("returns 'handshake timeout' from a server that never answers",
       function()
      local ls = assert(socket.listen("127.0.0.1", 0))
      local port = select(2, ls:getsockname())
      local c = assert(socket.connect("127.0.0.1", port))
      local peer = ls:accept()
      c:settimeouts(0.05, nil, nil)
      assert.same({nil, "handshake timeout"}, {c:sslhandshake("localhost")})
      assert.same({nil, "handshake timeout", ""}, {c:receive()})
      assert.same({nil, "handshake timeout", 0}, {c:send("x")})
      c = assert(socket.connect("127.0.0.1", port))
      assert.same({nil, "handshake timeout"},
                  {c:sslhandshake("localhost", true, {timeout = 0.02})})
      c:close(); peer:close(); ls:close()
    end)

    it("returns 'closed' when the server closes during the handshake",
       function()
      local ls = assert(socket.listen("127.0.0.1", 0))
      local port = select(2, ls:getsockname())
      green.spawn(function() ls:accept():close() end)
      local c = assert(socket.connect("127.0.0.1", port))
      assert.same({nil, "closed"}, {c:sslhandshake("localhost")})
      c:close(); ls:close()
    end)

    it("fails on closed sockets and checks its arguments", function()
      local c = socket.tcp()
      assert.same({nil, "closed"}, {c:sslhandshake("localhost")})
      h.raises("bad argument #3 to 'sslhandshake'", function()
        c:sslhandshake("x", true, {cafile = 1})
      end)
      h.raises("bad argument #3 to 'sslhandshake'", function()
        c:sslhandshake("x", true, {context = {}})
      end)
      assert.same({nil, "cannot open cafile '/no/such.pem': No such file "
                   .. "or directory"}, {select(2, pcall(function()
        local srv = server(upper)
        local s = assert(socket.connect("127.0.0.1", srv.port))
        local r = {s:sslhandshake("localhost", true,
                                  {cafile = "/no/such.pem"})}
        s:close(); srv:stop()
        return table.unpack(r)
      end))})
    end)

    it("wakes a parked handshake with 'closed' on close, and is killable",
       function()
      local ls = assert(socket.listen("127.0.0.1", 0))
      local port = select(2, ls:getsockname())
      local c = assert(socket.connect("127.0.0.1", port))
      local res
      local g = green.spawn(function() res = {c:sslhandshake("localhost")} end)
      green.sleep(0)
      c:close()
      g:join()
      assert.same({nil, "closed"}, res)
      c = assert(socket.connect("127.0.0.1", port))
      g = green.spawn(function() c:sslhandshake("localhost") end)
      green.sleep(0)
      g:kill()
      assert.is_true(g:dead())
      c:close(); ls:close()
    end)
  end)

  describe("green.StreamServer with opts.tls", function()
    it("serves openssl s_client", function()
      local srv = server(function(s)
        local line = s:receive()
        s:send(line:upper() .. "\n")
      end)
      local out, rc = child(("echo hi | openssl s_client -quiet -CAfile %s "
        .. "-verify_return_error -connect 127.0.0.1:%d -servername localhost")
        :format(q(CA), srv.port)):wait()
      assert.equal(0, rc)
      assert.truthy(out:find("\nHI\n", 1, true), out)
      srv:stop()
    end)

    it("serves curl with --cacert, by name and by address", function()
      local srv = server(http)
      for _, host in ipairs{"localhost", "127.0.0.1"} do
        local out, rc = child(("curl -sS --cacert %s https://%s:%d/a "
          .. "https://%s:%d/b"):format(q(CA), host, srv.port, host, srv.port))
          :wait()
        assert.equal(0, rc)
        assert.equal("tls says /a\ntls says /b\n", out)
      end
      srv:stop()
    end)

    it("serves Python's ssl module, and a close_notify is the end of the"
       .. " stream both ways", function()
      local got = green.AsyncResult()
      local srv = server(function(s)
        local line = s:receive()
        s:send(line:upper() .. "\n")
        got:set({s:receive("*a")})  -- ends with Python's close_notify
      end)
      local out, rc = child(("python3 %s client %d %s localhost line")
        :format(PEER, srv.port, q(CA))):wait()
      assert.equal(0, rc, out)
      assert.equal("HELLO\nunwrapped\n", out)  -- it got our close_notify
      assert.same({""}, got:get())
      srv:stop()
    end)

    it("sends close_notify when it closes", function()
      local srv = server(function(s) s:send("bye\n") end)
      local out, rc = child(("python3 %s client %d %s localhost read")
        :format(PEER, srv.port, q(CA))):wait()
      assert.equal(0, rc, out)
      assert.equal("bye\n clean end\n", out)
      srv:stop()
    end)

    it("chooses the certificate by the name the client asks for (SNI)",
       function()
      local srv = server(upper, {cert = pki("srv.pem"), key = pki("srv.key"),
        certs = {{cert = pki("other.pem"), key = pki("other.key")}}})
      local c = assert(connect(srv.port, "other.test"))
      c:send("sni\n")
      assert.equal("SNI", c:receive())
      assert.equal("http/1.1", c:sslinfo().alpn)
      c:close()
      c = assert(connect(srv.port, "localhost"))
      c:close()
      srv:stop()
    end)

    it("reports a bad path or a key that does not match at creation",
       function()
      h.raises("option 'tls': cannot open certificate '/no/cert.pem'",
        function()
          green.StreamServer("127.0.0.1", 0, upper,
            {tls = {cert = "/no/cert.pem", key = pki("srv.key")}})
        end)
      h.raises(("option 'tls': key '%s' does not match certificate '%s'")
        :format(pki("other.key"), pki("srv.pem")), function()
          green.StreamServer("127.0.0.1", 0, upper,
            {tls = {cert = pki("srv.pem"), key = pki("other.key")}})
        end)
      h.raises("option 'tls': cannot load certificate", function()
        green.StreamServer("127.0.0.1", 0, upper,
          {tls = {cert = pki("make.sh"), key = pki("srv.key")}})
      end)
      h.raises("option 'tls': unknown field 'chain'", function()
        green.StreamServer("127.0.0.1", 0, upper, {tls = {chain = 1}})
      end)
    end)

    it("closes only the connection that sends plain text, garbage, stalls"
       .. " or vanishes", function()
      local srv = server(upper, nil, {tls = nil})
      srv:stop()
      srv = server(upper, {cert = pki("srv.pem"), key = pki("srv.key"),
                           handshake_timeout = 0.1})
      local good = assert(connect(srv.port))
      local function closes(bytes)
        local c = assert(socket.connect("127.0.0.1", srv.port))
        c:settimeout(5)
        if bytes then c:send(bytes) end
        local data, err = c:receive("*a")
        c:close()
        return data or err
      end
      local plain = closes("GET / HTTP/1.1\r\nhost: x\r\n\r\n")
      assert.is_true(plain == "" or plain == "closed"
                     or plain == "connection reset by peer", plain)
      closes(("\22\3\1\0\5garbage"):rep(20))
      closes(nil)                    -- stalls: closed after 0.1 s
      closes("\22\3\1\2\0\1")        -- stalls mid-record
      local v = assert(socket.connect("127.0.0.1", srv.port))
      v:send("\22\3\1")
      v:close()                      -- vanishes mid-handshake
      good:send("still here\n")
      assert.equal("STILL HERE", good:receive())
      local again = assert(connect(srv.port))
      again:send("next\n")
      assert.equal("NEXT", again:receive())
      good:close(); again:close()
      srv:stop()
    end)

    it("completes 200 concurrent handshakes", function()
      local n = ONEBYTE and 20 or 200
      local srv = server(upper)
      local done = 0
      local pool = green.Pool(n)
      for i = 1, n do
        pool:spawn(function()
          local c = assert(connect(srv.port))
          c:send(("client %d\n"):format(i))
          assert.equal(("CLIENT %d"):format(i), c:receive())
          c:close()
          done = done + 1
        end)
      end
      pool:join()
      assert.equal(n, done)
      srv:stop()
    end)
  end)

  describe("a TLS stream", function()
    -- A connected pair over TLS: our client and our server's socket.
    local function pair()
      local ready, finish = green.AsyncResult(), green.Event()
      local srv = server(function(s)
        ready:set(s)
        finish:wait()
      end)
      local c = assert(connect(srv.port))
      local s = ready:get()
      return c, s, function()
        c:close(); finish:set(); srv:stop()
      end
    end

    it("gives every receive pattern over one-byte records", function()
      local c, s, done = pair()
      local text = "line one\r\nline two\nabcdefghij" .. "tail bytes"
      green.spawn(function()
        for ch in text:gmatch(".") do
          c:send(ch)  -- one record each
        end
        green.sleep(0.01)
        c:send("x")
        c:close()
      end)
      assert.equal("line one", s:receive())
      assert.equal("line two", s:receive("*l"))
      assert.equal("abcde", s:receive(5))
      assert.equal(">fghij", s:receive(5, ">"))
      local any = s:receiveany(3)
      assert.is_true(#any >= 1 and #any <= 3)
      local rest = s:receive("*a")
      assert.equal("tail bytes", any .. rest:sub(1, #"tail bytes" - #any))
      assert.equal("x", rest:sub(-1))
      assert.same({nil, "closed", ""}, {s:receive()})
      done()
    end)

    it("times out a receive with its partial result, and stays usable",
       function()
      local c, s, done = pair()
      s:settimeouts(nil, nil, 0.05)
      c:send("part")
      assert.same({nil, "timeout", "part"}, {s:receive("*l")})
      c:send("ial\n")
      assert.equal("ial", s:receive())
      done()
    end)

    it("moves 16 MB each way intact, with backpressure", function()
      local c, s, done = pair()
      local n = ONEBYTE and 8192 or 16 * 1024 * 1024
      local t = {}
      for i = 1, n // 16 do t[i] = ("%015d\n"):format(i) end
      local blob = table.concat(t)
      local g = green.spawn(function() return s:send(blob) end)
      green.sleep(0.05)  -- the sender waits: nobody reads yet
      if not ONEBYTE then assert.is_false(g:ready()) end
      assert.equal(blob, c:receive(#blob))
      assert.equal(#blob, g:get())
      g = green.spawn(function() return c:send(blob) end)
      assert.equal(blob, s:receive(#blob))
      assert.equal(#blob, g:get())
      done()
    end)

    it("trysend encrypts what it takes, and takes nothing while earlier "
       .. "ciphertext waits for the socket", function()
      local c, s, done = pair()
      local t = {}
      for i = 1, 4096 do t[i] = ("%015d\n"):format(i) end
      local chunk = table.concat(t)  -- 64 KiB
      local sent, n = {}, nil
      repeat  -- nobody reads: the socket fills, then trysend takes none
        n = assert(c:trysend(chunk))
        if n > 0 then sent[#sent + 1] = chunk:sub(1, n) end
      until n == 0
      local want = table.concat(sent)
      assert.is_true(#want > 0)
      assert.equal(want, s:receive(#want))
      done()
    end)

    it("wakes blocked calls with 'closed' on close, and a kill raises",
       function()
      local c, s, done = pair()
      local res
      local g = green.spawn(function() res = {s:receive()} end)
      green.sleep(0)
      s:close()
      g:join()
      assert.same({nil, "closed"}, res)
      g = green.spawn(function() c:receive() end)
      green.sleep(0)
      g:kill()
      assert.is_true(g:dead())
      done()
    end)

    it("half-closes with shutdown('send'): close_notify, then the peer"
       .. " answers", function()
      local c, s, done = pair()
      c:send("question")
      assert.is_true(c:shutdown("send"))
      assert.equal("question", s:receive("*a"))
      s:send("answer")
      s:close()
      assert.equal("answer", c:receive("*a"))
      done()
    end)

    it("holds no read buffer while idle", function()
      local c, s, done = pair()
      c:send("x\n")
      assert.equal("x", s:receive())
      assert.same({0, 0}, {s:_buffer()})
      done()
    end)

    it("gives SSL's record buffers up once idle, and works on after", function()
      local c, s, done = pair()
      finally(done)
      c:send("x\n")
      assert.equal("x", s:receive())
      local busy = green.stats()
      assert.is_true(busy.tls_streams >= 2)
      assert.is_true(busy.tls_buffered >= 2)  -- both ends just used theirs
      green.sleep(0.35)  -- idle for more than a sweep period
      local idle = green.stats()
      assert.is_true(idle.tls_streams >= 2)
      -- both ends gave theirs up (streams of other specs may come and go)
      assert.is_true(busy.tls_buffered - idle.tls_buffered >= 2,
        ("%d -> %d"):format(busy.tls_buffered, idle.tls_buffered))
      c:send(("y"):rep(100000) .. "\n")  -- the buffers come back
      assert.equal(("y"):rep(100000), s:receive())
      s:send("z\n")
      assert.equal("z", c:receive())
      assert.is_true(green.stats().tls_buffered - idle.tls_buffered >= 2)
    end)
  end)
end)
