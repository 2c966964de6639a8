-- green.subprocess: spawn (pipes as green streams, env, cwd, wait, kill)
-- and run (input, captured output, timeout), with real children: sh,
-- cat, sleep, a child that ignores SIGTERM, one that writes megabytes to
-- both pipes, 200 at once.

local green = require "green"
local sp = require "green.subprocess"
local h = require "spec.helpers"

-- The children of this process that are zombies (ended, not reaped).
local function zombies()
  local found = {}
  for line in h.capture("ps -o stat=,pid= --ppid " .. green.getpid())
                :gmatch("[^\n]+") do
    local stat, pid = line:match("^%s*(%S+)%s+(%d+)")
    if stat and stat:find("Z") then found[#found + 1] = tonumber(pid) end
  end
  return found
end

describe("green.subprocess.spawn", function()
  it("is the module's spawn, with run beside it", function()
    assert.equal(green.subprocess, sp)
    assert.is_function(sp.spawn)
    assert.is_function(sp.run)
  end)

  it("gives the child's stdin, stdout and stderr as green streams with "
     .. "every receive pattern", function()
    local p = assert(sp.spawn({"sh", "-c",
      "read a; echo got:$a; printf 'xyzw'; echo oops >&2; cat"},
      {stdin = "pipe", stdout = "pipe", stderr = "pipe"}))
    assert.is_true(p.pid > 0)
    assert.equal(6, p.stdin:send("hello\n"))
    assert.equal("got:hello", p.stdout:receive("*l"))
    assert.equal("xy", p.stdout:receive(2))
    assert.equal(">zw", p.stdout:receive(2, ">"))
    assert.equal("oops", p.stderr:receive())
    p.stdin:send("tail end")
    p.stdin:close()
    assert.equal("tail end", p.stdout:receive("*a"))
    assert.equal("", p.stdout:receive("*a"))
    assert.same({0, nil}, {p:wait()})
    assert.same({0, nil}, {p:wait()})  -- again: the same answer
  end)

  it("returns the exit status, or nil and the signal's name", function()
    local p = assert(sp.spawn({"sh", "-c", "exit 7"}))
    assert.same({7, nil}, {p:wait()})
    p = assert(sp.spawn({"sh", "-c", "kill -USR1 $$"}))
    assert.same({nil, "SIGUSR1"}, {p:wait()})
    assert.matches("killed by SIGUSR1", tostring(p))
  end)

  it("waits with a timeout, kills with SIGTERM by default, and not once "
     .. "the child is gone", function()
    local p = assert(sp.spawn({"sleep", "10"}))
    assert.same({nil, "timeout"}, {p:wait(0.01)})
    assert.same({nil, "timeout"}, {p:wait(0)})
    assert.is_true(p:kill())
    assert.same({nil, "SIGTERM"}, {p:wait()})
    assert.same({nil, "no such process"}, {p:kill("SIGKILL")})
  end)

  it("needs SIGKILL for a child that ignores SIGTERM", function()
    local p = assert(sp.spawn({"sh", "-c", "trap '' TERM; echo ready; "
      .. "while :; do sleep 0.01; done"}, {stdout = "pipe"}))
    assert.equal("ready", p.stdout:receive())
    assert.is_true(p:kill("TERM"))
    assert.same({nil, "timeout"}, {p:wait(0.1)})
    assert.is_true(p:kill("SIGKILL"))
    assert.same({nil, "SIGKILL"}, {p:wait()})
  end)

  it("replaces the environment with opts.env, and runs in opts.cwd",
     function()
    local p = assert(sp.spawn({"sh", "-c", "echo $FOO-$BAR-${HOME:-none}; pwd"},
      {stdout = "pipe", env = {FOO = "one", "BAR=two"}, cwd = "/tmp"}))
    assert.equal("one-two-none", p.stdout:receive())
    assert.equal("/tmp", p.stdout:receive())
    assert.same({0, nil}, {p:wait()})
  end)

  it("inherits the streams by default and gives /dev/null for 'null'",
     function()
    local p = assert(sp.spawn({"sh", "-c",
      "readlink /proc/self/fd/0; readlink /proc/self/fd/2 >&1"},
      {stdin = "null", stdout = "pipe", stderr = "stdout"}))
    assert.equal("/dev/null", p.stdout:receive())
    assert.matches("^pipe:", p.stdout:receive())  -- stderr went to stdout
    assert.same({0, nil}, {p:wait()})
    assert.is_nil(p.stdin)
    assert.is_nil(p.stderr)
  end)

  it("fails with nil, err for a program that cannot start, never a child "
     .. "exiting 127", function()
    local p, err = sp.spawn({"/nonexistent/program"})
    assert.is_nil(p)
    assert.equal("/nonexistent/program: no such file or directory", err)
    p, err = sp.spawn({"no-such-program-anywhere"})
    assert.is_nil(p)
    assert.matches("no such file or directory", err)
    local plain = os.tmpname()  -- not executable
    p, err = sp.spawn({plain})
    os.remove(plain)
    assert.is_nil(p)
    assert.equal(plain .. ": permission denied", err)
    p, err = sp.spawn({"ls"}, {cwd = "/nonexistent/dir"})
    assert.is_nil(p)
    assert.equal("cwd /nonexistent/dir: no such file or directory", err)
    assert.same({}, zombies())
  end)

  it("raises an error naming the argument for bad arguments", function()
    h.raises("bad argument #1 to 'spawn' (table expected",
             function() sp.spawn("ls") end)
    h.raises("empty argument list", function() sp.spawn({}) end)
    h.raises("element 2 is a table", function() sp.spawn({"ls", {}}) end)
    h.raises("option 'stdout': \"pipe\", \"inherit\" or \"null\" expected",
             function() sp.spawn({"ls"}, {stdout = "file"}) end)
    h.raises("unknown option 'stdoout'",
             function() sp.spawn({"ls"}, {stdoout = "pipe"}) end)
    h.raises("option 'env'", function() sp.spawn({"ls"}, {env = {1}}) end)
    local p = assert(sp.spawn({"true"}))
    h.raises("bad argument #1 to 'kill' (unknown signal 'SIGNOPE')",
             function() p:kill("SIGNOPE") end)
    p:wait()
  end)

  it("blocks only the calling greenthread", function()
    local flag = os.tmpname()
    os.remove(flag)
    -- The child waits for a file that another greenthread makes: if the
    -- wait blocked the hub, nothing would make it.
    local p = assert(sp.spawn({"sh", "-c",
      "while [ ! -e " .. h.q(flag) .. " ]; do sleep 0.01; done"}))
    green.spawn(function() io.open(flag, "w"):close() end)
    assert.same({0, nil}, {p:wait()})
    os.remove(flag)
  end)

  it("raises a kill that comes while the child starts, and leaves no "
     .. "child behind", function()
    for _ = 1, 5 do
      local g = green.spawn(sp.spawn, {"sleep", "10"})
      green.sleep(0)  -- g waits for the spawn now
      g:kill()
      assert.equal(green.GreenletExit, g.value)
    end
    local left
    for _ = 1, 500 do
      left = h.capture("pgrep -P " .. green.getpid() .. " sleep")
      if left == "" then break end
      green.sleep(0.01)
    end
    assert.equal("", left)
    assert.same({}, zombies())
  end)

  it("runs 200 children at once and reaps every one", function()
    local gs = {}
    for i = 1, 200 do
      gs[i] = green.spawn(function()
        local p = assert(sp.spawn({"sh", "-c", "read x; echo ${x}" .. i},
                                  {stdin = "pipe", stdout = "pipe"}))
        p.stdin:send("n\n")
        local line = p.stdout:receive()
        return line, p:wait()
      end)
    end
    for i = 1, 200 do assert.same({"n" .. i, 0}, {gs[i]:get()}) end
    -- Children nobody waits for are reaped all the same.
    for _ = 1, 20 do assert(sp.spawn({"true"})) end
    local p = assert(sp.spawn({"sleep", "0.05"}))
    p:wait()
    green.sleep(0.05)
    assert.same({}, zombies())
  end)
end)

describe("green.subprocess.run", function()
  it("feeds input and captures stdout and stderr", function()
    local r = assert(sp.run({"sh", "-c", "cat; echo E >&2; exit 3"},
                            {input = "some input"}))
    assert.same({code = 3, stdout = "some input", stderr = "E\n"}, r)
  end)

  it("reads megabytes from both pipes at once without a deadlock",
     function()
    local r = assert(sp.run({"sh", "-c", "head -c 3000000 /dev/zero; "
      .. "head -c 2000000 /dev/zero >&2; head -c 1000000 /dev/zero"}))
    assert.equal(0, r.code)
    assert.equal(4000000, #r.stdout)
    assert.equal(2000000, #r.stderr)
    -- A child that must write all its output before it reads its input.
    local big = string.rep("x", 1000000)
    r = assert(sp.run({"sh", "-c", "head -c 1000000 /dev/zero >&2; "
      .. "wc -c"}, {input = big}))
    assert.equal("1000000", r.stdout:match("%d+"))
  end)

  it("kills the child at the timeout and says so", function()
    local t0 = green.now()
    local r, err, partial = sp.run({"sh", "-c", "echo started; exec sleep 10"},
                                   {timeout = 0.2})
    assert.is_nil(r)
    assert.equal("timeout", err)
    assert.equal("SIGKILL", partial.signal)
    assert.equal("started\n", partial.stdout)
    assert.is_true(green.now() - t0 < 5)
  end)

  it("captures stderr with stdout for stderr = 'stdout'", function()
    local r = assert(sp.run({"sh", "-c", "echo a; echo b >&2; echo c"},
                            {stderr = "stdout"}))
    assert.equal("a\nb\nc\n", r.stdout)
    assert.equal("", r.stderr)
  end)

  it("returns nil, err for a program that cannot start", function()
    assert.same({nil, "/nonexistent: no such file or directory"},
                {sp.run({"/nonexistent"})})
  end)

  it("kills the child when the caller is killed", function()
    local g = green.spawn(sp.run, {"sleep", "10"}, {stdin = "null"})
    local pid
    for _ = 1, 500 do  -- the child, seen from the outside
      green.sleep(0.01)
      pid = tonumber(h.capture("pgrep -P " .. green.getpid() .. " sleep"))
      if pid then break end
    end
    assert.is_number(pid)
    g:kill()
    for _ = 1, 500 do
      if not h.exists(pid) then break end
      green.sleep(0.01)
    end
    assert.is_false(h.exists(pid))
  end)

  it("raises errors naming the argument", function()
    h.raises("bad argument #2 to 'run' (unknown option 'timeoutt')",
             function() sp.run({"true"}, {timeoutt = 1}) end)
    h.raises("option 'input': string expected",
             function() sp.run({"true"}, {input = 1}) end)
  end)
end)
