-- green.websocket with peers we did not write: Python's websockets package
-- as a client of green.websocket.upgrade and as a server for
-- green.websocket.connect (spec/fixtures/ws_peer.py), permessage-deflate
-- on; and 1,000 connections at once, each with 100 messages
-- (spec/fixtures/ws_many.lua, in a child process with room for 2,000
-- descriptors).
local green = require "green"
local http = require "green.http"
local websocket = require "green.websocket"
local h = require "spec.helpers"

local PEER = "spec/fixtures/ws_peer.py"

describe("green.websocket with Python's websockets", function()
  it("serves a websockets client: text, binary, fragments, pings, compression, close",
     function()
    local closed = green.Event()
    local ended
    local srv = assert(http.server("127.0.0.1", 0, function(req, res)
      local ws = websocket.upgrade(req, res, {protocols = {"chat"}})
      if not ws then return end
      while true do
        local msg, kind, code, reason = ws:receive()
        if not msg then
          ended = {kind, code, reason}
          closed:set()
          return
        end
        ws:send(msg, kind)
      end
    end))
    assert(srv:start())
    local out, err, status = h.run(("%s %s client ws://127.0.0.1:%d/x")
      :format(h.PYTHON, PEER, srv.port), 60)
    assert.equal(0, status, err)
    for _, name in ipairs{"extensions", "subprotocol", "text", "binary",
                          "large", "fragmented", "ping", "empty", "close"} do
      assert.matches("ok " .. name .. "\n", out, 1, true)
    end
    assert.is_nil(out:find("fail"), out)
    assert.matches("server closed with 4000", out, 1, true)  -- the code echoed
    closed:wait(5)
    assert.same({"closed", 4000, "client done"}, ended)
    srv:stop(0.5)
  end)

  describe("as a server for green.websocket.connect", function()
    local peer, port
    setup(function()
      local portfile = os.tmpname()
      os.remove(portfile)
      peer = h.spawn(("%s %s server %s"):format(h.PYTHON, PEER, portfile))
      local deadline = green.now() + 20
      repeat
        green.sleep(0.01)
        local f = io.open(portfile)
        if f then
          port = tonumber(f:read("a"))
          f:close()
        end
      until port or green.now() > deadline
      os.remove(portfile)
      assert(port, "ws_peer.py did not start: " .. peer:errors())
    end)
    teardown(function() peer:kill() end)

    local function connect(opts)
      return assert(websocket.connect(("ws://127.0.0.1:%d/"):format(port), opts))
    end

    it("agrees on permessage-deflate and a subprotocol", function()
      local ws = connect({protocols = {"chat"}})
      assert.equal("chat", ws:protocol())
      assert.matches("^permessage%-deflate", ws:extensions())
      ws:send("info")
      local info = ws:receive(5)
      assert.matches("^permessage%-deflate.*server_no_context_takeover.*|chat$", info)
      ws:close()
    end)

    it("exchanges text and binary messages, compressed or not, byte for byte",
       function()
      for _, opts in ipairs{{}, {compress = false}, {compress_min = 0}} do
        local ws = connect(opts)
        local all = {}
        for i = 0, 255 do all[#all + 1] = string.char(i) end
        local bin = table.concat(all):rep(300)
        local text = ("héllo wörld "):rep(50000)
        for _, m in ipairs{{"short", "text"}, {"", "text"}, {bin, "binary"},
                           {text, "text"}} do
          assert(ws:send(m[1], m[2]))
          local got, kind = ws:receive(10)
          assert.equal(m[2], kind)
          assert.is_true(got == m[1], ("%s of %d bytes"):format(m[2], #m[1]))
        end
        ws:close()
      end
    end)

    it("reassembles the fragments it sends, and answers its pings", function()
      local ws = connect()
      ws:send("fragments")
      assert.same({"fragmented", "text"}, {ws:receive(5)})
      ws:send("ping")
      assert.equal("pong ok", ws:receive(5))
      ws:close()
    end)

    it("closes either way with codes and reasons", function()
      local ws = connect()
      ws:send("close 4001 server says bye")
      assert.same({nil, "closed", 4001, "server says bye"}, {ws:receive(5)})
      ws = connect()
      assert.is_true(ws:close(4002, "client says bye"))
      peer:output()
      local deadline = green.now() + 5
      while not peer:output():find("closed 4002 client says bye", 1, true)
            and green.now() < deadline do
        green.sleep(0.01)
      end
      assert.matches("closed 4002 client says bye", peer:output(), 1, true)
    end)
  end)
end)

describe("green.websocket under load", function()
  it("carries 1,000 connections at once, 100 messages each, byte for byte",
     function()
    -- (its I/O whole even under the one-byte switch, which the other
    -- specs of green.websocket run under: a byte at a time, 100,000
    -- messages would take minutes)
    local out, err, status = h.run(("ulimit -n 4096 2>/dev/null; "
      .. "env -u GREENLUA_IO_ONEBYTE %s spec/fixtures/ws_many.lua 1000 100")
      :format(h.BIN), 300)
    assert.equal(0, status, err)
    assert.matches("ok 1000 connections, 100000 messages", out, 1, true)
  end)
end)
