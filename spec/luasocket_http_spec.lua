-- LuaSocket's own protocol modules (socket.http, socket.smtp,
-- socket.ftp, with ltn12 and mime), unchanged, on our socket.core:
-- against real servers started here (Python's http.server, smtpd and
-- pyftpdlib) and, to show requests from many greenthreads overlapping,
-- a server of ours that answers none before all have arrived.
local green = require "green"
local h = require "spec.helpers"
local socket = require "socket"
local http = require "socket.http"
local ltn12 = require "ltn12"

local PYTHON = "/usr/bin/python3"

describe("socket.http", function()
  it("fetches from many greenthreads at once, the requests overlapping",
     function()
    -- The server holds every response until all N requests have arrived:
    -- the fetches can only end if they all run at the same time.
    local N = 50
    local srv = assert(socket.bind("127.0.0.1", 0))
    local port = select(2, srv:getsockname())
    local arrived, all = 0, green.Event()
    local server = green.spawn(function()
      while true do
        local c = srv:accept()
        if not c then return end
        green.spawn(function()
          local line = c:receive()
          repeat local header = c:receive() until header == ""
          arrived = arrived + 1
          if arrived == N then all:set() end
          assert(all:wait(10))
          local body = ("you asked for %s"):format(line:match("GET (%S+)"))
          c:send("HTTP/1.1 200 OK\r\nContent-Length: " .. #body
                 .. "\r\nConnection: close\r\n\r\n" .. body)
          c:close()
        end)
      end
    end)
    local fetches = {}
    for i = 1, N do
      fetches[i] = green.spawn(function()
        local chunks = {}
        local ok, code, headers = http.request{
          url = ("http://127.0.0.1:%d/page/%d"):format(port, i),
          sink = ltn12.sink.table(chunks),
        }
        return ok, code, headers["content-length"], table.concat(chunks)
      end)
    end
    for i = 1, N do
      local ok, code, length, body = fetches[i]:get(20)
      assert.equal(1, ok)
      assert.equal(200, code)
      assert.equal("you asked for /page/" .. i, body)
      assert.equal(#body, tonumber(length))
    end
    srv:close()
    server:kill()
  end)

  describe("against Python's http.server", function()
    local dir, server, base

    setup(function()
      dir = os.tmpname()
      os.remove(dir)
      assert(os.execute("mkdir " .. h.q(dir)))
      local f = assert(io.open(dir .. "/hello.txt", "w"))
      f:write(("hello from python\n"):rep(1000))
      f:close()
      server = h.background(("%s -u -m http.server 0 --bind 127.0.0.1 "
        .. "--directory %s"):format(PYTHON, h.q(dir)))
      base = "http://127.0.0.1:" .. server:await("port (%d+)")
    end)

    teardown(function()
      server:kill()
      os.execute("rm -rf " .. h.q(dir))
    end)

    it("gets a page as a string and through an ltn12 sink", function()
      local body, code, headers = http.request(base .. "/hello.txt")
      assert.equal(200, code)
      assert.equal(("hello from python\n"):rep(1000), body)
      assert.equal(tostring(#body), headers["content-length"])
      local t = {}
      local ok = http.request{url = base .. "/hello.txt",
                              sink = ltn12.sink.table(t)}
      assert.equal(1, ok)
      assert.equal(body, table.concat(t))
    end)

    it("gets pages from many greenthreads", function()
      -- four at a time: http.server listens with a backlog of 5
      local pool = green.Pool(4)
      local sizes = pool:map(function()
        local body, code = http.request(base .. "/hello.txt")
        return code == 200 and #body
      end, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
      for i = 1, 16 do assert.equal(18000, sizes[i]) end
    end)

    it("reports a missing page and a refused connection", function()
      local _, code = http.request(base .. "/missing")
      assert.equal(404, code)
      local port = h.freeport()
      assert.same({nil, "connection refused"},
                  {http.request(("http://127.0.0.1:%d/"):format(port))})
    end)

    it("times out under http.TIMEOUT", function()
      -- a listener that never answers
      local srv = assert(socket.bind("127.0.0.1", 0))
      local port = select(2, srv:getsockname())
      local old = http.TIMEOUT
      http.TIMEOUT = 0.1
      local ok, err = http.request(("http://127.0.0.1:%d/"):format(port))
      http.TIMEOUT = old
      assert.is_nil(ok)
      assert.equal("timeout", err)
      srv:close()
    end)
  end)

  it("posts a body from an ltn12 source to a Python server", function()
    local server = h.background(PYTHON .. [[ -u -c '
import http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        reply = body.upper()
        self.send_response(201)
        self.send_header("content-length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)
    def log_message(self, *args):
        pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
print("port", s.server_address[1], flush=True)
s.serve_forever()']])
    finally(function() server:kill() end)
    local port = server:await("port (%d+)")
    local out = {}
    local body = ("posted data "):rep(500)
    local ok, code = http.request{
      url = ("http://127.0.0.1:%s/"):format(port),
      method = "POST",
      source = ltn12.source.string(body),
      headers = {["content-length"] = #body},
      sink = ltn12.sink.table(out),
    }
    assert.equal(1, ok)
    assert.equal(201, code)
    assert.equal(body:upper(), table.concat(out))
  end)
end)

describe("socket.smtp", function()
  it("sends a message to Python's smtpd", function()
    local smtp = require "socket.smtp"
    local port = h.freeport()
    local server = h.background(("%s -u -m smtpd -n -c DebuggingServer "
      .. "127.0.0.1:%d"):format(PYTHON, port))
    finally(function() server:kill() end)
    -- smtpd prints nothing when it starts: try until it answers
    local deadline = green.now() + 10
    while not socket.connect("127.0.0.1", port) do
      assert(green.now() < deadline, "smtpd did not start")
      green.sleep(0.02)
    end
    local ok, err = smtp.send{
      from = "<alice@example.com>",
      rcpt = "<bob@example.com>",
      server = "127.0.0.1",
      port = port,
      source = smtp.message{
        headers = {subject = "green mail", to = "bob@example.com"},
        body = "sent from a greenthread",
      },
    }
    assert.equal(1, ok, err)
    assert.equal("sent from a greenthread",
                 server:await("(sent from a greenthread)"))
  end)
end)

describe("socket.ftp", function()
  it("gets and puts files with pyftpdlib", function()
    local ftp = require "socket.ftp"
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir " .. h.q(dir)))
    local f = assert(io.open(dir .. "/file.txt", "w"))
    f:write(("ftp data\n"):rep(300))
    f:close()
    local server = h.background(("%s -m pyftpdlib -p 0 -i 127.0.0.1 -w -d %s")
      :format(PYTHON, h.q(dir)))
    finally(function()
      server:kill()
      os.execute("rm -rf " .. h.q(dir))
    end)
    local port = server:await("starting FTP server on 127%.0%.0%.1:(%d+)")
    local base = ("ftp://anonymous:x@127.0.0.1:%s/"):format(port)
    local gets = {}
    for i = 1, 5 do
      gets[i] = green.spawn(function()
        return ftp.get(base .. "file.txt;type=i")
      end)
    end
    for i = 1, 5 do
      assert.equal(("ftp data\n"):rep(300), gets[i]:get(20))
    end
    assert.is_truthy(ftp.put(base .. "up.txt;type=i", "uploaded"))
    assert.equal("uploaded", h.slurp(dir .. "/up.txt"))
  end)
end)
