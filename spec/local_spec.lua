-- green.Local: fields separate for each greenthread, collected with it.
local green = require "green"

describe("green.Local", function()
  it("keeps the fields of each greenthread apart, the main one included",
     function()
    local l = green.Local()
    l.x = "main"
    local seen = {}
    local gs = {}
    for i = 1, 3 do
      gs[i] = green.spawn(function()
        seen[i] = {before = l.x}
        l.x = i
        green.sleep(0)
        seen[i].after = l.x
      end)
    end
    green.joinall(gs)
    for i = 1, 3 do assert.same({after = i}, seen[i]) end
    assert.equal("main", l.x)
  end)

  it("keeps two Locals apart", function()
    local a, b = green.Local(), green.Local()
    a.k = 1
    assert.is_nil(b.k)
    b.k = 2
    assert.equal(1, a.k)
  end)

  it("takes any key but nil, and forgets a field set to nil", function()
    local l, key = green.Local(), {}
    l[key] = "t"
    l[1] = "one"
    assert.equal("t", l[key])
    assert.equal("one", l[1])
    l[1] = nil
    assert.is_nil(l[1])
    assert.has_error(function() l[nil] = 1 end)
    green.spawn(function() l.unset = nil end):join()
  end)

  it("uses the greenthread, not the coroutine, running the code", function()
    local l = green.Local()
    l.v = "outer"
    local co = coroutine.wrap(function() coroutine.yield(l.v); l.v = "co" end)
    assert.equal("outer", co())
    co()
    assert.equal("co", l.v)
  end)

  it("lists the running greenthread's fields with pairs", function()
    local l = green.Local()
    l.a, l.b = 1, 2
    local got = {}
    for k, v in pairs(l) do got[k] = v end
    assert.same({a = 1, b = 2}, got)
    green.spawn(function()
      for _ in pairs(l) do error("sees another greenthread's field") end
    end):join()
  end)

  it("lets the fields of a finished greenthread be collected", function()
    local l = green.Local()
    local probe = setmetatable({}, {__mode = "v"})
    local g = green.spawn(function()
      local v = {}
      probe[1] = v
      l.v = v
    end)
    g:join()
    assert.is_not_nil(probe[1])
    g = nil  -- luacheck: ignore
    collectgarbage()
    collectgarbage()
    assert.is_nil(probe[1])
  end)

  it("names itself in tostring", function()
    assert.matches("^green.Local", tostring(green.Local()))
  end)
end)
