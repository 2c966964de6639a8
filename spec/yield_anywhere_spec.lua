-- A green call blocks only its greenthread from anywhere in Lua code:
-- inside pcall, metamethods, sort comparators, gsub callbacks, iterators,
-- required chunks and plain Lua coroutines, where a coroutine-based
-- runtime fails with "attempt to yield across a C-call boundary".
local green = require "green"

-- Runs fn in a greenthread while another greenthread counts its turns;
-- returns fn's values and how often the other one ran meanwhile.
local function blocking(fn)
  local ticks, done = 0, false
  local ticker = green.spawn(function()
    while not done do ticks = ticks + 1; green.sleep(0) end
  end)
  local g = green.spawn(function() return fn() end)
  local r = table.pack(g:get())
  done = true
  ticker:join()
  return ticks, table.unpack(r, 1, r.n)
end

describe("a green call", function()
  it("blocks inside pcall and xpcall", function()
    local ticks, a, b = blocking(function()
      local ok1, v1 = pcall(function() green.sleep(0.001); return 1 end)
      local ok2, v2 = xpcall(function() green.sleep(0.001); return 2 end,
                             debug.traceback)
      return ok1 and v1, ok2 and v2
    end)
    assert.equal(1, a)
    assert.equal(2, b)
    assert.is_true(ticks > 0)
  end)

  it("keeps pcall catching errors raised after a switch", function()
    local _, ok, err = blocking(function()
      return pcall(function() green.sleep(0); error("late", 0) end)
    end)
    assert.is_false(ok)
    assert.equal("late", err)
  end)

  it("blocks inside __index, __add, __lt, __call and __gc-free metamethods",
     function()
    local ticks, v = blocking(function()
      local mt = {
        __index = function(_, k) green.sleep(0); return k .. "!" end,
        __add = function(a, b) green.sleep(0); return 40 + b end,
        __call = function(_, x) green.sleep(0); return x * 2 end,
        __lt = function() green.sleep(0); return true end,
        __concat = function(_, s) green.sleep(0); return "c" .. s end,
        __len = function() green.sleep(0); return 7 end,
      }
      local o = setmetatable({}, mt)
      return table.concat({o.key, o + 2, o(21), tostring(o < o), o .. "x",
                           #o}, ",")
    end)
    assert.equal("key!,42,42,true,cx,7", v)
    assert.is_true(ticks > 0)
  end)

  it("blocks inside a table.sort comparator", function()
    local ticks, sorted = blocking(function()
      local t = {5, 3, 9, 1, 7, 2, 8}
      table.sort(t, function(a, b) green.sleep(0); return a < b end)
      return table.concat(t, " ")
    end)
    assert.equal("1 2 3 5 7 8 9", sorted)
    assert.is_true(ticks > 0)
  end)

  it("blocks inside a string.gsub callback", function()
    local ticks, s = blocking(function()
      return (("a b c"):gsub("%a", function(c)
        green.sleep(0)
        return c:upper()
      end))
    end)
    assert.equal("A B C", s)
    assert.is_true(ticks > 0)
  end)

  it("blocks inside a generic-for iterator function", function()
    local ticks, sum = blocking(function()
      local function iter(n)
        local i = 0
        return function()
          green.sleep(0)
          i = i + 1
          if i <= n then return i end
        end
      end
      local s = 0
      for i in iter(5) do s = s + i end
      return s
    end)
    assert.equal(15, sum)
    assert.is_true(ticks > 0)
  end)

  it("blocks inside a required chunk", function()
    package.preload["spec.blocking_module"] = function()
      green.sleep(0.001)
      return {loaded = true}
    end
    local ticks, m = blocking(function()
      return require("spec.blocking_module")
    end)
    assert.is_true(m.loaded)
    assert.is_true(ticks > 0)
    package.loaded["spec.blocking_module"] = nil
  end)

  it("blocks inside a load()ed chunk and a dofile-like call", function()
    local ticks, v = blocking(function()
      local f = assert(load("local green = ...; green.sleep(0); return 9"))
      return f(green)
    end)
    assert.equal(9, v)
    assert.is_true(ticks > 0)
  end)

  it("suspends the whole greenthread from a coroutine.wrap generator, " ..
     "which still works as a generator afterwards", function()
    local ticks, list = blocking(function()
      local gen = coroutine.wrap(function()
        for i = 1, 3 do
          green.sleep(0)       -- blocks the greenthread, not the coroutine
          coroutine.yield(i)   -- yields to the consumer as usual
        end
      end)
      return table.concat({gen(), gen(), gen()}, " ")
    end)
    assert.equal("1 2 3", list)
    assert.is_true(ticks > 0)
  end)

  it("works from nested coroutines and keeps their statuses right", function()
    local _, s1, s2 = blocking(function()
      local inner
      local outer = coroutine.create(function()
        inner = coroutine.create(function()
          green.sleep(0.001)
          coroutine.yield("inner")
          return "done"
        end)
        local _, v = coroutine.resume(inner)
        coroutine.yield(v)
      end)
      local _, v = coroutine.resume(outer)
      return v, coroutine.status(inner)
    end)
    assert.equal("inner", s1)
    assert.equal("suspended", s2)
  end)

  it("names the running greenthread from inside a coroutine", function()
    local g
    g = green.spawn(function()
      return coroutine.wrap(function() return green.getcurrent() end)()
    end)
    assert.equal(g, g:get())
  end)
end)

describe("a greenthread's C stack", function()
  -- Each recursion goes through a C boundary, so Lua's LUAI_MAXCCALLS
  -- (200) stops it with "C stack overflow" before the C stack runs out;
  -- the default stack size is chosen so that every kind here fits.
  local kinds = {
    pcall = function()
      local function f() local ok, e = pcall(f); if not ok then error(e, 0) end end
      f()
    end,
    gsub = function()
      local function f() return (("x"):gsub("x", f)) end
      f()
    end,
    sort = function()
      local function f() table.sort({3, 2, 1}, function(a, b) f(); return a < b end) end
      f()
    end,
    index = function()
      local t = setmetatable({}, {})
      getmetatable(t).__index = function(_, k) return t[k] end
      return t.x
    end,
    format = function()
      local t = setmetatable({}, {})
      getmetatable(t).__tostring = function(o) return ("%s"):format(o) end
      return ("%s"):format(t)
    end,
    wrap = function()
      local function f() return coroutine.wrap(f)() end
      f()
    end,
    parser = function()
      assert(load("return " .. ("("):rep(300) .. "1" .. (")"):rep(300)))
    end,
  }
  for name, fn in pairs(kinds) do
    it("stops a deep recursion through " .. name ..
       " with a Lua error, not a crash", function()
      local g = green.spawn(pcall, fn)
      local ok, err = g:get()
      assert.is_false(ok)
      assert.matches("stack overflow", tostring(err))
    end)
  end
end)
