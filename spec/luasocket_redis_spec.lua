-- redis-lua (Debian's lua-redis, unchanged) on our socket.core, against a
-- real redis-server started here on a free port: blocking commands in
-- many greenthreads at once, pub/sub, pipelining, and a greenthread
-- killed while it waits on a connection others go on using.
local green = require "green"
local h = require "spec.helpers"

-- Debian installs redis.lua for Lua 5.1 to 5.3 only; it runs on 5.4.
package.path = package.path .. ";/usr/share/lua/5.3/?.lua"
local redis = require "redis"

-- Waits (at most 10 s) until f() is true.
local function eventually(f)
  local deadline = green.now() + 10
  while not f() do
    assert(green.now() < deadline, "condition never came true")
    green.sleep(0.005)
  end
end

describe("redis-lua on socket.core", function()
  local server, port, admin

  setup(function()
    for _ = 1, 3 do  -- a free port may be taken before redis binds it
      port = h.freeport()
      server = h.background(("redis-server --port %d --bind 127.0.0.1 "
        .. "--save '' --appendonly no"):format(port))
      if pcall(server.await, server, "Ready to accept connections") then
        break
      end
      server:kill()
      server = nil
    end
    assert(server, "redis-server did not start")
    admin = redis.connect("127.0.0.1", port)
  end)

  teardown(function()
    if server then server:kill() end
  end)

  local function connect() return redis.connect("127.0.0.1", port) end
  local function blocked()
    return tonumber(admin:info().clients.blocked_clients)
  end

  it("runs commands", function()
    local c = connect()
    assert.is_true(c:ping())
    assert.is_true(c:set("greeting", "hello"))
    assert.equal("hello", c:get("greeting"))
    assert.equal(3, c:incrby("counter", 3))
    c:quit()
  end)

  it("serves 100 greenthreads blocked in BLPOP while others push", function()
    local got, waiters = {}, {}
    for i = 1, 100 do
      waiters[i] = green.spawn(function()
        local c = connect()
        local reply = c:blpop("jobs", 0)
        got[#got + 1] = reply[2]
        c:quit()
      end)
    end
    eventually(function() return blocked() == 100 end)
    local pushers = {}
    for p = 1, 4 do
      pushers[p] = green.spawn(function()
        local c = connect()
        for i = 1, 25 do c:rpush("jobs", ("job-%d-%d"):format(p, i)) end
        c:quit()
      end)
    end
    assert.equal(4, #green.joinall(pushers, 10))
    assert.equal(100, #green.joinall(waiters, 10))
    table.sort(got)
    local seen = {}
    for _, v in ipairs(got) do seen[v] = true end
    assert.equal(100, #got)
    for p = 1, 4 do
      for i = 1, 25 do assert.is_true(seen[("job-%d-%d"):format(p, i)]) end
    end
    assert.equal(0, blocked())
  end)

  it("delivers pub/sub messages to subscribers in their greenthreads",
     function()
    local subscribed, results = 0, {}
    local subs = {}
    for s = 1, 3 do
      subs[s] = green.spawn(function()
        local c, msgs = connect(), {}
        for msg, abort in c:pubsub({subscribe = "news"}) do
          if msg.kind == "subscribe" then subscribed = subscribed + 1 end
          if msg.kind == "message" then
            msgs[#msgs + 1] = msg.payload
            if #msgs == 5 then abort() end
          end
        end
        results[s] = table.concat(msgs, " ")
      end)
    end
    eventually(function() return subscribed == 3 end)
    local c = connect()
    for i = 1, 5 do assert.equal(3, c:publish("news", "m" .. i)) end
    assert.equal(3, #green.joinall(subs, 10))
    for s = 1, 3 do assert.equal("m1 m2 m3 m4 m5", results[s]) end
  end)

  it("pipelines commands: one write, the replies read in order", function()
    -- redis-lua's pipeline files the reply parser of each command with
    -- table.insert at #requests, which Lua 5.3 and later refuse when a
    -- command has no parser: these all have one.
    local c = connect()
    c:set("p1", "x")
    local replies = c:pipeline(function(p)
      p:exists("p1")
      p:exists("p2")
      p:expire("p1", 100)
      p:ping()
    end)
    assert.same({true, false, true, true}, replies)
    -- many greenthreads pipelining at once, each on its own connection
    local gs = {}
    for g = 1, 20 do
      gs[g] = green.spawn(function()
        local cc = connect()
        cc:set("pk" .. g, "v")
        local r = cc:pipeline(function(p)
          for _ = 1, 50 do p:exists("pk" .. g) end
        end)
        cc:quit()
        return #r, r[50]
      end)
    end
    for g = 1, 20 do
      local n, last = gs[g]:get()
      assert.equal(50, n)
      assert.is_true(last)
    end
  end)

  it("leaves a shared connection usable after a greenthread blocked on it "
     .. "is killed", function()
    local shared, lock = connect(), green.Lock()
    local id = shared:raw_cmd("CLIENT ID")
    local victim = green.spawn(function()
      local _ <close> = lock:hold()
      shared:blpop("never", 0)
    end)
    eventually(function() return blocked() == 1 end)
    victim:kill()
    assert.is_true(victim:dead())
    assert.is_false(lock:locked())
    -- The server still holds the BLPOP: once it ends, its reply comes to
    -- whoever reads the connection next, whole.
    assert.equal(1, admin:raw_cmd("CLIENT UNBLOCK " .. id))
    local other = green.spawn(function()
      local _ <close> = lock:hold()
      assert.equal("*-1", shared.network.read(shared))
      assert.is_true(shared:ping())
      shared:set("after", "kill")
      return shared:get("after")
    end)
    assert.equal("kill", other:get(10))
    -- and greenthreads on other connections never noticed
    local c = connect()
    assert.is_true(c:ping())
  end)

  it("times out a blocking command under the socket's timeout", function()
    local c = redis.connect({host = "127.0.0.1", port = port, timeout = 0.2})
    local ok, err = pcall(c.blpop, c, "nothing", 0)
    assert.is_false(ok)
    assert.matches("timeout", err)
  end)
end)
