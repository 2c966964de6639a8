-- io.popen and os.execute under greenlua: Lua's own values and file
-- methods, but only the calling greenthread waits; kills and Timeouts
-- reach it; children start with every signal at its default disposition.

local green = require "green"
local h = require "spec.helpers"

-- The bits of a SigIgn/SigCgt mask from /proc/<pid>/status text for the
-- signals 1..31 (glibc keeps 32 and 33 for itself).
local function ignored(status)
  local hex = assert(status:match("SigIgn:%s*(%x+)"))
  return tonumber(hex:sub(-8), 16) & 0x7fffffff
end
local SIGPIPE_BIT = 1 << (13 - 1)

describe("io.popen", function()
  it("reads with every format of Lua's read, and lines", function()
    local f = assert(io.popen("printf 'one\\ntwo\\n42 3.5 rest\\nlast'"))
    assert.equal("file", io.type(f))
    assert.equal("one", f:read("l"))
    assert.equal("two\n", f:read("L"))
    assert.same({42, 3.5}, {f:read("n", "n")})
    assert.equal(" re", f:read(3))
    assert.equal("st", f:read("l"))
    assert.equal("last", f:read("a"))
    assert.equal("", f:read("a"))
    assert.is_nil(f:read("l"))
    assert.same({true, "exit", 0}, {f:close()})
    local lines = {}
    for l in io.popen("seq 3"):lines() do lines[#lines + 1] = l end
    assert.same({"1", "2", "3"}, lines)
  end)

  it("writes to the child's stdin in mode 'w'", function()
    local out = os.tmpname()
    local f = assert(io.popen("cat > " .. h.q(out), "w"))
    assert.equal(f, f:write("abc\n", 12, "\n"))
    f:write(string.rep("z", 200000))  -- more than a pipe holds
    assert.same({true, "exit", 0}, {f:close()})
    assert.equal("abc\n12\n" .. string.rep("z", 200000), h.slurp(out))
    os.remove(out)
  end)

  it("closes with Lua's values for an exit status and a signal", function()
    assert.same({nil, "exit", 5}, {io.popen("exit 5"):close()})
    assert.same({nil, "signal", 9}, {io.popen("kill -9 $$"):close()})
    local f = io.popen("true", "w")
    assert.same({true, "exit", 0}, {io.close(f)})
    h.raises("attempt to use a closed file", function() f:close() end)
    f = io.popen("true")
    do local _ <close> = f end  -- to-be-closed: closes it
    assert.equal("closed file", io.type(f))
  end)

  it("behaves as Lua's otherwise: modes, seek, tostring", function()
    h.raises("bad argument #2 to 'popen' (invalid mode)",
             function() io.popen("ls", "rw") end)
    local f = io.popen("true")
    assert.same({nil, "Illegal seek", 29}, {f:seek()})
    assert.matches("^file %(0x", tostring(f))
    f:close()
    h.raises("bad argument #1 to 'read' (invalid format)",
             function() io.popen("true"):read("x") end)
  end)

  it("works as the default input and output files", function()
    local old = io.input()
    io.input(io.popen("echo from-input"))
    assert.equal("from-input", io.read("l"))
    io.close(io.input())
    io.input(old)
    local out = os.tmpname()
    local prev = io.output()
    io.output(io.popen("cat > " .. h.q(out), "w"))
    io.write("to-output")
    assert.same({true, "exit", 0}, {io.close()})
    io.output(prev)
    assert.equal("to-output", h.slurp(out))
    os.remove(out)
  end)

  it("blocks only the calling greenthread", function()
    local flag = os.tmpname()
    os.remove(flag)
    green.spawn(function() io.open(flag, "w"):close() end)
    -- The child waits for the file another greenthread makes.
    local f = io.popen("while [ ! -e " .. h.q(flag) .. " ]; do sleep 0.01;"
                       .. " done; echo seen")
    assert.equal("seen\n", f:read("a"))
    f:close()
    os.remove(flag)
  end)

  it("raises a Timeout or a kill that comes while it waits", function()
    local function timedout(fn)
      local t <close> = green.Timeout(0.05):start()
      local ok, err = pcall(fn)
      assert.is_false(ok)
      assert.equal(t, err)
    end
    timedout(function() return io.popen("sleep 5"):read("a") end)
    timedout(function() for _ in io.popen("sleep 5"):lines() do end end)
    timedout(function() return io.popen("sleep 5"):close() end)
    timedout(function()
      local f = io.popen("sleep 5", "w")
      f:setvbuf("no")
      return f:write(string.rep("x", 1000000))  -- fills the pipe
    end)
    local g = green.spawn(function() return io.popen("sleep 5"):read("a") end)
    green.sleep(0.02)
    g:kill()
    assert.is_true(g:dead())
    assert.equal(green.GreenletExit, g.value)
  end)

  it("starts children with default signal dispositions", function()
    -- The socket layer ignores SIGPIPE in greenlua itself...
    assert.is_true(ignored(h.slurp("/proc/self/status")) & SIGPIPE_BIT ~= 0)
    -- ...but no child inherits an ignored signal.
    local status = io.popen("cat /proc/self/status"):read("a")
    assert.equal(0, ignored(status))
    -- yes | head -1: yes ends by SIGPIPE, as it would from a shell.
    local f = io.popen("{ yes; echo \"yes ended: $?\" >&2; } 2>&1 | head -2")
    assert.equal("y\ny\n", f:read("a"))
    f:close()
    local r = assert(green.subprocess.run({"sh", "-c",
      "{ yes; echo \"yes ended: $?\" >&2; } | head -1"}))
    assert.equal("y\n", r.stdout)
    assert.equal("yes ended: 141\n", r.stderr)  -- 128 + SIGPIPE
    r = assert(green.subprocess.run({"cat", "/proc/self/status"}))
    assert.equal(0, ignored(r.stdout))
  end)
end)

describe("os.execute", function()
  it("returns Lua's values", function()
    assert.same({true, "exit", 0}, {os.execute("true")})
    assert.same({nil, "exit", 3}, {os.execute("exit 3")})
    assert.same({nil, "signal", 15}, {os.execute("kill $$")})
    assert.is_true(os.execute())
  end)

  it("blocks only the calling greenthread", function()
    local flag = os.tmpname()
    os.remove(flag)
    local g = green.spawn(os.execute, "while [ ! -e " .. h.q(flag)
                          .. " ]; do sleep 0.01; done")
    green.sleep(0.02)
    assert.is_false(g:dead())
    io.open(flag, "w"):close()
    assert.same({true, "exit", 0}, {g:get()})
    os.remove(flag)
  end)

  it("is interrupted by a Timeout, and the child still reaped", function()
    local t <close> = green.Timeout(0.05):start()
    local ok, err = pcall(os.execute, "sleep 0.2")
    assert.is_false(ok)
    assert.equal(t, err)
  end)

  it("leaves the program's signal handling alone while it waits",
     function()
    -- system(3) ignores SIGINT and SIGQUIT meanwhile; this does not.
    local got = green.Event()
    local hd = green.signal("SIGUSR2", function() got:set() end)
    assert.same({true, "exit", 0},
                {os.execute("kill -USR2 " .. green.getpid())})
    assert.is_true(got:wait(5))
    hd:cancel()
    local cur = h.slurp("/proc/self/status")
    local cgt = tonumber(cur:match("SigCgt:%s*(%x+)"):sub(-8), 16)
    assert.equal(0, ignored(cur) & (1 << 1))  -- SIGINT not ignored
    assert.equal(0, cgt & (1 << 11))          -- SIGUSR2 back to default
  end)
end)
