-- Interrupts at random (host/hub.h, "Interrupts"): a controller fires
-- kills, cancels and restarts Timeouts, wakes waiters and keeps the hub
-- busy past deadlines, at random, against greenthreads blocked in every
-- kind of wait, each of which starts Timeouts of its own.  A model of
-- what is pending checks every interrupt as it is raised, and at the end
-- that each greenthread ended as the rules say: every kill raised once,
-- a kill before any Timeout, every Timeout raised once or cancelled,
-- none raised after its cancel, and no item, count or byte lost to an
-- interrupt.  Bounded in time (STRESS_SECONDS); the seed is printed on a
-- failure and can be given back with GREENLUA_STRESS_SEED.

local green = require "green"

local STRESS_SECONDS = tonumber(os.getenv("GREENLUA_STRESS_SECONDS")) or 1.5
local VICTIMS = 30

local function hog(seconds)
  local stop = green.now() + seconds
  while green.now() < stop do end
end

describe("interrupts at random", function()
  it("end every greenthread exactly as the rules say", function()
    local seed = tonumber(os.getenv("GREENLUA_STRESS_SEED")) or
                 os.time() % 100000
    math.randomseed(seed)
    local rnd = math.random
    local function check(cond, msg)
      if not cond then error(("seed %d: %s"):format(seed, msg), 2) end
    end

    local ids = 0
    local function nextid() ids = ids + 1; return ids end

    -- The model.  kill[v]: the kill pending in victim v (the first sent
    -- since the last one it raised; later ones change nothing, rule 1).
    -- tmo[value]: each Timeout's owner ("ctl" or a victim), state
    -- ("started", "raised", "cancelled") and deadline.
    local kill, tmo = {}, {}
    local counts = {kills = 0, timeouts = 0, woken = 0, kinds = {}}

    -- Checks an interrupt that `who` just raised; nothing ran since.
    local function record(who, err)
      if type(err) == "table" and err.kill then
        check(who ~= "ctl", "the controller got a kill")
        check(kill[who] == err, ("victim %s raised kill %s, pending: %s")
          :format(who, err.kill, kill[who] and kill[who].kill))
        kill[who] = nil
        counts.kills = counts.kills + 1
      elseif type(err) == "table" and err.tmo then
        local m = tmo[err]
        check(m ~= nil, "an unknown Timeout")
        check(m.owner == who, ("Timeout %d raised in %s, owned by %s")
          :format(err.tmo, who, m.owner))
        check(m.state == "started", ("Timeout %d raised while %s")
          :format(err.tmo, m.state))
        check(who == "ctl" or kill[who] == nil,
          ("Timeout %d raised before a pending kill"):format(err.tmo))
        check(not m.t.pending, "a raised Timeout still pending")
        m.state = "raised"
        counts.timeouts = counts.timeouts + 1
      else
        error(("seed %d: %s raised %s"):format(seed, who, tostring(err)), 0)
      end
    end

    -- Yields once: every interrupt pending must come out now (rule 2),
    -- and every Timeout of `who` past its deadline with it.
    local function drain(who)
      for _ = 1, 64 do
        local before = green.now()
        local ok, err = pcall(green.sleep, 0)
        if ok then
          check(who == "ctl" or kill[who] == nil, "a kill was lost")
          for _, m in pairs(tmo) do
            check(not (m.owner == who and m.state == "started" and
                       before >= m.due),
              ("Timeout %d of %s passed its deadline and was lost")
              :format(m.value.tmo, who))
          end
          return
        end
        record(who, err)
      end
      error(("seed %d: too many interrupts at once"):format(seed))
    end

    -- What the waits wait on, and the counts that must add up.
    local ev = green.Event()
    local qget, got, put = green.Queue(), 0, 0
    local qput, putin, taken = green.Queue(1), 1, 0
    qput:put("full")
    local ch, chput, chgot = green.Channel(), 0, 0
    local sem, acquired, released = green.Semaphore(0), 0, 0
    local ar, arvalue = green.AsyncResult(), nil
    local joinev = green.Event()
    local joinee = green.spawn(joinev.wait, joinev)
    local ra, rb = assert(green.socket.socketpair())
    local sent, received = 0, 0
    local sa, sb = assert(green.socket.socketpair())
    sb:settimeout(0)
    local big = string.rep("y", 65536)
    local listener = assert(green.socket.listen("127.0.0.1", 0))
    local port = select(2, listener:getsockname())
    local clients = {}

    local kinds = {
      sleep = function() green.sleep(10) end,
      event = function() assert(ev:wait()) end,
      get = function()
        assert(qget:get() ~= nil)
        got = got + 1
      end,
      put = function()
        assert(qput:put("x"))
        putin = putin + 1
      end,
      channel = function()
        assert(ch:put("x"))
        chput = chput + 1
      end,
      semaphore = function()
        assert(sem:acquire())
        acquired = acquired + 1
      end,
      asyncresult = function()
        local want = ar
        local v = want:get()
        assert(v == want.value)
      end,
      join = function() assert(joinee:join()) end,
      receive = function()
        local data = assert(ra:receive(1))
        received = received + #data
      end,
      accept = function()
        local c = assert(listener:accept())
        c:close()
      end,
      send = function() sa:send(big) end,
      with_timeout = function()
        green.with_timeout(rnd() * 0.01, ev.wait, ev)
      end,
      own_timeout = function()  -- the call's timeout, beside a Timeout's
        local ok, err = ev:wait(rnd() * 0.02)
        assert(ok or err == "timeout")
      end,
    }
    local names = {}
    for k in pairs(kinds) do names[#names + 1] = k end
    table.sort(names)

    local stopping = false
    local victims = {}
    local function victim(v)
      while not stopping do
        local name = names[rnd(#names)]
        local value
        if rnd() < 0.6 then
          value = {tmo = nextid()}
          local t = green.Timeout(rnd() * 0.02, value)
          tmo[value] = {owner = v, state = "started", t = t, value = value}
          t:start()
          tmo[value].due = green.now() + t.seconds
        end
        counts.kinds[name] = (counts.kinds[name] or 0) + 1
        local ok, err = pcall(kinds[name])
        if not ok then record(v, err) else counts.woken = counts.woken + 1 end
        drain(v)
        local m = value and tmo[value]
        if m and m.owner == v and m.state == "started" then
          m.t:cancel()
          m.state = "cancelled"
        end
      end
    end
    for v = 1, VICTIMS do victims[v] = green.spawn(victim, v) end
    green.sleep(0)  -- each runs to its first wait: none is killed unstarted

    local function sendkill(v)
      if victims[v]:dead() then return end
      local k = {kill = nextid()}
      if kill[v] == nil then kill[v] = k end  -- else it changes nothing
      victims[v]:kill(k, false)
    end

    -- A started Timeout, of anyone, at random (or nil).
    local function anytimeout()
      local list = {}
      for _, m in pairs(tmo) do
        if m.state == "started" then list[#list + 1] = m end
      end
      table.sort(list, function(a, b) return a.value.tmo < b.value.tmo end)
      return list[rnd(math.max(#list, 1))]
    end

    local actions = {
      function() sendkill(rnd(VICTIMS)) end,
      function()
        local m = anytimeout()
        if m then m.t:cancel(); m.state = "cancelled" end
      end,
      function()  -- restart: the controller owns it from now on
        local m = anytimeout()
        if m then
          m.t:start()
          m.owner, m.state = "ctl", "started"
          m.due = green.now() + m.t.seconds
        end
      end,
      function() ev:set(); ev:clear() end,
      function() put = put + 1; qget:put(put) end,
      function() if qput:get_nowait() then taken = taken + 1 end end,
      function() if ch:get_nowait() then chgot = chgot + 1 end end,
      function() released = released + 1; sem:release() end,
      function()
        local old = ar
        ar = green.AsyncResult()
        arvalue = nextid()
        old:set(arvalue)
      end,
      function()
        joinev:set()
        joinev = green.Event()
        joinee = green.spawn(joinev.wait, joinev)
      end,
      function() sent = sent + assert(rb:send("x")) end,
      function()
        local ok, c = pcall(green.socket.connect, "127.0.0.1", port, 1)
        if not ok then record("ctl", c) elseif c then
          clients[#clients + 1] = c
        end
      end,
      function() sb:receiveany(1 << 20) end,  -- timeout 0: never parks
      function() drain("ctl") end,
      function() hog(rnd() * 0.005); drain("ctl") end,
    }
    local interrupting = {actions[1], actions[2], actions[3]}

    -- A burst: a hog keeps the hub busy while the controller's short
    -- sleep and victims' deadlines pass; the hub then serves them in
    -- deadline order, and the controller kills, cancels and restarts
    -- before the victims woken after it have run.
    -- It aims at a victim's Timeout when there is one to aim at: the
    -- controller wakes just before it fires, and acts on that victim.
    actions[#actions + 1] = function()
      local now, target = green.now(), nil
      for _, m in pairs(tmo) do
        if m.state == "started" and m.owner ~= "ctl" and
           m.due > now + 0.002 and m.due < now + 0.015 and
           (target == nil or m.value.tmo < target.value.tmo) then
          target = m
        end
      end
      local wake = target and target.due - now - 0.001 or rnd() * 0.004
      green.spawn(hog, wake + 0.002 + rnd() * 0.004)
      local ok, err = pcall(green.sleep, wake)
      if not ok then record("ctl", err) end
      if target and rnd() < 0.7 then sendkill(target.owner) end
      for _ = 1, rnd(4) do interrupting[rnd(#interrupting)]() end
    end
    actions[#actions + 1] = actions[#actions]

    -- At least STRESS_SECONDS and 300 steps (a slow build on a busy
    -- machine takes longer for them), at most three times as long.
    local start = green.now()
    local steps = 0
    while green.now() < start + STRESS_SECONDS or
          (steps < 300 and green.now() < start + 3 * STRESS_SECONDS) do
      steps = steps + 1
      local ok, err = pcall(actions[rnd(#actions)])
      if not ok then record("ctl", err) end
      if rnd() < 0.3 then drain("ctl") end
    end

    -- The end: victims stop at their next turn; kills bring the blocked
    -- ones there.
    stopping = true
    for v = 1, VICTIMS do
      local tries = 0
      while not victims[v]:dead() do
        tries = tries + 1
        check(tries < 100, ("victim %d does not end"):format(v))
        sendkill(v)
        local ok, err = pcall(victims[v].join, victims[v], 0.05)
        if not ok then record("ctl", err) end
      end
    end
    for _, m in pairs(tmo) do
      if m.owner == "ctl" and m.state == "started" then
        m.t:cancel()
        m.state = "cancelled"
      end
    end
    joinev:set()
    rb:close()
    local rest = ra:receive("*a")
    received = received + #rest

    for v = 1, VICTIMS do
      local g = victims[v]
      check(g:successful(), ("victim %d failed: %s"):format(v,
        tostring(g.error)))
      check(kill[v] == nil, ("victim %d ended with a kill pending"):format(v))
    end
    for _, m in pairs(tmo) do
      check(m.state ~= "started", ("Timeout %d neither raised nor "
        .. "cancelled"):format(m.value.tmo))
      check(not m.t.pending, "a Timeout pending at the end")
    end
    check(put == got + qget:qsize(), ("queue: %d put, %d got, %d left")
      :format(put, got, qget:qsize()))
    check(putin == taken + qput:qsize(), ("bounded queue: %d in, %d taken, "
      .. "%d left"):format(putin, taken, qput:qsize()))
    check(chput == chgot, ("channel: %d put, %d got"):format(chput, chgot))
    check(released == acquired + sem:count(), ("semaphore: %d released, "
      .. "%d acquired, %d left"):format(released, acquired, sem:count()))
    check(sent == received, ("socket: %d sent, %d received")
      :format(sent, received))
    for _, c in ipairs(clients) do c:close() end
    listener:close()
    ra:close(); sa:close(); sb:close()

    -- It did stress something.
    check(steps > 50, "too few steps")
    check(counts.kills > 10, "too few kills raised")
    check(counts.timeouts > 10, "too few Timeouts raised")
    check(counts.woken > 10, "too few waits ended by their wakers")
    for _, k in ipairs(names) do
      check((counts.kinds[k] or 0) > 0, "no wait of kind " .. k)
    end
  end)
end)
