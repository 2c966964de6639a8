-- A tour of green sockets in one process: the chat server of chat.lua on
-- a free port, and three bots that connect to it, chat, and misbehave.
-- carol stops reading, so her queue on the server overflows and the
-- server drops her while alice and bob go on; bob quits; then the server
-- stops.  Every bot is a greenthread with a real TCP connection.
-- Usage: greenlua scripts/examples/chat_demo.lua
local green = require "green"

io.stdout:setvbuf("line")
local DIR = arg and arg[0] and arg[0]:match("^(.*)/") or "."
local chat = assert(loadfile(DIR .. "/chat.lua"))({})  -- as a module

local FLOOD = 2000  -- lines alice sends at once: far more than carol takes

-- {====== The transcript ======

local function say(who, arrow, text)
  print(("  %-6s %s %s"):format(who, arrow, text))
end

local function narrate(text)
  print("")
  print(text)
end

local function fail(msg)
  io.stderr:write("chat_demo: ", msg, "\n")
  os.exit(1)
end
-- }======

-- {====== Bots ======
-- A bot owns a connection and a reader greenthread that files each line
-- it receives in an inbox queue, or `false` once the connection closes.

local Bot = {}
Bot.__index = Bot

local function connect(name, port)
  local sock = green.socket.tcp()
  sock:setoption("rcvbuf", 4096)  -- small, so that carol fills up fast
  sock:settimeouts(2, 10, nil)  -- connect, send; reads wait in Bot:next
  assert(sock:connect("127.0.0.1", port))
  local bot = setmetatable({name = name, sock = sock, inbox = green.Queue(),
                            awake = green.Event()}, Bot)
  bot.awake:set()
  bot.reader = green.spawn(function()
    while true do
      bot.awake:wait()  -- a sleepy bot reads nothing
      local line = sock:receive()
      bot.inbox:put(line or false)
      if not line then return end
    end
  end)
  return bot
end

-- Sends a line and shows it (as `shown`, if given).
function Bot:send(line, shown)
  assert(self.sock:send(line .. "\n"))
  say(self.name, ">", shown or line)
end

-- Takes the next line the bot received, or false once it was closed.
function Bot:next()
  local line, err = self.inbox:get(2)
  if line == nil then fail(self.name .. ": nothing received: " .. err) end
  return line
end

-- Shows the next line received, which must be `expected` (if given).
function Bot:hear(expected)
  local line = self:next()
  if expected and line ~= expected then
    fail(("%s: expected %q, got %q"):format(self.name, expected,
                                            tostring(line)))
  end
  say(self.name, "<", line or "(connection closed)")
  return line
end

-- The bot stops reading: what the server sends piles up in its buffers.
function Bot:sleep() self.awake:clear() end
function Bot:wake() self.awake:set() end

local function join(name, port, others)
  local bot = connect(name, port)
  bot:hear("* Welcome to greenlua chat! What is your nickname?")
  bot:send(name)
  bot:hear(("* Hello %s! Type /help for the commands."):format(name))
  bot:hear()
  for _, other in ipairs(others) do
    other:hear(("* %s has joined #lobby"):format(name))
  end
  return bot
end
-- }======

print("greenlua chat demo: a chat server and three bots, in one process")
print("(> is what a bot sends, < what it receives)")

local server = assert(chat.serve {port = 0, queue = 20, patience = 0.2,
                                  sndbuf = 4096, log = false})
narrate("The chat server listens on 127.0.0.1, on a free port. Three bots "
        .. "join:")
local alice = join("alice", server.port, {})
local bob = join("bob", server.port, {alice})
local carol = join("carol", server.port, {alice, bob})

narrate("They chat. What one says, the others in the room hear:")
alice:send("hi everyone!")
bob:hear("<alice> hi everyone!")
carol:hear("<alice> hi everyone!")
bob:send("/who")
bob:hear("* In #lobby: alice, bob, carol")
carol:send("hello alice, hello bob")
alice:hear("<carol> hello alice, hello bob")
bob:hear("<carol> hello alice, hello bob")

narrate("carol's client gets stuck and stops reading. alice, unaware, "
        .. "pastes a long text:")
carol:sleep()
local lines = {}
for i = 1, FLOOD do
  lines[i] = ("line %d of a long text, which carol will never read in "
              .. "full"):format(i)
end
alice:send(table.concat(lines, "\n"), ("(%d lines at once)"):format(FLOOD))

-- bob gets every line, in order, and at some point the news about carol;
-- alice (the sender) only the news.
local got, dropped = 0, false
while got < FLOOD or not dropped do
  local line = bob:next()
  if line == "* carol was dropped (too slow)" then
    dropped = true
  elseif line == ("<alice> " .. lines[got + 1]) then
    got = got + 1
  else
    fail("bob: unexpected " .. tostring(line))
  end
end
say("bob", "<", ("(all %d lines, in order)"):format(FLOOD))
say("bob", "<", "* carol was dropped (too slow)")
alice:hear("* carol was dropped (too slow)")

narrate("carol's client comes back to life. It reads what the server had "
        .. "sent her before\ndropping her, and then finds the connection "
        .. "closed:")
carol:wake()
local read = 0
while true do
  local line = carol:next()
  if not line then break end
  read = read + 1
  if line ~= "<alice> " .. lines[read] then
    fail("carol: unexpected " .. line)
  end
end
if read >= FLOOD then fail("carol got every line: she was not dropped") end
say("carol", "<", "(the start of the text)")
say("carol", "<", "(connection closed)")

narrate("bob has had enough and quits:")
bob:send("/quit")
bob:hear("* Bye, bob!")
bob:hear(false)
alice:hear("* bob has quit")
alice:send("/who")
alice:hear("* In #lobby: alice")

narrate("The server stops: it gives its handlers 0.1 s to end, then kills "
        .. "them,\nwhich closes their connections:")
server:stop(0.1)
alice:hear(false)
for _, bot in ipairs({alice, bob, carol}) do bot.sock:close() end
print("")
print("Done: carol's stall cost alice and bob nothing.")
