-- green.websocket: the handshakes, messages, fragments, masking, pings,
-- the closing handshake, limits and bad input, permessage-deflate and
-- backpressure, with green.websocket on both sides and with raw sockets
-- that send frames made by hand (the frames of this file are the specs'
-- own, so that bad ones can be made).
local green = require "green"
local http = require "green.http"
local websocket = require "green.websocket"
local h = require "spec.helpers"
local socket = green.socket

-- {====== Helpers ======

local withserver = h.withhttpserver

-- A handler that echoes every message of the WebSocket it opens (with
-- `opts`), and records how its receive ended in `log` (if given).
local function echo(opts, log)
  return function(req, res)
    local ws = websocket.upgrade(req, res, opts)
    if not ws then return end
    while true do
      local msg, kind, code, reason = ws:receive()
      if not msg then
        if log then
          log[#log + 1] = {kind, code, reason}
          if log.ended then log.ended:set() end
        end
        return
      end
      ws:send(msg, kind)
    end
  end
end

local function url(port, path) return ("ws://127.0.0.1:%d%s"):format(port, path or "/") end

-- A frame as a client (masked with key 01 02 03 04 unless o.mask is
-- false) or a server sends it: o.fin (true), o.rsv (the RSV bits, 0..7),
-- o.len (the length to announce).
local function frame(op, payload, o)
  o = o or {}
  local n = o.len or #payload
  local b1 = ((o.fin == false) and 0 or 0x80) | ((o.rsv or 0) << 4) | op
  local masked = o.mask ~= false
  local m = masked and 0x80 or 0
  local head
  if n < 126 then head = string.char(b1, m | n)
  elseif n < 65536 then head = string.char(b1, m | 126) .. string.pack(">I2", n)
  else head = string.char(b1, m | 127) .. string.pack(">I8", n) end
  if not masked then return head .. payload end
  local key = "\1\2\3\4"
  local out = {}
  for i = 1, #payload do
    out[i] = string.char(payload:byte(i) ~ key:byte((i - 1) % 4 + 1))
  end
  return head .. key .. table.concat(out)
end

-- Reads one frame: fin, rsv, opcode, payload, masked.
local function readframe(s)
  local hd, err = s:receive(2)
  if not hd then return nil, err end
  local b1, b2 = hd:byte(1, 2)
  local n = b2 & 0x7f
  if n == 126 then n = string.unpack(">I2", assert(s:receive(2)))
  elseif n == 127 then n = string.unpack(">I8", assert(s:receive(8))) end
  local key = (b2 & 0x80) ~= 0 and assert(s:receive(4))
  local p = n > 0 and assert(s:receive(n)) or ""
  if key then
    local out = {}
    for i = 1, #p do out[i] = string.char(p:byte(i) ~ key:byte((i - 1) % 4 + 1)) end
    p = table.concat(out)
  end
  return (b1 & 0x80) ~= 0, (b1 >> 4) & 7, b1 & 0x0f, p, key ~= false
end

local KEY = "dGhlIHNhbXBsZSBub25jZQ=="

-- A raw client socket after a handshake (with `extra` header lines);
-- returns it and the response's head lines.
local function rawclient(port, extra)
  local s = assert(socket.connect("127.0.0.1", port, 5))
  s:settimeout(5)
  assert(s:send("GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
    .. "Connection: Upgrade\r\nSec-WebSocket-Key: " .. KEY .. "\r\n"
    .. "Sec-WebSocket-Version: 13\r\n" .. (extra or "") .. "\r\n"))
  local lines = {}
  while true do
    local line = assert(s:receive())
    if line == "" then break end
    lines[#lines + 1] = line
  end
  assert.equal("HTTP/1.1 101 Switching Protocols", lines[1])
  return s, table.concat(lines, "\n")
end

-- The close frame a raw socket reads next: code, reason.
local function readclose(s)
  while true do
    local fin, _, op, p = readframe(s)
    assert(fin, "no close frame")
    if op == 8 then
      if #p == 0 then return 1005, "" end
      return string.unpack(">I2", p), p:sub(3)
    end
  end
end

-- A raw server: each connection's handshake is answered, then fn(sock)
-- runs (with the request's head lines).
local function withrawserver(fn, body)
  local ls = assert(socket.listen("127.0.0.1", 0))
  local _, port = ls:getsockname()
  local g = green.spawn(function()
    while true do
      local s = ls:accept()
      if not s then return end
      green.spawn(function()
        s:settimeout(5)
        local lines, key = {}, nil
        while true do
          local line = s:receive()
          if not line or line == "" then break end
          lines[#lines + 1] = line
          key = key or line:match("^[Ss]ec%-[Ww]eb[Ss]ocket%-[Kk]ey: *(.-) *$")
        end
        local core = require "green.http.core"
        s:send("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
          .. "Connection: Upgrade\r\nSec-WebSocket-Accept: "
          .. core.wsaccept(key) .. "\r\n\r\n")
        fn(s, table.concat(lines, "\n"))
        s:close()
      end)
    end
  end)
  local ok, err = pcall(body, port)
  ls:close()
  g:kill()
  if not ok then error(err, 0) end
end
-- }======

describe("green.websocket", function()
  describe("handshakes", function()
    it("opens a connection from connect to upgrade, and both ends talk",
       function()
      withserver(echo(), nil, function(_, port)
        local ws = assert(websocket.connect(url(port, "/echo?x=1")))
        assert.equal("green.websocket", getmetatable(ws).__name)
        assert(ws:send("hello"))
        assert.same({"hello", "text"}, {ws:receive(5)})
        assert.is_true(ws:close())
      end)
    end)

    it("answers 400 to a request that is not a handshake, and the handler returns",
       function()
      local results = {}
      withserver(function(req, res)
        results[#results + 1] = {websocket.upgrade(req, res)}
      end, nil, function(_, port)
        local r = assert(http.get(("http://127.0.0.1:%d/"):format(port)))
        assert.equal(400, r.status)
        assert.same({nil, "not a websocket handshake"}, results[1])
        -- a wrong version gets 400 with the version we speak
        local s = assert(socket.connect("127.0.0.1", port, 5))
        s:send("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
          .. "Connection: Upgrade\r\nSec-WebSocket-Key: " .. KEY
          .. "\r\nSec-WebSocket-Version: 8\r\n\r\n")
        local head = {}
        repeat
          local line = assert(s:receive())
          head[#head + 1] = line
        until line == ""
        assert.matches("^HTTP/1.1 400", head[1])
        assert.matches("Sec%-WebSocket%-Version: 13", table.concat(head, "\n"))
        s:close()
        -- a key that is not 16 bytes in base64
        s = assert(socket.connect("127.0.0.1", port, 5))
        s:send("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
          .. "Connection: Upgrade\r\nSec-WebSocket-Key: c2hvcnQ=\r\n"
          .. "Sec-WebSocket-Version: 13\r\n\r\n")
        assert.matches("^HTTP/1.1 400", s:receive())
        s:close()
        assert.same({nil, "bad sec-websocket-key"}, results[#results])
      end)
    end)

    it("checks its arguments", function()
      h.raises("bad argument #1 to 'connect'", function() websocket.connect(1) end)
      h.raises("option 'max_message'", function()
        websocket.connect("ws://127.0.0.1:1/", {max_message = "x"})
      end)
      h.raises("bad argument #1 to 'upgrade'", function() websocket.upgrade() end)
      h.raises("invalid header", function()
        websocket.connect("ws://127.0.0.1:1/", {headers = {["X-A"] = "a\r\nb"}})
      end)
      assert.same({nil, "unsupported scheme 'http'"},
                  {websocket.connect("http://127.0.0.1:1/")})
      assert.same({nil, "invalid url"}, {websocket.connect("nothing")})
    end)

    it("fails a connect to a server that does not upgrade, or answers wrongly",
       function()
      withserver(function() return 404, nil, "no" end, nil, function(_, port)
        local ws, err = websocket.connect(url(port))
        assert.is_nil(ws)
        assert.equal("handshake failed (404 Not Found)", err)
      end)
      local ls = assert(socket.listen("127.0.0.1", 0))
      local _, port = ls:getsockname()
      green.spawn(function()
        local s = ls:accept()
        repeat local line = s:receive() until line == "" or not line
        s:send("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
          .. "Connection: Upgrade\r\nSec-WebSocket-Accept: nope\r\n\r\n")
        s:close()
      end)
      assert.same({nil, "handshake failed (wrong sec-websocket-accept)"},
                  {websocket.connect(url(port))})
      ls:close()
      assert.same({nil, "connection refused"},
                  {websocket.connect(url(h.freeport()))})
    end)

    it("agrees on a subprotocol, and tells what was agreed", function()
      withserver(function(req, res)
        local ws = websocket.upgrade(req, res, {protocols = {"chat", "v2"}})
        ws:send(tostring(ws:protocol()))
        ws:close()
      end, nil, function(_, port)
        local ws = assert(websocket.connect(url(port), {protocols = {"v2", "chat"}}))
        assert.equal("v2", ws:protocol())
        assert.equal("v2", ws:receive(5))
        ws = assert(websocket.connect(url(port), {protocols = {"other"}}))
        assert.is_nil(ws:protocol())
        assert.equal("nil", ws:receive(5))
      end)
    end)

    it("takes the frames that follow the 101 at once", function()
      withrawserver(function(s)
        -- the answer and the first frames in one write
        s:send(frame(1, "first", {mask = false}) .. frame(2, "\0\1", {mask = false}))
        readclose(s)
      end, function(port)
        local ws = assert(websocket.connect(url(port), {compress = false}))
        assert.same({"first", "text"}, {ws:receive(5)})
        assert.same({"\0\1", "binary"}, {ws:receive(5)})
        ws:close()
      end)
    end)
  end)

  describe("messages", function()
    it("carries text and binary messages byte for byte, of any size", function()
      withserver(echo(), nil, function(_, port)
        local ws = assert(websocket.connect(url(port)))
        local all = {}
        for i = 0, 255 do all[#all + 1] = string.char(i) end
        local sizes = {0, 1, 125, 126, 127, 65535, 65536, 200000, 1 << 20}
        for _, n in ipairs(sizes) do
          local text = ("ab\u{e9}"):rep(n // 4) .. ("a"):rep(n % 4)
          local bin = table.concat(all):rep(n // 256 + 1):sub(1, n)
          assert(ws:send(text))
          local got, kind = ws:receive(10)
          assert.equal("text", kind)
          assert.is_true(got == text, "text of " .. n)
          assert(ws:send(bin, "binary"))
          got, kind = ws:receive(10)
          assert.equal("binary", kind)
          assert.is_true(got == bin, "binary of " .. n)
        end
        h.raises("bad argument #2 to 'send'", function() ws:send("x", "blob") end)
        ws:close()
      end)
    end)

    it("reassembles fragmented messages, with control frames between fragments",
       function()
      withserver(echo(), nil, function(_, port)
        local s = rawclient(port)
        s:send(frame(1, "frag", {fin = false}) .. frame(9, "ping!")
          .. frame(0, "men", {fin = false}) .. frame(0, "ted"))
        local fin, _, op, p = readframe(s)
        assert.same({true, 10, "ping!"}, {fin, op, p})  -- the pong first
        fin, _, op, p = readframe(s)
        assert.same({true, 1, "fragmented"}, {fin, op, p})
        -- a binary message in many small fragments, and an empty last one
        local parts = {frame(2, "a", {fin = false})}
        for i = 1, 50 do parts[#parts + 1] = frame(0, tostring(i), {fin = false}) end
        parts[#parts + 1] = frame(0, "")
        s:send(table.concat(parts))
        local want = {"a"}
        for i = 1, 50 do want[#want + 1] = tostring(i) end
        fin, _, op, p = readframe(s)
        assert.same({2, table.concat(want)}, {op, p})
        -- a multi-byte character cut between two fragments is still UTF-8
        s:send(frame(1, "\xc3", {fin = false}) .. frame(0, "\xa9t\xc3\xa9"))
        fin, _, op, p = readframe(s)
        assert.equal("été", p)
        s:close()
      end)
    end)

    it("masks what a client sends and nothing a server sends", function()
      withrawserver(function(s)
        local fin, _, op, p, masked = readframe(s)
        assert.same({true, 1, "to server", true}, {fin, op, p, masked})
        s:send(frame(1, "to client", {mask = false}))
        readclose(s)
      end, function(port)
        local ws = assert(websocket.connect(url(port)))
        assert(ws:send("to server"))
        assert.equal("to client", ws:receive(5))
        ws:close()
      end)
      withserver(echo(), nil, function(_, port)
        local s = rawclient(port)
        s:send(frame(1, "x"))
        local _, _, _, p, masked = readframe(s)
        assert.same({"x", false}, {p, masked})
        s:close()
      end)
    end)

    it("times a receive out and stays usable", function()
      withserver(function(req, res)
        local ws = websocket.upgrade(req, res)
        assert.equal("go", ws:receive())
        ws:send("late")
        ws:receive()
      end, nil, function(_, port)
        local ws = assert(websocket.connect(url(port)))
        local t0 = green.now()
        assert.same({nil, "timeout"}, {ws:receive(0.05)})
        assert.is_true(green.now() - t0 >= 0.05)
        assert.same({nil, "timeout"}, {ws:receive(0)})
        assert(ws:send("go"))
        assert.same({"late", "text"}, {ws:receive(5)})
        ws:close()
      end)
    end)

    it("keeps a message that came in part across a timed-out receive", function()
      withrawserver(function(s)
        local whole = frame(1, ("z"):rep(1000), {mask = false})
        s:send(whole:sub(1, 500))
        green.sleep(0.1)
        s:send(whole:sub(501))
        readclose(s)
      end, function(port)
        local ws = assert(websocket.connect(url(port), {compress = false}))
        assert.same({nil, "timeout"}, {ws:receive(0.02)})
        assert.equal(("z"):rep(1000), ws:receive(5))
        ws:close()
      end)
    end)

    it("lets receivers of one connection take turns", function()
      withserver(function(req, res)
        local ws = websocket.upgrade(req, res)
        ws:receive()
        for i = 1, 3 do ws:send("m" .. i) end
        ws:receive()
      end, nil, function(_, port)
        local ws = assert(websocket.connect(url(port)))
        local got = {}
        local gs = {}
        for i = 1, 3 do
          gs[i] = green.spawn(function() got[i] = ws:receive(5) end)
        end
        green.sleep(0)
        ws:send("go")
        green.joinall(gs)
        assert.same({"m1", "m2", "m3"}, got)
        ws:close()
      end)
    end)
  end)

  describe("pings", function()
    it("answers pings by itself while it receives, with their payload", function()
      withserver(echo(), nil, function(_, port)
        local s = rawclient(port)
        s:send(frame(9, "") .. frame(9, ("p"):rep(125)))
        local _, _, op, p = readframe(s)
        assert.same({10, ""}, {op, p})
        _, _, op, p = readframe(s)
        assert.same({10, ("p"):rep(125)}, {op, p})
        -- an unasked pong is dropped
        s:send(frame(10, "unasked") .. frame(1, "after"))
        _, _, op, p = readframe(s)
        assert.same({1, "after"}, {op, p})
        s:close()
      end)
    end)

    it("sends pings and drops their pongs", function()
      withserver(echo(), nil, function(_, port)
        local ws = assert(websocket.connect(url(port)))
        assert.is_true(ws:ping("hi"))
        assert(ws:send("m"))
        assert.equal("m", ws:receive(5))
        h.raises("longer than 125 bytes", function() ws:ping(("x"):rep(126)) end)
        ws:close()
      end)
    end)
  end)

  describe("closing", function()
    it("exchanges close frames with codes and reasons", function()
      local log = {}
      withserver(echo(nil, log), nil, function(_, port)
        local ws = assert(websocket.connect(url(port)))
        assert.is_true(ws:close(4000, "done here"))
        assert.same({"closed", 4000, "done here"}, log[1])
        assert.same({nil, "closed", 4000, ""}, {ws:receive()})
        assert.same({nil, "closed"}, {ws:send("x")})
        assert.is_true(ws:close())  -- again: nothing more
        -- raw: the server echoes the code, then closes the connection
        local s = rawclient(port)
        s:send(frame(8, string.pack(">I2", 1001) .. "away"))
        assert.same({1001, ""}, {readclose(s)})
        local r1, r2 = s:receive(1)
        assert.same({nil, "closed"}, {r1, r2})
        -- an empty close frame is answered with an empty one
        s = rawclient(port)
        s:send(frame(8, ""))
        assert.same({1005, ""}, {readclose(s)})
        assert.same({"closed", 1005, ""}, log[3])
      end)
    end)

    it("closes from the server's side, and the client learns code and reason",
       function()
      withserver(function(req, res)
        local ws = websocket.upgrade(req, res)
        assert.is_true(ws:close(4004, "go away"))
      end, nil, function(_, port)
        local ws = assert(websocket.connect(url(port)))
        assert.same({nil, "closed", 4004, "go away"}, {ws:receive(5)})
        local s = rawclient(port)
        assert.same({4004, "go away"}, {readclose(s)})
        s:send(frame(8, string.pack(">I2", 4004)))
      end)
    end)

    it("delivers the messages sent before the close, then the close", function()
      withserver(function(req, res)
        local ws = websocket.upgrade(req, res)
        for i = 1, 5 do ws:send("m" .. i) end
        ws:close(1000, "bye")
      end, nil, function(_, port)
        local ws = assert(websocket.connect(url(port)))
        for i = 1, 5 do assert.equal("m" .. i, ws:receive(5)) end
        assert.same({nil, "closed", 1000, "bye"}, {ws:receive(5)})
      end)
    end)

    it("closes without waiting long for a peer that never answers", function()
      withrawserver(function(s)
        green.sleep(5)
      end, function(port)
        local ws = assert(websocket.connect(url(port)))
        local t0 = green.now()
        assert.is_true(ws:close(1000, "", 0.1))
        assert.is_true(green.now() - t0 < 1)
        t0 = green.now()
        ws = assert(websocket.connect(url(port)))
        assert.is_true(ws:close(1000, "", 0))
        assert.is_true(green.now() - t0 < 0.5)
      end)
    end)

    it("sees an abrupt end as 1006", function()
      withrawserver(function(s) s:close() end, function(port)
        local ws = assert(websocket.connect(url(port)))
        assert.same({nil, "closed", 1006, ""}, {ws:receive(5)})
      end)
    end)

    it("checks the code and reason it sends", function()
      withserver(echo(), nil, function(_, port)
        local ws = assert(websocket.connect(url(port)))
        for _, code in ipairs{999, 1004, 1005, 1006, 1015, 2999, 5000} do
          h.raises("invalid close code", function() ws:close(code) end)
        end
        h.raises("longer than 123 bytes", function() ws:close(1000, ("r"):rep(124)) end)
        h.raises("not UTF-8", function() ws:close(1000, "\xff") end)
        assert.is_true(ws:close(3000))
      end)
    end)

    it("closes with <close> when the variable goes out of scope", function()
      local log = {}
      withserver(echo(nil, log), nil, function(_, port)
        do
          local ws <close> = assert(websocket.connect(url(port)))
          ws:send("x")
          ws:receive(5)
        end
        assert.same({"closed", 1000, ""}, log[1])
      end)
    end)
  end)

  describe("bad input", function()
    -- Each fails the connection with a close frame of `code`; the server
    -- still serves another client meanwhile.
    local function fails(bytes, code, opts, extra)
      local log = {ended = green.Event()}
      withserver(echo(opts, log), nil, function(_, port)
        local good = assert(websocket.connect(url(port)))
        local s = rawclient(port, extra)
        s:send(bytes)
        assert.equal(code, (readclose(s)))
        local r1, r2 = s:receive(1)
        assert.same({nil, "closed"}, {r1, r2})  -- then it shut its side
        s:close()
        log.ended:wait(5)
        assert.equal(code, log[1][2])
        assert(good:send("still here"))
        assert.equal("still here", good:receive(5))
        good:close()
      end)
    end

    it("fails unmasked client frames with 1002", function()
      fails(frame(1, "hi", {mask = false}), 1002)
    end)

    it("fails masked server frames with 1002", function()
      withrawserver(function(s)
        s:send(frame(1, "masked"))
        assert.equal(1002, (readclose(s)))
      end, function(port)
        local ws = assert(websocket.connect(url(port)))
        assert.same({nil, "closed", 1002, "masked frame"}, {ws:receive(5)})
      end)
    end)

    it("fails reserved bits, unknown opcodes and bad control frames with 1002",
       function()
      fails(frame(1, "x", {rsv = 2}), 1002)
      fails(frame(1, "x", {rsv = 4}), 1002)  -- RSV1 without deflate agreed
      fails(frame(3, "x"), 1002)
      fails(frame(11, "x"), 1002)
      fails(frame(9, ("x"):rep(126)), 1002)  -- a control frame over 125
      fails(frame(9, "x", {fin = false}), 1002)  -- a fragmented control frame
      fails(frame(0, "x"), 1002)  -- a continuation of nothing
      fails(frame(1, "a", {fin = false}) .. frame(1, "b"), 1002)  -- no continuation
      fails(frame(8, "\3"), 1002)  -- a close payload of one byte
      fails(frame(8, string.pack(">I2", 1005)), 1002)  -- a code never sent
      fails(frame(8, string.pack(">I2", 999)), 1002)
      -- a length in more bytes than needed
      fails("\x81\xfe\0\5\1\2\3\4" .. ("x"):rep(5), 1002)
    end)

    it("fails invalid UTF-8 in text messages and close reasons with 1007",
       function()
      fails(frame(1, "bad \xff"), 1007)
      fails(frame(1, "\xed\xa0\x80"), 1007)  -- a surrogate
      fails(frame(1, "\xc0\xaf"), 1007)  -- overlong
      fails(frame(1, "ok \xc3", {fin = false}) .. frame(0, "("), 1007)
      fails(frame(8, string.pack(">I2", 1000) .. "\xff"), 1007)
      -- binary messages are not checked
      withserver(echo(), nil, function(_, port)
        local s = rawclient(port)
        s:send(frame(2, "\xff\xfe"))
        local _, _, op, p = readframe(s)
        assert.same({2, "\xff\xfe"}, {op, p})
        s:close()
      end)
    end)

    it("fails messages over max_message with 1009, before reading them",
       function()
      fails(frame(2, ("x"):rep(101)), 1009, {max_message = 100})
      fails(frame(1, ("x"):rep(60), {fin = false}) .. frame(0, ("x"):rep(60)),
            1009, {max_message = 100})
      -- announced 1 GiB: refused with its first bytes
      fails(frame(2, "", {len = 1 << 30}) .. "abcd", 1009)
      -- the client side too
      withrawserver(function(s)
        s:send(frame(2, ("y"):rep(2000), {mask = false}))
        assert.equal(1009, (readclose(s)))
      end, function(port)
        local ws = assert(websocket.connect(url(port), {max_message = 1000}))
        assert.same({nil, "closed", 1009, "message too big"}, {ws:receive(5)})
      end)
    end)

    it("survives random bytes after the handshake", function()
      math.randomseed(7)
      for _ = 1, 20 do
        local t = {}
        for i = 1, math.random(1, 300) do t[i] = string.char(math.random(0, 255)) end
        withserver(echo(), nil, function(_, port)
          local s = rawclient(port)
          s:send(table.concat(t))
          s:settimeout(2)
          repeat local ok = readframe(s) until not ok
          s:close()
          local ws = assert(websocket.connect(url(port)))
          ws:send("fine")
          assert.equal("fine", ws:receive(5))
          ws:close()
        end)
      end
    end)
  end)

  describe("permessage-deflate", function()
    it("is agreed between green.websocket's ends and compresses messages",
       function()
      withserver(echo(), nil, function(_, port)
        local ws = assert(websocket.connect(url(port)))
        assert.matches("^permessage%-deflate", ws:extensions())
        local big = ("compress me "):rep(10000)
        assert(ws:send(big))
        assert.is_true(ws:receive(5) == big)
        ws:close()
        ws = assert(websocket.connect(url(port), {compress = false}))
        assert.is_nil(ws:extensions())
        ws:close()
      end)
    end)

    it("sends large messages with RSV1 set when the client offers it, and reads them back",
       function()
      withserver(function(req, res)
        local ws = websocket.upgrade(req, res)
        ws:send(("abc"):rep(1000))
        ws:send("short")
        ws:receive()
      end, nil, function(_, port)
        local s, head = rawclient(port,
          "Sec-WebSocket-Extensions: x-unknown, permessage-deflate; client_max_window_bits\r\n")
        assert.matches("Sec%-WebSocket%-Extensions: permessage%-deflate; "
          .. "server_no_context_takeover; client_no_context_takeover", head)
        local _, rsv, op, p = readframe(s)
        assert.same({4, 1}, {rsv, op})
        assert.is_true(#p < 100)
        _, rsv, op, p = readframe(s)
        assert.same({0, 1, "short"}, {rsv, op, p})
        s:close()
      end)
    end)

    it("declines offers it cannot honour", function()
      withserver(echo(), nil, function(_, port)
        local _, head = rawclient(port,
          "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=8\r\n")
        assert.is_nil(head:match("Extensions"))
        _, head = rawclient(port,
          "Sec-WebSocket-Extensions: permessage-deflate; foo=1, permessage-deflate; server_max_window_bits=10\r\n")
        assert.matches("server_max_window_bits=10", head)
      end)
    end)

    it("fails a compressed message that inflates past max_message with 1009",
       function()
      local log = {ended = green.Event()}
      withserver(echo({max_message = 100000}, log), nil, function(_, port)
        local ws = assert(websocket.connect(url(port), {compress_min = 0}))
        assert(ws:send(("\0"):rep(1 << 20), "binary"))  -- ~1 KiB compressed
        assert.same({nil, "closed", 1009, "message too big"}, {ws:receive(5)})
        log.ended:wait(5)
        assert.equal(1009, log[1][2])
      end)
    end)

    it("fails bad compressed data with 1007", function()
      withserver(echo(), nil, function(_, port)
        local s = rawclient(port, "Sec-WebSocket-Extensions: permessage-deflate\r\n")
        s:send(frame(2, "\xff\xff\xff\xff", {rsv = 4}))
        assert.equal(1007, (readclose(s)))
      end)
    end)
  end)

  describe("backpressure", function()
    it("holds a sender back while the peer does not read", function()
      local sent, err = 0, nil
      withserver(function(req, res)
        local ws = websocket.upgrade(req, res, {send_timeout = 0.3,
                                                compress = false})
        local chunk = ("b"):rep(64 * 1024)
        while true do
          local ok, e = ws:send(chunk, "binary")
          if not ok then err = e break end
          sent = sent + #chunk
          if sent > 256 * 1024 * 1024 then break end
        end
      end, nil, function(_, port)
        local s = rawclient(port)
        s:setoption("rcvbuf", 64 * 1024)
        green.sleep(1)
        s:close()
      end)
      assert.equal("timeout", err)
      -- what went out is what the kernels' buffers hold, not more
      assert.is_true(sent < 32 * 1024 * 1024, "sent " .. sent)
    end)

    it("lets trysend send at once or not at all, keeping the order", function()
      local ready, got = green.Event(), {}
      withserver(function(req, res)
        local ws = websocket.upgrade(req, res, {compress = false})
        local chunk = ("t"):rep(100000)
        for i = 1, 1000 do  -- the peer does not read yet
          local ok = ws:trysend(i .. ":" .. chunk, "binary")
          if not ok then
            got.refused, got.n = ok, i - 1
            break
          end
        end
        ready:set()
        assert(ws:send("end"))  -- after what went on in the background
        ws:receive()
      end, nil, function(_, port)
        local ws = assert(websocket.connect(url(port), {compress = false}))
        ready:wait(10)
        assert.is_false(got.refused)
        assert.is_true(got.n > 0 and got.n < 1000, "sent " .. tostring(got.n))
        for i = 1, got.n do
          local m = assert(ws:receive(10))
          assert.equal(i .. ":", m:match("^%d+:"))
          assert.equal(#tostring(i) + 1 + 100000, #m)
        end
        assert.equal("end", ws:receive(10))
        ws:close()
      end)
    end)

    it("stops reading a peer that outruns its receiver", function()
      withserver(function(req, res)
        local ws = websocket.upgrade(req, res)
        green.sleep(0.5)  -- not receiving
        ws:close(1000, "", 0)
      end, nil, function(_, port)
        local ws = assert(websocket.connect(url(port), {send_timeout = 0.3,
                                                        compress = false}))
        local chunk, sent = ("c"):rep(64 * 1024), 0
        while ws:send(chunk, "binary") do
          sent = sent + #chunk
          if sent > 256 * 1024 * 1024 then break end
        end
        assert.is_true(sent < 32 * 1024 * 1024, "sent " .. sent)
      end)
    end)
  end)

  describe("idle connections", function()
    it("park without a stack nor a frame context", function()
      withserver(echo(), nil, function(_, port)
        local all = {}
        for i = 1, 200 do
          all[i] = assert(websocket.connect(url(port)))
          all[i]:send("hi")
          assert.equal("hi", all[i]:receive(5))
        end
        green.sleep(0)
        local st = green.stats()
        assert.equal(0, st.displaced)
        assert.is_true(st.unwound >= 200 - st.private_stacks - st.shared_stacks,
          ("unwound: %d"):format(st.unwound))
        for i = 1, 200 do all[i]:close(1000, "", 0) end
      end)
    end)
  end)
end)
