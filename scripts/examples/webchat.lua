-- A web chat: one HTTP server serves its page (HTML and JavaScript, no
-- framework) at / and a chat room over WebSocket at /ws.  A browser picks
-- a nickname, gets the last 50 messages, and then whatever anyone says;
-- joins and leaves are announced.  Every client has a bounded queue of
-- outgoing messages, emptied by a greenthread of its own, for what its
-- socket does not take at once: a client that cannot keep up (its queue
-- full) is dropped, and the others go on.
-- Usage: greenlua scripts/examples/webchat.lua [port=8080] [host=127.0.0.1]
-- then open the address it prints in a browser (or two).
--
-- The protocol, for other clients: the first text message a client sends
-- is its nickname, each later one a line of chat ("/nick NAME" renames).
-- The server sends JSON objects: {"type":"welcome","nick","count","users"
-- (up to 100),"history"}, {"type":"error","text"}, {"type":"say","nick",
-- "text","time"}, {"type":"join"/"leave","nick","count"}, {"type":
-- "nick","old","nick"}.
-- (Loaded as a module, it returns {serve = fn, PAGE = html}.)
local green = require "green"
local http, websocket = green.http, green.websocket

local Chat = {}

-- {====== The page ======

Chat.PAGE = [==[<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>greenlua web chat</title>
<style>
  * { box-sizing: border-box; }
  body { margin: 0; font: 15px/1.4 system-ui, sans-serif; color: #1d2a1f;
         background: #eef3ee; display: flex; flex-direction: column;
         height: 100vh; }
  header { background: #2c7a3f; color: #fff; padding: 10px 16px;
           display: flex; align-items: baseline; gap: 12px; }
  header h1 { font-size: 18px; margin: 0; }
  #status { font-size: 13px; opacity: .85; }
  main { flex: 1; display: flex; min-height: 0; }
  #log { flex: 1; margin: 0; padding: 12px 16px; list-style: none;
         overflow-y: auto; }
  #log li { margin: 2px 0; word-wrap: break-word; }
  #log .time { color: #7a8a7d; font-size: 12px; margin-right: 6px; }
  #log .nick { font-weight: 600; color: #2c7a3f; margin-right: 6px; }
  #log .mine .nick { color: #b5542c; }
  #log .notice { color: #66746a; font-style: italic; }
  #log .error { color: #b02a2a; }
  aside { width: 180px; border-left: 1px solid #cfdccf; padding: 12px;
          background: #f7faf7; overflow-y: auto; }
  aside h2 { font-size: 13px; margin: 0 0 6px; color: #66746a; }
  #users { list-style: none; margin: 0; padding: 0; }
  form { display: flex; gap: 8px; padding: 10px 16px; background: #fff;
         border-top: 1px solid #cfdccf; }
  input { flex: 1; padding: 8px 10px; font: inherit; border: 1px solid #b9c9ba;
          border-radius: 6px; }
  button { padding: 8px 16px; font: inherit; border: 0; border-radius: 6px;
           background: #2c7a3f; color: #fff; cursor: pointer; }
  button:disabled { background: #9db5a2; }
  .hidden { display: none; }
</style>
</head>
<body>
<header><h1>greenlua web chat</h1><span id="status">not connected</span></header>
<main>
  <ul id="log"></ul>
  <aside><h2>Here <span id="count"></span></h2><ul id="users"></ul></aside>
</main>
<form id="joinform">
  <input id="nick" placeholder="Pick a nickname (letters, digits, _ or -)"
         maxlength="16" autocomplete="off" autofocus>
  <button id="join">Join</button>
</form>
<form id="sayform" class="hidden">
  <input id="text" placeholder="Say something (/nick NAME to rename)"
         maxlength="2000" autocomplete="off">
  <button id="send">Send</button>
</form>
<script>
"use strict";
const $ = id => document.getElementById(id);
const log = $("log"), users = new Set();
let ws = null, me = null;

function status(text) { $("status").textContent = text; }

function add(kind, parts) {
  const li = document.createElement("li");
  li.className = kind;
  for (const [cls, text] of parts) {
    const span = document.createElement("span");
    if (cls) span.className = cls;
    span.textContent = text;
    li.appendChild(span);
  }
  const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
  log.appendChild(li);
  if (atBottom) log.scrollTop = log.scrollHeight;
}

function clock(t) {
  const d = new Date(t * 1000);
  return d.toTimeString().slice(0, 5);
}

function say(m) {
  add(m.nick === me ? "say mine" : "say",
      [["time", clock(m.time)], ["nick", m.nick], ["text", m.text]]);
}

function showUsers(count) {
  const ul = $("users");
  ul.textContent = "";
  for (const u of [...users].sort()) {
    const li = document.createElement("li");
    li.textContent = u === me ? u + " (you)" : u;
    ul.appendChild(li);
  }
  $("count").textContent = "(" + count + ")";
}

function joined(ok) {
  $("joinform").classList.toggle("hidden", ok);
  $("sayform").classList.toggle("hidden", !ok);
  (ok ? $("text") : $("nick")).focus();
}

function connect(nick) {
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  ws = new WebSocket(scheme + location.host + "/ws");
  status("connecting…");
  $("join").disabled = true;
  ws.onopen = () => ws.send(nick);
  ws.onmessage = ev => {
    const m = JSON.parse(ev.data);
    switch (m.type) {
      case "welcome":
        me = m.nick;
        users.clear();
        for (const u of m.users) users.add(u);
        users.add(me);
        for (const h of m.history) say(h);
        add("notice", [[null, "You joined as " + me + "."]]);
        showUsers(m.count);
        status("connected as " + me);
        joined(true);
        break;
      case "error":
        add("error", [[null, m.text]]);
        $("join").disabled = false;
        break;
      case "say":
        say(m);
        break;
      case "join":
        users.add(m.nick);
        add("notice", [[null, m.nick + " joined."]]);
        showUsers(m.count);
        break;
      case "leave":
        users.delete(m.nick);
        add("notice", [[null, m.nick + (m.reason ? " was dropped (" + m.reason + ")." : " left.")]]);
        showUsers(m.count);
        break;
      case "nick":
        users.delete(m.old);
        users.add(m.nick);
        if (m.old === me) me = m.nick;
        add("notice", [[null, m.old + " is now " + m.nick + "."]]);
        showUsers(users.size);
        break;
    }
  };
  ws.onclose = ev => {
    status("disconnected (" + ev.code + (ev.reason ? ": " + ev.reason : "") + ")");
    if (me) add("error", [[null, "Disconnected. Join again to come back."]]);
    me = null;
    $("join").disabled = false;
    joined(false);
  };
}

$("joinform").onsubmit = ev => {
  ev.preventDefault();
  const nick = $("nick").value.trim();
  if (nick) connect(nick);
};
$("sayform").onsubmit = ev => {
  ev.preventDefault();
  const text = $("text").value;
  if (text.trim() && ws && ws.readyState === WebSocket.OPEN) {
    ws.send(text);
    $("text").value = "";
  }
};
const asked = new URLSearchParams(location.search).get("nick");
if (asked) { $("nick").value = asked; connect(asked); }
</script>
</body>
</html>
]==]
-- }======

-- {====== The room ======

-- JSON strings (the text of a WebSocket text message is UTF-8 already).
local ESC = {['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r",
             ["\t"] = "\\t"}
local function jstr(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return ESC[c] or ("\\u%04x"):format(c:byte())
  end) .. '"'
end

-- serve{port=, host=, history=, queue=, sndbuf=, notices=, max_line=,
-- log=} -> a started green.http server, or nil, err.  history: messages
-- a newcomer gets (50); queue: outgoing messages a client may have
-- waiting (100); sndbuf: its socket's send buffer (64 KiB: with the
-- queue, what a client that reads nothing may cost);
-- notices: joins and leaves are announced while the room has at most
-- this many people (200; a room of thousands would hear of little else);
-- max_line: the longest line (2,000 bytes); log: function(line) for the
-- server's log, false for none (default: print).
function Chat.serve(opts)
  opts = opts or {}
  local HISTORY, QUEUE = opts.history or 50, opts.queue or 100
  local SNDBUF = opts.sndbuf or 64 * 1024
  local NOTICES, MAXLINE = opts.notices or 200, opts.max_line or 2000
  local log = opts.log == nil and print or opts.log or function() end
  local clients, count = {}, 0  -- client -> true (joined ones)
  local nicks = {}              -- nickname -> client
  local history = {}            -- the last HISTORY "say" objects, as JSON

  local drop

  -- Sends msg to c at once if its socket takes it and nothing of c's is
  -- waiting, else queues it for c's writer; returns false if c's queue
  -- is full (the caller then drops c, after its walk over the room).
  local function tell(c, msg)
    if c.gone then return true end
    if c.pending == 0 and c.ws:trysend(msg) then return true end
    if c.out:put_nowait(msg) == nil then return false end
    c.pending = c.pending + 1  -- queued, or in the writer's hands
    return true
  end

  local function broadcast(msg, except)
    local full
    for c in pairs(clients) do
      if c ~= except and not tell(c, msg) then
        full = full or {}
        full[#full + 1] = c
      end
    end
    for _, c in ipairs(full or {}) do drop(c) end
  end

  local function notice(kind, c, reason)
    if count > NOTICES then return end
    broadcast(('{"type":"%s","nick":%s,"count":%d%s}'):format(kind,
      jstr(c.nick), count, reason and ',"reason":' .. jstr(reason) or ""), c)
  end

  -- Takes c out of the room.
  local function leave(c, reason)
    if not clients[c] then return end
    clients[c], nicks[c.nick] = nil, nil
    count = count - 1
    log(("%s %s"):format(c.nick, reason and "dropped (" .. reason .. ")" or "left"))
    notice("leave", c, reason)
  end

  -- Ends c's queue: its writer sends what is left, then ends.
  local function finish(c)
    if c.gone then return end
    c.gone = true
    c.out:close()
  end

  -- Drops a client that cannot keep up: its socket closes at once (a
  -- close frame goes only if the socket takes it now), which ends its
  -- writer and its receive with "closed".
  function drop(c)
    if c.gone then return end
    finish(c)
    c.ws:close(1008, "too slow", 0)
    leave(c, "too slow")
  end

  local function writer(c)
    local out, ws = c.out, c.ws
    while true do
      local msg = out:get()
      if msg == nil or not ws:send(msg) then return end
      c.pending = c.pending - 1
    end
  end

  local function badnick(nick)
    if not nick:match("^[%w_%-]+$") or #nick > 16 then
      return "A nickname is 1 to 16 letters, digits, _ or -."
    elseif nicks[nick] then
      return nick .. " is taken, pick another."
    end
  end

  local function enter(c, nick)
    c.nick, nicks[nick] = nick, c
    clients[c] = true
    count = count + 1
    local names = {}
    for other in pairs(clients) do
      if #names == 100 then break end
      if other ~= c then names[#names + 1] = jstr(other.nick) end
    end
    tell(c, ('{"type":"welcome","nick":%s,"count":%d,"users":[%s],"history":[%s]}')
      :format(jstr(nick), count, table.concat(names, ","),
              table.concat(history, ",")))
    log(nick .. " joined")
    notice("join", c)
  end

  local function speak(c, text)
    local cmd, arg = text:match("^/(%a+)%s*(.-)%s*$")
    if cmd == "nick" then
      local bad = badnick(arg)
      if bad then return tell(c, '{"type":"error","text":' .. jstr(bad) .. "}") end
      local old = c.nick
      nicks[old], nicks[arg], c.nick = nil, c, arg
      log(("%s is now %s"):format(old, arg))
      return broadcast(('{"type":"nick","old":%s,"nick":%s}'):format(jstr(old), jstr(arg)))
    end
    if #text > MAXLINE then text = text:sub(1, MAXLINE):gsub("[\128-\191]*[\192-\255]?$", "") end
    local msg = ('{"type":"say","nick":%s,"text":%s,"time":%d}')
      :format(jstr(c.nick), jstr(text), os.time())
    history[#history + 1] = msg
    if #history > HISTORY then table.remove(history, 1) end
    log(("<%s> %s"):format(c.nick, text))
    broadcast(msg)
  end

  -- One WebSocket client: its nickname, then its lines, until it leaves
  -- or is dropped; however that ends, it leaves the room and its writer
  -- ends.
  local function chat(ws)
    local c = {ws = ws, out = green.Queue(QUEUE), pending = 0}
    ws:socket():setoption("sndbuf", SNDBUF)
    local _ <close> = setmetatable(c, {__close = function()
      finish(c)
      leave(c)
      ws:close(1000, "", 0.5)
    end})
    green.spawn(writer, c)
    while true do
      local text, kind = ws:receive()
      if not text or c.gone then return end
      if kind == "text" then
        if c.nick then
          speak(c, text)
        else
          local bad = badnick(text)
          if bad then tell(c, '{"type":"error","text":' .. jstr(bad) .. "}")
          else enter(c, text) end
        end
      end
    end
  end

  local function handler(req, res)
    if req.path == "/" then
      return 200, {["Content-Type"] = "text/html; charset=utf-8",
                   ["Cache-Control"] = "no-cache"}, Chat.PAGE
    elseif req.path == "/ws" then
      local ws = websocket.upgrade(req, res, {max_message = 4 * MAXLINE + 64})
      if ws then chat(ws) end
      return
    end
    return 404, {["Content-Type"] = "text/plain"}, "not found\n"
  end

  return http.server(opts.host or "127.0.0.1", opts.port or 8080, handler):start()
end
-- }======

-- Loaded as a module (a table is passed): hand the module over.
local asmodule = ...
if type(asmodule) == "table" then return Chat end

io.stdout:setvbuf("line")
local port = math.tointeger(tonumber(arg[1] or 8080))
assert(port, "usage: webchat.lua [port] [host]")
local srv = assert(Chat.serve {port = port, host = arg[2]})
print(("web chat on http://%s:%d/"):format(srv.host == "0.0.0.0" and "127.0.0.1"
  or srv.host, srv.port))
srv:serve_forever()
