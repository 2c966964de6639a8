-- green.http.request and green.http.get: against Python's http.server
-- (spec/fixtures/http_peer.py), against green.http.server, and against
-- raw sockets that misbehave on purpose.
local green = require "green"
local http = require "green.http"
local h = require "spec.helpers"
local json = require "dkjson"
local socket = green.socket

-- Python's http.server on a free port, for the whole file: peer.url(path),
-- and peer.accepts(), how many connections it accepted so far.
local peer = {}

local function startpeer()
  local portfile = os.tmpname()
  os.remove(portfile)
  peer.proc = h.spawn(("%s spec/fixtures/http_peer.py %s")
    :format(h.PYTHON, portfile))
  local deadline = green.now() + 20
  repeat
    green.sleep(0.01)
    local f = io.open(portfile)
    if f then
      peer.port = tonumber(f:read("a"))
      f:close()
    end
  until peer.port or green.now() > deadline
  os.remove(portfile)
  assert(peer.port, "http_peer.py did not start: " .. peer.proc:errors())
end

function peer.url(path) return ("http://127.0.0.1:%d%s"):format(peer.port, path) end

function peer.accepts()
  local n = 0
  for _ in peer.proc:output():gmatch("accept %d+") do n = n + 1 end
  return n
end

local function withserver(handler, opts, fn)
  return h.withhttpserver(handler, opts, function(srv, port)
    return fn(srv, "http://127.0.0.1:" .. port)
  end)
end

-- A server of raw sockets: for each connection, fn(sock) in a greenthread.
local function withraw(fn, body)
  local ls = assert(socket.listen("127.0.0.1", 0))
  local _, port = ls:getsockname()
  local accepted = 0
  local g = green.spawn(function()
    while true do
      local s = ls:accept()
      if not s then return end
      accepted = accepted + 1
      green.spawn(function() fn(s, accepted); s:close() end)
    end
  end)
  local ok, err = pcall(body, "http://127.0.0.1:" .. port,
                        function() return accepted end)
  ls:close()
  g:kill()
  if not ok then error(err, 0) end
end

-- Reads a request head from a raw socket.
local function readhead(s)
  local lines = {}
  repeat
    local line = s:receive("*l")
    if not line then return nil end
    lines[#lines + 1] = line
  until line == ""
  return table.concat(lines, "\n")
end

describe("green.http client", function()
  setup(startpeer)
  teardown(function()
    http.close_idle()
    peer.proc:kill()
  end)

  describe("against Python's http.server", function()
    it("gets a response: status, reason, headers, body, url", function()
      local res = assert(http.get(peer.url("/echo?x=1")))
      assert.equal(200, res.status)
      assert.equal("OK", res.reason)
      assert.equal("1.1", res.version)
      assert.equal("application/json", res.headers["content-type"])
      assert.equal(peer.url("/echo?x=1"), res.url)
      local doc = json.decode(res.body)
      assert.equal("GET", doc.method)
      assert.equal("/echo?x=1", doc.path)
      assert.equal("gzip", doc.headers["accept-encoding"])
      assert.equal("127.0.0.1:" .. peer.port, doc.headers.host)
    end)

    it("sends a body with POST by default, or the method and headers asked",
       function()
      local doc = json.decode(assert(http.request(peer.url("/echo"),
        {body = "payload"})).body)
      assert.equal("POST", doc.method)
      assert.equal("payload", doc.body)
      assert.equal("7", doc.headers["content-length"])
      doc = json.decode(assert(http.request(peer.url("/echo"), {
        method = "PUT", body = "x", headers = {["X-Custom"] = "yes",
        ["Accept-Encoding"] = "identity"}})).body)
      assert.equal("PUT", doc.method)
      assert.equal("yes", doc.headers["x-custom"])
      assert.equal("identity", doc.headers["accept-encoding"])
      doc = json.decode(assert(http.request(peer.url("/echo"),
        {method = "DELETE"})).body)
      assert.equal("DELETE", doc.method)
    end)

    it("reads bodies by content-length, chunked and until the close", function()
      assert.equal(("x"):rep(200000),
        assert(http.get(peer.url("/text/200000"))).body)
      assert.equal("first,second,third",
        assert(http.get(peer.url("/chunked"))).body)
      assert.equal("until the close", assert(http.get(peer.url("/close"))).body)
    end)

    it("reads no body for HEAD, 204 and 304", function()
      local res = assert(http.request(peer.url("/text/100"), {method = "HEAD"}))
      assert.equal("100", res.headers["content-length"])
      assert.equal("", res.body)
      assert.equal(204, assert(http.get(peer.url("/status/204"))).status)
      assert.equal(304, assert(http.get(peer.url("/status/304"))).status)
      assert.equal(200, assert(http.get(peer.url("/text/1"))).status)
    end)

    it("gives set-cookie headers as an array", function()
      assert.same({"a=1", "b=2"},
        assert(http.get(peer.url("/cookies"))).headers["set-cookie"])
    end)

    it("decodes gzip and deflate bodies", function()
      local res = assert(http.get(peer.url("/gzip")))
      assert.equal("gzip", res.headers["content-encoding"])
      assert.equal(("compressed "):rep(100), res.body)
      assert.equal(("compressed "):rep(100),
        assert(http.get(peer.url("/deflate"),
          {headers = {["accept-encoding"] = "deflate"}})).body)
    end)

    it("keeps connections alive and reuses them", function()
      http.close_idle()
      local before = peer.accepts()
      for _ = 1, 5 do assert(http.get(peer.url("/text/10"))) end
      assert.equal(before + 1, peer.accepts())
    end)

    it("follows redirects with the method rules of RFC 9110", function()
      for _, code in ipairs{301, 302, 303, 307, 308} do
        local res = assert(http.request(peer.url(("/redirect/%d/2"):format(code)),
          {body = "data"}))
        local doc = json.decode(res.body)
        assert.equal(peer.url("/echo"), res.url)
        if code == 307 or code == 308 then
          assert.equal("POST", doc.method)
          assert.equal("data", doc.body)
        else
          assert.equal("GET", doc.method)
          assert.equal("", doc.body)
          assert.is_nil(doc.headers["content-length"])
        end
      end
      -- a GET stays a GET through 301 and 302
      local doc = json.decode(assert(http.get(peer.url("/redirect/301/1"))).body)
      assert.equal("GET", doc.method)
    end)

    it("resolves relative locations", function()
      local res = assert(http.get(peer.url("/relative")))
      assert.equal(peer.url("/echo?from=relative"), res.url)
      assert.equal("/echo?from=relative", json.decode(res.body).path)
    end)

    it("stops at `redirects` hops", function()
      assert.same({nil, "too many redirects"}, {http.get(peer.url("/loop"))})
      assert.same({nil, "too many redirects"},  -- 3 hops
        {http.get(peer.url("/redirect/302/2"), {redirects = 2})})
      assert(http.get(peer.url("/redirect/302/1"), {redirects = 2}))
      local res = assert(http.get(peer.url("/loop"), {redirects = 0}))
      assert.equal(302, res.status)
      assert.equal("/loop", res.headers.location)
    end)

    it("gives up with \"timeout\" when the whole exchange takes too long",
       function()
      local t0 = green.now()
      assert.same({nil, "timeout"}, {http.get(peer.url("/slow/3"),
        {timeout = 0.2})})
      assert.is_true(green.now() - t0 < 2)
      assert.same({nil, "timeout"}, {http.get(peer.url("/hang"),
        {timeout = 0.1})})
    end)
  end)

  describe("against green.http.server", function()
    it("reuses one connection for sequential requests", function()
      local peers = {}
      withserver(function(req)
        peers[req.remote_port] = true
        return 200, nil, req.path
      end, nil, function(_, base)
        for i = 1, 10 do
          assert.equal("/" .. i, assert(http.get(base .. "/" .. i)).body)
        end
        local n = 0
        for _ in pairs(peers) do n = n + 1 end
        assert.equal(1, n)
      end)
    end)

    it("opens a connection per concurrent request, then reuses them",
       function()
      local peers, release = {}, green.Event()
      withserver(function(req)
        peers[req.remote_port] = true
        if req.path == "/wait" then release:wait() end
        return 200, nil, "ok"
      end, nil, function(_, base)
        local gs = {}
        for i = 1, 8 do
          gs[i] = green.spawn(http.get, base .. "/wait")
        end
        green.sleep(0)
        green.sleep(0.05)
        release:set()
        for _, g in ipairs(gs) do assert.equal("ok", g:get().body) end
        for _ = 1, 8 do assert(http.get(base .. "/again")) end
        local n = 0
        for _ in pairs(peers) do n = n + 1 end
        assert.equal(8, n)
      end)
    end)

    it("does not reuse a connection the server closed while idle", function()
      local peers = {}
      withserver(function(req)
        peers[req.remote_port] = true
        return 200, nil, "ok"
      end, {keepalive_timeout = 0.02}, function(_, base)
        assert(http.get(base .. "/1"))
        green.sleep(0.2)
        assert(http.get(base .. "/2"))
        local n = 0
        for _ in pairs(peers) do n = n + 1 end
        assert.equal(2, n)
      end)
    end)

    it("round-trips methods, headers and bodies", function()
      withserver(function(req)
        return 200, {["X-Method"] = req.method,
                     ["X-Got"] = req.headers["x-send"]}, req:body()
      end, nil, function(_, base)
        local res = assert(http.request(base .. "/", {method = "PATCH",
          headers = {["X-Send"] = "hello"}, body = ("b"):rep(100000)}))
        assert.equal("PATCH", res.headers["x-method"])
        assert.equal("hello", res.headers["x-got"])
        assert.equal(100000, #res.body)
      end)
    end)
  end)

  describe("errors", function()
    it("retries once, on a new connection, a request the server dropped unanswered",
       function()
      withraw(function(s, n)
        local head = readhead(s)
        if n == 1 then  -- answers the first request, drops the second
          s:send("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst")
          readhead(s)
          return
        end
        assert(head)
        s:send("HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond")
        readhead(s)
      end, function(base, accepted)
        assert.equal("first", assert(http.get(base .. "/a")).body)
        assert.equal("second", assert(http.get(base .. "/b")).body)
        assert.equal(2, accepted())
      end)
    end)

    it("says \"closed\" when the server closes in the middle of a response",
       function()
      withraw(function(s)
        readhead(s)
        s:send("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")
      end, function(base)
        assert.same({nil, "closed"}, {http.get(base .. "/")})
      end)
    end)

    it("says what is wrong with an invalid response", function()
      withraw(function(s)
        readhead(s)
        s:send("NOT HTTP AT ALL\r\n\r\n")
      end, function(base)
        local res, err = http.get(base .. "/")
        assert.is_nil(res)
        assert.truthy(err:find("^invalid response"), err)
      end)
    end)

    it("says \"connection refused\", \"host not found\", \"invalid url\"",
       function()
      local ls = assert(socket.listen("127.0.0.1", 0))
      local _, port = ls:getsockname()
      ls:close()
      assert.same({nil, "connection refused"},
        {http.get("http://127.0.0.1:" .. port .. "/")})
      assert.same({nil, "host not found"},
        {http.get("http://nonexistent.invalid/")})
      assert.same({nil, "invalid url"}, {http.get("not a url")})
      assert.same({nil, "invalid url"}, {http.get("http://h:99999/")})
      assert.same({nil, "unsupported scheme 'ftp'"},
        {http.get("ftp://127.0.0.1/")})
    end)

    it("leaves https to the TLS layer", function()
      withserver(function() return 200 end, nil, function(srv)
        local res, err = http.get(("https://127.0.0.1:%d/"):format(srv.port),
          {timeout = 2})
        assert.is_nil(res)
        assert.equal("string", type(err))
      end)
    end)

    it("checks its arguments", function()
      h.raises("bad argument #1 to 'get' (string expected, got nil)",
        function() http.get() end)
      h.raises("bad argument #2 to 'request' (table expected, got number)",
        function() http.request("http://x/", 5) end)
      h.raises("option 'timeout': non-negative number expected",
        function() http.request("http://x/", {timeout = "soon"}) end)
      h.raises("option 'body': string expected",
        function() http.request("http://x/", {body = {}}) end)
      h.raises("invalid method",
        function() http.request("http://127.0.0.1:1/", {method = "BAD METHOD"})
        end)
    end)
  end)
end)
