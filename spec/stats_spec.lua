-- green.stats (API.md "Observability and testing"): greenthreads alive and
-- by state, what they wait on, switches, the loop's turns, timers, open
-- sockets, and the stack figures.

local green = require "green"
local h = require "spec.helpers"

local function park(fn, ...)
  local g = green.spawn(fn, ...)
  green.sleep(0)
  return g
end

describe("green.stats", function()
  it("has every figure", function()
    local s = green.stats()
    for _, k in ipairs{"greenthreads", "switches", "loop_iterations",
                       "timers", "sockets", "tls_streams", "tls_buffered",
                       "stacks_total", "stacks_pooled",
                       "stack_size", "private_stacks", "shared_stacks",
                       "displaced", "saved_bytes", "displacements",
                       "unwound", "unwinds", "trims", "trimmed_bytes",
                       "guards_madvise",
                       "guards_mprotect", "guards_none"} do
      assert.equal("number", math.type(s[k]) and "number", k)
    end
    for _, k in ipairs{"running", "ready", "waiting", "new"} do
      assert.equal("integer", math.type(s.states[k]), k)
    end
    for _, k in ipairs{"sleep", "event", "asyncresult", "queue",
                       "semaphore", "join", "socket", "dns", "fd", "child",
                       "signal", "others", "other"} do
      assert.equal("integer", math.type(s.waiting[k]), k)
    end
    assert.equal(1, s.states.running)
  end)

  it("counts greenthreads by state and by what they wait on", function()
    local e, qu, lock = green.Event(), green.Queue(), green.Lock()
    lock:acquire()
    local before = green.stats()
    local gs = {
      park(green.sleep, 10),
      park(green.sleep, 10),
      park(e.wait, e),
      park(qu.get, qu),
      park(lock.acquire, lock),
    }
    gs[#gs + 1] = park(gs[3].join, gs[3])
    local fresh = green.spawn(function() end)
    local s = green.stats()
    assert.equal(before.greenthreads + 7, s.greenthreads)
    assert.equal(before.states.waiting + 6, s.states.waiting)
    assert.equal(before.states.new + 1, s.states.new)
    assert.equal(before.waiting.sleep + 2, s.waiting.sleep)
    assert.equal(before.waiting.event + 1, s.waiting.event)
    assert.equal(before.waiting.queue + 1, s.waiting.queue)
    assert.equal(before.waiting.semaphore + 1, s.waiting.semaphore)
    assert.equal(before.waiting.join + 1, s.waiting.join)
    assert.equal(before.timers + 2, s.timers)
    e:set()
    local s2 = green.stats()
    assert.equal(before.states.ready + 1, s2.states.ready)  -- the woken
    green.killall(gs)
    lock:release()
    fresh:join()
    local s3 = green.stats()
    assert.equal(before.greenthreads, s3.greenthreads)
    assert.equal(before.timers, s3.timers)
    assert.equal(before.waiting.sleep, s3.waiting.sleep)
  end)

  it("counts switches and turns of the loop", function()
    local s = green.stats()
    for _ = 1, 10 do green.sleep(0) end
    green.sleep(0.001)
    local s2 = green.stats()
    assert.is_true(s2.switches >= s.switches + 10)
    assert.is_true(s2.loop_iterations > s.loop_iterations)
  end)

  it("counts open sockets and the greenthreads waiting on them", function()
    local s = green.stats()
    local srv = assert(green.socket.listen("127.0.0.1", 0))
    local _, port = srv:getsockname()
    local u = green.socket.udp()
    local c = assert(green.socket.connect("127.0.0.1", port))
    local a = assert(srv:accept())
    local g = park(c.receive, c)
    local s2 = green.stats()
    assert.equal(s.sockets + 4, s2.sockets)
    assert.equal(s.waiting.socket + 1, s2.waiting.socket)
    c:close(); a:close(); srv:close(); u:close()
    g:join()
    local s3 = green.stats()
    assert.equal(s.sockets, s3.sockets)
    assert.equal(s.waiting.socket, s3.waiting.socket)
  end)

  it("gives back, once the hub is quiet, the stack a parked greenthread used deep down", function()
    -- in a process of its own, where the greenthread surely gets a private
    -- stack (the suite's modes share or give up stacks; nothing to trim)
    local script = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write([[
      local green = require "green"
      local ev, depth = green.Event(), 0
      local function dive(n)  -- each level a C call: pcall
        depth = math.max(depth, n)
        if n < 150 then assert(pcall(dive, n + 1)) end
      end
      local g = green.spawn(function()
        dive(1)
        ev:wait()  -- parked shallow, on its own stack
      end)
      for _ = 1, 2000 do green.sleep(0) end  -- busy: a trim is due when quiet
      assert(depth == 150)
      local before = green.stats()
      green.sleep(0.8)  -- quiet
      local after = green.stats()
      ev:set()
      g:join()
      print(after.trims - before.trims, after.trimmed_bytes - before.trimmed_bytes,
            g:successful())
    ]])
    f:close()
    local out, err, status = h.greenlua(h.q(script),
      {env = "-u GREENLUA_PRIVATE_STACKS -u GREENLUA_UNWIND_EAGERLY"})
    os.remove(script)
    assert.equal(0, status, err)
    local trims, bytes, ok = out:match("^(%d+)%s+(%d+)%s+(%a+)")
    assert.is_true(tonumber(trims) >= 1, out)
    assert.is_true(tonumber(bytes) >= 16384, out)
    assert.equal("true", ok)
  end)
end)
