-- green.dump() and SIGQUIT (API.md "Observability and testing"): every
-- greenthread with its id, name, state, what it waits on and for how long,
-- and its traceback.

local green = require "green"
local h = require "spec.helpers"
local q = h.q

-- The part of a dump about the greenthread named `name`: its header line
-- and traceback, up to the blank line that ends it.
local function entry(dump, name)
  for block in (dump .. "\n"):gmatch("(.-)\n\n") do
    local id, n = block:match("^(%d+) (.-) %[")
    if n == name then return block, tonumber(id) end
  end
  error(("no greenthread %q in the dump:\n%s"):format(name, dump), 2)
end

-- The header line of an entry.
local function header(block) return block:match("^[^\n]*") end

local function addr(obj) return tostring(obj):match("0x%x+") end

local function has(s, needle)
  assert(s:find(needle, 1, true),
    ("expected %q in:\n%s"):format(needle, s))
end

-- Spawns fn(...) in a greenthread named `name` and lets it run to its
-- wait.
local function park(name, fn, ...)
  local g = green.spawn(function(...) return fn(...) end, ...)
  g.name = name
  green.sleep(0)
  return g
end

describe("green.dump", function()
  it("lists every greenthread, oldest first, with its id and name",
     function()
    local e = green.Event()
    local a = park("first", e.wait, e)
    local b = park("second", e.wait, e)
    local d = green.dump()
    local _, ia = entry(d, "first")
    local _, ib = entry(d, "second")
    assert.equal(a.id, ia)
    assert.equal(b.id, ib)
    assert.is_true(d:find("\n" .. ia .. " first", 1, true) <
                   d:find("\n" .. ib .. " second", 1, true))
    assert.truthy(d:match("^greenlua: %d+ greenthreads at [%d.]+ s\n"))
    e:set()
    green.joinall({a, b})
  end)

  it("shows the running greenthread, with the caller's traceback",
     function()
    local me = green.getcurrent()
    local block = entry(green.dump(), me.name)
    assert.equal(me.id .. " " .. me.name .. " [running]", header(block))
    has(block, "stack traceback:")
    has(block, "dump_spec.lua")
  end)

  it("shows new and ready greenthreads", function()
    local e = green.Event()
    local woken = park("woken", e.wait, e)
    local fresh = green.spawn(function() end)
    fresh.name = "fresh"
    e:set()
    local d = green.dump()
    assert.equal(fresh.id .. " fresh [new]", header(entry(d, "fresh")))
    has(entry(d, "fresh"), "(not started)")
    assert.equal(woken.id .. " woken [ready]", header(entry(d, "woken")))
    green.joinall({fresh, woken})
  end)

  it("shows a sleep with the time left and the wait so far", function()
    local g = park("sleeper", green.sleep, 30)
    local block = entry(green.dump(), "sleeper")
    local waited, left = header(block):match(
      "%[sleep, ([%d.]+) s%]: ([%d.]+) s left")
    assert.truthy(waited, header(block))
    assert.is_true(tonumber(left) > 25 and tonumber(left) <= 30)
    assert.is_true(tonumber(waited) < 5)
    has(block, "in function 'green.sleep'")
    g:kill()
  end)

  it("says how long a greenthread has waited", h.virtual(function()
    local e = green.Event()
    local g = park("patient", e.wait, e)
    green.sleep(90)
    local waited = header(entry(green.dump(), "patient"))
      :match("%[event, ([%d.]+) s%]")
    assert.is_true(tonumber(waited) >= 90 and tonumber(waited) < 100)
    e:set()
    g:join()
  end))

  it("names the Event, AsyncResult, queue or semaphore waited on",
     function()
    local e, r = green.Event(), green.AsyncResult()
    local qu, full, jq = green.Queue(), green.Queue(1), green.JoinableQueue()
    local lock = green.Lock()
    full:put(1)
    jq:put(1)
    lock:acquire()
    local gs = {
      park("ev", e.wait, e),
      park("ar", r.get, r),
      park("qget", qu.get, qu),
      park("qput", full.put, full, 2),
      park("qpeek", qu.peek, qu),
      park("qjoin", jq.join, jq),
      park("locked", lock.acquire, lock),
    }
    local d = green.dump()
    has(header(entry(d, "ev")), "[event, ")
    has(header(entry(d, "ev")), "green.Event: " .. addr(e))
    has(header(entry(d, "ar")), "[asyncresult, ")
    has(header(entry(d, "ar")), "green.AsyncResult: " .. addr(r))
    has(header(entry(d, "qget")), "[queue get, ")
    has(header(entry(d, "qget")), addr(qu))
    has(header(entry(d, "qput")), "[queue put, ")
    has(header(entry(d, "qput")), addr(full))
    has(header(entry(d, "qpeek")), "[queue peek, ")
    has(header(entry(d, "qjoin")), "[queue join, ")
    has(header(entry(d, "qjoin")), addr(jq))
    has(header(entry(d, "locked")), "[semaphore, ")
    has(header(entry(d, "locked")), addr(lock))
    has(entry(d, "locked"), "dump_spec.lua")
    green.killall(gs)
    lock:release()
  end)

  it("gives the time left until the timeout of a wait", function()
    local e = green.Event()
    local g = park("timed", e.wait, e, 20)
    local left = header(entry(green.dump(), "timed"))
      :match("([%d.]+) s left until its timeout")
    assert.is_true(tonumber(left) > 15 and tonumber(left) <= 20)
    g:kill()
  end)

  it("names the greenthread a join waits for", function()
    local e = green.Event()
    local target = park("target", e.wait, e)
    local joiner = park("joiner", target.join, target)
    has(header(entry(green.dump(), "joiner")),
        "[join, ")
    has(header(entry(green.dump(), "joiner")),
        ": greenthread " .. target.id .. " target")
    e:set()
    green.joinall({target, joiner})
  end)

  it("shows where a greenthread waits inside a plain coroutine", function()
    local e = green.Event()
    local g = park("inner", function()
      local co = coroutine.wrap(function()
        e:wait()  -- the wait
      end)
      co()
    end)
    local block = entry(green.dump(), "inner")
    has(block, "in a coroutine:")
    assert.truthy(block:find("dump_spec.lua:%d+: in function <spec/dump_spec.lua"),
      block)
    has(block, "in local 'co'")
    e:set()
    g:join()
  end)

  it("shows socket calls with the socket's address and its peer's",
     function()
    local srv = assert(green.socket.listen("127.0.0.1", 0))
    local _, port = srv:getsockname()
    local acceptor = park("acceptor", srv.accept, srv)
    local c = assert(green.socket.connect("127.0.0.1", port))
    local s = acceptor:get()
    local _, cport = c:getsockname()
    local reader = park("reader", c.receive, c, "*l")
    assert(s:setoption("sndbuf", 4096))  -- a send that has to wait
    assert(c:setoption("rcvbuf", 4096))
    local sender = park("sender", s.send, s, ("x"):rep(8 * 1024 * 1024))
    local lst = assert(green.socket.listen("127.0.0.1", 0))
    local waiter = park("acceptor2", lst.accept, lst)
    local d = green.dump()
    local r = header(entry(d, "reader"))
    has(r, "[receive, ")
    has(r, "green.socket.tcp: " .. addr(c))
    has(r, "address 127.0.0.1:" .. cport)
    has(r, "peer 127.0.0.1:" .. port)
    local w = header(entry(d, "sender"))
    has(w, "[send, ")
    has(w, "peer 127.0.0.1:" .. cport)
    local a = header(entry(d, "acceptor2"))
    has(a, "[accept, ")
    has(a, "address 127.0.0.1:" .. select(2, lst:getsockname()))
    c:close(); s:close(); srv:close(); lst:close()
    green.joinall({reader, sender, waiter})
    collectgarbage()  -- the data sent: specs after this one count memory
  end)

  it("shows UDP and Unix sockets", function()
    local u = green.socket.udp()
    assert(u:setsockname("127.0.0.1", 0))
    local _, uport = u:getsockname()
    local ur = park("udp", u.receive, u)
    local path = os.tmpname()
    os.remove(path)
    local us = assert(green.socket.unix())
    assert(us:bind(path))
    assert(us:listen())
    local ua = park("unix", us.accept, us)
    local d = green.dump()
    has(header(entry(d, "udp")), "[receive, ")
    has(header(entry(d, "udp")), "green.socket.udp: " .. addr(u))
    has(header(entry(d, "udp")), "address 127.0.0.1:" .. uport)
    has(header(entry(d, "unix")), "[accept, ")
    has(header(entry(d, "unix")), "address " .. path)
    u:close(); us:close()
    os.remove(path)
    green.joinall({ur, ua})
  end)

  it("shows a wait for a child process with its pid", function()
    local p = green.subprocess.spawn({"sleep", "30"})
    local g = park("parent", p.wait, p)
    local shell = park("shell", os.execute, "sleep 0.2")
    local d = green.dump()
    has(header(entry(d, "parent")), "[child, ")
    has(header(entry(d, "parent")), ": pid " .. p.pid)
    local shell_h = header(entry(d, "shell"))  -- started yet, or not
    assert.truthy(shell_h:match("%[child, [%d.]+ s%]: pid %d+")
      or shell_h:match("%[child, [%d.]+ s%]: starting a child"), shell_h)
    p:kill()
    green.joinall({g, shell})
  end)

  it("reads greenthreads that gave their stack up or had it copied out",
     function()
    local out, err, status = h.greenlua(q("spec/fixtures/observe_stacks.lua"),
      {env = "GREENLUA_PRIVATE_STACKS=0"})
    assert.equal(0, status, err)
    local shared, displaced, unwound = out:match(
      "^shared (%d+) displaced (%d+) unwound (%d+)\n")
    if tonumber(shared) > 0 then
      assert.is_true(tonumber(displaced) > 0 and tonumber(unwound) > 0)
      has(out, "(frames saved off its stack)")
      has(out, "(stack given up)")
    end
    has(out, "in function 'table.sort'")
    assert.equal(200, select(2, out:gsub("in method 'wait'", "")))
    has(out, "went on")
  end)

  it("shows the main greenthread waiting for the others to end", function()
    local out, err, status = h.greenlua(q("spec/fixtures/observe_others.lua"))
    assert.equal(0, status, err)
    assert.truthy(out:match("\n1 main %[others, [%d.]+ s%]: the other "
      .. "greenthreads to end\n"), out)
  end)

  it("shows the prompt waiting on its input", function()
    local out, err, status = h.greenlua("-i -e " .. q("green.spawn(function() "
      .. "green.sleep(0.05) io.stderr:write(green.dump()) end)"),
      {stdin = "(sleep 0.5; echo 'os.exit(0)')"})
    assert.equal(0, status, out)
    assert.truthy(err:match("\n1 main %[fd, [%d.]+ s%]: fd 0\n"), err)
  end)
end)

describe("SIGQUIT", function()
  it("prints the dump on stderr, and the program goes on", function()
    local out, err, status = h.signalled("spec/fixtures/observe_quit.lua",
      "", "QUIT")
    assert.equal(0, status, err)
    assert.equal("went on\n", out)
    assert.truthy(err:match("^greenlua: 3 greenthreads at "), err)
    assert.truthy(err:find("\n%d+ waits%-event %[event, "), err)
    assert.truthy(err:find("\n%d+ sleeper %[sleep, [%d.]+ s%]: [%d.]+ s left"),
      err)
    has(err, "observe_quit.lua")
  end)
end)
