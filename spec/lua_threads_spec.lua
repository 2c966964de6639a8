-- The Lua threads greenthreads run on (host/green.c): finished
-- greenthreads give theirs to a pool for the next ones, which must find
-- nothing of the last one there; and a thread handed out by
-- coroutine.running() behaves, from elsewhere, as a coroutine that is
-- busy (while its greenthread lives) or dead (after), never as the
-- thread of another greenthread.

local green = require "green"

describe("a pooled Lua thread", function()
  it("does not run a hook set by the greenthread that had it", function()
    local hits = 0
    for _ = 1, 3 do  -- ends several, so that the next takes one of theirs
      green.spawn(function()
        debug.sethook(function() hits = hits + 1 end, "l")
      end):join()
    end
    hits = 0
    local g = green.spawn(function()
      local x = 0
      for i = 1, 10 do x = x + i end
      return x
    end)
    assert.equal(55, g:get())
    assert.equal(0, hits)
  end)

  it("does not keep a count hook either", function()
    local hits = 0
    green.spawn(function()
      debug.sethook(function() hits = hits + 1 end, "", 1)
    end):join()
    hits = 0
    green.spawn(function()
      for _ = 1, 100 do end
    end):join()
    assert.equal(0, hits)
  end)

  it("keeps a hook set inside a greenthread for its own life", function()
    local hits = 0
    local g = green.spawn(function()
      debug.sethook(function() hits = hits + 1 end, "l")
      green.sleep(0)
      local x = 1
      x = x + 1
      debug.sethook()
      return x
    end)
    assert.equal(2, g:get())
    assert.is_true(hits > 0)
  end)
end)

describe("coroutine.running() in a greenthread", function()
  it("gives a handle that stays dead once the greenthread ended", function()
    local co
    green.spawn(function() co = coroutine.running() end):join()
    local e = green.Event()
    local later = {}
    for i = 1, 5 do  -- would take the pooled thread
      later[i] = green.spawn(function() e:wait(); return i end)
    end
    green.sleep(0)
    assert.equal("dead", coroutine.status(co))
    local ok, err = coroutine.resume(co)
    assert.is_false(ok)
    assert.equal("cannot resume dead coroutine", err)
    assert.is_true(coroutine.close(co))
    e:set()
    for i = 1, 5 do assert.equal(i, later[i]:get()) end
  end)

  it("gives a handle that other greenthreads cannot resume or close",
    function()
      local co
      local e = green.Event()
      local g = green.spawn(function()
        co = coroutine.running()
        e:wait()
        return "went on"
      end)
      green.sleep(0)
      assert.equal("normal", coroutine.status(co))
      local ok, err = coroutine.resume(co)
      assert.is_false(ok)
      assert.equal("cannot resume non-suspended coroutine", err)
      assert.has_error(function() coroutine.close(co) end,
                       "cannot close a normal coroutine")
      assert.is_false(coroutine.isyieldable(co))
      e:set()
      assert.equal("went on", g:get())
      assert.equal("dead", coroutine.status(co))
    end)

  it("is the running coroutine, and not the main one", function()
    local g = green.spawn(function()
      local co, ismain = coroutine.running()
      return coroutine.status(co), ismain
    end)
    local status, ismain = g:get()
    assert.equal("running", status)
    assert.is_false(ismain)
  end)

  it("leaves plain coroutines alone", function()
    local got = {}
    local g = green.spawn(function()
      local co = coroutine.create(function(a)
        local b = coroutine.yield(a + 1)
        green.sleep(0)
        return b * 2
      end)
      got[1] = {coroutine.resume(co, 1)}
      got[2] = coroutine.status(co)
      got[3] = {coroutine.resume(co, 5)}
      got[4] = coroutine.status(co)
      got[5] = {coroutine.resume(co)}
      local dead = coroutine.create(function() error("x") end)
      coroutine.resume(dead)
      got[6] = {coroutine.close(dead)}
    end)
    g:join()
    assert.same({true, 2}, got[1])
    assert.equal("suspended", got[2])
    assert.same({true, 10}, got[3])
    assert.equal("dead", got[4])
    assert.same({false, "cannot resume dead coroutine"}, got[5])
    assert.is_false(got[6][1])
  end)
end)
