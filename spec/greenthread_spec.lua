-- Greenthreads (API.md "Greenthreads"): spawn, spawn_later, sleep,
-- getcurrent, joinall, killall, now, and the greenthread object's
-- methods and fields; the scheduling rules of API.md "Conventions".

local green = require "green"

local helpers = require "spec.helpers"
local errorof, raises = helpers.errorof, helpers.raises

describe("green.spawn", function()
  it("only schedules: fn runs once the caller yields", function()
    local ran = false
    local g = green.spawn(function() ran = true end)
    assert.is_false(ran)
    assert.is_false(g:ready())
    green.sleep(0)
    assert.is_true(ran)
  end)

  it("passes its extra arguments to fn, nils included", function()
    local got
    local g = green.spawn(function(...) got = table.pack(...) end,
                          1, nil, "x", nil)
    g:join()
    assert.same({n = 4, 1, nil, "x", nil}, got)
  end)

  it("starts greenthreads in the order they were spawned", function()
    local order = {}
    for i = 1, 5 do
      green.spawn(function() order[#order + 1] = i end)
    end
    green.sleep(0)
    assert.same({1, 2, 3, 4, 5}, order)
  end)

  it("returns a green.Greenthread", function()
    local g = green.spawn(function() end)
    assert.equal("green.Greenthread", getmetatable(g).__name)
    g:join()
  end)

  it("rejects a non-function", function()
    raises("bad argument #1 to 'spawn' (function expected, got number)",
           function() green.spawn(1) end)
    raises("bad argument #1 to 'spawn' (function expected, got no value)",
           function() green.spawn() end)
  end)
end)

describe("green.spawn_later", function()
  it("runs fn(...) no earlier than the delay", function()
    local t0 = green.now()
    local g = green.spawn_later(0.02, function(a, b)
      return a + b, green.now()
    end, 2, 3)
    local sum, at = g:get()
    assert.equal(5, sum)
    assert.is_true(at - t0 >= 0.02)
  end)

  it("starts delayed greenthreads in deadline order", function()
    local order = {}
    for _, d in ipairs({0.03, 0.01, 0.02}) do
      green.spawn_later(d, function() order[#order + 1] = d end)
    end
    green.sleep(0.05)
    assert.same({0.01, 0.02, 0.03}, order)
  end)

  it("never runs fn when killed during its delay, and the kill is at once",
     function()
    local ran = false
    local g = green.spawn_later(5, function() ran = true end)
    local t0 = green.now()
    g:kill()
    assert.is_true(green.now() - t0 < 1)
    assert.is_true(g:ready())
    assert.is_true(g:successful())
    assert.equal(green.GreenletExit, g.value)
    assert.is_false(ran)
  end)

  it("rejects bad arguments", function()
    raises("bad argument #1 to 'spawn_later' (number expected, got string)",
           function() green.spawn_later("x", print) end)
    raises("bad argument #2 to 'spawn_later' (function expected, got nil)",
           function() green.spawn_later(1, nil) end)
  end)
end)

describe("green.sleep", function()
  it("with 0 lets every other runnable greenthread run once", function()
    local log = {}
    local function worker(name)
      for i = 1, 3 do
        log[#log + 1] = name .. i
        green.sleep(0)
      end
    end
    local a, b = green.spawn(worker, "a"), green.spawn(worker, "b")
    green.joinall({a, b})
    assert.same({"a1", "b1", "a2", "b2", "a3", "b3"}, log)
  end)

  it("with 0 runs each other runnable greenthread exactly once", function()
    local counts = {0, 0, 0}
    local gs = {}
    for i = 1, 3 do
      gs[i] = green.spawn(function()
        while true do
          counts[i] = counts[i] + 1
          green.sleep(0)
        end
      end)
    end
    green.sleep(0)
    assert.same({1, 1, 1}, counts)
    green.sleep(0)
    assert.same({2, 2, 2}, counts)
    green.killall(gs)
  end)

  it("with 0, nil or a negative number yields once", function()
    for _, s in ipairs({0, -1, false}) do
      local ran = false
      green.spawn(function() ran = true end)
      if s == false then green.sleep() else green.sleep(s) end
      assert.is_true(ran)
    end
  end)

  it("never ends early, measured with green.now", function()
    for _, s in ipairs({0.001, 0.005, 0.01, 0.02}) do
      local t0 = green.now()
      green.sleep(s)
      assert.is_true(green.now() - t0 >= s,
        ("slept %.6f s for %.6f s"):format(green.now() - t0, s))
    end
  end)

  it("wakes sleepers in deadline order", function()
    local order = {}
    for _, d in ipairs({0.03, 0.01, 0.02, 0.005}) do
      green.spawn(function()
        green.sleep(d)
        order[#order + 1] = d
      end)
    end
    green.sleep(0.05)
    assert.same({0.005, 0.01, 0.02, 0.03}, order)
  end)

  it("wakes sleepers of equal duration in the order they slept", function()
    local order = {}
    for i = 1, 5 do
      green.spawn(function()
        green.sleep(0.01)
        order[#order + 1] = i
      end)
    end
    green.sleep(0.03)
    assert.same({1, 2, 3, 4, 5}, order)
  end)

  it("suspends only the caller", function()
    local ticks = 0
    local g = green.spawn(function()
      for _ = 1, 3 do ticks = ticks + 1; green.sleep(0) end
    end)
    green.sleep(0.01)
    assert.equal(3, ticks)
    assert.is_true(g:ready())
  end)

  it("rejects a non-number", function()
    raises("bad argument #1 to 'sleep' (number expected, got string)",
           function() green.sleep("x") end)
  end)
end)

describe("green.getcurrent", function()
  it("returns the main greenthread in the main chunk, always the same",
     function()
    local main = green.getcurrent()
    assert.equal(main, green.getcurrent())
    assert.equal("green.Greenthread", getmetatable(main).__name)
    assert.is_false(main:ready())
  end)

  it("returns the greenthread spawn returned, inside it", function()
    local inside
    local g = green.spawn(function() inside = green.getcurrent() end)
    g:join()
    assert.equal(g, inside)
  end)

  it("names the running greenthread from inside a plain coroutine",
     function()
    local inside
    local g = green.spawn(function()
      local co = coroutine.wrap(function() inside = green.getcurrent() end)
      co()
    end)
    g:join()
    assert.equal(g, inside)
  end)
end)

describe("green.now", function()
  it("is a monotonic clock in seconds", function()
    local last = green.now()
    assert.equal("number", type(last))
    for _ = 1, 1000 do
      local t = green.now()
      assert.is_true(t >= last)
      last = t
    end
  end)

  it("has sub-microsecond resolution", function()
    local t0, t1 = green.now(), green.now()
    local n = 0
    while t1 == t0 and n < 1e6 do t1, n = green.now(), n + 1 end
    assert.is_true(t1 - t0 > 0 and t1 - t0 < 1e-3)
  end)
end)

describe("green.joinall", function()
  it("waits for every greenthread and returns the list of them", function()
    local gs = {}
    for i = 1, 3 do
      gs[i] = green.spawn(function() green.sleep(0.001 * i) end)
    end
    local done = green.joinall(gs)
    assert.same(gs, done)
    for _, g in ipairs(gs) do assert.is_true(g:ready()) end
  end)

  it("returns only those that finished when the timeout elapses",
     function()
    local quick = green.spawn(function() end)
    local slow = green.spawn(function() green.sleep(10) end)
    local later = green.spawn(function() green.sleep(0.005) end)
    local slower = green.spawn(function() green.sleep(10) end)
    local t0 = green.now()
    local done = green.joinall({quick, slow, later, slower}, 0.01)
    assert.is_true(green.now() - t0 >= 0.01)
    assert.same({quick, later}, done)  -- in list order, past the timeout too
    slow:kill()
    slower:kill()
  end)

  it("returns an empty list for an empty list", function()
    assert.same({}, green.joinall({}))
  end)

  it("rejects bad arguments", function()
    raises("bad argument #1 to 'joinall' (table expected, got number)",
           function() green.joinall(1) end)
    raises("bad argument #2 to 'joinall' (number expected, got string)",
           function() green.joinall({}, "x") end)
    raises("bad argument #1 to 'joinall' (greenthread expected at index 2, "
           .. "got number)",
           function() green.joinall({green.spawn(print), 7}) end)
  end)

  it("is interrupted by a kill of the caller", function()
    local slow = green.spawn(green.sleep, 10)
    local waiter = green.spawn(green.joinall, {slow})
    green.sleep(0)
    waiter:kill()
    assert.equal(green.GreenletExit, waiter.value)
    assert.is_false(slow:ready())
    slow:kill()
  end)
end)

describe("green.killall", function()
  it("kills every greenthread and waits for them to end", function()
    local cleaned = 0
    local gs = {}
    for i = 1, 3 do
      gs[i] = green.spawn(function()
        local _ <close> = setmetatable({}, {__close = function()
          green.sleep(0.001)  -- blocking in cleanup: killall still waits
          cleaned = cleaned + 1
        end})
        green.sleep(10)
      end)
    end
    green.sleep(0)
    green.killall(gs)
    assert.equal(3, cleaned)
    for _, g in ipairs(gs) do
      assert.is_true(g:ready())
      assert.equal(green.GreenletExit, g.value)
    end
  end)

  it("raises the given error in each", function()
    local E = setmetatable({}, {__tostring = function() return "E" end})
    local gs = {green.spawn(green.sleep, 10), green.spawn(green.sleep, 10)}
    green.sleep(0)
    green.killall(gs, E)
    for _, g in ipairs(gs) do
      assert.is_false(g:successful())
      assert.equal(E, g.error)
    end
  end)

  it("rejects a non-table and items that are not greenthreads", function()
    raises("bad argument #1 to 'killall' (table expected, got string)",
           function() green.killall("x") end)
    raises("bad argument #1 to 'killall' (greenthread expected at index 1, "
           .. "got table)",
           function() green.killall({{}}) end)
  end)
end)

describe("a greenthread", function()
  describe("g:join", function()
    it("returns true once g has ended, at once if it already has",
       function()
      local g = green.spawn(function() green.sleep(0.001) end)
      assert.is_true(g:join())
      assert.is_true(g:ready())
      assert.is_true(g:join())
    end)

    it("returns nil, 'timeout' when the timeout elapses", function()
      local g = green.spawn(green.sleep, 10)
      local t0 = green.now()
      local ok, err = g:join(0.01)
      assert.is_nil(ok)
      assert.equal("timeout", err)
      assert.is_true(green.now() - t0 >= 0.01)
      assert.is_false(g:ready())
      g:kill()
    end)

    it("returns true for a failed greenthread", function()
      local g = green.spawn(error, "expected failure (join)")
      assert.is_true(g:join())
      assert.is_false(g:successful())
    end)

    it("refuses to join the running greenthread", function()
      raises("cannot join the running greenthread",
             function() green.getcurrent():join() end)
    end)

    it("rejects a bad timeout and a bad self", function()
      local g = green.spawn(function() end)
      raises("bad argument #1 to 'join' (number expected, got string)",
             function() g:join("x") end)
      raises("green.Greenthread expected, got number",
             function() g.join(1) end)
      g:join()
    end)
  end)

  describe("g:get", function()
    it("returns all of fn's values", function()
      local g = green.spawn(function() return 1, nil, "three" end)
      local r = table.pack(g:get())
      assert.same({n = 3, 1, nil, "three"}, r)
    end)

    it("re-raises the very error value fn raised", function()
      local E = setmetatable({}, {__tostring = function() return "E" end})
      local g = green.spawn(error, E)
      assert.equal(E, errorof(g.get, g))
    end)

    it("raises a green.Timeout when the timeout elapses", function()
      local g = green.spawn(green.sleep, 10)
      local t0 = green.now()
      local err = errorof(g.get, g, 0.01)
      assert.is_true(green.is_timeout(err))
      assert.is_true(green.now() - t0 >= 0.01)
      g:kill()
    end)

    it("returns GreenletExit for a killed greenthread", function()
      local g = green.spawn(green.sleep, 10)
      green.sleep(0)
      g:kill()
      assert.equal(green.GreenletExit, g:get())
    end)

    it("rejects a bad timeout", function()
      local g = green.spawn(function() end)
      raises("bad argument #1 to 'get' (number expected, got table)",
             function() g:get({}) end)
      g:join()
    end)
  end)

  describe("states", function()
    it("are all false before g ends", function()
      local g = green.spawn(function() green.sleep(0.001) end)
      assert.is_false(g:ready())
      assert.is_false(g:dead())
      assert.is_false(g:successful())
      assert.is_nil(g.value)
      assert.is_nil(g.values)
      assert.is_nil(g.error)
      g:join()
    end)

    it("show success with value and values", function()
      local g = green.spawn(function() return "a", "b" end)
      g:join()
      assert.is_true(g:ready())
      assert.is_true(g:dead())
      assert.is_true(g:successful())
      assert.equal("a", g.value)
      assert.same({n = 2, "a", "b"}, g.values)
      assert.is_nil(g.error)
    end)

    it("give an empty values table when fn returned nothing", function()
      local g = green.spawn(function() end)
      g:join()
      assert.is_true(g:successful())
      assert.is_nil(g.value)
      assert.same({n = 0}, g.values)
    end)

    it("show failure with the error value", function()
      local E = {}
      local g = green.spawn(error, E)
      g:join()
      assert.is_true(g:ready())
      assert.is_false(g:successful())
      assert.equal(E, g.error)
      assert.is_nil(g.value)
      assert.is_nil(g.values)
    end)
  end)

  describe("g:kill", function()
    it("raises GreenletExit where g is blocked; g counts as successful",
       function()
      local caught
      local g = green.spawn(function()
        local _, err = pcall(green.sleep, 10)
        caught = err
        error(err, 0)
      end)
      green.sleep(0)
      g:kill()
      assert.equal(green.GreenletExit, caught)
      assert.is_true(g:ready())
      assert.is_true(g:successful())
      assert.equal(green.GreenletExit, g.value)
      assert.is_nil(g.error)
      assert.equal("GreenletExit", tostring(green.GreenletExit))
    end)

    it("with another error makes g fail with that error", function()
      local E = setmetatable({}, {__tostring = function() return "E" end})
      local g = green.spawn(green.sleep, 10)
      green.sleep(0)
      g:kill(E)
      assert.is_true(g:ready())
      assert.is_false(g:successful())
      assert.equal(E, g.error)
      assert.equal(E, errorof(g.get, g))
    end)

    it("before g started: fn never runs and g counts as killed", function()
      local ran = false
      local g = green.spawn(function() ran = true end)
      g:kill()
      green.sleep(0)
      assert.is_false(ran)
      assert.is_true(g:ready())
      assert.is_true(g:successful())
      assert.equal(green.GreenletExit, g.value)
    end)

    it("waits for g to end by default", function()
      local g = green.spawn(function()
        local _ <close> = setmetatable({}, {__close = function()
          green.sleep(0.005)
        end})
        green.sleep(10)
      end)
      green.sleep(0)
      g:kill()
      assert.is_true(g:ready())
    end)

    it("with block=false returns at once, before g ends", function()
      local g = green.spawn(green.sleep, 10)
      green.sleep(0)
      g:kill(nil, false)
      assert.is_false(g:ready())
      g:join()
      assert.is_true(g:successful())
      assert.equal(green.GreenletExit, g.value)
    end)

    it("with a timeout stops waiting for g when it elapses", function()
      local g = green.spawn(function()
        pcall(green.sleep, 10)  -- swallows the kill
        green.sleep(10)
      end)
      green.sleep(0)
      local t0 = green.now()
      g:kill(nil, true, 0.01)
      local dt = green.now() - t0
      assert.is_true(dt >= 0.01 and dt < 5)
      assert.is_false(g:ready())
      g:kill()  -- the second is not swallowed
      assert.is_true(g:successful())
    end)

    it("does nothing to a greenthread that has ended", function()
      local g = green.spawn(function() return 1 end)
      g:join()
      g:kill()
      g:kill("other")
      assert.is_true(g:successful())
      assert.equal(1, g.value)
    end)

    it("of the running greenthread raises the error in it", function()
      local E = {}
      local g = green.spawn(function() green.getcurrent():kill(E) end)
      g:join()
      assert.equal(E, g.error)
    end)

    it("rejects a bad timeout", function()
      local g = green.spawn(green.sleep, 10)
      raises("bad argument #3 to 'kill' (number expected, got string)",
             function() g:kill(nil, true, "x") end)
      g:kill()
    end)
  end)

  describe("g:link", function()
    it("runs fn(g) in its own greenthread once g ends", function()
      local g = green.spawn(function() return 7 end)
      local arg, runner, value
      g:link(function(x)
        arg, runner, value = x, green.getcurrent(), x.value
      end)
      g:join()
      green.sleep(0)
      assert.equal(g, arg)
      assert.equal(7, value)
      assert.is_not_nil(runner)
      assert.are_not.equal(g, runner)
      assert.are_not.equal(green.getcurrent(), runner)
    end)

    it("runs every linked fn, in link order, for failed and killed ones too",
       function()
      local log = {}
      local failed = green.spawn(error, "expected failure (link)")
      local killed = green.spawn(green.sleep, 10)
      for _, g in ipairs({failed, killed}) do
        g:link(function(x) log[#log + 1] = {x, 1} end)
        g:link(function(x) log[#log + 1] = {x, 2} end)
      end
      green.sleep(0)
      killed:kill()
      green.sleep(0)
      assert.same({{failed, 1}, {failed, 2}, {killed, 1}, {killed, 2}}, log)
    end)

    it("runs fn at once (in a new greenthread) if g has already ended",
       function()
      local g = green.spawn(function() end)
      g:join()
      local got
      g:link(function(x) got = x end)
      assert.is_nil(got)
      green.sleep(0)
      assert.equal(g, got)
    end)

    it("rejects a non-function", function()
      local g = green.spawn(function() end)
      raises("bad argument #1 to 'link' (function expected, got number)",
             function() g:link(1) end)
      g:join()
    end)
  end)

  describe("name and id", function()
    it("has a numeric id, distinct from the others'", function()
      local a, b = green.spawn(function() end), green.spawn(function() end)
      assert.equal("number", type(a.id))
      assert.are_not.equal(a.id, b.id)
      assert.is_true(b.id > a.id)
      green.joinall({a, b})
    end)

    it("has a settable name, shown by tostring", function()
      local g = green.spawn(function() end)
      assert.equal("string", type(g.name))
      g.name = "worker-7"
      assert.equal("worker-7", g.name)
      assert.truthy(tostring(g):find("worker-7", 1, true))
      g:join()
      assert.equal("worker-7", g.name)
      assert.equal("main", green.getcurrent().name)
    end)

    it("refuses other fields and a non-string name", function()
      local g = green.spawn(function() end)
      raises("string expected, got number", function() g.name = 1 end)
      raises("cannot set field 'value'", function() g.value = 1 end)
      g:join()
    end)
  end)
end)
