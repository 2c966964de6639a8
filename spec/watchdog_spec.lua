-- green.watchdog (API.md "Observability and testing"): a greenthread that
-- runs too long without letting others run is reported with its name and
-- traceback, or interrupted with a catchable error; the program goes on.

local green = require "green"
local h = require "spec.helpers"
local q = h.q

local FIX = "spec/fixtures/observe_watchdog.lua"

local function spin(s)
  local t0 = green.now()
  while green.now() - t0 < s do end
end

local function has(s, needle)
  assert(s:find(needle, 1, true), ("expected %q in:\n%s"):format(needle, s))
end

describe("green.watchdog", function()
  after_each(function() green.watchdog(nil) end)

  it("reports a runaway greenthread's name and traceback on stderr",
     function()
    local out, err, status = h.greenlua(q(FIX) .. " report")
    assert.equal(0, status, err)
    assert.equal("went on\n", out)
    assert.truthy(err:find("greenlua: watchdog: greenthread 'spinner' %(id "
      .. "%d+%) has run [%d.]+ s without letting others run %(limit 0.05 s%)"
      .. "\nstack traceback:\n"), err)
    has(err, "observe_watchdog.lua:10: in ")  -- the loop in spin
  end)

  it("hooks the coroutine a greenthread runs in", function()
    local out, err, status = h.greenlua(q(FIX) .. " coroutine")
    assert.equal(0, status, err)
    assert.equal("went on\n", out)
    has(err, "watchdog: greenthread 'in-coroutine'")
    has(err, "observe_watchdog.lua:26: in ")  -- spin's call, in co
    has(err, "in the greenthread:")
  end)

  it("reports a greenthread stuck in a C function by name, then its "
     .. "traceback once the function returns", function()
    local out, err, status = h.greenlua(q(FIX) .. " cfunction")
    assert.equal(0, status, err)
    assert.equal("went on\n", out)
    assert.truthy(err:find("watchdog: greenthread 'sorter' %(id %d+%) has "
      .. "run [%d.]+ s without letting others run %(limit 0.05 s%), inside a "
      .. "C function; its traceback follows when it returns\n"), err)
    has(err, "in function 'table.sort'")
  end)

  it("is off after green.watchdog(nil)", function()
    local out, err, status = h.greenlua(q(FIX) .. " off")
    assert.equal(0, status, err)
    assert.equal("went on\n", out)
    assert.equal("", err)
  end)

  it("lets SIGINT stop the main chunk while it watches", function()
    local out, err, status = h.signalled(FIX, "sigint", "INT", 0.2)
    assert.equal(1, status, err)
    assert.equal("", out)
    has(err, "watchdog: greenthread 'main'")
    has(err, "interrupted!")
  end)

  it("with interrupt, raises a catchable error naming itself and the limit"
     .. " in the runaway greenthread, and the program goes on", function()
    green.watchdog(0.05, {interrupt = true})
    local other = false
    green.spawn(function() other = true end)
    local g = green.spawn(function()
      local ok, err = pcall(spin, 30)
      return ok, err, green.now()
    end)
    g.name = "runaway"
    local ok, err = g:get()
    assert.is_false(ok)
    assert.truthy(tostring(err):find("watchdog: greenthread 'runaway' "
      .. "%(id %d+%) ran [%d.]+ s without letting others run %(limit "
      .. "0.05 s%)"), err)
    assert.is_true(other)
    green.sleep(0)
  end)

  it("interrupts an uncaught runaway, which fails alone", function()
    green.watchdog(0.05, {interrupt = true})
    local g = green.spawn(spin, 30)
    g.name = "doomed"
    g:join()
    assert.is_false(g:successful())
    assert.truthy(tostring(g.error):find("watchdog: greenthread 'doomed'",
      1, true))
  end)

  it("puts a user's own debug hook back", function()
    green.watchdog(0.05)
    local function f() end
    green.watchdog(0.05, {interrupt = true})
    local g = green.spawn(function()
      debug.sethook(f, "l", 7)
      pcall(spin, 30)
      local hk, mask, count = debug.gethook()
      debug.sethook()
      return hk, mask, count
    end)
    local hk, mask, count = g:get()
    assert.equal(f, hk)
    assert.equal("l", mask)
    assert.equal(7, count)
  end)

  it("leaves greenthreads that let others run alone", function()
    green.watchdog(0.05, {interrupt = true})
    local t0 = green.now()
    while green.now() - t0 < 0.3 do green.sleep(0) end
  end)

  it("checks its arguments", function()
    h.raises("bad argument #1 to 'watchdog'", function() green.watchdog(0) end)
    h.raises("bad argument #1 to 'watchdog'",
      function() green.watchdog("x") end)
    h.raises("bad argument #2 to 'watchdog'",
      function() green.watchdog(1, 2) end)
  end)
end)
