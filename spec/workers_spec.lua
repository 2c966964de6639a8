-- greenlua --workers N: workers sharing a port through SO_REUSEPORT,
-- green.worker(), restarts of dead workers, the give-up on workers that
-- keep dying, graceful stop on SIGTERM/SIGINT and the rolling restart on
-- SIGHUP.  Each case runs a master greenlua on a free port of 127.0.0.1;
-- signals are sent with kill(1).

local green = require "green"
local sp = require "green.subprocess"
local h = require "spec.helpers"

local SERVER = "spec/fixtures/workers_server.lua"

local function kill(sig, pid)
  assert(os.execute(("kill -%s %d"):format(sig, pid)))
end

-- A port that was free a moment ago.
local function freeport()
  local s = assert(green.socket.listen("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return port
end

-- Sends `line` to the server at port and returns the first line of the
-- answer, or nil, err.
local function ask(port, line)
  local s, err = green.socket.connect("127.0.0.1", port, 2)
  if not s then return nil, err end
  s:settimeout(5)
  s:send(line .. "\n")
  local answer, rerr = s:receive()
  s:close()
  return answer, rerr
end

-- Asks until `want(worker, pid)` is true; returns the worker and pid.
local function askuntil(port, want)
  for _ = 1, 1000 do
    local answer = ask(port, "who")
    local w, pid = (answer or ""):match("^(%d+) (%d+)$")
    if w and want(tonumber(w), tonumber(pid)) then
      return tonumber(w), tonumber(pid)
    end
    green.sleep(0.005)
  end
  error("no answer as wanted from port " .. port)
end

-- Starts a master of n workers serving SERVER on a free port, waits
-- until every worker answers, and returns the master, the port, the
-- pid of each worker and the master's stderr, as it comes, in a table.
local function master(n, extra)
  local port = freeport()
  local argv = {h.BIN, "--workers", tostring(n), "--grace", "5"}
  for _, a in ipairs(extra or {}) do argv[#argv + 1] = a end
  argv[#argv + 1] = SERVER
  argv[#argv + 1] = tostring(port)
  local p = assert(sp.spawn(argv, {stdin = "null", stderr = "pipe"}))
  local log = {}
  green.spawn(function()
    for line in function() return p.stderr:receive() end do
      log[#log + 1] = line
    end
  end)
  local pids = {}
  for w = 1, n do
    askuntil(port, function(got, pid)
      pids[got] = pid
      return got == w
    end)
  end
  return p, port, pids, log
end

local function logtext(log) return table.concat(log, "\n") end

describe("greenlua --workers", function()
  it("runs the script in N workers that share the port; green.worker() "
     .. "gives each its number", function()
    assert.is_nil(green.worker())
    local p, port, pids = master(2)
    assert.is_number(pids[1])
    assert.is_number(pids[2])
    assert.are_not.equal(pids[1], pids[2])
    kill("TERM", p.pid)
    assert.same({0, nil}, {p:wait()})
    assert.is_nil(ask(port, "who"))
  end)

  it("restarts a worker killed with SIGKILL, with the same number, and "
     .. "says so on stderr", function()
    local p, port, pids, log = master(2)
    kill("KILL", pids[1])
    local w, pid = askuntil(port, function(got, pid)
      return got == 1 and pid ~= pids[1]
    end)
    assert.equal(1, w)
    assert.matches(("worker 1 %%(pid %d%%) was killed by SIGKILL; "
                    .. "restarting it"):format(pids[1]), logtext(log))
    assert.is_false(h.exists(pids[1]))  -- reaped
    kill("TERM", p.pid)
    assert.same({0, nil}, {p:wait()})
    assert.is_false(h.exists(pid))
  end)

  it("lets a request in flight finish on SIGTERM, then every process is "
     .. "gone and the port free", function()
    local p, port, pids = master(2)
    local s = assert(green.socket.connect("127.0.0.1", port))
    s:settimeout(10)
    s:send("slow\n")
    assert.equal("started", s:receive())
    kill("TERM", p.pid)
    assert.equal("done", s:receive())  -- finished within the grace period
    s:close()
    assert.same({0, nil}, {p:wait()})
    for _, pid in pairs(pids) do assert.is_false(h.exists(pid)) end
    assert.is_nil(ask(port, "who"))
    local ls = assert(green.socket.listen("127.0.0.1", port))  -- free
    ls:close()
  end)

  it("stops on SIGINT as on SIGTERM", function()
    local p, _, pids = master(1)
    kill("INT", p.pid)
    assert.same({0, nil}, {p:wait()})
    assert.is_false(h.exists(pids[1]))
  end)

  it("stops the workers when the master is killed", function()
    local p, _, pids = master(2)
    kill("KILL", p.pid)
    assert.same({nil, "SIGKILL"}, {p:wait()})
    local function ended(pid)  -- gone, or a zombie left to init to reap
      local f = io.open("/proc/" .. pid .. "/stat")
      if not f then return true end
      local stat = f:read("a")
      f:close()
      return stat:match("^%d+ %b() Z") ~= nil
    end
    for _, pid in pairs(pids) do
      for _ = 1, 1000 do
        if ended(pid) then break end
        green.sleep(0.005)
      end
      assert.is_true(ended(pid))
    end
  end)

  it("replaces the workers one by one on SIGHUP, the port answering all "
     .. "along", function()
    local p, port, pids, log = master(2)
    local failures, answers, running = {}, 0, true
    local client = green.spawn(function()
      while running do
        local answer, err = ask(port, "who")
        if answer then answers = answers + 1
        else failures[#failures + 1] = err end
        green.sleep(0.002)
      end
    end)
    kill("HUP", p.pid)
    for w = 1, 2 do
      askuntil(port, function(got, pid)
        return got == w and pid ~= pids[w]
      end)
    end
    for _, pid in pairs(pids) do  -- the old ones stop and are reaped
      for _ = 1, 1000 do
        if not h.exists(pid) then break end
        green.sleep(0.005)
      end
      assert.is_false(h.exists(pid))
    end
    running = false
    client:join()
    assert.same({}, failures)
    assert.is_true(answers > 0)
    kill("TERM", p.pid)
    assert.same({0, nil}, {p:wait()})
    assert.equal("", logtext(log))  -- nothing died
  end)

  it("gives up with a clear error on a worker that keeps dying at start",
     function()
    local p = assert(sp.spawn({h.BIN, "--workers", "2",
                               "spec/fixtures/workers_crash.lua"},
                              {stdin = "null", stderr = "pipe"}))
    local err = p.stderr:receive("*a")
    assert.same({1, nil}, {p:wait()})
    assert.matches("boom at start", err)
    assert.matches("restarting it in 0.1 s", err)
    assert.matches("restarting it in 0.8 s", err)
    assert.matches("died within a second of starting 5 times in a row: "
                   .. "giving up", err)
  end)

  it("does not restart a worker that ends with status 0; the master ends "
     .. "once all have", function()
    local r = assert(sp.run({h.BIN, "--workers", "3",
                             "spec/fixtures/workers_once.lua"}))
    assert.equal(0, r.code)
    local seen = {}
    for w in r.stdout:gmatch("worker%s(%d)") do seen[#seen + 1] = w end
    table.sort(seen)
    assert.same({"1", "2", "3"}, seen)
    assert.equal("", r.stderr)
  end)

  it("rejects a bad worker count or grace period", function()
    for _, case in ipairs{
        {{"--workers", "0"}, "bad --workers '0' (use a number from 1 to"},
        {{"--workers", "x"}, "bad --workers 'x'"},
        {{"--grace=-1", "--workers", "2"}, "bad --grace '-1'"},
        {{"--workers", "2", "-e", "x=1"}, "--workers needs a script"}} do
      local argv = {h.BIN}
      for _, a in ipairs(case[1]) do argv[#argv + 1] = a end
      if case[1][3] ~= "-e" then argv[#argv + 1] = SERVER end
      local r = assert(sp.run(argv))
      assert.equal(1, r.code)
      assert.matches(case[2], r.stderr, 1, true)
    end
    local r = assert(sp.run({h.BIN, "--workers"}))
    assert.equal(1, r.code)
    assert.matches("'--workers' needs a number", r.stderr, 1, true)
  end)
end)
