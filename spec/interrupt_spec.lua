-- Interrupts that meet (host/hub.h, "Interrupts"): kills and Timeouts
-- pending together, cancelled or restarted between their firing and the
-- greenthread's run, in both orders, with the hub kept busy past the
-- deadlines so that several things happen before the greenthread runs.
--
-- The orders are set up with time: a hog greenthread spins past every
-- deadline without yielding, and the hub then serves them together, in
-- deadline order, before anything else runs.  Each scenario checks that
-- the order it wanted did happen (a loaded machine may delay a start
-- past a deadline) and is tried again if not.

local green = require "green"

local helpers = require "spec.helpers"

local function hog(seconds)
  local stop = green.now() + seconds
  while green.now() < stop do end
end

-- "ready", "blocked", "dead", ... from the greenthread's tostring.
local function state(g)
  return tostring(g):match(", (%a+)%)$")
end

local function pack(...) return table.pack(...) end

-- Runs scenario() until it reports that its order happened (its first
-- result), at most 5 times; returns its other results.
local function ordered(scenario)
  for _ = 1, 5 do
    local r = table.pack(scenario())
    if r[1] then return table.unpack(r, 2, r.n) end
  end
  error("the order the scenario needs never happened in 5 tries")
end

-- The owner starts Timeout(0.03) and waits on e twice (each in a pcall);
-- `other` sleeps 0.015 s while a hog spins 0.06 s, so that the Timeout
-- fires and `other` is woken in the same pass, `other` first: it then
-- acts while the owner is woken but has not run.  Returns whether that
-- order happened, and the owner's two results, the Timeout, the owner,
-- the event and what action returned.
local function fired_then(action, wait)
  local e = green.Event()
  local t, r1, r2, hit, got
  wait = wait or function() return e:wait() end
  local owner = green.spawn(function()
    t = green.Timeout(0.03):start()
    r1 = pack(pcall(wait))
    r2 = pack(pcall(wait))
  end)
  local other = green.spawn(function()
    green.sleep(0.015)
    hit = state(owner) == "ready" and t.pending
    got = action(t, owner)
  end)
  green.spawn(hog, 0.06)
  other:join()
  green.sleep(0.05)
  e:set()
  owner:join(1)
  assert.is_true(owner:dead())
  return hit, r1, r2, t, owner, got
end

describe("a Timeout that fired, before its greenthread ran", function()
  it("is not raised once cancelled: the greenthread keeps waiting", function()
    local r1, r2, t = ordered(function()
      return fired_then(function(t) t:cancel() end)
    end)
    assert.same({n = 2, true, true}, r1)
    assert.same({n = 2, true, true}, r2)
    assert.is_false(t.pending)
  end)

  it("moves to the greenthread that restarts it", function()
    local r1, r2, t, _, got = ordered(function()
      return fired_then(function(t)
        t:start()
        return pack(pcall(green.sleep, 1))
      end)
    end)
    assert.same({n = 2, true, true}, r1)
    assert.same({n = 2, true, true}, r2)
    assert.same({n = 2, false, t}, got)
    assert.is_false(t.pending)
  end)

  it("comes after a kill that arrives next: the kill first", function()
    local r1, r2, t = ordered(function()
      return fired_then(function(_, owner) owner:kill("K", false) end)
    end)
    assert.same({n = 2, false, "K"}, r1)
    assert.same({n = 2, false, t}, r2)
    assert.is_false(t.pending)
  end)

  it("does not keep a blocking kill waiting", function()
    local t, owner, back
    ordered(function()
      local e = green.Event()
      local hit
      owner = green.spawn(function()
        t = green.Timeout(0.03):start()
        e:wait()
      end)
      local other = green.spawn(function()
        green.sleep(0.015)
        hit = state(owner) == "ready" and t.pending
        owner:kill(nil, true, 2)
        back = true
      end)
      green.spawn(hog, 0.06)
      other:join(3)
      return hit
    end)
    assert.is_true(back)
    assert.is_true(owner:dead())
    assert.is_true(owner:successful())  -- ended by GreenletExit
    assert.is_false(t.pending)          -- cancelled as its owner ended
  end)

  it("leaves a kill pending when it alone is cancelled", function()
    local r1, r2, t = ordered(function()
      return fired_then(function(t, owner)
        owner:kill("K", false)
        t:cancel()
      end)
    end)
    assert.same({n = 2, false, "K"}, r1)
    assert.same({n = 2, true, true}, r2)
    assert.is_false(t.pending)
  end)

  it("lets a waker that came first win, and is raised next", function()
    local q = green.Queue()
    local r1, r2, t = ordered(function()
      return fired_then(function() q:put("item") end,
                        function() return q:get() end)
    end)
    assert.same({n = 2, true, "item"}, r1)
    assert.same({n = 2, false, t}, r2)
    assert.is_false(t.pending)
    assert.equal(0, q:qsize())
  end)

  it("wins over the call's own timeout that passed meanwhile", function()
    local e = green.Event()
    local r1, t = ordered(function()
      local r, tt, deadline
      local owner = green.spawn(function()
        tt = green.Timeout(0.02):start()
        deadline = green.now() + 0.02
        r = pack(pcall(e.wait, e, 0.03))
      end)
      green.sleep(0)
      local hit = green.now() < deadline
      hog(0.06)  -- both deadlines pass before the owner runs
      owner:join(1)
      return hit, r, tt
    end)
    assert.same({n = 2, false, t}, r1)
  end)
end)

describe("a kill, then a Timeout firing before the greenthread ran", function()
  it("raises the kill first, then the Timeout at the next wait", function()
    local r1, r2, t = ordered(function()
      local e = green.Event()
      local tt, deadline, a, b, hit
      local owner = green.spawn(function()
        tt = green.Timeout(0.02):start()
        deadline = green.now() + 0.02
        a = pack(pcall(e.wait, e))
        b = pack(pcall(e.wait, e))
      end)
      green.spawn(function()
        hit = state(owner) == "blocked" and green.now() < deadline
        owner:kill("K", false)
        hog(0.04)  -- the Timeout fires as this ends, the owner not run
        hit = hit and state(owner) == "ready"
      end)
      owner:join(1)
      return hit, a, b, tt
    end)
    assert.same({n = 2, false, "K"}, r1)
    assert.same({n = 2, false, t}, r2)
    assert.is_false(t.pending)
  end)

  it("reads pending until it is raised", function()
    local e = green.Event()
    local pend, t
    local owner = green.spawn(function()
      t = green.Timeout(0.01):start()
      pcall(e.wait, e)            -- the kill
      pend = t.pending            -- fired, not raised yet: still pending
      pcall(e.wait, e)            -- the Timeout
    end)
    green.sleep(0)
    owner:kill("K", false)
    hog(0.03)
    owner:join(1)
    assert.is_true(pend)
    assert.is_false(t.pending)
  end)
end)

describe("two Timeouts firing before their greenthread ran", function()
  it("are raised one at a time, in the order they fired", function()
    local r1, r2, t1, t2 = ordered(function()
      local e = green.Event()
      local a, b, x, y, deadline
      local owner = green.spawn(function()
        x = green.Timeout(0.02, "first"):start()
        y = green.Timeout(0.03, "second"):start()
        deadline = green.now() + 0.02
        a = pack(pcall(e.wait, e))
        b = pack(pcall(e.wait, e))
      end)
      green.sleep(0)
      local hit = green.now() < deadline
      hog(0.05)
      owner:join(1)
      return hit, a, b, x, y
    end)
    assert.same({n = 2, false, "first"}, r1)
    assert.same({n = 2, false, "second"}, r2)
    assert.is_false(t1.pending)
    assert.is_false(t2.pending)
  end)

  it("unwind nested with_timeout calls, each at its own level", function()
    local inner, outer
    ordered(function()
      local e = green.Event()
      local deadline
      local g = green.spawn(function()
        deadline = green.now() + 0.02
        outer = pack(green.with_timeout(0.03, function()
          inner = pack(green.with_timeout(0.02, e.wait, e))
          return e:wait()
        end))
      end)
      green.sleep(0)
      local hit = green.now() < deadline
      hog(0.05)
      g:join(1)
      return hit
    end)
    assert.same({n = 2, nil, "timeout"}, inner)
    assert.same({n = 2, nil, "timeout"}, outer)
  end)
end)

describe("the prompt's wait for input", function()
  local function repl(lines)
    local script = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write(lines)
    f:close()
    -- The second line comes after the first one's greenthreads ended.
    local cmd = ("(head -n 1 %s; sleep 0.5; tail -n +2 %s) | %s -i 2>&1")
      :format(script, script, helpers.q(helpers.BIN))
    local p = io.popen(cmd)
    local out = p:read("a")
    local ok, how, code = p:close()
    os.remove(script)
    return out, ok, how, code
  end

  it("goes on waiting when a Timeout that fired there is cancelled", function()
    local out, ok = repl(
      "t = green.Timeout(0.05):start(); " ..
      "green.spawn(function() green.sleep(0.02); " ..
      "  io.write('fired ', tostring(t.pending), '\\n'); t:cancel() end); " ..
      "green.spawn(function() local s = green.now() + 0.1; " ..
      "  while green.now() < s do end end)\n" ..
      "print('next', t.pending)\n")
    assert.is_true(ok, out)
    assert.matches("fired true", out, 1, true)
    assert.matches("next\tfalse", out, 1, true)
    assert.not_matches("fatal", out, 1, true)
  end)

  it("reports a Timeout that fires there, then goes on", function()
    local out, ok = repl(
      "t = green.Timeout(0.05, 'late'):start()\n" ..
      "print('next', t.pending)\n")
    assert.is_true(ok, out)
    assert.matches("late", out, 1, true)
    assert.matches("next\tfalse", out, 1, true)
  end)
end)
