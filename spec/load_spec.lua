-- green.StreamServer under load, over 127.0.0.1 only: a thousand
-- concurrent connections with every byte checked, idle peers dropped by
-- the per-connection timeout, peers that reset mid-line, half-closed
-- connections, and handlers that fail among others that do not.

local green = require "green"
local socket = green.socket

local BIN = os.getenv("GREENLUA") or "build/greenlua"
local ONEBYTE = (os.getenv("GREENLUA_IO_ONEBYTE") or "0") ~= "0"

-- The connections of the big test, and the round trips each makes.
local CONNS, ROUNDS = 1000, ONEBYTE and 10 or 100

-- How many descriptors this process may open: each connection takes two
-- (both ends are here), plus a margin for busted, libuv and the specs.
local function fdlimit()
  local p = io.popen("ulimit -n")
  local s = p:read("a")
  p:close()
  return tonumber(s) or math.huge  -- "unlimited"
end
local FDS = fdlimit()
local MARGIN = 64
local conns = math.min(CONNS, (FDS - MARGIN) // 2)

local helpers = require "spec.helpers"
local q, slurp = helpers.q, helpers.slurp

-- A deterministic string of n bytes of every value, different for each
-- seed (so that a byte delivered to the wrong connection shows).
local function blob(seed, n)
  local t, x = {}, seed * 7919 + 1
  for i = 1, n do
    x = (x * 48271) % 2147483647
    t[i] = string.char(x % 256)
  end
  return table.concat(t)
end

-- Echoes whatever arrives until the peer closes.
local function echo(sock)
  while true do
    local data = sock:receiveany(65536)
    if not data then return end
    if not sock:send(data) then return end
  end
end

-- Generous per-call limits: on a loaded machine (the suite running beside
-- other work) a thousand connections' first trips can queue for seconds;
-- the whole test is still bounded by its Timeout.
local PATIENCE = 30

local function connect(port)
  local c, err = socket.connect("127.0.0.1", port, PATIENCE)
  assert(c, err)
  c:settimeout(PATIENCE)
  return c
end

-- Waits (in steps of 1 ms, at most PATIENCE s) until pred() is true.
local function waitfor(pred)
  local deadline = green.now() + PATIENCE
  while not pred() do
    assert(green.now() < deadline, "condition not reached in time")
    green.sleep(0.001)
  end
end

describe("green.StreamServer under load", function()
  local timeout
  before_each(function() timeout = green.Timeout(120):start() end)
  after_each(function() timeout:cancel() end)

  if conns < CONNS then
    pending(("ulimit -n is %d: the big test runs %d connections instead of "
      .. "%d"):format(FDS, conns, CONNS))
  end

  it(("serves %d concurrent connections of %d round trips each, every "
      .. "byte checked"):format(conns, ROUNDS), function()
    local srv = green.StreamServer("127.0.0.1", 0, echo):start()
    local trips, bad, peak = 0, 0, 0
    local grp = green.Group()
    local function one(i)
      local data = blob(i, 4096)
      local c = connect(srv.port)
      peak = math.max(peak, #srv.pool)
      for r = 1, ROUNDS do
        -- sizes from 1 to 300 bytes, at offsets that move
        local len = (i * 31 + r * 17) % 300 + 1
        local off = (i * 13 + r * 101) % (#data - len) + 1
        local msg = data:sub(off, off + len - 1)
        assert(c:send(msg))
        local back, err = c:receive(len)
        if back ~= msg then
          bad = bad + 1
          error(("connection %d, trip %d: %s"):format(i, r,
                back and "wrong bytes" or err))
        end
        trips = trips + 1
      end
      c:close()
    end
    for i = 1, conns do grp:spawn(one, i) end
    assert(grp:join(100), "clients did not finish in 100 s")
    assert.equal(0, bad)
    assert.equal(conns * ROUNDS, trips)
    -- All were connected at once at some point (the pool saw them all).
    assert.is_true(peak >= conns * 0.9, "peak " .. peak)
    waitfor(function() return #srv.pool == 0 end)
    srv:stop()
  end)

  it("drops the connections that send nothing when opts.timeout elapses",
     function()
    local N = 50
    local errs, pings = {}, 0
    local srv = green.StreamServer("127.0.0.1", 0, function(sock)
      while true do
        local line, err = sock:receive()
        if not line then
          errs[#errs + 1] = err
          return
        end
        pings = pings + 1
      end
    end, {timeout = 0.2}):start()
    local grp, took = green.Group(), {}
    for i = 1, N do
      grp:spawn(function()
        local c = connect(srv.port)
        local t0 = green.now()
        local data, err = c:receive()
        assert.is_nil(data)
        assert.equal("closed", err)
        took[i] = green.now() - t0
        c:close()
      end)
    end
    -- A busy client meanwhile is not dropped: it never waits 0.2 s.
    local busy = connect(srv.port)
    for _ = 1, 30 do
      busy:send("ping\n")
      green.sleep(0.01)
    end
    assert(grp:join(10))
    assert.equal(N, #errs)
    for _, e in ipairs(errs) do assert.equal("timeout", e) end
    for i = 1, N do
      assert.is_true(took[i] >= 0.2 and took[i] < 2, "took " .. took[i])
    end
    busy:close()
    waitfor(function() return #srv.pool == 0 end)
    assert.equal(30, pings)
    assert.equal("closed", errs[N + 1])  -- the busy one ended by closing
    srv:stop()
  end)

  it("survives peers that reset the connection in the middle of a line",
     function()
    local N = 100
    local results = {}
    local srv = green.StreamServer("127.0.0.1", 0, function(sock)
      sock:send("hello\n")  -- unread by the peer: its close sends a RST
      local line, err, partial = sock:receive()
      if line == "ECHO" then return echo(sock) end
      results[#results + 1] = {line, err, partial}
    end):start()
    local grp = green.Group()
    for i = 1, N do
      grp:spawn(function()
        local c = connect(srv.port)
        c:send("half a li" .. i)
        green.sleep(0.05)  -- the server has our bytes, we have its hello
        c:close()          -- unread data: the kernel sends a reset
      end)
    end
    -- Meanwhile a well-behaved client goes on undisturbed.
    local good = connect(srv.port)
    assert.equal("hello", good:receive())
    good:send("ECHO\n")
    for r = 1, 100 do
      local msg = blob(r, 50)
      good:send(msg)
      assert.equal(msg, good:receive(50))
      if r % 10 == 0 then green.sleep(0.001) end
    end
    assert(grp:join(10))
    waitfor(function() return #results == N end)
    local resets = 0
    for _, r in ipairs(results) do
      assert.is_nil(r[1])
      assert.is_true(r[2] == "connection reset by peer" or r[2] == "closed",
                     r[2])
      if r[2] == "connection reset by peer" then resets = resets + 1 end
      assert.truthy(r[3]:match("^half a li%d+$") or r[3] == "", r[3])
    end
    assert.is_true(resets > 0, "no peer reset its connection")
    good:close()
    waitfor(function() return #srv.pool == 0 end)
    assert.equal("AFTER", (function()
      local c = connect(srv.port)
      c:receive()
      c:send("ECHO\nAFTER\n")
      local r = c:receive()
      c:close()
      return r:upper()
    end)())
    srv:stop()
  end)

  it("answers half-closed connections: the client shuts its sending side "
     .. "and reads the reply", function()
    local N = 200
    local srv = green.StreamServer("127.0.0.1", 0, function(sock)
      local data = assert(sock:receive("*a"))
      local sum = 0
      for k = 1, #data, 97 do sum = sum + data:byte(k) end
      sock:send(("%d bytes, sum %d"):format(#data, sum))
    end):start()
    local grp, ok = green.Group(), 0
    for i = 1, N do
      grp:spawn(function()
        local data = blob(i, ONEBYTE and 10 * i or 1000 * (i % 50) + i)
        local sum = 0
        for k = 1, #data, 97 do sum = sum + data:byte(k) end
        local c = connect(srv.port)
        assert(c:send(data))
        assert(c:shutdown("send"))
        assert.equal(("%d bytes, sum %d"):format(#data, sum),
                     c:receive("*a"))
        c:close()
        ok = ok + 1
      end)
    end
    assert(grp:join(30))
    assert.equal(N, ok)
    srv:stop()
  end)

  it("keeps serving the other connections when handlers fail", function()
    -- In a child process: every failing handler is reported on stderr.
    local path, errfile = os.tmpname(), os.tmpname()
    local f = assert(io.open(path, "wb"))
    f:write([[
      local green = require "green"
      local srv = green.StreamServer("127.0.0.1", 0, function(sock)
        for round = 1, 20 do
          local line = sock:receive()
          if not line then return end
          if line == "fail " .. round then error("failing on purpose") end
          sock:send(line .. "\n")
        end
      end):start()
      local grp, ok, failed = green.Group(), 0, 0
      for i = 1, 200 do
        grp:spawn(function()
          local c = assert(green.socket.connect("127.0.0.1", srv.port, 10))
          c:settimeout(PATIENCE)
          local fails = i % 2 == 1 and i % 20 + 1  -- odd ones, at a round
          for round = 1, 20 do
            local line = round == fails and "fail " .. round
              or ("%d/%d"):format(i, round)
            c:send(line .. "\n")
            local back, err = c:receive()
            if round == fails then
              assert(back == nil and err == "closed", tostring(err))
              failed = failed + 1
              return
            end
            assert(back == line, tostring(back))
          end
          ok = ok + 1
          c:close()
        end)
      end
      assert(grp:join(60))
      srv:stop()
      print(ok, failed)
    ]])
    f:close()
    local p = assert(io.popen(("</dev/null timeout 60 %s %s 2>%s; "
      .. "echo \"status=$?\""):format(q(BIN), q(path), q(errfile))))
    local out = p:read("a")
    p:close()
    local err = slurp(errfile)
    os.remove(path); os.remove(errfile)
    assert.equal("100\t100\nstatus=0\n", out)
    local _, reports = err:gsub("error in greenthread 'StreamServer", "")
    assert.equal(100, reports)
    local _, messages = err:gsub("failing on purpose", "")
    assert.equal(100, messages)
  end)
end)
