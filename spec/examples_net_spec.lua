-- The network examples (scripts/examples/echo_server.lua, chat.lua,
-- portscan.lua, chat_demo.lua) run as child greenlua processes; clients
-- written with green.socket talk to them over 127.0.0.1, and their
-- output is checked exactly.

local green = require "green"
local socket = green.socket

local BIN = os.getenv("GREENLUA") or "build/greenlua"
local DIR = "scripts/examples/"
local ONEBYTE = (os.getenv("GREENLUA_IO_ONEBYTE") or "0") ~= "0"

-- Quotes s for the shell.
local function q(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function slurp(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end

local function lines(t)
  return table.concat(t, "\n") .. "\n"
end

-- {====== Child processes ======
-- A server runs in the background with its output in files, so that the
-- hub goes on running the clients; io.popen (which blocks the hub) is
-- for children that need nobody here.

local Child = {}
Child.__index = Child

-- Starts `greenlua DIR/name args...` in the background (killed by
-- `timeout` after 30 s whatever happens).
local function spawnchild(name, ...)
  local args = {}
  for i, a in ipairs({...}) do args[i] = q(a) end
  local c = setmetatable({out = os.tmpname(), err = os.tmpname(),
                          pidfile = os.tmpname()}, Child)
  assert(os.execute(("</dev/null env -u LUA_INIT -u LUA_INIT_5_4 timeout 30 "
    .. "%s %s %s >%s 2>%s & echo $! >%s"):format(q(BIN), q(DIR .. name),
      table.concat(args, " "), q(c.out), q(c.err), q(c.pidfile))))
  c.pid = tonumber(slurp(c.pidfile))
  assert(c.pid, "no pid")
  return c
end

function Child:output() return slurp(self.out) end

-- Waits (at most 10 s) until the child's stdout matches `pattern`;
-- returns the captures.
function Child:await(pattern)
  local deadline = green.now() + 10
  while true do
    local out = self:output()
    local r = {out:match(pattern)}
    if r[1] ~= nil then return table.unpack(r) end
    if green.now() > deadline then
      error(("child output never matched %q:\n%s\nstderr:\n%s")
        :format(pattern, out, slurp(self.err)), 2)
    end
    green.sleep(0.005)
  end
end

-- Whether process pid has ended: gone, or a zombie (its new parent may
-- take its time to reap it).
local function ended(pid)
  local stat = slurp(("/proc/%d/stat"):format(pid))
  return stat == "" or stat:match("^%d+ %b() (%a)") == "Z"
end

-- Kills the child and waits (at most 5 s) for it to end; returns its
-- stdout and stderr.
function Child:kill()
  os.execute(("kill %d 2>/dev/null"):format(self.pid))
  local deadline = green.now() + 5
  while not ended(self.pid) and green.now() < deadline do
    green.sleep(0.01)
  end
  local out, err = self:output(), slurp(self.err)
  os.remove(self.out); os.remove(self.err); os.remove(self.pidfile)
  return out, err
end

-- Runs an example to its end; returns stdout, stderr, exit status and how
-- long it took.
local function run(name, ...)
  local args = {}
  for i, a in ipairs({...}) do args[i] = q(a) end
  local errfile = os.tmpname()
  local t0 = green.now()
  local p = assert(io.popen(("</dev/null env -u LUA_INIT -u LUA_INIT_5_4 "
    .. "timeout 20 %s %s %s 2>%s; echo \"status=$?\""):format(q(BIN),
      q(DIR .. name), table.concat(args, " "), q(errfile))))
  local out = p:read("a")
  p:close()
  local took = green.now() - t0
  local err = slurp(errfile)
  os.remove(errfile)
  local status = tonumber(out:match("status=(%d+)\n$"))
  return (out:gsub("status=%d+\n$", "")), err, status, took
end
-- }======

-- {====== Clients ======

-- Connects to 127.0.0.1:port with a 5 s timeout on every call.
local function client(port, rcvbuf)
  local s = socket.tcp()
  if rcvbuf then s:setoption("rcvbuf", rcvbuf) end
  s:settimeout(5)
  assert(s:connect("127.0.0.1", port))
  return s
end

-- A port nobody listens on (now).
local function freeport()
  local ls = assert(socket.listen("127.0.0.1", 0))
  local port = select(2, ls:getsockname())
  ls:close()
  return port
end

-- Asserts that sock receives exactly these lines.
local function hear(sock, ...)
  for _, want in ipairs({...}) do
    assert.equal(want, (sock:receive()))
  end
end
-- }======

describe("scripts/examples over the network", function()
  local timeout
  before_each(function() timeout = green.Timeout(60):start() end)
  after_each(function() timeout:cancel() end)

  it("echo_server.lua echoes each line of each client and logs it",
     function()
    local port = freeport()
    local child = spawnchild("echo_server.lua", tostring(port))
    local ok, err = pcall(function()
      child:await("listening on port %d+\n")
      local a = client(port)
      child:await("client connected from 127%.0%.0%.1\n$")
      local b = client(port)
      child:await("connected.*connected from 127%.0%.0%.1\n$")
      a:send("hello\n")
      assert.equal("hello", a:receive())
      b:send("from b\r\n")  -- the \r goes, as with nc -C
      assert.equal("from b", b:receive())
      a:send("twice\ntwice more\n")
      assert.equal("twice", a:receive())
      assert.equal("twice more", a:receive())
      child:await("echoed twice more\n$")
      a:close()
      child:await("client disconnected\n$")
      b:send("last")  -- a partial line, then the end: not echoed
      b:close()
      child:await("client disconnected\n.*client disconnected\n$")
    end)
    local out, stderr = child:kill()
    assert(ok, err)
    assert.equal(lines {
      "server socket listening on port " .. port,
      "client connected from 127.0.0.1",
      "client connected from 127.0.0.1",
      "echoed hello",
      "echoed from b",
      "echoed twice",
      "echoed twice more",
      "client disconnected",
      "client disconnected",
    }, out)
    assert.equal("", stderr)
  end)

  it("chat.lua lets clients pick nicknames, talk in rooms and quit",
     function()
    local child = spawnchild("chat.lua", "0")
    local ok, err = pcall(function()
      local port = tonumber(child:await("listening on port (%d+)\n"))
      local welcome = "* Welcome to greenlua chat! What is your nickname?"
      local alice = client(port)
      hear(alice, welcome)
      alice:send("alice\n")
      hear(alice, "* Hello alice! Type /help for the commands.",
           "* You are in #lobby, alone for now.")
      local bob = client(port)
      hear(bob, welcome)
      bob:send("alice\n")
      hear(bob, "* alice is taken, pick another.")
      bob:send("bob the builder\n")
      hear(bob, "* A nickname is 1 to 16 letters, digits, _ or -.")
      bob:send("bob\n")
      hear(bob, "* Hello bob! Type /help for the commands.",
           "* You are in #lobby with alice.")
      hear(alice, "* bob has joined #lobby")

      alice:send("hi bob\n")
      hear(bob, "<alice> hi bob")
      bob:send("/who\n")
      hear(bob, "* In #lobby: alice, bob")
      bob:send("/help\n")
      hear(bob, "* Commands: /nick NAME, /join ROOM, /who, /rooms, /quit, "
           .. "/help")
      bob:send("/dance\n")
      hear(bob, "* Unknown command /dance; /help lists them.")
      bob:send("/nick\n")
      hear(bob, "* Usage: /nick NAME")
      bob:send("/nick robert\n")
      hear(bob, "* You are now known as robert.")
      hear(alice, "* bob is now known as robert")

      alice:send("/join #garden\n")
      hear(alice, "* You are in #garden, alone for now.")
      hear(bob, "* alice has left #lobby")
      bob:send("/rooms\n")
      hear(bob, "* Rooms: #garden (1), #lobby (1)")
      bob:send("anyone?\n")   -- nobody else in #lobby: nobody hears it
      bob:send("/join garden\n")
      hear(bob, "* You are in #garden with alice.")
      hear(alice, "* robert has joined #garden")
      bob:send("/join garden\n")
      hear(bob, "* You are in #garden already.")
      alice:send("welcome\n")
      hear(bob, "<alice> welcome")

      bob:send("/quit\n")
      hear(bob, "* Bye, robert!")
      assert.same({nil, "closed", ""}, {bob:receive()})
      bob:close()
      hear(alice, "* robert has quit")
      alice:send("/who\n")
      hear(alice, "* In #garden: alice")
      alice:close()  -- hangs up without /quit
      child:await("alice left\n$")
    end)
    local out, stderr = child:kill()
    assert(ok, err)
    assert.equal(lines {
      "chat server listening on port " .. out:match("port (%d+)"),
      "alice joined #lobby",
      "bob joined #lobby",
      "bob is now robert",
      "alice joined #garden",
      "robert joined #garden",
      "robert left",
      "alice left",
    }, out)
    assert.equal("", stderr)
  end)

  it("chat.lua drops a client that stops reading, and only that one",
     function()
    if ONEBYTE then
      pending("one byte per read and write: every client is too slow")
      return
    end
    local child = spawnchild("chat.lua", "0")
    local ok, err = pcall(function()
      local port = tonumber(child:await("listening on port (%d+)\n"))
      local function join(nick, rcvbuf)
        local c = client(port, rcvbuf)
        c:receive()
        c:send(nick .. "\n")
        c:receive(); c:receive()
        return c
      end
      local alice = join("alice")
      local bob = join("bob")
      hear(alice, "* bob has joined #lobby")
      local carol = join("carol", 4096)  -- and she never reads again
      hear(alice, "* carol has joined #lobby")
      hear(bob, "* carol has joined #lobby")
      -- 500 KB: more than carol's socket buffers, ours and the server's
      -- (64 KB) hold, plus her 100 queued lines.
      local N, text = 5000, ("x"):rep(90)
      local all = {}
      for i = 1, N do all[i] = ("%d %s"):format(i, text) end
      local sender = green.spawn(function()
        assert(alice:send(table.concat(all, "\n") .. "\n"))
      end)
      local got, dropped = 0, false
      while got < N or not dropped do
        local line = assert(bob:receive())
        if line == "* carol was dropped (too slow)" then
          dropped = true
        else
          got = got + 1
          assert.equal("<alice> " .. all[got], line)
        end
      end
      hear(alice, "* carol was dropped (too slow)")
      assert(sender:join(5))
      -- carol reads what had reached her, then finds the end.
      local n = 0
      while true do
        local line, e = carol:receive()
        if not line then
          assert.equal("closed", e)
          break
        end
        n = n + 1
        assert.equal("<alice> " .. all[n], line)
      end
      assert.is_true(n < N)
      alice:send("/who\n")
      hear(alice, "* In #lobby: alice, bob")
      alice:close(); bob:close(); carol:close()
      child:await("alice left\n.*bob left\n$")
    end)
    local out, stderr = child:kill()
    assert(ok, err)
    assert.equal(lines {
      "chat server listening on port " .. out:match("port (%d+)"),
      "alice joined #lobby",
      "bob joined #lobby",
      "carol joined #lobby",
      "carol dropped (too slow)",
      "alice left",
      "bob left",
    }, out)
    assert.equal("", stderr)
  end)

  it("portscan.lua prints the open ports of a list, in its order",
     function()
    local a = assert(socket.listen("127.0.0.1", 0))
    local b = assert(socket.listen("127.0.0.1", 0))
    local pa, pb = select(2, a:getsockname()), select(2, b:getsockname())
    local closed = freeport()
    local out, err, status = run("portscan.lua",
      ("%d,%d,%d-%d"):format(pb, closed, pa, pa))
    a:close(); b:close()
    assert.equal(lines {
      ("127.0.0.1:%d open"):format(pb),
      ("127.0.0.1:%d open"):format(pa),
      "3 ports scanned, 2 open",
    }, out)
    assert.equal("", err)
    assert.equal(0, status)
  end)

  it("portscan.lua rejects a bad port list", function()
    local out, err, status = run("portscan.lua", "0-3")
    assert.equal("", out)
    assert.truthy(err:find("bad port list: 0-3", 1, true))
    assert.equal(1, status)
  end)

  it("chat_demo.lua tells its story and ends within 3 s", function()
    local out, err, status, took = run("chat_demo.lua")
    assert.equal("", err)
    assert.equal(lines {
      "greenlua chat demo: a chat server and three bots, in one process",
      "(> is what a bot sends, < what it receives)",
      "",
      "The chat server listens on 127.0.0.1, on a free port. Three bots join:",
      "  alice  < * Welcome to greenlua chat! What is your nickname?",
      "  alice  > alice",
      "  alice  < * Hello alice! Type /help for the commands.",
      "  alice  < * You are in #lobby, alone for now.",
      "  bob    < * Welcome to greenlua chat! What is your nickname?",
      "  bob    > bob",
      "  bob    < * Hello bob! Type /help for the commands.",
      "  bob    < * You are in #lobby with alice.",
      "  alice  < * bob has joined #lobby",
      "  carol  < * Welcome to greenlua chat! What is your nickname?",
      "  carol  > carol",
      "  carol  < * Hello carol! Type /help for the commands.",
      "  carol  < * You are in #lobby with alice, bob.",
      "  alice  < * carol has joined #lobby",
      "  bob    < * carol has joined #lobby",
      "",
      "They chat. What one says, the others in the room hear:",
      "  alice  > hi everyone!",
      "  bob    < <alice> hi everyone!",
      "  carol  < <alice> hi everyone!",
      "  bob    > /who",
      "  bob    < * In #lobby: alice, bob, carol",
      "  carol  > hello alice, hello bob",
      "  alice  < <carol> hello alice, hello bob",
      "  bob    < <carol> hello alice, hello bob",
      "",
      "carol's client gets stuck and stops reading. alice, unaware, pastes "
        .. "a long text:",
      "  alice  > (2000 lines at once)",
      "  bob    < (all 2000 lines, in order)",
      "  bob    < * carol was dropped (too slow)",
      "  alice  < * carol was dropped (too slow)",
      "",
      "carol's client comes back to life. It reads what the server had sent "
        .. "her before",
      "dropping her, and then finds the connection closed:",
      "  carol  < (the start of the text)",
      "  carol  < (connection closed)",
      "",
      "bob has had enough and quits:",
      "  bob    > /quit",
      "  bob    < * Bye, bob!",
      "  bob    < (connection closed)",
      "  alice  < * bob has quit",
      "  alice  > /who",
      "  alice  < * In #lobby: alice",
      "",
      "The server stops: it gives its handlers 0.1 s to end, then kills them,",
      "which closes their connections:",
      "  alice  < (connection closed)",
      "",
      "Done: carol's stall cost alice and bob nothing.",
    }, out)
    assert.equal(0, status)
    if not ONEBYTE then  -- where every byte costs a trip through the hub
      assert.is_true(took < 3, ("took %.2f s"):format(took))
    end
  end)
end)
