-- green.Semaphore, green.BoundedSemaphore and green.Lock: acquire, release,
-- locked, count and hold, FIFO hand-over, timeouts and kills.
local green = require "green"

local helpers = require "spec.helpers"

-- Calls fn, which must raise, and returns the message.
local function errorof(fn)
  return tostring(helpers.errorof(fn))
end

describe("green.Semaphore", function()
  it("counts acquires and releases, 1 by default", function()
    local s = green.Semaphore()
    assert.equal(1, s:count())
    assert.is_false(s:locked())
    assert.is_true(s:acquire())
    assert.equal(0, s:count())
    assert.is_true(s:locked())
    s:release()
    s:release()
    assert.equal(2, s:count())   -- not bounded
    local s3 = green.Semaphore(3)
    for _ = 1, 3 do assert.is_true(s3:acquire(0)) end
    assert.same({nil, "timeout"}, {s3:acquire(0)})
    assert.is_true(green.Semaphore(0):locked())
  end)

  it("wakes waiters one per release, in the order they waited", function()
    local s, order = green.Semaphore(0), {}
    for i = 1, 3 do
      green.spawn(function()
        assert.is_true(s:acquire())
        order[#order + 1] = i
      end)
    end
    green.sleep(0)
    s:release()
    green.sleep(0)
    assert.same({1}, order)
    s:release()
    s:release()
    green.sleep(0)
    assert.same({1, 2, 3}, order)
    assert.equal(0, s:count())
  end)

  it("hands a release to the first waiter, so a later acquire cannot take"
     .. " it", function()
    local s, got = green.Semaphore(0), false
    green.spawn(function() got = s:acquire() end)
    green.sleep(0)
    s:release()
    assert.equal(0, s:count())
    assert.same({nil, "timeout"}, {s:acquire(0)})
    green.sleep(0)
    assert.is_true(got)
  end)

  it("returns nil, 'timeout' when the timeout elapses", function()
    local s = green.Semaphore(0)
    local t0 = green.now()
    assert.same({nil, "timeout"}, {s:acquire(0.02)})
    assert.is_true(green.now() - t0 >= 0.02)
    assert.equal(0, s:count())
  end)

  it("serves the next waiter when a blocked one is killed or times out",
     function()
    local s, order = green.Semaphore(0), {}
    local g1 = green.spawn(function() s:acquire(); order[#order + 1] = 1 end)
    green.spawn(function()
      local _, err = s:acquire(0.01)
      order[#order + 1] = err or "got"
    end)
    green.spawn(function() s:acquire(); order[#order + 1] = 3 end)
    green.sleep(0)
    g1:kill()
    green.sleep(0.03)
    assert.same({"timeout"}, order)
    s:release()
    green.sleep(0)
    assert.same({"timeout", 3}, order)
    s:release()
    assert.equal(1, s:count())
  end)

  it("keeps a count handed over to a waiter killed before it resumed",
     function()
    local s, after = green.Semaphore(0), nil
    local g = green.spawn(function()
      s:acquire()
      after = s:count()
      green.sleep(0)        -- the kill is raised here
      after = "not reached"
    end)
    green.sleep(0)
    s:release()
    g:kill(nil, false)      -- woken already: it owns the count
    g:join()
    assert.equal(0, after)
    assert.equal(0, s:count())
    assert.is_true(s:locked())
  end)

  it("is interrupted by a green.Timeout", function()
    local s = green.Semaphore(0)
    local ok, err = pcall(function()
      local t <close> = green.Timeout(0.01):start()
      s:acquire()
    end)
    assert.is_false(ok)
    assert.is_true(green.is_timeout(err))
    s:release()
    assert.equal(1, s:count())
  end)

  it("hold returns a to-be-closed guard that releases at the end of the"
     .. " scope", function()
    local s = green.Semaphore(1)
    do
      local guard <close> = s:hold()
      assert.matches("^green.SemaphoreGuard", tostring(guard))
      assert.equal(0, s:count())
    end
    assert.equal(1, s:count())
  end)

  it("hold's guard releases when the scope ends by an error, and only once",
     function()
    local s = green.Semaphore(1)
    local ok, err = pcall(function()
      local _ <close> = s:hold()
      error("boom", 0)
    end)
    assert.same({false, "boom"}, {ok, err})
    assert.equal(1, s:count())
    local g = s:hold()
    g:release()
    g:release()
    assert.equal(1, s:count())
  end)

  it("hold returns nil, 'timeout' when the timeout elapses", function()
    local s = green.Semaphore(0)
    assert.same({nil, "timeout"}, {s:hold(0.01)})
    assert.same({nil, "timeout"}, {s:hold(0)})
    assert.equal(0, s:count())
  end)

  it("hold waits in turn like acquire", function()
    local s, order = green.Semaphore(1), {}
    for i = 1, 3 do
      green.spawn(function()
        local _ <close> = s:hold()
        order[#order + 1] = i
        green.sleep(0)
      end)
    end
    green.sleep(0.01)
    assert.same({1, 2, 3}, order)
    assert.equal(1, s:count())
  end)

  it("names itself in tostring", function()
    assert.matches("^green.Semaphore", tostring(green.Semaphore()))
  end)

  it("raises naming the function and argument for bad arguments", function()
    local s = green.Semaphore()
    assert.matches("bad argument #1 to 'Semaphore' %(integer expected, got"
      .. " string%)", errorof(function() green.Semaphore("x") end))
    assert.matches("bad argument #1 to 'Semaphore' %(must not be negative%)",
      errorof(function() green.Semaphore(-1) end))
    assert.matches("bad argument #1 to 'BoundedSemaphore' %(integer expected",
      errorof(function() green.BoundedSemaphore(1.5) end))
    assert.matches("bad argument #1 to 'acquire' %(number expected, got"
      .. " string%)", errorof(function() s:acquire("x") end))
    assert.matches("bad argument #1 to 'hold' %(number expected",
      errorof(function() s:hold({}) end))
    assert.matches("calling 'release' on bad self",
      errorof(function() local t = {release = s.release}; t:release() end))
    assert.equal(1, s:count())
  end)
end)

describe("green.BoundedSemaphore", function()
  it("raises when released past its initial count", function()
    local s = green.BoundedSemaphore(2)
    assert.matches("released too many times",
      errorof(function() s:release() end))
    s:acquire()
    s:release()
    assert.equal(2, s:count())
    local z = green.BoundedSemaphore(0)
    assert.has_error(function() z:release() end)
  end)

  it("hands a release to a waiter even at its bound", function()
    local s, got = green.BoundedSemaphore(1), nil
    s:acquire()
    green.spawn(function() got = s:acquire() end)
    green.sleep(0)
    s:release()
    green.sleep(0)
    assert.is_true(got)
    assert.equal(0, s:count())
  end)

  it("names itself in tostring", function()
    assert.matches("^green.BoundedSemaphore",
      tostring(green.BoundedSemaphore()))
  end)
end)

describe("green.Lock", function()
  it("is a bounded semaphore of 1", function()
    local l = green.Lock()
    assert.matches("^green.Lock", tostring(l))
    assert.is_false(l:locked())
    assert.is_true(l:acquire())
    assert.is_true(l:locked())
    assert.same({nil, "timeout"}, {l:acquire(0.01)})
    l:release()
    assert.matches("released too many times",
      errorof(function() l:release() end))
  end)

  it("excludes other greenthreads while held", function()
    local l, inside, most = green.Lock(), 0, 0
    local gs = {}
    for i = 1, 5 do
      gs[i] = green.spawn(function()
        for _ = 1, 3 do
          local _ <close> = l:hold()
          inside = inside + 1
          most = math.max(most, inside)
          green.sleep(0)
          inside = inside - 1
        end
      end)
    end
    green.joinall(gs)
    assert.equal(1, most)
    assert.is_false(l:locked())
  end)
end)
