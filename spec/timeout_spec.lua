-- Timeouts (API.md "Timeouts"): green.Timeout, Timeout.start_new,
-- with_timeout, is_timeout, and g:get(timeout) raising a Timeout.

local green = require "green"

local helpers = require "spec.helpers"
local errorof, raises = helpers.errorof, helpers.raises

-- Every case runs on the virtual clock (green.virtual_clock): its sleeps
-- and deadlines take no real time, and none can race the real clock.
local it = function(name, fn) return it(name, helpers.virtual(fn)) end

describe("green.Timeout", function()
  it("raises itself at the blocking call when it fires", function()
    local t0 = green.now()  -- before the start: it may fire right on time
    local t = green.Timeout(0.01)
    assert.equal(t, t:start())
    local err = errorof(green.sleep, 10)
    assert.equal(t, err)
    assert.is_true(green.now() - t0 >= 0.01)
    assert.is_true(green.is_timeout(err))
  end)

  it("raises the given error value instead of itself", function()
    local E = {}
    local t = green.Timeout(0.01, E):start()
    assert.equal(E, errorof(green.sleep, 10))
    assert.is_false(t.pending)
  end)

  it("is pending from start until it fires", function()
    local t = green.Timeout(0.01)
    assert.is_false(t.pending)
    t:start()
    assert.is_true(t.pending)
    errorof(green.sleep, 10)
    assert.is_false(t.pending)
  end)

  it("does not fire once cancelled", function()
    local t = green.Timeout(0.005):start()
    t:cancel()
    assert.is_false(t.pending)
    green.sleep(0.02)  -- would raise if it fired
  end)

  it("is cancelled at the end of a <close> scope", function()
    local t
    do
      local tc <close> = green.Timeout(0.005):start()
      t = tc
      assert.is_true(t.pending)
    end
    assert.is_false(t.pending)
    green.sleep(0.02)
  end)

  it("is cancelled when its scope ends by an error", function()
    local t
    local ok = pcall(function()
      local tc <close> = green.Timeout(0.005):start()
      t = tc
      error("leave")
    end)
    assert.is_false(ok)
    assert.is_false(t.pending)
    green.sleep(0.02)
  end)

  it("fires while the greenthread is busy at its next blocking call",
     function()
    local t = green.Timeout(0.001):start()
    local t0 = green.now()
    while green.now() - t0 < 0.01 do end  -- no blocking call
    assert.equal(t, errorof(green.sleep, 0))
  end)

  it("never fires without seconds", function()
    local t = green.Timeout():start()
    green.sleep(0.01)
    t:cancel()
    local n = green.Timeout(nil, "never"):start()
    green.sleep(0.01)
    n:cancel()
  end)

  it("can be restarted after a cancel or after firing", function()
    local t = green.Timeout(0.005)
    t:start()
    t:cancel()
    t:start()
    assert.equal(t, errorof(green.sleep, 10))
    t:start()
    assert.equal(t, errorof(green.sleep, 10))
  end)

  it("raises only in the greenthread that started it", function()
    local t = green.Timeout(0.005)
    local caught
    local g = green.spawn(function()
      t:start()
      local ok, err = pcall(green.sleep, 10)
      caught = not ok and err
    end)
    green.sleep(0.02)  -- main is not interrupted
    g:join()
    assert.equal(t, caught)
  end)

  it("is cancelled when the greenthread that started it ends", function()
    local t
    local g = green.spawn(function()
      t = green.Timeout(0.005):start()
    end)
    g:join()
    assert.is_false(t.pending)
    assert.is_true(g:successful())
  end)

  it("fires even if nothing holds a reference to it", function()
    green.Timeout(0.005):start()
    collectgarbage()
    collectgarbage()
    assert.is_true(green.is_timeout(errorof(green.sleep, 10)))
  end)

  it("lets the inner of two nested Timeouts fire first", function()
    local outer = green.Timeout(0.05):start()
    local inner = green.Timeout(0.005):start()
    assert.equal(inner, errorof(green.sleep, 10))
    outer:cancel()
  end)

  it("lets the outer of two nested Timeouts fire first", function()
    local outer = green.Timeout(0.005):start()
    local inner = green.Timeout(0.05):start()
    assert.equal(outer, errorof(green.sleep, 10))
    inner:cancel()
  end)

  it("interrupts a g:join", function()
    local g = green.spawn(green.sleep, 10)
    local t = green.Timeout(0.005):start()
    assert.equal(t, errorof(g.join, g))
    g:kill()
  end)

  it("has a tostring and a __name", function()
    local t = green.Timeout(1.5)
    assert.equal("green.Timeout", getmetatable(t).__name)
    assert.truthy(tostring(t):find("timeout", 1, true))
  end)

  -- Fails while glL_setconstructor's __call (bindings/lauxgl.c, callctor)
  -- calls the constructor through lua_call: the message then names '?'.
  it("names 'Timeout' when the constructor gets a bad argument", function()
    raises("bad argument #1 to 'Timeout' (number expected, got string)",
           function() green.Timeout("x") end)
  end)

  it("rejects a bad self", function()
    raises("green.Timeout expected, got number",
           function() local t = green.Timeout(1); t.start(1) end)
    raises("green.Timeout expected, got string",
           function() local t = green.Timeout(1); t.cancel("x") end)
  end)
end)

describe("green.Timeout.start_new", function()
  it("returns a started Timeout", function()
    local t = green.Timeout.start_new(0.005)
    assert.is_true(t.pending)
    assert.equal(t, errorof(green.sleep, 10))
  end)

  it("raises the given error value", function()
    local E = {}
    green.Timeout.start_new(0.005, E)
    assert.equal(E, errorof(green.sleep, 10))
  end)

  it("works with <close>", function()
    local t
    do
      local tc <close> = green.Timeout.start_new(0.005)
      t = tc
    end
    assert.is_false(t.pending)
    green.sleep(0.02)
  end)

  it("rejects a bad number of seconds", function()
    raises("bad argument #1 to 'start_new' (number expected, got string)",
           function() green.Timeout.start_new("x") end)
  end)
end)

describe("green.with_timeout", function()
  it("returns fn's values when it finishes in time", function()
    local r = table.pack(green.with_timeout(1, function(a, b)
      green.sleep(0)
      return a, nil, b
    end, 1, 2))
    assert.same({n = 3, 1, nil, 2}, r)
  end)

  it("returns nil, 'timeout' when fn does not finish in time", function()
    local t0 = green.now()
    local ok, err = green.with_timeout(0.01, green.sleep, 10)
    assert.is_nil(ok)
    assert.equal("timeout", err)
    assert.is_true(green.now() - t0 >= 0.01)
  end)

  it("does not fire after fn returned", function()
    assert.equal("fast", green.with_timeout(0.005, function()
      return "fast"
    end))
    green.sleep(0.02)
  end)

  it("lets fn's errors through, the very value", function()
    local E = {}
    assert.equal(E, errorof(green.with_timeout, 1, error, E))
  end)

  it("lets an outer Timeout through", function()
    local outer = green.Timeout(0.005):start()
    assert.equal(outer, errorof(green.with_timeout, 1, green.sleep, 10))
  end)

  it("rejects bad arguments", function()
    raises("bad argument #1 to 'with_timeout' (number expected, got string)",
           function() green.with_timeout("x", print) end)
    raises("bad argument #2 to 'with_timeout' (function expected, got nil)",
           function() green.with_timeout(1, nil) end)
  end)
end)

describe("green.is_timeout", function()
  it("is true for Timeout values only", function()
    assert.is_true(green.is_timeout(green.Timeout(1)))
    local started = green.Timeout.start_new(1):start()
    assert.is_true(green.is_timeout(started))
    started:cancel()  -- left pending, it would fire in a later spec
    assert.is_false(green.is_timeout("timeout"))
    assert.is_false(green.is_timeout(nil))
    assert.is_false(green.is_timeout({}))
    assert.is_false(green.is_timeout(green.GreenletExit))
  end)

  it("is false for the error value a Timeout raises instead of itself",
     function()
    green.Timeout.start_new(0.001, "custom")
    assert.is_false(green.is_timeout(errorof(green.sleep, 10)))
  end)
end)

describe("g:get(timeout)", function()
  it("raises a green.Timeout when the timeout elapses", function()
    local g = green.spawn(green.sleep, 10)
    local t0 = green.now()
    local err = errorof(g.get, g, 0.01)
    assert.is_true(green.is_timeout(err))
    assert.is_true(green.now() - t0 >= 0.01)
    assert.is_false(g:ready())
    g:kill()
  end)

  it("returns the values when g ends in time", function()
    local g = green.spawn(function() green.sleep(0.001); return 1, 2 end)
    local a, b = g:get(1)
    assert.equal(1, a)
    assert.equal(2, b)
  end)

  it("is caught by with_timeout's caller as an error, not a timeout",
     function()
    local g = green.spawn(green.sleep, 10)
    local err = errorof(green.with_timeout, 1, g.get, g, 0.005)
    assert.is_true(green.is_timeout(err))
    g:kill()
  end)
end)
