-- green.Group (API.md "Groups and pools"): members, join, kill, and the
-- map family (map, imap, imap_unordered).

local green = require "green"

local helpers = require "spec.helpers"
local errorof, raises, collect = helpers.errorof, helpers.raises, helpers.collect

-- fn for the map family: sleeps longer for smaller x, returns x * 10.
local function slow(x)
  green.sleep(0.004 * (5 - x))
  return x * 10
end

describe("green.Group", function()
  describe("members", function()
    it("grp:spawn only schedules fn(...) and returns its greenthread",
       function()
      local grp = green.Group()
      local got
      local g = grp:spawn(function(a, b) got = {a, b} end, 1, 2)
      assert.equal("green.Greenthread", getmetatable(g).__name)
      assert.is_nil(got)
      assert.equal(1, #grp)
      assert.is_true(grp:has(g))
      green.sleep(0)
      assert.same({1, 2}, got)
    end)

    it("leave the group as they finish, fail or are killed", function()
      local grp = green.Group()
      local done = grp:spawn(function() return 1 end)
      local failed = grp:spawn(error, "expected failure (group)")
      local killed = grp:spawn(green.sleep, 10)
      local running = grp:spawn(green.sleep, 10)
      assert.equal(4, #grp)
      green.sleep(0)
      assert.equal(2, #grp)
      killed:kill()
      assert.equal(1, #grp)
      assert.is_false(grp:has(done))
      assert.is_false(grp:has(failed))
      assert.is_false(grp:has(killed))
      assert.is_true(grp:has(running))
      running:kill()
      assert.equal(0, #grp)
    end)

    it("leave the group when killed before they started", function()
      local grp = green.Group()
      local ran = false
      local g = grp:spawn(function() ran = true end)
      g:kill()
      assert.equal(0, #grp)
      assert.is_false(grp:has(g))
      assert.is_true(grp:join(0))
      assert.is_false(ran)
    end)

    it("keep their results and errors on the greenthread", function()
      local grp = green.Group()
      local E = {}
      local a = grp:spawn(function() return "a", "b" end)
      local b = grp:spawn(error, E)
      grp:join()
      assert.same({n = 2, "a", "b"}, a.values)
      assert.equal(E, b.error)
    end)

    it("grp:add adds a running greenthread until it ends", function()
      local grp = green.Group()
      local g = green.spawn(green.sleep, 0.005)
      grp:add(g)
      grp:add(g)  -- once only
      assert.equal(1, #grp)
      assert.is_true(grp:has(g))
      assert.is_true(grp:join())
      assert.equal(0, #grp)
    end)

    it("grp:add ignores a greenthread that has ended", function()
      local grp = green.Group()
      local g = green.spawn(function() end)
      g:join()
      grp:add(g)
      assert.equal(0, #grp)
    end)

    it("grp:add counts an added greenthread out as soon as it ended",
       function()
      local grp = green.Group()
      local g = green.spawn(green.sleep, 10)
      grp:add(g)
      g:kill()
      assert.equal(0, #grp)
    end)

    it("grp:discard removes a member, which goes on running", function()
      local grp = green.Group()
      local g = grp:spawn(function() green.sleep(0.001); return "ran" end)
      grp:discard(g)
      grp:discard(g)
      assert.equal(0, #grp)
      assert.is_true(grp:join())
      assert.equal("ran", g:get())
      assert.equal(0, #grp)
    end)

    it("are reported by tostring", function()
      local grp = green.Group()
      grp:spawn(function() end)
      assert.equal("green.Group (1 members)", tostring(grp))
      grp:join()
    end)
  end)

  describe("grp:join", function()
    it("returns true at once when the group is empty", function()
      assert.is_true(green.Group():join())
      assert.is_true(green.Group():join(0))
    end)

    it("returns true once every member ended", function()
      local grp, ended = green.Group(), 0
      for i = 1, 5 do
        grp:spawn(function()
          green.sleep(0.001 * i)
          ended = ended + 1
        end)
      end
      assert.is_true(grp:join())
      assert.equal(5, ended)
      assert.equal(0, #grp)
    end)

    it("waits for members spawned while it waits", function()
      local grp, late = green.Group(), nil
      grp:spawn(function()
        green.sleep(0.001)
        late = grp:spawn(green.sleep, 0.005)
      end)
      assert.is_true(grp:join())
      assert.is_true(late:ready())
    end)

    it("returns nil, 'timeout' when the timeout elapses", function()
      local grp = green.Group()
      grp:spawn(function() end)
      local sleeper = grp:spawn(green.sleep, 10)
      local t0 = green.now()
      local ok, err = grp:join(0.01)
      assert.is_nil(ok)
      assert.equal("timeout", err)
      assert.is_true(green.now() - t0 >= 0.01)
      assert.equal(1, #grp)
      sleeper:kill()
    end)

    it("refuses to run in one of the group's members", function()
      local grp = green.Group()
      local g = grp:spawn(function() return grp:join() end)
      g:join()
      assert.truthy(tostring(g.error):find("one of its members", 1, true))
    end)

    it("rejects a bad timeout", function()
      raises("bad argument #1 to 'join' (number expected, got string)",
             function() green.Group():join("x") end)
    end)
  end)

  describe("grp:kill", function()
    it("kills every member with GreenletExit and waits for them", function()
      local grp, cleaned = green.Group(), 0
      local gs = {}
      for i = 1, 3 do
        gs[i] = grp:spawn(function()
          local _ <close> = setmetatable({}, {__close = function()
            green.sleep(0.001)
            cleaned = cleaned + 1
          end})
          green.sleep(10)
        end)
      end
      green.sleep(0)
      grp:kill()
      assert.equal(3, cleaned)
      assert.equal(0, #grp)
      for _, g in ipairs(gs) do
        assert.is_true(g:successful())
        assert.equal(green.GreenletExit, g.value)
      end
    end)

    it("raises the given error value", function()
      local grp = green.Group()
      local E = setmetatable({}, {__tostring = function() return "E" end})
      local g = grp:spawn(green.sleep, 10)
      green.sleep(0)
      grp:kill(E)
      assert.equal(E, g.error)
    end)

    it("kills members that have not started: they never run", function()
      local grp, ran = green.Group(), 0
      for _ = 1, 3 do grp:spawn(function() ran = ran + 1 end) end
      grp:kill()
      green.sleep(0)
      assert.equal(0, ran)
      assert.equal(0, #grp)
    end)

    it("kills members in the order they were spawned", function()
      local grp, order = green.Group(), {}
      for i = 1, 5 do
        grp:spawn(function()
          local _ <close> = setmetatable({}, {__close = function()
            order[#order + 1] = i
          end})
          green.sleep(10)
        end)
      end
      green.sleep(0)
      grp:kill()
      assert.same({1, 2, 3, 4, 5}, order)
    end)

    it("spares the member that calls it", function()
      local grp = green.Group()
      local other = grp:spawn(green.sleep, 10)
      local killer = grp:spawn(function()
        grp:kill()
        return "alive"
      end)
      assert.equal("alive", killer:get())
      assert.is_true(other:ready())
      assert.equal(0, #grp)
    end)

    it("does nothing to an empty group", function()
      green.Group():kill()
    end)
  end)

  describe("grp:map", function()
    it("returns the first results in input order", function()
      local grp = green.Group()
      assert.same({10, 20, 30, 40}, grp:map(slow, {1, 2, 3, 4}))
      assert.equal(0, #grp)
    end)

    it("runs the calls concurrently in a Group", function()
      local grp, running, most = green.Group(), 0, 0
      grp:map(function()
        running = running + 1
        most = math.max(most, running)
        green.sleep(0.001)
        running = running - 1
      end, {1, 2, 3, 4, 5})
      assert.equal(5, most)
    end)

    it("takes an iterator function", function()
      local grp = green.Group()
      assert.same({"A", "B", "C"},
        grp:map(string.upper, ("a b c"):gmatch("%a")))
      local gen = coroutine.wrap(function()
        for i = 1, 3 do
          green.sleep(0)  -- a generator may block
          coroutine.yield(i)
        end
      end)
      assert.same({2, 4, 6}, grp:map(function(x) return 2 * x end, gen))
    end)

    it("returns an empty array for an empty input", function()
      assert.same({}, green.Group():map(slow, {}))
    end)

    it("leaves a hole for a nil result", function()
      local r = green.Group():map(function(x)
        if x ~= 2 then return x end
      end, {1, 2, 3})
      assert.equal(1, r[1])
      assert.is_nil(r[2])
      assert.equal(3, r[3])
    end)

    it("raises fn's error, the very value, and kills the calls left",
       function()
      local grp = green.Group()
      local E = setmetatable({}, {__tostring = function() return "E" end})
      local finished = 0
      local err = errorof(grp.map, grp, function(x)
        if x == 2 then error(E) end
        green.sleep(0.01)
        finished = finished + 1
      end, {1, 2, 3})
      assert.equal(E, err)
      assert.equal(0, #grp)
      green.sleep(0.02)
      assert.equal(0, finished)
    end)

    it("passes a GreenletExit of a killed call as its result", function()
      local grp = green.Group()
      local r = grp:map(function(x)
        if x == 2 then green.getcurrent():kill() end
        return x
      end, {1, 2, 3})
      assert.same({1, green.GreenletExit, 3}, r)
    end)

    it("passes GreenletExit for calls killed before they started",
       function()
      local grp = green.Group()
      green.spawn(function() grp:kill() end)  -- runs before the calls
      local r = grp:map(function(x) return x end, {1, 2})
      assert.same({green.GreenletExit, green.GreenletExit}, r)
      assert.equal(0, #grp)
    end)

    it("rejects bad arguments", function()
      local grp = green.Group()
      raises("bad argument #1 to 'map' (function expected, got nil)",
             function() grp:map(nil, {}) end)
      raises("bad argument #2 to 'map' (table or function expected, "
             .. "got number)", function() grp:map(print, 1) end)
      raises("calling 'map' on bad self", function() grp.map(print, {}) end)
    end)
  end)

  describe("grp:imap", function()
    it("yields the results in input order", function()
      assert.same({10, 20, 30, 40},
        collect(green.Group():imap(slow, {1, 2, 3, 4})))
    end)

    it("takes an iterator function", function()
      assert.same({"A", "B"},
        collect(green.Group():imap(string.upper, ("a b"):gmatch("%a"))))
    end)

    it("skips nil results", function()
      assert.same({1, 3}, collect(green.Group():imap(function(x)
        if x ~= 2 then return x end
      end, {1, 2, 3})))
    end)

    it("raises fn's error where its result would come", function()
      local E = setmetatable({}, {__tostring = function() return "E" end})
      local got = {}
      local err = errorof(function()
        for r in green.Group():imap(function(x)
          if x == 3 then error(E) end
          green.sleep(0.001 * (4 - x))
          return x
        end, {1, 2, 3, 4}) do
          got[#got + 1] = r
        end
      end)
      assert.equal(E, err)
      assert.same({1, 2}, got)
    end)

    it("kills the calls still running when the loop is left", function()
      local grp, finished = green.Group(), 0
      for r in grp:imap(function(x)
        green.sleep(0.02 * x)
        finished = finished + 1
        return x
      end, {1, 2, 3, 4, 5}) do
        if r == 1 then break end
      end
      assert.equal(0, #grp)
      green.sleep(0.01)
      assert.equal(1, finished)
    end)

    it("keeps results in flight plus unread within maxsize", function()
      local grp, started, read, most = green.Group(), 0, 0, 0
      for _ in grp:imap(function(x)
        started = started + 1
        most = math.max(most, started - read)
        return x
      end, {1, 2, 3, 4, 5, 6, 7, 8}, 3) do
        read = read + 1
        green.sleep(0.001)  -- a slow reader
      end
      assert.equal(8, read)
      assert.equal(3, most)
    end)

    it("rejects bad arguments", function()
      local grp = green.Group()
      raises("bad argument #1 to 'imap' (function expected, got string)",
             function() grp:imap("f", {}) end)
      raises("bad argument #2 to 'imap' (table or function expected, "
             .. "got nil)", function() grp:imap(print) end)
      raises("bad argument #3 to 'imap' (number expected, got string)",
             function() grp:imap(print, {}, "x") end)
      raises("bad argument #3 to 'imap' (maxsize must be at least 1)",
             function() grp:imap(print, {}, 0) end)
    end)
  end)

  describe("grp:imap_unordered", function()
    it("yields the results as the calls complete", function()
      assert.same({40, 30, 20, 10},
        collect(green.Group():imap_unordered(slow, {1, 2, 3, 4})))
    end)

    it("raises fn's error when it completes", function()
      local got = {}
      local err = errorof(function()
        for r in green.Group():imap_unordered(function(x)
          green.sleep(0.005 * x)
          if x == 2 then error("two", 0) end
          return x
        end, {3, 2, 1}) do
          got[#got + 1] = r
        end
      end)
      assert.equal("two", err)
      assert.same({1}, got)
    end)

    it("keeps results in flight plus unread within maxsize", function()
      local grp, started, read, most = green.Group(), 0, 0, 0
      for _ in grp:imap_unordered(function(x)
        started = started + 1
        most = math.max(most, started - read)
        return x
      end, {1, 2, 3, 4, 5, 6}, 2) do
        read = read + 1
        green.sleep(0.001)
      end
      assert.equal(6, read)
      assert.equal(2, most)
    end)

    it("rejects bad arguments", function()
      raises("bad argument #1 to 'imap_unordered' (function expected, "
             .. "got nil)", function() green.Group():imap_unordered() end)
    end)
  end)

  describe("argument checks", function()
    it("name the method and the argument", function()
      local grp = green.Group()
      raises("bad argument #1 to 'spawn' (function expected, got number)",
             function() grp:spawn(1) end)
      raises("bad argument #1 to 'spawn' (function expected, got no value)",
             function() grp:spawn() end)
      raises("bad argument #1 to 'add' (green.Greenthread expected, "
             .. "got table)", function() grp:add({}) end)
      raises("bad argument #1 to 'discard' (green.Greenthread expected, "
             .. "got nil)", function() grp:discard() end)
      raises("calling 'spawn' on bad self (green.Group expected, got "
             .. "function)", function() grp.spawn(print) end)
      raises("calling 'kill' on bad self", function() grp.kill() end)
    end)
  end)
end)
