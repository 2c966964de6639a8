-- green.Event: set, clear, is_set and wait, with timeouts, kills and
-- green.Timeout interrupting a waiter.
local green = require "green"

local helpers = require "spec.helpers"

-- Calls fn, which must raise, and returns the message.
local function errorof(fn)
  return tostring(helpers.errorof(fn))
end

describe("green.Event", function()
  it("starts clear and reports set and clear", function()
    local e = green.Event()
    assert.is_false(e:is_set())
    e:set()
    assert.is_true(e:is_set())
    e:clear()
    assert.is_false(e:is_set())
  end)

  it("returns true at once from wait when set", function()
    local e = green.Event()
    e:set()
    assert.is_true(e:wait())
    assert.is_true(e:wait(0))
  end)

  it("wakes its waiters in the order they started waiting", function()
    local e, order = green.Event(), {}
    for i = 1, 3 do
      green.spawn(function()
        assert.is_true(e:wait())
        order[#order + 1] = i
      end)
    end
    green.sleep(0)
    assert.same({}, order)
    e:set()
    green.sleep(0)
    assert.same({1, 2, 3}, order)
  end)

  it("returns true to a waiter woken by set even if clear ran before it"
     .. " resumed", function()
    local e, got = green.Event(), nil
    green.spawn(function() got = table.pack(e:wait()) end)
    green.sleep(0)
    e:set()
    e:clear()
    green.sleep(0)
    assert.same({true, n = 1}, got)
    assert.is_false(e:is_set())
  end)

  it("does not wake waiters that started after clear", function()
    local e, woke = green.Event(), false
    e:set()
    e:clear()
    local g = green.spawn(function() e:wait(); woke = true end)
    green.sleep(0)
    assert.is_false(woke)
    e:set()
    g:join()
    assert.is_true(woke)
  end)

  it("returns nil, 'timeout' when the timeout elapses", function()
    local e = green.Event()
    local t0 = green.now()
    local ok, err = e:wait(0.02)
    assert.is_nil(ok)
    assert.equal("timeout", err)
    assert.is_true(green.now() - t0 >= 0.02)
    assert.same({nil, "timeout"}, {e:wait(0)})
    assert.same({nil, "timeout"}, {e:wait(-1)})
  end)

  it("leaves a killed waiter out of the next set", function()
    local e, order = green.Event(), {}
    local g1 = green.spawn(function() e:wait(); order[#order + 1] = 1 end)
    green.spawn(function() e:wait(); order[#order + 1] = 2 end)
    green.sleep(0)
    g1:kill()
    assert.is_true(g1:dead())
    e:set()
    green.sleep(0)
    assert.same({2}, order)
  end)

  it("leaves a timed-out waiter out of the next set", function()
    local e, res = green.Event(), {}
    green.spawn(function() res[1] = table.pack(e:wait(0.01)) end)
    green.spawn(function() res[2] = table.pack(e:wait()) end)
    green.sleep(0.03)
    e:set()
    green.sleep(0)
    assert.same({nil, "timeout", n = 2}, res[1])
    assert.same({true, n = 1}, res[2])
  end)

  it("is interrupted by a green.Timeout, which it raises", function()
    local e = green.Event()
    local ok, err = pcall(function()
      local t <close> = green.Timeout(0.01):start()
      e:wait()
    end)
    assert.is_false(ok)
    assert.is_true(green.is_timeout(err))
  end)

  it("works from inside a coroutine of a greenthread", function()
    local e = green.Event()
    local co = coroutine.wrap(function() coroutine.yield(e:wait()) end)
    green.spawn(function() e:set() end)
    assert.is_true(co())
  end)

  it("names itself in tostring", function()
    assert.matches("^green.Event", tostring(green.Event()))
  end)

  it("raises naming the method for a bad self or timeout", function()
    local e = green.Event()
    assert.matches("bad argument #1 to 'wait' %(number expected, got string%)",
      errorof(function() e:wait("x") end))
    assert.matches("calling 'set' on bad self %(green.Event expected",
      errorof(function() local t = {set = e.set}; t:set() end))
    assert.matches("bad argument #1 to 'is_set' %(green.Event expected",
      errorof(function() e.is_set(1) end))
  end)
end)
