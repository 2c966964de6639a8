-- green.Pile (API.md "Groups and pools"): calls spawned in a pool whose
-- first results pile:iter() yields in spawn order.

local green = require "green"

local helpers = require "spec.helpers"
local errorof, raises = helpers.errorof, helpers.raises

local function collect(...)
  local out = {}
  for v in ... do out[#out + 1] = v end
  return out
end

describe("green.Pile", function()
  it("yields the first results in spawn order, not completion order",
     function()
    local pile = green.Pile()
    for i = 1, 4 do
      pile:spawn(function(x)
        green.sleep(0.002 * (5 - x))
        return x * 10, "second value"
      end, i)
    end
    assert.same({10, 20, 30, 40}, collect(pile:iter()))
  end)

  it("spawn returns the greenthread and passes the arguments", function()
    local pile = green.Pile()
    local g = pile:spawn(function(a, b) return a .. b end, "x", "y")
    assert.equal("green.Greenthread", getmetatable(g).__name)
    assert.equal("xy", g:get())
    assert.same({"xy"}, collect(pile:iter()))
  end)

  it("runs at most size calls at once with Pile(size)", function()
    local pile, running, most = green.Pile(2), 0, 0
    for i = 1, 5 do
      pile:spawn(function()
        running = running + 1
        most = math.max(most, running)
        green.sleep(0.001)
        running = running - 1
        return i
      end)
    end
    assert.same({1, 2, 3, 4, 5}, collect(pile:iter()))
    assert.equal(2, most)
  end)

  it("spawns in the pool it is given", function()
    local pool = green.Pool(1)
    local pile = green.Pile(pool)
    local g = pile:spawn(green.sleep, 0.001)
    assert.is_true(pool:has(g))
    assert.is_true(pool:full())
    collect(pile:iter())
    assert.equal(1, pool:free_count())
  end)

  it("ends the iteration once every call spawned has been read", function()
    local pile = green.Pile()
    assert.same({}, collect(pile:iter()))
    pile:spawn(function() return 1 end)
    assert.same({1}, collect(pile:iter()))
    pile:spawn(function() return 2 end)
    assert.same({2}, collect(pile:iter()))
    assert.equal(0, #pile)
  end)

  it("skips nil results", function()
    local pile = green.Pile()
    for i = 1, 3 do
      pile:spawn(function() if i ~= 2 then return i end end)
    end
    assert.same({1, 3}, collect(pile:iter()))
  end)

  it("raises a call's error, the very value, when its turn comes",
     function()
    local pile = green.Pile()
    local E = setmetatable({}, {__tostring = function() return "E" end})
    pile:spawn(function() return 1 end)
    pile:spawn(error, E)
    pile:spawn(function() return 3 end)
    local it = pile:iter()
    assert.equal(1, it())
    assert.equal(E, errorof(it))
    assert.equal(3, it())
    assert.is_nil(it())
  end)

  it("yields GreenletExit for a killed call", function()
    local pile = green.Pile()
    local g = pile:spawn(green.sleep, 10)
    local h = pile:spawn(function() return "never" end)
    h:kill()  -- before it started
    green.sleep(0)
    g:kill()
    assert.same({green.GreenletExit, green.GreenletExit},
                collect(pile:iter()))
  end)

  it("rejects bad arguments", function()
    raises("bad argument #1 to 'Pile' (number or green.Pool expected, "
           .. "got string)", function() green.Pile("x") end)
    raises("bad argument #1 to 'Pile' (positive integer expected, got 0)",
           function() green.Pile(0) end)
    local pile = green.Pile()
    raises("bad argument #1 to 'spawn' (function expected, got number)",
           function() pile:spawn(1) end)
    raises("calling 'iter' on bad self", function() pile.iter() end)
  end)
end)
