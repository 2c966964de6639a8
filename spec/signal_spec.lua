-- green.signal and green.getpid, with signals sent by kill(1) from
-- another process; the default behaviour of SIGTERM and SIGINT without
-- handlers, and after the last handler is cancelled, in child greenlua
-- processes.

local green = require "green"
local sp = require "green.subprocess"
local h = require "spec.helpers"

-- Sends signal `sig` to `pid` with kill(1).
local function kill(sig, pid)
  assert(os.execute(("kill -%s %d"):format(sig, pid)))
end

-- Starts the fixture in `mode` and returns it once it says "ready".
local function child(mode)
  local p = assert(sp.spawn({h.BIN, "spec/fixtures/signal_child.lua", mode},
    {stdout = "pipe", stderr = "pipe", stdin = "null"}))
  assert.equal("ready", p.stdout:receive())
  return p
end

describe("green.signal", function()
  it("runs the handler in a new greenthread each time the signal arrives",
     function()
    local got, e = {}, green.Event()
    local hd = green.signal("SIGUSR1", function(name)
      got[#got + 1] = {name, green.getcurrent().id}
      if #got == 2 then e:set() end
    end)
    kill("USR1", green.getpid())
    while #got < 1 do green.sleep(0.001) end
    kill("USR1", green.getpid())
    assert.is_true(e:wait(5))
    assert.equal("SIGUSR1", got[1][1])
    assert.are_not.equal(got[1][2], got[2][2])  -- two greenthreads
    assert.are_not.equal(green.getcurrent().id, got[1][2])
    hd:cancel()
  end)

  it("runs every handler of a signal, in the order they were added",
     function()
    local order, e = {}, green.Event()
    local h1 = green.signal("SIGUSR2", function() order[#order + 1] = 1 end)
    local h2 = green.signal("USR2", function(name)
      order[#order + 1] = name
      e:set()
    end)
    kill("USR2", green.getpid())
    assert.is_true(e:wait(5))
    green.sleep(0)
    assert.same({1, "SIGUSR2"}, order)
    h1:cancel()
    h2:cancel()
    h2:cancel()  -- twice: nothing more
    assert.matches("^green.SignalHandler %(SIGUSR2, cancelled%)",
                   tostring(h2))
  end)

  it("reports an error in a handler and goes on", function()
    local p = assert(sp.spawn({h.BIN, "-e", [[
      io.stdout:setvbuf("no")
      local done = green.Event()
      green.signal("SIGUSR1", function() error("handler failed") end)
      green.signal("SIGUSR1", function() done:set() end)
      print("ready")
      done:wait()
      print("after")]]}, {stdout = "pipe", stderr = "pipe"}))
    assert.equal("ready", p.stdout:receive())
    kill("USR1", p.pid)
    assert.equal("after", p.stdout:receive())
    assert.same({0, nil}, {p:wait()})
    assert.matches("handler failed", p.stderr:receive("*a"))
  end)

  it("raises an error naming the argument for a bad signal", function()
    h.raises("bad argument #1 to 'signal' (unknown signal 'SIGNOPE')",
             function() green.signal("SIGNOPE", print) end)
    h.raises("SIGKILL cannot be caught",
             function() green.signal("SIGKILL", print) end)
    h.raises("bad argument #2 to 'signal' (function expected",
             function() green.signal("SIGTERM") end)
  end)

  it("lets a handled SIGTERM end the program as the handler decides",
     function()
    local p = child("handled")
    kill("TERM", p.pid)
    assert.equal("got SIGTERM", p.stdout:receive())
    assert.same({0, nil}, {p:wait()})
  end)

  it("gives the signal its default action back once the last handler is "
     .. "cancelled", function()
    local p = child("cancelled")
    kill("USR1", p.pid)
    assert.same({nil, "SIGUSR1"}, {p:wait()})
    assert.equal("", p.stdout:receive("*a"))
  end)

  it("keeps SIGPIPE ignored after its last handler goes", function()
    local hd = green.signal("SIGPIPE", function() end)
    hd:cancel()
    local ign = h.slurp("/proc/self/status"):match("SigIgn:%s*(%x+)")
    assert.is_true(tonumber(ign:sub(-8), 16) & (1 << 12) ~= 0)
    local a, b = green.socket.socketpair()
    b:close()
    assert.same({nil, "closed", 0}, {a:send("x")})  -- not killed
    a:close()
  end)
end)

describe("without handlers", function()
  it("SIGTERM ends greenlua as it ends lua5.4", function()
    local p = child("plain")
    kill("TERM", p.pid)
    assert.same({nil, "SIGTERM"}, {p:wait()})
  end)

  it("SIGINT interrupts the running chunk as in lua5.4", function()
    local p = child("busy")
    kill("INT", p.pid)
    assert.same({1, nil}, {p:wait()})
    assert.matches("interrupted!", p.stderr:receive("*a"))
  end)
end)

describe("green.getpid", function()
  it("is the process id the parent sees", function()
    local r = assert(sp.run({h.BIN, "-e", "print(green.getpid())"}))
    local p = assert(sp.spawn({h.BIN, "-e", "print(green.getpid())"},
                              {stdout = "pipe"}))
    assert.equal(tostring(p.pid), p.stdout:receive())
    p:wait()
    assert.matches("^%d+\n$", r.stdout)
    assert.equal(green.getpid(), tonumber(h.slurp("/proc/self/stat")
                                            :match("^%d+")))
  end)
end)
