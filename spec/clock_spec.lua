-- green.virtual_clock and GREENLUA_VIRTUAL_CLOCK (API.md "Observability and
-- testing"): when every greenthread waits only for time or for another,
-- the clock jumps to the next deadline; orders and results are those of
-- the real clock.

local green = require "green"
local h = require "spec.helpers"
local q = h.q

local VIRTUAL = "GREENLUA_VIRTUAL_CLOCK=1"

describe("green.virtual_clock", function()
  it("turns on and off, and says whether it was on", function()
    local was = green.virtual_clock(false)
    assert.is_false(green.virtual_clock())
    assert.is_true(green.virtual_clock(true))
    assert.is_true(green.virtual_clock(false))
    assert.is_false(green.virtual_clock(was))
  end)

  it("runs a function under it and sets it back, also after an error",
     function()
    local was = green.virtual_clock(false)
    local t0 = green.now()
    local on, v = green.virtual_clock(function(x)
      green.sleep(0.01)
      return green.virtual_clock(true), x
    end, "arg")
    assert.is_true(on)
    assert.equal("arg", v)
    assert.is_true(green.now() - t0 >= 0.01)
    assert.is_false(green.virtual_clock(false))
    local E = {}
    assert.equal(E, h.errorof(green.virtual_clock, function() error(E) end))
    assert.is_false(green.virtual_clock(was))
  end)

  it("gives the same orders and results as the real clock", function()
    local fix = q("spec/fixtures/observe_clock.lua")
    local real, err, status = h.greenlua(fix)
    assert.equal(0, status, err)
    local virtual, verr, vstatus = h.greenlua(fix, {env = VIRTUAL})
    assert.equal(0, vstatus, verr)
    assert.truthy(real:find("elapsed at least\ttrue\n", 1, true), real)
    assert.equal(real, virtual)
  end)

  it("runs an hour of sleeps and timeouts in no time", function()
    local out, err, status = h.greenlua(q("spec/fixtures/observe_hour.lua"),
      {env = VIRTUAL})
    assert.equal(0, status, err)
    local clock, real = out:match("^clock (%d+) real ([%d.]+)\n$")
    assert.truthy(clock, out)
    assert.is_true(tonumber(clock) >= 3600)
    assert.is_true(tonumber(real) < 60)
  end)

  it("keeps real time while I/O is in flight", function()
    local out, err, status = h.greenlua(q("spec/fixtures/observe_clock_io.lua"))
    assert.equal(0, status, err)
    assert.equal("receiving: real true clock true\nreceived\tline\n"
      .. "closed: real true clock true\n", out)
  end)

  it("still reports a deadlock", function()
    local out, err, status = h.greenlua(q("spec/fixtures/observe_vdeadlock.lua"),
      {env = VIRTUAL})
    assert.equal(1, status)
    assert.equal("slept an hour\n", out)
    assert.truthy(err:find("greenlua: deadlock", 1, true), err)
    assert.truthy(err:find("greenthread 'stuck' (id 2) is blocked", 1, true),
      err)
  end)

  it("is shown in green.dump", h.virtual(function()
    assert.truthy(green.dump():match("^greenlua: %d+ greenthreads at [%d.]+ "
      .. "s %(virtual clock%)\n"))
  end))
end)
