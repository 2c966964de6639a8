-- A line-based chat server.  Each client picks a nickname (its first
-- line), lands in the room "lobby" and talks to whoever is in its room:
--   /nick NAME   change nickname        /join ROOM   change room
--   /who         who is in the room     /rooms       list the rooms
--   /quit        leave                  /help        this list
-- A slow or dead client holds nobody up for long: every client has its
-- own bounded queue of outgoing lines, emptied by its own writer
-- greenthread, and a client whose queue overflows, or that has fallen
-- behind and sent nothing for a second, is dropped.
-- Try it with a few of: nc 127.0.0.1 6001
-- Usage: greenlua scripts/examples/chat.lua [port=6001]
-- (scripts/examples/chat_demo.lua loads this file as a module instead.)
local green = require "green"

local Chat = {}

-- serve{port=, host=, queue=, patience=, sndbuf=, log=} -> a started
-- StreamServer, or nil, err.  queue: outgoing lines a client may have
-- waiting (100); patience: how long a client that is behind may send
-- nothing before it is dropped (1 s); sndbuf: its kernel send buffer in
-- bytes (64 KB: with the queue, what a dead client may cost); log:
-- function(msg) for the server's log, or false for none (default: print).
function Chat.serve(opts)
  local QUEUE, SNDBUF = opts.queue or 100, opts.sndbuf or 64 * 1024
  local PATIENCE = opts.patience or 1
  local log = opts.log == nil and print or opts.log or function() end
  local rooms = {}  -- name -> {[client] = true}
  local nicks = {}  -- nickname -> client

  -- The nicknames in a room, sorted, but `except`'s.
  local function members(room, except)
    local list = {}
    for c in pairs(rooms[room] or {}) do
      if c ~= except then list[#list + 1] = c.nick end
    end
    table.sort(list)
    return list
  end

  local drop

  -- Sends a line to client c, its newline already on (`data`): at once
  -- as far as its socket takes it when nothing of c's is waiting, the
  -- rest queued for c's writer.  Returns false if c's queue is full: the
  -- caller then drops c (not while it walks a room).
  local function send(c, data)
    if c.gone then return true end
    if c.pending == 0 then
      local n = c.sock:trysend(data)
      if n == #data or n == nil then return true end  -- nil: the reader
      if n > 0 then data = data:sub(n + 1) end         -- sees it closed
    end
    if c.out:put_nowait(data) == nil then return false end
    c.pending = c.pending + 1  -- queued, or in the writer's hands
    return true
  end

  local function tell(c, line) return send(c, line .. "\n") end

  -- A client whose queue is half full slows down whoever talks to it:
  -- the talker waits for its writer to send something.  This lets a
  -- reader that is merely slower than a talker keep up (a talker whose
  -- lines are all buffered already would otherwise outrun every socket),
  -- for PATIENCE seconds at most: a client that has sent nothing for that
  -- long while behind is stuck, and is dropped.
  local function keepup(c)
    while not c.gone and c.out:qsize() * 2 >= QUEUE do
      local now = green.now()
      c.behind = c.behind or now  -- reset by the writer as it sends
      if now - c.behind >= PATIENCE then return drop(c) end
      c.sent:clear()
      c.sent:wait(c.behind + PATIENCE - now)
    end
  end

  -- Tells every client in `room` but `except` the line (made once for
  -- all); drops those whose queue overflows, then waits for those that are
  -- behind.
  local function broadcast(room, line, except)
    local full, behind
    local data, half = line .. "\n", QUEUE / 2
    for c in pairs(rooms[room] or {}) do
      if c ~= except then
        if not send(c, data) then
          full = full or {}
          full[#full + 1] = c
        elseif c.pending > 0 and #c.out >= half then  -- 0: all sent at once
          behind = behind or {}
          behind[#behind + 1] = c
        end
      end
    end
    for _, c in ipairs(full or {}) do drop(c) end
    for _, c in ipairs(behind or {}) do keepup(c) end
  end

  local function enter(c, room)
    c.room = room
    rooms[room] = rooms[room] or {}
    rooms[room][c] = true
    local others = members(room, c)
    tell(c, #others == 0
      and ("* You are in #%s, alone for now."):format(room)
      or ("* You are in #%s with %s."):format(room, table.concat(others, ", ")))
    broadcast(room, ("* %s has joined #%s"):format(c.nick, room), c)
    log(("%s joined #%s"):format(c.nick, room))
  end

  -- Takes c out of its room (and out of the nicknames, if `quitting`).
  local function leave(c, quitting)
    local room = c.room
    if room == nil then return end
    rooms[room][c] = nil
    if next(rooms[room]) == nil then rooms[room] = nil end
    c.room = nil
    if quitting then nicks[c.nick] = nil end
    return room
  end

  -- Ends a client's queue (its writer sends what is left, then ends).
  local function finish(c)
    if c.gone then return end
    c.gone = true
    c.out:close()
  end

  -- Drops a client that is too slow: closes its socket at once,
  -- which wakes its writer (blocked in send) and its handler (in
  -- receive) with "closed".
  function drop(c)
    if c.gone then return end
    finish(c)
    c.sock:close()
    local room = leave(c, true)
    log(("%s dropped (too slow)"):format(c.nick))
    broadcast(room, ("* %s was dropped (too slow)"):format(c.nick))
  end

  -- Sends c's queued lines, as many at a time as are waiting, until the
  -- queue is closed and empty or the socket fails.
  local function writer(c)
    local out, sock = c.out, c.sock
    while true do
      local data = out:get()
      if data == nil then return end  -- closed and drained
      local n = 1
      if #out > 0 then
        local batch = {data}
        repeat batch[#batch + 1] = out:get_nowait() until #out == 0
        data, n = table.concat(batch), #batch
      end
      if not sock:send(data) then return end
      c.pending = c.pending - n
      if c.behind then  -- a talker may wait in keepup
        c.behind = nil
        c.sent:set()
      end
    end
  end

  local function validnick(c, nick)
    if not nick:match("^[%w_%-]+$") or #nick > 16 then
      tell(c, "* A nickname is 1 to 16 letters, digits, _ or -.")
    elseif nicks[nick] and nicks[nick] ~= c then
      tell(c, ("* %s is taken, pick another."):format(nick))
    else
      return true
    end
    return false
  end

  local commands = {}

  function commands.nick(c, name)
    if name == c.nick or not validnick(c, name) then return end
    local old = c.nick
    nicks[old], nicks[name], c.nick = nil, c, name
    tell(c, ("* You are now known as %s."):format(name))
    broadcast(c.room, ("* %s is now known as %s"):format(old, name), c)
    log(("%s is now %s"):format(old, name))
  end

  function commands.join(c, room)
    room = room:gsub("^#", "")
    if not room:match("^[%w_%-]+$") or #room > 32 then
      tell(c, "* A room name is 1 to 32 letters, digits, _ or -.")
    elseif room == c.room then
      tell(c, ("* You are in #%s already."):format(room))
    else
      local old = leave(c)
      broadcast(old, ("* %s has left #%s"):format(c.nick, old))
      enter(c, room)
    end
  end

  function commands.who(c)
    local list = table.concat(members(c.room), ", ")
    tell(c, ("* In #%s: %s"):format(c.room, list))
  end

  function commands.rooms(c)
    local list = {}
    for name, set in pairs(rooms) do
      local n = 0
      for _ in pairs(set) do n = n + 1 end
      list[#list + 1] = ("#%s (%d)"):format(name, n)
    end
    table.sort(list)
    tell(c, "* Rooms: " .. table.concat(list, ", "))
  end

  function commands.help(c)
    tell(c, "* Commands: /nick NAME, /join ROOM, /who, /rooms, /quit, /help")
  end

  -- Serves one client.  However it ends (quit, disconnect, drop, the
  -- server stopping), its to-be-closed variable takes the client out of
  -- its room and ends its writer.
  local function handle(sock)
    sock:setoption("sndbuf", SNDBUF)
    sock:setoption("tcp-nodelay", true)  -- lines go out as they are written
    local c = {sock = sock, out = green.Queue(QUEUE), sent = green.Event(),
               pending = 0}
    local _ <close> = setmetatable(c, {__close = function()
      local room = leave(c, true)
      finish(c)
      if room then
        broadcast(room, ("* %s has quit"):format(c.nick))
        log(("%s left"):format(c.nick))
      end
    end})
    c.writer = green.spawn(writer, c)
    tell(c, "* Welcome to greenlua chat! What is your nickname?")
    local line
    repeat
      line = sock:receive()
      if line == nil then return end
    until validnick(c, line)
    c.nick, nicks[line] = line, c
    tell(c, ("* Hello %s! Type /help for the commands."):format(line))
    enter(c, "lobby")
    while true do
      line = sock:receive()
      if line == nil or c.gone then return end  -- gone, or dropped
      local cmd, rest = line:match("^/(%a+)%s*(.-)%s*$")
      if cmd == "quit" then
        tell(c, ("* Bye, %s!"):format(c.nick))
        finish(c)
        c.writer:join(2)  -- lets the goodbye out before the socket closes
        return
      elseif (cmd == "nick" or cmd == "join") and rest == "" then
        tell(c, ("* Usage: /%s %s"):format(cmd, cmd == "nick" and "NAME"
                                                or "ROOM"))
      elseif commands[cmd] then
        commands[cmd](c, rest)
      elseif cmd then
        tell(c, ("* Unknown command /%s; /help lists them."):format(cmd))
      elseif line ~= "" then
        broadcast(c.room, ("<%s> %s"):format(c.nick, line), c)
      end
    end
  end

  return green.StreamServer(opts.host or "127.0.0.1", opts.port or 6001,
                            handle):start()
end

-- Loaded as a module (chat_demo.lua passes a table): hand the module over.
local asmodule = ...
if type(asmodule) == "table" then return Chat end

io.stdout:setvbuf("line")
local port = math.tointeger(tonumber(arg[1] or 6001))
assert(port, "usage: chat.lua [port]")
local srv = assert(Chat.serve {port = port})
print("chat server listening on port " .. srv.port)
srv:serve_forever()
