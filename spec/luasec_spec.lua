-- LuaSec under greenlua: require "ssl" gives LuaSec's API on the green
-- TLS layer (bindings/compat/ls_ssl.c), and Debian's ssl.https runs
-- unchanged on it.  What each call returns is checked against Debian's
-- LuaSec itself; the rest runs against real peers (openssl s_server,
-- curl) and shows greenthreads overlapping.  The certificates are made
-- here with the openssl command line: a throwaway CA and a server
-- certificate for localhost and 127.0.0.1.
local green = require "green"
local h = require "spec.helpers"
local socket = require "socket"
local ssl = require "ssl"
local https = require "ssl.https"
local ltn12 = require "ltn12"

local dir

local function pki(name) return dir .. "/" .. name end

local function makepki()
  dir = os.tmpname()
  os.remove(dir)
  local script = [[
set -e
mkdir "$1"
cd "$1"
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem \
  -days 2 -subj "/CN=Green Test CA"
openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr \
  -subj "/C=DE/O=Green/CN=localhost"
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > srv.ext
openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
  -days 2 -extfile srv.ext -out srv.pem
]]
  assert(os.execute(("sh -c %s sh %s >/dev/null 2>&1"):format(h.q(script),
                                                             h.q(dir))),
         "openssl failed")
end

-- Starts `openssl s_server -www` with the server certificate: the child
-- and its port.
local function s_server()
  local c = h.background(("openssl s_server -accept 0 -www -cert %s -key %s")
    :format(h.q(pki("srv.pem")), h.q(pki("srv.key"))))
  return c, tonumber(c:await("ACCEPT [^\n]-:(%d+)"))
end

local function client(params)
  local p = {mode = "client", protocol = "any"}
  for k, v in pairs(params or {}) do p[k] = v end
  return p
end

describe("require 'ssl' under greenlua", function()
  setup(makepki)
  teardown(function() os.execute("rm -rf " .. h.q(dir)) end)

  it("gives LuaSec's API on our TLS, and never LuaSec's C modules", function()
    assert.is_function(package.preload.ssl)
    assert.equal("1.2.0", ssl._VERSION)
    assert.matches("^SSL context: ", tostring(ssl.newcontext(client())))
    local ok, err = pcall(require, "ssl.core")
    assert.is_false(ok)
    assert.matches("would block the hub", err)
  end)

  it("returns what Debian's LuaSec returns, call for call", function()
    local server, port = s_server()
    finally(function() server:kill() end)
    local cmd = ("%s spec/fixtures/luasec_reference.lua %d %s")
    local ref = h.outputof(cmd:format("env -u LUA_INIT -u LUA_INIT_5_4 lua5.4",
                                    port, h.q(pki("ca.pem"))))
    assert.matches("SSL connection: ADDR", ref, 1, true)
    local ours = h.outputof(cmd:format(h.q(h.BIN), port, h.q(pki("ca.pem"))))
    assert.equal(ref, ours)
  end)

  it("runs ssl.https against openssl s_server, verifying with a cafile",
     function()
    local server, port = s_server()
    finally(function() server:kill() end)
    local url = ("https://localhost:%d/"):format(port)
    local body, code, headers, status = https.request(url)
    assert.equal(200, code)
    assert.equal("HTTP/1.0 200 ok", status)
    assert.truthy(body:find("Ciphers supported", 1, true))
    assert.is_table(headers)
    local t = {}
    local ok, vcode = https.request{url = url, sink = ltn12.sink.table(t),
      verify = "peer", cafile = pki("ca.pem")}
    assert.equal(1, ok)
    assert.equal(200, vcode)
    assert.truthy(table.concat(t):find("Ciphers supported", 1, true))
    -- without the CA, the check fails
    local fail, err = https.request{url = url, verify = "peer",
                                    sink = ltn12.sink.table({})}
    assert.is_nil(fail)
    assert.equal("certificate verify failed", err)
  end)

  it("fetches with ssl.https from many greenthreads at once, overlapping",
     function()
    -- A green TLS server that answers none before all N requests came:
    -- the fetches end only if they run at the same time.
    local N = 30
    local arrived, all = 0, green.Event()
    local srv = green.StreamServer("127.0.0.1", 0, function(sock)
      local line = sock:receive()
      repeat local header = sock:receive() until header == "" or not header
      arrived = arrived + 1
      if arrived == N then all:set() end
      assert(all:wait(20))
      local body = "hello over tls: " .. line:match("GET (%S+)")
      sock:send("HTTP/1.1 200 OK\r\ncontent-length: " .. #body
                .. "\r\nconnection: close\r\n\r\n" .. body)
    end, {tls = {cert = pki("srv.pem"), key = pki("srv.key")}}):start()
    finally(function() srv:stop() end)
    local gs = {}
    for i = 1, N do
      gs[i] = green.spawn(function()
        local t = {}
        local ok, code = https.request{
          url = ("https://localhost:%d/doc/%d"):format(srv.port, i),
          sink = ltn12.sink.table(t), verify = "peer",
          cafile = pki("ca.pem")}
        return ok, code, table.concat(t)
      end)
    end
    for i = 1, N do
      assert.same({1, 200, "hello over tls: /doc/" .. i}, {gs[i]:get(30)})
    end
  end)

  it("serves curl as a LuaSec server", function()
    local ctx = assert(ssl.newcontext{mode = "server", protocol = "any",
      key = pki("srv.key"), certificate = pki("srv.pem")})
    local listener = assert(socket.bind("127.0.0.1", 0))
    local port = select(2, listener:getsockname())
    local served = green.spawn(function()
      local c = assert(listener:accept())
      local conn = assert(ssl.wrap(c, ctx))
      conn:settimeout(10)
      assert(conn:dohandshake())
      local request = conn:receive()
      repeat local line = conn:receive() until line == ""
      local body = "hello from LuaSec, you asked: " .. request
      conn:send("HTTP/1.0 200 OK\r\ncontent-length: " .. #body .. "\r\n\r\n"
                .. body)
      local name = conn:getsniname()
      conn:close()
      return name
    end)
    local curl = h.background(("curl -sS --cacert %s https://localhost:%d/x")
      :format(h.q(pki("ca.pem")), port))
    finally(function() curl:kill() end)
    assert.equal("localhost", served:get(20))
    assert.equal("hello from LuaSec, you asked: GET /x HTTP/1.1",
                 curl:await("(hello from LuaSec[^\n]*)"))
    listener:close()
  end)

  it("hands shakes without blocking under settimeout(0), with select",
     function()
    -- The server's side (LuaSec too) starts only once the client has been
    -- told to wait.
    local ctx = assert(ssl.newcontext{mode = "server", protocol = "any",
      key = pki("srv.key"), certificate = pki("srv.pem")})
    local listener = assert(socket.bind("127.0.0.1", 0))
    local go = green.Event()
    local server = green.spawn(function()
      local conn = assert(ssl.wrap(assert(listener:accept()), ctx))
      go:wait()
      conn:settimeout(10)
      assert(conn:dohandshake())
      conn:send("welcome\n")
      conn:close()
    end)
    local conn = assert(ssl.wrap(assert(socket.connect("127.0.0.1",
      (select(2, listener:getsockname())))),
      client{verify = "peer", cafile = pki("ca.pem")}))
    conn:settimeout(0)
    assert.same({false, "wantread"}, {conn:dohandshake()})
    assert.equal("read", conn:want())
    assert.same({{}, {}, "timeout"}, {socket.select({conn}, nil, 0)})
    go:set()
    while true do
      local r = socket.select({conn}, nil, 5)
      assert.equal(conn, r[1])
      local ok, err = conn:dohandshake()
      if ok then break end
      assert.equal("wantread", err)
    end
    assert.is_true(conn:getpeerverification())
    conn:settimeout(5)
    assert.equal("welcome", conn:receive())
    server:join()
    conn:close()
    listener:close()
  end)

  it("times out a handshake with 'wantread' while others run", function()
    local silent = assert(socket.bind("127.0.0.1", 0))
    local c = assert(socket.connect("127.0.0.1",
                                    (select(2, silent:getsockname()))))
    local conn = ssl.wrap(c, client())
    conn:settimeout(0.05)
    local ran = false
    green.spawn(function() ran = true end)
    assert.same({false, "wantread"}, {conn:dohandshake()})
    assert.is_true(ran)
    conn:close()
    silent:close()
  end)

  it("reports the peer's certificate: subject, issuer, validity", function()
    local server, port = s_server()
    finally(function() server:kill() end)
    local conn = ssl.wrap(assert(socket.connect("127.0.0.1", port)),
                          client{verify = "peer", cafile = pki("ca.pem")})
    conn:sni("localhost")
    assert.is_true(conn:dohandshake())
    local cert = conn:getpeercertificate()
    local subject = {}
    for _, e in ipairs(cert:subject()) do subject[e.name] = e.value end
    assert.same({countryName = "DE", organizationName = "Green",
                 commonName = "localhost"}, subject)
    assert.equal("Green Test CA", cert:issuer()[1].value)
    assert.is_true(cert:validat(os.time()))
    assert.is_false(cert:validat(os.time() + 10 * 86400))
    assert.matches("GMT$", cert:notafter())
    assert.same({"localhost"}, cert:extensions()["2.5.29.17"].dNSName)
    conn:close()
  end)

  it("raises a kill in a greenthread waiting in a handshake or a receive",
     function()
    local silent = assert(socket.bind("127.0.0.1", 0))
    local port = select(2, silent:getsockname())
    local g = green.spawn(function()
      local conn = ssl.wrap(assert(socket.connect("127.0.0.1", port)),
                            client())
      conn:settimeout(30)
      return conn:dohandshake()
    end)
    green.sleep(0.01)
    g:kill()
    assert.is_true(g:dead())
    silent:close()
    local server, sport = s_server()
    finally(function() server:kill() end)
    local conn = ssl.wrap(assert(socket.connect("127.0.0.1", sport)),
                          client())
    assert.is_true(conn:dohandshake())
    local r = green.spawn(function() return conn:receive() end)
    green.sleep(0.01)
    r:kill()
    assert.is_true(r:dead())
    assert.equal(18, conn:send("GET / HTTP/1.0\r\n\r\n"))
    conn:settimeout(10)
    assert.equal("HTTP/1.0 200 ok", conn:receive())
    conn:close()
  end)
end)
