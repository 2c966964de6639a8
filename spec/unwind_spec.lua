-- A greenthread parked in sleep, Event:wait, join/get, AsyncResult,
-- Semaphore or a Queue gives its stack up when another greenthread needs
-- that stack: its frames unwind, and once woken it goes on where it was.
-- These specs park a greenthread, crowd its shared stack with others so
-- that it unwinds, and check what the call returns or raises afterwards.
-- (The suite also runs whole with GREENLUA_UNWIND_EAGERLY=1, which gives
-- the stack up at every such wait.)
local green = require "green"

local held, holders

-- Parks n greenthreads on `held`: past the private stacks, each one
-- started displaces whoever parked last on the shared stack it gets.
local function crowd(n)
  for _ = 1, n or 140 do
    holders[#holders + 1] = green.spawn(function() held:wait() end)
  end
  green.sleep(0)
end

-- Starts fn in a greenthread, lets it park, then crowds the stacks.
local function parked(fn, ...)
  crowd(70)  -- the private stacks are taken: fn's greenthread shares one
  local g = green.spawn(fn, ...)
  green.sleep(0)
  crowd(140)
  return g
end

describe("a parked greenthread that gives its stack up", function()
  before_each(function()
    held, holders = green.Event(), {}
  end)

  after_each(function()
    held:set()
    assert.is_true(green.joinall(holders, 10) ~= nil)
  end)

  it("is counted by green.stats and ends its wait where it was", function()
    local before = green.stats().unwinds
    local ev = green.Event()
    local g = parked(function(a, b)
      local x = a + b
      local ok = ev:wait()
      return ok, x, "after"
    end, 1, 2)
    if green.stats().shared_stacks > 0 then  -- not in sanitizer builds
      assert.is_true(green.stats().unwinds > before)
      assert.is_true(green.stats().unwound > 0)
    end
    ev:set()
    local ok, x, after = g:get(5)
    assert.same({ true, 3, "after" }, { ok, x, after })
  end)

  it("returns from sleep and from a wait that times out", function()
    local ev = green.Event()
    local g = parked(function()
      green.sleep(0.01)
      local t0 = green.now()
      local r = table.pack(ev:wait(0.02))
      return r, green.now() - t0
    end)
    local r, waited = g:get(5)
    assert.same({ n = 2, nil, "timeout" }, r)
    assert.is_true(waited >= 0.02)
  end)

  it("gets join, get and AsyncResult values and errors", function()
    local ar, bad = green.AsyncResult(), green.AsyncResult()
    local worker = green.spawn(function() held:wait(); return "w1", "w2" end)
    local g = parked(function()
      local a, b = worker:get()
      local joined = worker:join()
      local v = ar:get()
      local ok, err = pcall(bad.get, bad)
      return a, b, joined, v, ok, err
    end)
    crowd(70)
    ar:set("value")
    bad:set_error("failed")
    held:set()
    local a, b, joined, v, ok, err = g:get(5)
    assert.same({ "w1", "w2", true, "value", false, "failed" },
                { a, b, joined, v, ok, err })
  end)

  it("takes the Semaphore count it was handed", function()
    local sem = green.Semaphore(0)
    local g = parked(function()
      local got = sem:acquire()
      local again = table.pack(sem:acquire(0.01))
      return got, again
    end)
    sem:release()
    local got, again = g:get(5)
    assert.is_true(got)
    assert.same({ n = 2, nil, "timeout" }, again)
    assert.equal(0, sem:count())
  end)

  it("gets and puts Queue and Channel items in order", function()
    local q, full, ch = green.Queue(), green.Queue(1), green.Channel()
    full:put("first")
    local getter = parked(function()
      local items = {}
      for item in q:iter() do items[#items + 1] = item end
      return items
    end)
    local putter = parked(function()
      assert(full:put("second"))
      assert(ch:put("handed"))
      return "put"
    end)
    q:put(1); q:put(2)
    crowd(70)
    q:put(3)
    q:close()
    assert.same({ 1, 2, 3 }, getter:get(5))
    assert.equal("first", full:get())
    assert.equal("handed", ch:get(5))
    assert.equal("put", putter:get(5))
    assert.equal("second", full:get())
  end)

  it("receives bytes that arrive in pieces, in order with others", function()
    local lsock = assert(green.socket.listen("127.0.0.1", 0))
    local _, port = lsock:getsockname()
    local c = assert(green.socket.connect("127.0.0.1", port))
    local s = assert(lsock:accept())
    local first = parked(function() return s:receive(10) end)
    local second = parked(function() return s:receive("*l") end)
    assert(c:send("01234"))
    crowd(70)
    assert(c:send("56789line\n"))
    assert.equal("0123456789", first:get(5))
    assert.equal("line", second:get(5))
    c:close(); s:close(); lsock:close()
  end)

  it("raises a kill inside the pcall it waits in", function()
    local ev = green.Event()
    local g = parked(function()
      local ok, err = pcall(function() ev:wait() end)
      return ok, err
    end)
    g:kill("stop", false)
    local ok, err = g:get(5)
    assert.same({ false, "stop" }, { ok, err })
  end)

  it("closes its to-be-closed variables when it fails afterwards", function()
    local ev, closed = green.Event(), nil
    local g = parked(function()
      local _ <close> = setmetatable({}, {
        __close = function(_, e) closed = e end })
      ev:wait()
      error("boom", 0)
    end)
    ev:set()
    assert.is_false(g:join(5) and g:successful())
    assert.equal("boom", g.error)
    assert.equal("boom", closed)
  end)

  it("stays parked when its Lua thread is resumed by anyone else", function()
    local ev, co = green.Event(), nil
    local g = parked(function()
      co = coroutine.running()
      return ev:wait(), "woken"
    end)
    -- unwound, it yields again at once; else Lua refuses (not suspended)
    coroutine.resume(co)
    green.sleep(0)
    assert.is_false(g:ready())
    ev:set()
    local ok, woken = g:get(5)
    assert.same({ true, "woken" }, { ok, woken })
  end)
end)

describe("greenthreads that fail at the same time", function()
  it("keep their own errors while their __close handlers block", function()
    local ev = green.Event()
    local mt = { __tostring = function(e)
      green.sleep(0.001)
      return "E" .. e.n
    end }
    local gs, closed = {}, {}
    for i = 1, 3 do
      gs[i] = green.spawn(function()
        local _ <close> = setmetatable({}, { __close = function(_, e)
          green.sleep(0.005 * (4 - i))
          closed[i] = e.n
        end })
        ev:wait()
        error(setmetatable({ n = i }, mt))
      end)
    end
    green.sleep(0)
    ev:set()
    green.joinall(gs)
    for i = 1, 3 do
      assert.equal(i, gs[i].error.n)
      assert.equal(i, closed[i])
    end
  end)
end)

describe("coroutine.yield outside any coroutine of a greenthread", function()
  it("fails the greenthread as Lua would", function()
    local g = green.spawn(function() coroutine.yield(1) end)
    g:join()
    assert.is_false(g:successful())
    assert.matches("attempt to yield from outside a coroutine", g.error)
  end)

  it("is not offered: coroutine.isyieldable says false there", function()
    local g = green.spawn(function()
      local co = coroutine.create(function() return coroutine.isyieldable() end)
      local _, inner = coroutine.resume(co)
      return coroutine.isyieldable(), coroutine.isyieldable(coroutine.running()),
             inner, coroutine.isyieldable(co)
    end)
    assert.same({ false, false, true, true }, { g:get() })  -- as Lua: co is dead
    assert.is_false(coroutine.isyieldable())
    assert.error_matches(function() coroutine.isyieldable(1) end,
                         "bad argument #1 to '[%w.]*isyieldable'")
  end)
end)
