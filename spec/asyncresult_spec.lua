-- green.AsyncResult: a value or an error that arrives once; wait and get
-- with timeouts, kills and green.Timeout.
local green = require "green"

local helpers = require "spec.helpers"
local errorof = helpers.errorof  -- the error value fn raises

describe("green.AsyncResult", function()
  it("starts not ready, without value or error", function()
    local r = green.AsyncResult()
    assert.is_false(r:ready())
    assert.is_false(r:successful())
    assert.is_nil(r.value)
    assert.is_nil(r.values)
    assert.is_nil(r.error)
  end)

  it("returns every value given to set, nils included", function()
    local r = green.AsyncResult()
    r:set(1, nil, "three", nil)
    assert.is_true(r:ready())
    assert.is_true(r:successful())
    assert.same({1, nil, "three", nil, n = 4}, table.pack(r:get()))
    assert.equal(1, r.value)
    assert.same({1, nil, "three", nil, n = 4}, r.values)
    assert.is_nil(r.error)
  end)

  it("returns no values when set with none, and one when set with one",
     function()
    local r0, r1 = green.AsyncResult(), green.AsyncResult()
    r0:set()
    r1:set(false)
    assert.equal(0, select("#", r0:get()))
    assert.same({false, n = 1}, table.pack(r1:get()))
    assert.is_false(r1.value)
  end)

  it("re-raises the very error value given to set_error", function()
    local r, err = green.AsyncResult(), setmetatable({}, {})
    r:set_error(err)
    assert.is_true(r:ready())
    assert.is_false(r:successful())
    assert.equal(err, errorof(function() r:get() end))
    assert.equal(err, r.error)
    assert.is_nil(r.value)
    assert.is_true(r:wait())
  end)

  it("raises when set or set_error is called on a set result", function()
    local r = green.AsyncResult()
    r:set(1)
    assert.matches("AsyncResult already set",
      tostring(errorof(function() r:set(2) end)))
    assert.matches("AsyncResult already set",
      tostring(errorof(function() r:set_error("e") end)))
    local r2 = green.AsyncResult()
    r2:set_error("boom")
    assert.matches("AsyncResult already set",
      tostring(errorof(function() r2:set(1) end)))
    assert.same({1, n = 1}, table.pack(r:get()))
  end)

  it("wakes every waiter of wait and get, in the order they waited",
     function()
    local r, order = green.AsyncResult(), {}
    for i = 1, 4 do
      green.spawn(function()
        if i % 2 == 1 then
          assert.is_true(r:wait())
          order[#order + 1] = i
        else
          local _, v = r:get()
          order[#order + 1] = v
        end
      end)
    end
    green.sleep(0)
    assert.same({}, order)
    r:set("x", 2)
    green.sleep(0)
    assert.same({1, 2, 3, 2}, order)
  end)

  it("re-raises the error in every getter", function()
    local r, errs = green.AsyncResult(), {}
    for i = 1, 2 do
      green.spawn(function() errs[i] = select(2, pcall(r.get, r)) end)
    end
    green.sleep(0)
    r:set_error(42)
    green.sleep(0)
    assert.same({42, 42}, errs)
  end)

  it("returns nil, 'timeout' from wait when the timeout elapses", function()
    local r = green.AsyncResult()
    local t0 = green.now()
    assert.same({nil, "timeout"}, {r:wait(0.02)})
    assert.is_true(green.now() - t0 >= 0.02)
    assert.same({nil, "timeout"}, {r:wait(0)})
  end)

  it("raises a green.Timeout value from get when the timeout elapses",
     function()
    local r = green.AsyncResult()
    local err = errorof(function() r:get(0.01) end)
    assert.is_true(green.is_timeout(err))
    assert.is_true(green.is_timeout(errorof(function() r:get(0) end)))
  end)

  it("leaves a killed waiter out and serves the next one", function()
    local r, got = green.AsyncResult(), {}
    local g1 = green.spawn(function() got[1] = r:get() end)
    local g2 = green.spawn(function() got[2] = r:get() end)
    green.sleep(0)
    g1:kill()
    assert.is_true(g1:dead())
    r:set("v")
    g2:join()
    assert.same({nil, "v"}, {got[1], got[2]})
  end)

  it("is interrupted by a green.Timeout in wait and get", function()
    local r = green.AsyncResult()
    for _, m in ipairs({"wait", "get"}) do
      local ok, err = pcall(function()
        local t <close> = green.Timeout(0.01):start()
        r[m](r)
      end)
      assert.is_false(ok)
      assert.is_true(green.is_timeout(err))
    end
    r:set(1)
    assert.equal(1, r:get())
  end)

  it("names itself in tostring", function()
    assert.matches("^green.AsyncResult", tostring(green.AsyncResult()))
  end)

  it("raises naming the method for a bad self, timeout or missing error",
     function()
    local r = green.AsyncResult()
    assert.matches("bad argument #1 to 'get' %(number expected, got table%)",
      errorof(function() r:get({}) end))
    assert.matches("bad argument #1 to 'wait' %(number expected",
      errorof(function() r:wait("x") end))
    assert.matches("bad argument #1 to 'set_error' %(value expected%)",
      errorof(function() r:set_error() end))
    assert.matches("calling 'set' on bad self %(green.AsyncResult expected",
      errorof(function() local t = {set = r.set}; t:set(1) end))
    assert.is_false(r:ready())
  end)
end)
