-- green.http.server: requests, responses, keep-alive and pipelining,
-- bodies, timeouts and every kind of bad input, with clients we did not
-- write (curl, Python's http.client, wrk) and with raw sockets.
local green = require "green"
local http = require "green.http"
local h = require "spec.helpers"
local socket = green.socket

-- {====== Helpers ======

local withserver = h.withhttpserver  -- withserver(handler, opts, fn)

local function connect(port)
  local s = assert(socket.connect("127.0.0.1", port, 5))
  s:settimeout(5)
  return s
end

-- Reads one response from sock, as a client that knows HTTP/1.1 framing
-- would (independent of green.http's parser): {status, reason, headers
-- (lower-case names; repeated ones in an array), body}, or nil, err.
local function readresponse(sock, head)
  local line, err = sock:receive("*l")
  if not line then return nil, err end
  local status, reason = line:match("^HTTP/1%.%d (%d%d%d) ?(.*)$")
  if not status then return nil, "bad status line: " .. line end
  local r = {status = tonumber(status), reason = reason, headers = {},
             raw = line}
  while true do
    line, err = sock:receive("*l")
    if not line then return nil, err end
    if line == "" then break end
    local k, v = line:match("^([^:]+):%s*(.-)%s*$")
    k = k:lower()
    if r.headers[k] then
      if type(r.headers[k]) ~= "table" then r.headers[k] = {r.headers[k]} end
      table.insert(r.headers[k], v)
    else
      r.headers[k] = v
    end
  end
  if head or r.status < 200 or r.status == 204 or r.status == 304 then
    r.body = ""
  elseif r.headers["transfer-encoding"] == "chunked" then
    local parts = {}
    while true do
      local size = tonumber(assert(sock:receive("*l")), 16)
      if size == 0 then
        repeat line = assert(sock:receive("*l")) until line == ""
        break
      end
      parts[#parts + 1] = assert(sock:receive(size))
      assert(sock:receive("*l") == "")
      r.chunks = #parts
    end
    r.body = table.concat(parts)
  elseif r.headers["content-length"] then
    r.body = assert(sock:receive(tonumber(r.headers["content-length"])))
  else
    r.body = assert(sock:receive("*a"))
  end
  return r
end

-- Sends `bytes` on a new connection and reads one response; returns it
-- and the socket.
local function ask(port, bytes, head)
  local s = connect(port)
  assert(s:send(bytes))
  return assert(readresponse(s, head)), s
end

-- Whether the server closed the connection: a receive ends with
-- "closed" (the socket is closed then, as a client would).
local function closedby(sock)
  local data, err = sock:receive("*a")
  sock:close()
  return data == "" or err == "closed"
end

local function hello(req)
  return 200, {["Content-Type"] = "text/plain"}, req.method .. " " .. req.path
end

local GET = "GET %s HTTP/1.1\r\nHost: test\r\n\r\n"
-- }======

describe("green.http.server", function()

  describe("lifecycle", function()
    it("picks a free port with port 0 and answers until stopped", function()
      local srv = assert(http.server("127.0.0.1", 0, hello))
      assert.equal(srv, srv:start())
      assert.is_true(srv.port > 0)
      local r = ask(srv.port, GET:format("/x"))
      assert.equal(200, r.status)
      assert.equal("GET /x", r.body)
      srv:stop()
      assert.is_nil(socket.connect("127.0.0.1", srv.port, 1))
    end)

    it("serves forever until stop is called, then returns true", function()
      local srv = assert(http.server("127.0.0.1", 0, hello))
      local done = green.spawn(function() return srv:serve_forever() end)
      green.sleep(0)
      assert.equal(200, ask(srv.port, GET:format("/")).status)
      srv:stop()
      assert.is_true(done:get())
    end)

    it("lets a request in flight finish on stop, then closes", function()
      local entered, release = green.Event(), green.Event()
      withserver(function()
        entered:set()
        release:wait()
        return 200, nil, "finished"
      end, nil, function(srv, port)
        local s = connect(port)
        assert(s:send(GET:format("/slow")))
        entered:wait()
        local stopper = green.spawn(function() srv:stop(5) end)
        green.sleep(0)
        release:set()
        local r = assert(readresponse(s))
        assert.equal("finished", r.body)
        assert.equal("close", r.headers.connection)
        assert.is_true(closedby(s))
        stopper:join()
      end)
    end)

    it("closes idle keep-alive connections at once on stop", function()
      withserver(hello, nil, function(srv, port)
        local s = connect(port)
        assert(s:send(GET:format("/")))
        assert(readresponse(s))
        green.sleep(0)
        local t0 = green.now()
        srv:stop(5)
        assert.is_true(green.now() - t0 < 1)
        assert.is_true(closedby(s))
      end)
    end)

    it("checks its arguments", function()
      h.raises("bad argument #1 to 'server' (string expected, got nil)",
        function() http.server(nil, 0, hello) end)
      h.raises("bad argument #2 to 'server' (integer expected",
        function() http.server("127.0.0.1", "x", hello) end)
      h.raises("bad argument #3 to 'server' (function expected",
        function() http.server("127.0.0.1", 0, 42) end)
      h.raises("unknown option 'bogus'",
        function() http.server("127.0.0.1", 0, hello, {bogus = 1}) end)
      h.raises("option 'max_body': positive integer expected",
        function() http.server("127.0.0.1", 0, hello, {max_body = -1}) end)
      h.raises("option 'header_timeout': non-negative number expected",
        function() http.server("127.0.0.1", 0, hello, {header_timeout = "x"})
        end)
    end)
  end)

  describe("requests", function()
    it("gives the handler method, target, path, query, version, headers and the peer",
       function()
      local got
      withserver(function(req) got = req; return 204 end, nil,
        function(_, port)
          local r, s = ask(port, "PUT /a%20b/c?x=1&y=%20 HTTP/1.1\r\n"
            .. "Host: example\r\nX-Multi: one\r\nx-multi: two\r\n"
            .. "Set-Cookie: a=1\r\nSET-COOKIE: b=2\r\nX-Trail:  v  \r\n"
            .. "Content-Length: 0\r\n\r\n")
          assert.equal(204, r.status)
          local _, port2 = s:getsockname()
          assert.equal("PUT", got.method)
          assert.equal("/a%20b/c?x=1&y=%20", got.target)
          assert.equal("/a b/c", got.path)
          assert.equal("x=1&y=%20", got.query)
          assert.equal("1.1", got.version)
          assert.equal("example", got.headers.host)
          assert.equal("one, two", got.headers["x-multi"])
          assert.same({"a=1", "b=2"}, got.headers["set-cookie"])
          assert.equal("v", got.headers["x-trail"])
          assert.equal("127.0.0.1", got.remote_addr)
          assert.equal(port2, got.remote_port)
        end)
    end)

    it("gives an empty query without '?', and the path of an absolute target",
       function()
      local got = {}
      withserver(function(req) got[#got + 1] = req; return 200 end, nil,
        function(_, port)
          ask(port, GET:format("/plain"))
          ask(port, GET:format("http://test/abs?q"))
          assert.equal("", got[1].query)
          assert.equal("/abs", got[2].path)
          assert.equal("q", got[2].query)
        end)
    end)

    it("reads a body with content-length, and gives the same string twice",
       function()
      local second
      withserver(function(req)
        local b = assert(req:body())
        second = req:body()
        return 200, nil, "got " .. b
      end, nil, function(_, port)
        local r = ask(port, "POST / HTTP/1.1\r\nHost: t\r\n"
          .. "Content-Length: 5\r\n\r\nhello")
        assert.equal("got hello", r.body)
        assert.equal("hello", second)
      end)
    end)

    it("reads a chunked body (extensions and trailers dropped)", function()
      withserver(function(req) return 200, nil, assert(req:body()) end, nil,
        function(_, port)
          local r = ask(port, "POST / HTTP/1.1\r\nHost: t\r\n"
            .. "Transfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n"
            .. "a\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n")
          assert.equal("abc0123456789", r.body)
        end)
    end)

    it("gives \"\" as the body of a request without one", function()
      withserver(function(req) return 200, nil, "[" .. req:body() .. "]" end,
        nil, function(_, port)
          assert.equal("[]", ask(port, GET:format("/")).body)
        end)
    end)

    it("answers expect: 100-continue only when the handler reads the body",
       function()
      withserver(function(req)
        if req.path == "/read" then return 200, nil, assert(req:body()) end
        return 401, nil, "no"
      end, nil, function(_, port)
        local s = connect(port)
        assert(s:send("POST /read HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
          .. "Expect: 100-continue\r\n\r\n"))
        local cont = assert(readresponse(s))
        assert.equal(100, cont.status)
        assert(s:send("abc"))
        assert.equal("abc", assert(readresponse(s)).body)
        -- not read: no 100, and the connection closes after the answer
        local s2 = connect(port)
        assert(s2:send("POST /skip HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
          .. "Expect: 100-continue\r\n\r\n"))
        local r = assert(readresponse(s2))
        assert.equal(401, r.status)
        assert.equal("close", r.headers.connection)
        assert.is_true(closedby(s2))
      end)
    end)

    it("drains a body the handler did not read before the next request",
       function()
      withserver(hello, nil, function(_, port)
        local s = connect(port)
        assert(s:send("POST /a HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n"
          .. "\r\n0123456789" .. GET:format("/b")))
        assert.equal("POST /a", assert(readresponse(s)).body)
        assert.equal("GET /b", assert(readresponse(s)).body)
      end)
    end)

    it("parses green.http.parse_query", function()
      assert.same({a = "1", b = "x y", c = "", d = "+&="},
        http.parse_query("a=1&b=x%20y&c&d=%2B%26%3D"))
      assert.same({k = {"1", "2", "3"}}, http.parse_query("k=1&k=2&k=3"))
      assert.same({["a b"] = "c d"}, http.parse_query("a+b=c+d"))
      assert.same({}, http.parse_query(""))
      assert.same({x = "%zz"}, http.parse_query("x=%zz"))
      h.raises("bad argument #1 to 'parse_query'",
        function() http.parse_query(nil) end)
    end)
  end)

  describe("responses", function()
    it("sets date and content-length, and keeps the handler's headers",
       function()
      withserver(function()
        return 201, {["X-One"] = "1", ["X-Many"] = {"a", "b"}}, "body"
      end, nil, function(_, port)
        local r = ask(port, GET:format("/"))
        assert.equal(201, r.status)
        assert.equal("Created", r.reason)
        assert.equal("4", r.headers["content-length"])
        assert.truthy(r.headers.date:match(
          "^%a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d GMT$"))
        assert.equal("1", r.headers["x-one"])
        assert.same({"a", "b"}, r.headers["x-many"])
        assert.equal("body", r.body)
      end)
    end)

    it("sends the status set with an empty body when the handler returns nothing",
       function()
      withserver(function(_, res) res:set_status(404) end, nil,
        function(_, port)
          local r = ask(port, GET:format("/"))
          assert.equal(404, r.status)
          assert.equal("0", r.headers["content-length"])
          assert.equal("", r.body)
        end)
    end)

    it("streams with res:write, chunked unless content-length is set",
       function()
      withserver(function(req, res)
        if req.path == "/length" then
          res:set_header("Content-Length", "6")
        end
        res:set_header("x-a", "1")
        res:set_header("X-A", "2")  -- replaces, in any case
        assert.is_true(res:write("abc"))
        assert.is_true(res:write("def"))
        res:finish()
        assert.equal("finished", select(2, res:write("x")))
      end, nil, function(_, port)
        local r = ask(port, GET:format("/chunked"))
        assert.equal("chunked", r.headers["transfer-encoding"])
        assert.equal(2, r.chunks)
        assert.equal("abcdef", r.body)
        assert.equal("2", r.headers["x-a"])
        r = ask(port, GET:format("/length"))
        assert.is_nil(r.headers["transfer-encoding"])
        assert.equal("abcdef", r.body)
      end)
    end)

    it("calls a body function for each piece until it returns nil", function()
      withserver(function()
        local i = 0
        return 200, nil, function()
          i = i + 1
          if i <= 3 then return "piece" .. i end
        end
      end, nil, function(_, port)
        local r = ask(port, GET:format("/"))
        assert.equal("piece1piece2piece3", r.body)
        assert.equal(3, r.chunks)
      end)
    end)

    it("ends a streamed body with the connection for an HTTP/1.0 client",
       function()
      withserver(function(_, res)
        res:write("one ")
        res:write("two")
      end, nil, function(_, port)
        local r, s = ask(port, "GET / HTTP/1.0\r\n\r\n")
        assert.equal("one two", r.body)
        assert.equal("close", r.headers.connection)
        assert.is_true(closedby(s))
      end)
    end)

    it("sends no body for HEAD, with the length GET would have", function()
      withserver(hello, nil, function(_, port)
        local s = connect(port)
        assert(s:send("HEAD /x HTTP/1.1\r\nHost: t\r\n\r\n" .. GET:format("/y")))
        local r = assert(readresponse(s, true))
        assert.equal("7", r.headers["content-length"])
        assert.equal("GET /y", assert(readresponse(s)).body)
      end)
    end)

    it("sends neither body nor length for 204 and 304", function()
      withserver(function(req)
        return tonumber(req.path:sub(2)), nil, "ignored"
      end, nil, function(_, port)
        local s = connect(port)
        assert(s:send(GET:format("/204") .. GET:format("/304")
          .. GET:format("/200")))
        for _, code in ipairs{204, 304} do
          local r = assert(readresponse(s))
          assert.equal(code, r.status)
          assert.is_nil(r.headers["content-length"])
        end
        assert.equal("ignored", assert(readresponse(s)).body)
      end)
    end)

    it("ignores what the handler returns once the head was sent", function()
      withserver(function(_, res)
        res:write("streamed")
        return 500, nil, "ignored"
      end, nil, function(_, port)
        local r = ask(port, GET:format("/"))
        assert.equal(200, r.status)
        assert.equal("streamed", r.body)
      end)
    end)

    it("hands the connection over with res:hijack", function()
      withserver(function(_, res)
        local sock = res:hijack()
        assert(sock:send("HTTP/1.1 101 Switching Protocols\r\n\r\n"))
        local line = sock:receive("*l")
        sock:send("echo " .. line .. "\n")
      end, nil, function(_, port)
        local s = connect(port)
        assert(s:send(GET:format("/") .. "after the head\n"))
        assert.equal(101, assert(readresponse(s)).status)
        assert.equal("echo after the head", s:receive("*l"))
        assert.is_true(closedby(s))
      end)
    end)
  end)

  describe("keep-alive", function()
    it("keeps HTTP/1.1 connections open, and answers pipelined requests in order",
       function()
      local peers = {}
      withserver(function(req)
        peers[req.remote_port] = true
        return 200, nil, req.path
      end, nil, function(_, port)
        local s = connect(port)
        assert(s:send(GET:format("/1") .. GET:format("/2") .. GET:format("/3")))
        for i = 1, 3 do assert.equal("/" .. i, assert(readresponse(s)).body) end
        assert(s:send(GET:format("/4")))
        assert.equal("/4", assert(readresponse(s)).body)
        local n = 0
        for _ in pairs(peers) do n = n + 1 end
        assert.equal(1, n)
      end)
    end)

    it("goes on after handlers that wait, pipelined or not, and errors after a wait",
       function()
      local kept
      local stderr = io.stderr
      io.stderr = {write = function() end, flush = function() end}
      local ok, err = pcall(withserver, function(req)
        local n = tonumber(req.path:match("%d+"))
        for _ = 1, n % 3 do green.sleep(0) end  -- gives the stack up
        if req.path:find("fail") then error("failed after waiting") end
        if n == 1 then kept = req end
        return 200, {["X-N"] = n}, req.path
      end, nil, function(_, port)
        local s = connect(port)
        for i = 1, 4 do
          assert(s:send(GET:format("/" .. i)))
          assert.equal("/" .. i, assert(readresponse(s)).body)
        end
        local all = {}
        for i = 5, 10 do all[#all + 1] = GET:format("/" .. i) end
        all[#all + 1] = GET:format("/11/fail")
        all[#all + 1] = GET:format("/12")
        assert(s:send(table.concat(all)))
        for i = 5, 10 do
          local r = assert(readresponse(s))
          assert.equal("/" .. i, r.body)
          assert.equal(tostring(i), r.headers["x-n"])
        end
        assert.equal(500, assert(readresponse(s)).status)
        assert.equal("/12", assert(readresponse(s)).body)
        -- a request kept past its handler is no longer served
        assert.same({nil, "closed"}, {kept:body()})
        assert.same({nil, "closed"}, {kept:finish("late")})
      end)
      io.stderr = stderr
      assert(ok, err)
    end)

    it("honours connection: close, and closes HTTP/1.0 unless keep-alive",
       function()
      withserver(hello, nil, function(_, port)
        local r, s = ask(port, "GET / HTTP/1.1\r\nHost: t\r\n"
          .. "Connection: close\r\n\r\n")
        assert.equal("close", r.headers.connection)
        assert.is_true(closedby(s))
        s = select(2, ask(port, "GET / HTTP/1.0\r\n\r\n"))
        assert.is_true(closedby(s))
        r, s = ask(port, "GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        assert.equal("keep-alive", r.headers.connection)
        assert(s:send("GET /b HTTP/1.0\r\n\r\n"))
        assert.equal("GET /b", assert(readresponse(s)).body)
      end)
    end)

    it("parks idle connections without a stack: their frames unwind, never copied",
       function()
      withserver(hello, nil, function(_, port)
        local socks = {}
        for i = 1, 300 do
          socks[i] = connect(port)
          assert(socks[i]:send(GET:format("/")))
        end
        for i = 1, 300 do assert(readresponse(socks[i])) end
        green.sleep(0)
        local st = green.stats()
        -- beyond the private stacks and the greenthreads that last ran on
        -- each shared stack, every idle connection holds no stack at all
        assert.equal(0, st.displaced)
        assert.is_true(st.unwound >= 300 - st.private_stacks
          - st.shared_stacks, ("unwound: %d"):format(st.unwound))
        for i = 1, 300 do socks[i]:close() end
      end)
    end)

    it("closes a connection idle past keepalive_timeout", function()
      withserver(hello, {keepalive_timeout = 0.05}, function(_, port)
        local r, s = ask(port, GET:format("/"))
        assert.equal(200, r.status)
        assert.is_true(closedby(s))
      end)
    end)
  end)

  describe("bad input", function()
    -- Each answer, then the connection is closed, and the server still
    -- serves another client.
    local function rejects(port, bytes, status)
      local r, s = ask(port, bytes)
      assert.equal(status, r.status)
      assert.equal("close", r.headers.connection)
      assert.is_true(closedby(s))
      assert.equal(200, ask(port, GET:format("/after")).status)
    end

    it("answers a malformed request with 400", function()
      withserver(hello, nil, function(_, port)
        rejects(port, "HELLO\r\n\r\n", 400)
        rejects(port, "GET / HTTP/1.1\r\nHost: t\r\nbad header\r\n\r\n", 400)
        rejects(port, "GET / HTTP/1.1\r\n\r\n", 400)  -- no host
        rejects(port, "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400)
        rejects(port, "GET /%zz HTTP/1.1\r\nHost: t\r\n\r\n", 400)
        rejects(port, "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: x\r\n\r\n",
          400)
        rejects(port, "GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505)
      end)
      -- a bad chunk, once the handler reads the body
      withserver(function(req)
        local body, err = req:body()
        return 200, nil, body or err
      end, nil, function(_, port)
        rejects(port, "POST / HTTP/1.1\r\nHost: t\r\n"
          .. "Transfer-Encoding: chunked\r\n\r\nzz\r\n", 400)
      end)
    end)

    it("answers the request smuggling shapes with 400", function()
      withserver(hello, nil, function(_, port)
        rejects(port, "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
          .. "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400)
        rejects(port, "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked"
          .. "\r\nContent-Length: 3\r\n\r\n0\r\n\r\n", 400)
        rejects(port, "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
          .. "Content-Length: 4\r\n\r\nabcd", 400)
        rejects(port, "POST / HTTP/1.1\r\nHost: t\r\n"
          .. "Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", 400)
        rejects(port, "POST / HTTP/1.1\r\nHost: t\r\n"
          .. "Transfer-Encoding: gzip\r\n\r\nabc", 400)
        rejects(port, "GET / HTTP/1.1\r\nHost: t\r\nX-Folded: a\r\n b\r\n\r\n",
          400)
        rejects(port, "GET / HTTP/1.1\r\nHost : t\r\n\r\n", 400)
        -- chunked as the last coding, after one we do not implement
        rejects(port, "POST / HTTP/1.1\r\nHost: t\r\n"
          .. "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501)
      end)
    end)

    it("answers a head over max_header with 431", function()
      withserver(hello, {max_header = 1024}, function(_, port)
        rejects(port, "GET / HTTP/1.1\r\nHost: t\r\nX: " .. ("a"):rep(2000)
          .. "\r\n\r\n", 431)
        -- also when the head never ends
        local s = connect(port)
        assert(s:send("GET / HTTP/1.1\r\nHost: t\r\nX: " .. ("a"):rep(2000)))
        assert.equal(431, assert(readresponse(s)).status)
        assert.is_true(closedby(s))
      end)
    end)

    it("answers a body over max_body with 413 without reading it", function()
      withserver(function(req)
        local body, err = req:body()
        return 200, nil, body or err
      end, {max_body = 100}, function(_, port)
        -- the head alone gets the answer: the body is never waited for
        local s = connect(port)
        assert(s:send("POST / HTTP/1.1\r\nHost: t\r\n"
          .. "Content-Length: 1000000000\r\n\r\n"))
        local r = assert(readresponse(s))
        assert.equal(413, r.status)
        assert.is_true(closedby(s))
        -- a chunked one once it passes the limit
        s = connect(port)
        assert(s:send("POST / HTTP/1.1\r\nHost: t\r\n"
          .. "Transfer-Encoding: chunked\r\n\r\n80\r\n" .. ("x"):rep(128)
          .. "\r\n"))
        assert.equal(413, assert(readresponse(s)).status)
        assert.is_true(closedby(s))
      end)
    end)

    it("closes a head not complete within header_timeout (slowloris) with 408",
       function()
      withserver(hello, {header_timeout = 0.1}, function(_, port)
        local s = connect(port)
        assert(s:send("GET / HTTP/1.1\r\nHost: t\r\n"))
        local t0 = green.now()
        local r = assert(readresponse(s))
        assert.equal(408, r.status)
        assert.is_true(green.now() - t0 < 2)
        assert.is_true(closedby(s))
        -- a connection that sends nothing is closed without an answer
        s = connect(port)
        assert.is_true(closedby(s))
      end)
    end)

    it("does not disturb other connections", function()
      withserver(hello, {header_timeout = 5}, function(_, port)
        local good = connect(port)
        local slow = connect(port)
        assert(slow:send("GET / HTTP/1.1\r\n"))  -- half a head
        for i = 1, 3 do
          local bad = connect(port)
          assert(bad:send("BAD" .. i .. "\r\n\r\n"))
          assert.equal(400, assert(readresponse(bad)).status)
          assert.is_true(closedby(bad))
          assert(good:send(GET:format("/" .. i)))
          assert.equal("GET /" .. i, assert(readresponse(good)).body)
        end
        assert(slow:send("Host: t\r\n\r\n"))
        assert.equal("GET /", assert(readresponse(slow)).body)
      end)
    end)

    it("answers a handler error with 500 and logs its traceback", function()
      local logged = {}
      local stderr = io.stderr
      io.stderr = {write = function(_, ...)
        for _, s in ipairs{...} do logged[#logged + 1] = s end
      end, flush = function() end}
      local ok, err = pcall(withserver, function(req, res)
        if req.path == "/late" then
          res:write("partial")
          error("late failure")
        end
        error("handler failure")
      end, nil, function(_, port)
        local r, s = ask(port, GET:format("/early"))
        assert.equal(500, r.status)
        assert(s:send(GET:format("/again")))  -- still served
        assert.equal(500, assert(readresponse(s)).status)
        s = connect(port)
        assert(s:send(GET:format("/late")))
        local line = s:receive("*l")
        assert.truthy(line:find("200"))
        s:receive("*a")  -- the connection is closed, the body cut short
      end)
      io.stderr = stderr
      assert(ok, err)
      local text = table.concat(logged)
      assert.truthy(text:find("handler failure", 1, true))
      assert.truthy(text:find("late failure", 1, true))
      assert.truthy(text:find("stack traceback", 1, true))
      assert.truthy(text:find("GET /early", 1, true))
    end)

    it("answers an invalid header from the handler with 500", function()
      local stderr = io.stderr
      io.stderr = {write = function() end, flush = function() end}
      local ok, err = pcall(withserver, function()
        return 200, {["X-Bad"] = "a\r\nInjected: 1"}, "x"
      end, nil, function(_, port)
        assert.equal(500, ask(port, GET:format("/")).status)
      end)
      io.stderr = stderr
      assert(ok, err)
    end)
  end)

  describe("with real clients", function()
    it("serves curl, reusing one connection for several URLs", function()
      local peers = {}
      withserver(function(req)
        peers[req.remote_port] = true
        return 200, {["Content-Type"] = "text/plain"}, "curl " .. req.path
          .. "\n"
      end, nil, function(_, port)
        local base = "http://127.0.0.1:" .. port
        local out, err, status = h.run(("curl -sS %s/a %s/b -d posted %s/c")
          :format(base, base, base), 20)
        assert.equal(0, status, err)
        assert.equal("curl /a\ncurl /b\ncurl /c\n", out)
        local n = 0
        for _ in pairs(peers) do n = n + 1 end
        assert.equal(1, n)
      end)
    end)

    it("answers curl's expect: 100-continue and chunked uploads", function()
      withserver(function(req) return 200, nil, #assert(req:body()) .. "\n" end,
        nil, function(_, port)
          local file = os.tmpname()
          local f = assert(io.open(file, "wb"))
          f:write(("x"):rep(100000))
          f:close()
          local out, err, status = h.run(("curl -sS -H 'Expect: 100-continue' "
            .. "--data-binary @%s http://127.0.0.1:%d/ -H "
            .. "'Transfer-Encoding: chunked'"):format(file, port), 20)
          os.remove(file)
          assert.equal(0, status, err)
          assert.equal("100000\n", out)
        end)
    end)

    it("serves Python's http.client over one kept-alive connection", function()
      local peers = {}
      withserver(function(req)
        peers[req.remote_port] = true
        local body = req:body()
        return 200, {["Content-Type"] = "text/plain"},
          req.method .. " " .. req.path .. " " .. body
      end, nil, function(_, port)
        local script = ([[
import http.client
c = http.client.HTTPConnection("127.0.0.1", %d, timeout=10)
for i in range(5):
    c.request("POST" if i %% 2 else "GET", "/py/%%d" %% i,
              body="b%%d" %% i if i %% 2 else None)
    r = c.getresponse()
    print(r.status, r.read().decode())
c.close()
]]):format(port)
        local out, err, status = h.run(h.PYTHON .. " -c " .. h.q(script), 20)
        assert.equal(0, status, err)
        assert.equal("200 GET /py/0 \n200 POST /py/1 b1\n200 GET /py/2 \n"
          .. "200 POST /py/3 b3\n200 GET /py/4 \n", out)
        local n = 0
        for _ in pairs(peers) do n = n + 1 end
        assert.equal(1, n)
      end)
    end)

    it("answers wrk's keep-alive load without errors", function()
      withserver(hello, nil, function(_, port)
        local out, err, status = h.run(("wrk -t1 -c20 -d1s "
          .. "http://127.0.0.1:%d/"):format(port), 30)
        assert.equal(0, status, err)
        local n = tonumber(out:match("(%d+) requests in"))
        assert.is_true(n and n > 100, out)
        assert.is_nil(out:find("Non%-2xx"), out)
        assert.is_nil(out:find("Socket errors"), out)
      end)
    end)
  end)
end)
