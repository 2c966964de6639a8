-- The greenlua program: lua5.4's options and `arg`, the prompt, and how the
-- runtime ends a process.  Every case runs a child greenlua.

local BIN = os.getenv("GREENLUA") or "build/greenlua"
local FIX = "spec/fixtures/"

local helpers = require "spec.helpers"
local q, slurp = helpers.q, helpers.slurp

-- Runs `greenlua <args>` and returns its stdout, stderr and exit status.
-- opts.env is a prefix of VAR=value words, opts.stdin a shell command whose
-- output is piped in (default: no input).
local function run(args, opts)
  opts = opts or {}
  local errfile = os.tmpname()
  local cmd = string.format("%s env -u LUA_INIT -u LUA_INIT_5_4 %s "
      .. "timeout 20 %s %s 2>%s; echo \"status=$?\"",
      opts.stdin and (opts.stdin .. " |") or "</dev/null",
      opts.env or "", q(BIN), args, q(errfile))
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  local err = slurp(errfile)
  os.remove(errfile)
  local status = tonumber(out:match("status=(%d+)\n$"))
  return out:gsub("status=%d+\n$", ""), err, status
end

-- Counts the plain occurrences of needle in s.
local function count(s, needle)
  local n, i = 0, 1
  while true do
    local j = s:find(needle, i, true)
    if not j then return n end
    n, i = n + 1, j + #needle
  end
end

local function has(s, needle)
  return s:find(needle, 1, true) ~= nil
end

describe("greenlua", function()
  it("runs -e chunks in order, with green as a global and a module",
     function()
    local out, err, status = run("-e " .. q("x = 20") .. " -e "
      .. q("print(x + 1, green == require 'green', type(green.spawn))"))
    assert.equal(0, status)
    assert.equal("", err)
    assert.equal("21\ttrue\tfunction\n", out)
  end)

  it("requires -l modules from LUA_PATH into a global of their name or a"
     .. " given one", function()
    local out, _, status = run("-l cli_module -l m=cli_module -e "
      .. q("print(cli_module.answer, m == cli_module)"),
      {env = "LUA_PATH=" .. q(FIX .. "?.lua;;")})
    assert.equal(0, status)
    assert.equal("42\ttrue\n", out)
  end)

  it("prints the Lua copyright and its version and context switch with -v",
     function()
    local out, _, status = run("-v")
    assert.equal(0, status)
    assert.truthy(has(out, "Lua 5.4"))
    assert.truthy(out:match("\ngreenlua 0%.1%.0 %(context switch: [%w_]+%)\n$"))
  end)

  it("honours LUA_INIT before the arguments", function()
    local out, _, status = run("-e " .. q("print(fromInit)"),
      {env = "LUA_INIT=" .. q("fromInit = 'init ran'")})
    assert.equal(0, status)
    assert.equal("init ran\n", out)
  end)

  it("ignores LUA_INIT with -E", function()
    local out, _, status = run("-E -e " .. q("print(fromInit)"),
      {env = "LUA_INIT=" .. q("fromInit = 'init ran'")})
    assert.equal(0, status)
    assert.equal("nil\n", out)
  end)

  it("turns warnings on with -W and leaves them off without it", function()
    local _, err, status = run("-W -e " .. q("warn('careful')"))
    assert.equal(0, status)
    assert.equal("Lua warning: careful\n", err)
    _, err, status = run("-e " .. q("warn('careful')"))
    assert.equal(0, status)
    assert.equal("", err)
  end)

  it("runs stdin as the script for '-', with the arguments after it",
     function()
    local out, _, status = run("- one two",
      {stdin = "echo " .. q("print('from stdin', arg[0], ...)")})
    assert.equal(0, status)
    assert.equal("from stdin\t-\tone\ttwo\n", out)
  end)

  it("runs stdin as the script when it is not a terminal and no script is"
     .. " given", function()
    local out, _, status = run("",
      {stdin = "echo " .. q("print('piped', green ~= nil)")})
    assert.equal(0, status)
    assert.equal("piped\ttrue\n", out)
  end)

  it("fills arg as lua does: the script at 0, options below, args above",
     function()
    local out, _, status = run("-e " .. q("x=1") .. " " .. FIX
      .. "cli_args.lua a 'b c'")
    assert.equal(0, status)
    assert.equal(table.concat({
      "arg[-3]=" .. BIN, "arg[-2]=-e", "arg[-1]=x=1",
      "arg[0]=" .. FIX .. "cli_args.lua", "arg[1]=a", "arg[2]=b c",
      "#arg=2", "select=2", "dots=a,b c", ""}, "\n"), out)
  end)

  it("stops handling options at '--'", function()
    local out, _, status = run("-- " .. FIX .. "cli_args.lua -e")
    assert.equal(0, status)
    assert.truthy(has(out, "arg[-2]=" .. BIN .. "\n"))
    assert.truthy(has(out, "arg[-1]=--\n"))
    assert.truthy(has(out, "arg[1]=-e\n"))
    assert.truthy(has(out, "dots=-e\n"))
  end)

  it("puts the options after the interpreter in arg without a script",
     function()
    local out, _, status = run("-e " .. q("print(arg[0], arg[1], arg[2])"))
    assert.equal(0, status)
    assert.equal(BIN .. "\t-e\tprint(arg[0], arg[1], arg[2])\n", out)
  end)

  it("explains its options and the runtime with --help", function()
    local out, _, status = run("--help")
    assert.equal(0, status)
    for _, word in ipairs({"--stack-size=SIZE", "GREENLUA_STACK_SIZE",
        "main greenthread", "deadlock", "green.exit", "-e stat", "-W"}) do
      assert.truthy(has(out, word), word)
    end
  end)

  it("fails with status 1 and a usage message for a bad --stack-size",
     function()
    local out, err, status = run("--stack-size=bad -e " .. q("print(1)"))
    assert.equal(1, status)
    assert.equal("", out)
    assert.truthy(has(err, "--stack-size 'bad'"))
    assert.truthy(has(err, "usage:"))
  end)

  it("accepts a good --stack-size, which wins over GREENLUA_STACK_SIZE",
     function()
    local out, _, status = run("--stack-size=1m -e " .. q("print('ok')"),
      {env = "GREENLUA_STACK_SIZE=bad"})
    assert.equal(0, status)
    assert.equal("ok\n", out)
    local _, err
    out, err, status = run("-e " .. q("print('ok')"),
      {env = "GREENLUA_STACK_SIZE=bad"})
    assert.equal(1, status)
    assert.truthy(has(err, "GREENLUA_STACK_SIZE 'bad'"))
  end)

  it("fails with status 1 on an unknown option", function()
    local _, err, status = run("--frobnicate")
    assert.equal(1, status)
    assert.truthy(has(err, "unrecognized option '--frobnicate'"))
  end)

  it("runs a #!/usr/bin/env greenlua script, by path and directly",
     function()
    local out, _, status = run(FIX .. "cli_shebang.lua x")
    assert.equal(0, status)
    assert.equal("shebang ok\ttable\tx\n", out)
    if BIN:match("[^/]+$") == "greenlua" then  -- env must find "greenlua"
      local dir = BIN:match("^(.*)/[^/]+$") or "."
      local p = assert(io.popen("PATH=\"$(cd " .. q(dir) .. " && pwd):$PATH\" "
        .. FIX .. "cli_shebang.lua y 2>&1; echo \"status=$?\""))
      out = p:read("a")
      p:close()
      assert.equal("shebang ok\ttable\ty\nstatus=0\n", out)
    end
  end)

  it("exits 1 at once when an error escapes the main chunk, with its"
     .. " traceback", function()
    local out, err, status = run(FIX .. "cli_main_error.lua")
    assert.equal(1, status)
    assert.equal("", out)  -- the sleeper was not waited for
    assert.truthy(has(err, BIN .. ": " .. FIX
      .. "cli_main_error.lua:7: main chunk failed\n"))
    assert.truthy(has(err, "stack traceback:"))
  end)

  it("waits for greenthreads still running when the main chunk returns",
     function()
    local out, err, status = run(FIX .. "cli_wait.lua")
    assert.equal(0, status)
    assert.equal("", err)
    assert.equal("main chunk done\nsleeper woke\n", out)
  end)

  it("prints an error escaping a spawned greenthread, with its name and"
     .. " traceback, and goes on", function()
    local out, err, status = run(FIX .. "cli_spawn_error.lua")
    assert.equal(0, status)
    assert.equal("main goes on\ttrue\tfalse\nlater greenthread ran\n", out)
    assert.truthy(has(err, "cli_spawn_error.lua:5: worker failed"))
    assert.truthy(has(err, "bad-worker"))
    assert.truthy(has(err, "stack traceback:"))
  end)

  it("ends at once with green.exit's status, even with greenthreads pending",
     function()
    local out, _, status = run(FIX .. "cli_exit.lua")
    assert.equal(3, status)
    assert.equal("before exit\n", out)
  end)

  it("reports a deadlock with a traceback of each blocked greenthread",
     function()
    local out, err, status = run(FIX .. "cli_deadlock.lua")
    assert.is_not.equal(0, status)
    assert.is_not.equal(124, status)  -- timeout(1): it hung
    assert.equal("", out)
    assert.truthy(has(err, "deadlock"))
    assert.truthy(has(err, "stuck-worker"))
    assert.truthy(err:match("main[^\n]*\nstack traceback:"))
    assert.truthy(count(err, "stack traceback:") >= 2)
    assert.truthy(has(err, "cli_deadlock.lua:5:"))  -- the worker's e:wait
    assert.truthy(has(err, "cli_deadlock.lua:8:"))  -- main's e:wait
  end)

  describe("at the interactive prompt", function()
    it("runs statements read from a pipe with -i", function()
      local out, err, status = run("-i",
        {stdin = "echo " .. q("print(1+1)")})
      assert.equal(0, status)
      assert.equal("", err)
      assert.truthy(has(out, "greenlua 0.1.0"))  -- -i implies -v
      assert.truthy(has(out, "> 2\n"))
    end)

    it("prints expressions, '=expr' and continues unfinished statements",
       function()
      local out, _, status = run("-i", {stdin = "printf '%s\\n' "
        .. q("=1+2") .. " " .. q("10*4") .. " " .. q("for i = 1, 2 do")
        .. " " .. q("io.write(i, ';') end") .. " " .. q("'a', 'b'")})
      assert.equal(0, status)
      assert.truthy(has(out, "> 3\n"))
      assert.truthy(has(out, "> 40\n"))
      assert.truthy(has(out, "> >> 1;2;> a\tb\n"))
    end)

    it("honours _PROMPT and _PROMPT2", function()
      local out, _, status = run("-i", {stdin = "printf '%s\\n' "
        .. q("_PROMPT = 'P$ '; _PROMPT2 = 'C$ '") .. " " .. q("if true then")
        .. " " .. q("end")})
      assert.equal(0, status)
      assert.truthy(has(out, "> P$ C$ P$ \n"))
    end)

    it("reports an error without ending the prompt", function()
      local out, err, status = run("-i", {stdin = "printf '%s\\n' "
        .. q("error('bad line')") .. " " .. q("print('next')")})
      assert.equal(0, status)
      assert.truthy(has(err, "stdin:1: bad line\nstack traceback:"))
      assert.is_nil(err:find("^" .. BIN))  -- no program name at the prompt
      assert.truthy(has(out, "next\n"))
    end)

    it("makes green calls work", function()
      local out, _, status = run("-i", {stdin = "echo "
        .. q("green.sleep(0.01); print('slept', green.getcurrent() ~= nil)")})
      assert.equal(0, status)
      assert.truthy(has(out, "slept\ttrue\n"))
    end)

    it("runs spawned greenthreads while it waits for input", function()
      local flag = os.tmpname()
      os.remove(flag)
      -- The second line is written only once the greenthread, which the
      -- first line spawned, has made the flag file (or after 5 s).
      local feed = "( echo " .. q("green.spawn(function() green.sleep(0.05);"
        .. " assert(io.open(" .. string.format("%q", flag) .. ", 'w')):close();"
        .. " print('spawned ran') end)")
        .. "; i=0; while [ ! -e " .. q(flag) .. " ] && [ $i -lt 100 ]; do"
        .. " sleep 0.05; i=$((i+1)); done; echo "
        .. q("print('flag seen', io.open(" .. string.format("%q", flag)
          .. ") ~= nil)") .. " )"
      local out, _, status = run("-i", {stdin = feed})
      os.remove(flag)
      assert.equal(0, status)
      assert.truthy(has(out, "spawned ran\n"))
      assert.truthy(has(out, "flag seen\ttrue\n"))
      assert.truthy(out:find("spawned ran", 1, true)
        < out:find("flag seen", 1, true))
    end)

    it("reports a green.Timeout that fires while it waits, and goes on",
       function()
      local out, err, status = run("-i", {stdin = "( echo "
        .. q("t = green.Timeout(0.05):start()") .. "; sleep 0.5; echo "
        .. q("print('still here', t.pending)") .. " )"})
      assert.equal(0, status)
      assert.truthy(has(err, "timeout"))
      assert.truthy(has(out, "still here\tfalse\n"))
    end)

    it("waits for greenthreads spawned at the prompt at end of input",
       function()
      local out, _, status = run("-i", {stdin = "echo " .. q(
        "green.spawn(function() green.sleep(0.1) print('after eof') end)")})
      assert.equal(0, status)
      assert.truthy(out:match("> \nafter eof\n$"))
    end)
  end)
end)
