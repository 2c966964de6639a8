-- green.Pool (API.md "Groups and pools"): a Group whose spawn waits while
-- `size` of its greenthreads are running; free_count, full,
-- wait_available, resize; map and imap in memory bounded by the size.

local green = require "green"

local helpers = require "spec.helpers"
local raises = helpers.raises

-- A fn that counts how many of its calls run at once, in t.most.
local function counter()
  local t = {running = 0, most = 0}
  function t.fn(x)
    t.running = t.running + 1
    t.most = math.max(t.most, t.running)
    green.sleep(0.001)
    t.running = t.running - 1
    return x
  end
  return t
end

-- An iterator over 1..n that keeps nothing.
local function upto(n)
  local i = 0
  return function()
    i = i + 1
    if i <= n then return i end
  end
end

describe("green.Pool", function()
  it("has 1000 free slots by default", function()
    local pool = green.Pool()
    assert.equal(1000, pool:free_count())
    assert.equal(1000, pool.size)
    assert.is_false(pool:full())
  end)

  it("is a Group", function()
    local pool = green.Pool(2)
    local g = pool:spawn(function() return 1 end)
    assert.equal(1, #pool)
    assert.is_true(pool:has(g))
    assert.is_true(pool:join())
    assert.equal(0, #pool)
    assert.same({2, 4}, pool:map(function(x) return 2 * x end, {1, 2}))
    assert.equal("green.Pool (0 members)", tostring(pool))
  end)

  it("spawn waits while size greenthreads of it are running", function()
    local pool, log = green.Pool(2), {}
    for i = 1, 4 do
      pool:spawn(function()
        log[#log + 1] = "start " .. i
        green.sleep(0.005)
        log[#log + 1] = "end " .. i
      end)
      log[#log + 1] = "spawned " .. i
    end
    pool:join()
    assert.same({"spawned 1", "spawned 2", "start 1", "start 2", "end 1",
                 "end 2", "spawned 3", "spawned 4", "start 3", "start 4",
                 "end 3", "end 4"}, log)
  end)

  it("counts free slots with free_count and full", function()
    local pool = green.Pool(3)
    local a = pool:spawn(green.sleep, 10)
    assert.equal(2, pool:free_count())
    local b = pool:spawn(green.sleep, 10)
    local c = pool:spawn(green.sleep, 10)
    assert.equal(0, pool:free_count())
    assert.is_true(pool:full())
    green.sleep(0)
    b:kill()
    assert.equal(1, pool:free_count())
    assert.is_false(pool:full())
    green.killall({a, c})
    assert.equal(3, pool:free_count())
  end)

  it("frees the slot of a member killed before it started", function()
    local pool = green.Pool(1)
    local ran = false
    local g = pool:spawn(function() ran = true end)
    g:kill()
    assert.equal(1, pool:free_count())
    local h = pool:spawn(function() return "next" end)
    assert.equal("next", h:get())
    assert.is_false(ran)
  end)

  it("lets a waiting spawn go when a member not started yet is killed",
     function()
    local pool = green.Pool(1)
    local victim = pool:spawn(function() return "never" end)
    local got
    local spawner = green.spawn(function()
      got = pool:spawn(function() return "second" end):get()
    end)
    victim:kill()  -- before it started; spawner waits meanwhile
    spawner:join()
    assert.equal("second", got)
    assert.equal(green.GreenletExit, victim.value)
  end)

  it("frees every slot on kill", function()
    local pool = green.Pool(2)
    pool:spawn(green.sleep, 10)
    pool:spawn(green.sleep, 10)
    pool:kill()
    assert.equal(2, pool:free_count())
  end)

  it("counts added greenthreads against its size", function()
    local pool = green.Pool(1)
    local g = green.spawn(green.sleep, 0.005)
    pool:add(g)
    assert.is_true(pool:full())
    local t0 = green.now()
    pool:spawn(function() end):join()
    assert.is_true(green.now() - t0 >= 0.005)
    assert.is_true(g:ready())
  end)

  it("gives the slot back when a member is discarded", function()
    local pool = green.Pool(1)
    local g = pool:spawn(green.sleep, 10)
    pool:discard(g)
    assert.equal(1, pool:free_count())
    g:kill()
    assert.equal(1, pool:free_count())
  end)

  describe("pool:wait_available", function()
    it("returns true at once when a slot is free", function()
      assert.is_true(green.Pool(1):wait_available())
    end)

    it("waits for a slot without taking it", function()
      local pool = green.Pool(1)
      pool:spawn(green.sleep, 0.005)
      assert.is_true(pool:wait_available())
      assert.equal(1, pool:free_count())
    end)

    it("returns nil, 'timeout' when the timeout elapses", function()
      local pool = green.Pool(1)
      local g = pool:spawn(green.sleep, 10)
      local t0 = green.now()
      local ok, err = pool:wait_available(0.01)
      assert.is_nil(ok)
      assert.equal("timeout", err)
      assert.is_true(green.now() - t0 >= 0.01)
      g:kill()
    end)
  end)

  describe("pool:resize", function()
    it("lets waiting spawns go when it grows", function()
      local pool = green.Pool(1)
      local first = pool:spawn(green.sleep, 10)
      local spawner = green.spawn(function()
        return pool:spawn(function() return "second" end):get()
      end)
      green.sleep(0)
      assert.is_false(spawner:ready())
      pool:resize(2)
      assert.equal("second", spawner:get())
      assert.equal(2, pool.size)
      first:kill()
    end)

    it("starts nothing new while more than the new size run", function()
      local pool = green.Pool(3)
      local gs = {}
      for i = 1, 3 do gs[i] = pool:spawn(green.sleep, 10) end
      pool:resize(1)
      assert.equal(0, pool:free_count())
      gs[1]:kill()
      assert.is_true(pool:full())
      gs[2]:kill()
      assert.is_true(pool:full())
      gs[3]:kill()
      assert.equal(1, pool:free_count())
      local t = counter()
      pool:map(t.fn, {1, 2, 3})
      assert.equal(1, t.most)
    end)

    it("shrinks and grows back", function()
      local pool = green.Pool(2)
      local g = pool:spawn(green.sleep, 10)
      pool:resize(1)
      assert.is_true(pool:full())
      pool:resize(3)
      assert.equal(2, pool:free_count())
      g:kill()
      assert.equal(3, pool:free_count())
      local t = counter()
      pool:map(t.fn, {1, 2, 3, 4, 5})
      assert.equal(3, t.most)
    end)
  end)

  describe("map family", function()
    it("map runs at most size calls at once, results in input order",
       function()
      local t = counter()
      local r = green.Pool(3):map(t.fn, {1, 2, 3, 4, 5, 6, 7})
      assert.same({1, 2, 3, 4, 5, 6, 7}, r)
      assert.equal(3, t.most)
    end)

    it("imap and imap_unordered run at most size calls at once", function()
      local t = counter()
      local got = {}
      for r in green.Pool(2):imap(t.fn, {1, 2, 3, 4, 5}) do
        got[#got + 1] = r
      end
      assert.same({1, 2, 3, 4, 5}, got)
      assert.equal(2, t.most)
      t = counter()
      local n = 0
      for _ in green.Pool(2):imap_unordered(t.fn, upto(5)) do n = n + 1 end
      assert.equal(5, n)
      assert.equal(2, t.most)
    end)

    it("gives the same results twice (deterministic)", function()
      local function run()
        local out = {}
        local pool = green.Pool(3)
        for r in pool:imap_unordered(function(x)
          green.sleep(0)
          return x
        end, upto(10)) do
          out[#out + 1] = r
        end
        return out
      end
      assert.same(run(), run())
    end)

    -- A million items: memory stays proportional to the pool size, and
    -- the pool never runs more than its size.
    it("imap over a million items runs in memory bounded by the size",
       function()
      local pool = green.Pool(100)
      collectgarbage()
      local base = collectgarbage("count")
      local n, peak, sum, running, most = 0, 0, 0, 0, 0
      for r in pool:imap(function(x)
        running = running + 1
        most = math.max(most, running)
        if x % 97 == 0 then green.sleep(0) end
        running = running - 1
        return x
      end, upto(1e6)) do
        n, sum = n + 1, sum + r
        if n % 50000 == 0 then
          peak = math.max(peak, collectgarbage("count") - base)
        end
      end
      assert.equal(1e6, n)
      assert.equal(1e6 * (1e6 + 1) / 2, sum)
      assert.is_true(peak < 8 * 1024, ("peak %.0f KiB"):format(peak))
      assert.is_true(most <= 100)
    end)

    it("map over a million items spawns no more than the size at once",
       function()
      local pool = green.Pool(100)
      local running, most = 0, 0
      local r = pool:map(function(x)
        running = running + 1
        most = math.max(most, running)
        if x % 97 == 0 then green.sleep(0) end
        running = running - 1
        return x
      end, upto(1e6))
      assert.equal(1e6, #r)
      assert.equal(1e6, r[1e6])
      assert.is_true(most <= 100)
    end)
  end)

  describe("argument checks", function()
    it("name the function and the argument", function()
      raises("bad argument #1 to 'Pool' (positive integer expected, "
             .. "got string)", function() green.Pool("x") end)
      raises("bad argument #1 to 'Pool' (positive integer expected, got 0)",
             function() green.Pool(0) end)
      raises("bad argument #1 to 'Pool' (positive integer expected, "
             .. "got 1.5)", function() green.Pool(1.5) end)
      local pool = green.Pool(1)
      raises("bad argument #1 to 'resize' (positive integer expected, "
             .. "got nil)", function() pool:resize() end)
      raises("bad argument #1 to 'wait_available' (number expected, "
             .. "got string)", function() pool:wait_available("x") end)
      raises("bad argument #1 to 'spawn' (function expected, got nil)",
             function() pool:spawn(nil, 1) end)
      raises("calling 'free_count' on bad self (green.Pool expected, "
             .. "got green.Group)",
             function() pool.free_count(green.Group()) end)
    end)
  end)
end)
