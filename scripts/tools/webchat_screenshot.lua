-- Takes the README's picture of the web chat: scripts/examples/webchat.lua
-- served in this process, three people talking in a headless Chromium
-- (scripts/tools/cdp.lua), alice's page captured.
-- Usage: greenlua scripts/tools/webchat_screenshot.lua [out=scripts/examples/webchat.png]
local green = require "green"
local cdp = dofile("scripts/tools/cdp.lua")
local Chat = assert(loadfile("scripts/examples/webchat.lua"))({})

local out = arg[1] or "scripts/examples/webchat.png"
local srv = assert(Chat.serve{port = 0, log = false})
local url = ("http://127.0.0.1:%d/"):format(srv.port)
local browser = assert(cdp.launch{size = "900,540"})

local function join(nick)
  local page = assert(browser:open(url .. "?nick=" .. nick))
  assert(page:wait(("document.getElementById('status').textContent"
    .. " === 'connected as %s'"):format(nick), 15))
  return page
end

local function say(page, text)
  assert(page:eval(("(() => { document.getElementById('text').value = %q;"
    .. " document.getElementById('send').click(); return true })()"):format(text)))
  green.sleep(0.1)
end

local ok, err = pcall(function()
  local alice = join("alice")
  local bob = join("bob")
  say(bob, "hi alice! is this running on greenlua?")
  say(alice, "yes: one process, a greenthread per connection, WebSocket from green.websocket")
  local carol = join("carol")
  say(carol, "hello both, I just got the last messages on joining")
  say(bob, "and if someone stops reading, the server drops them and we go on")
  say(alice, "nice — time to ship it")
  local png = assert(alice:screenshot())
  local f = assert(io.open(out, "wb"))
  f:write(png)
  f:close()
  print(("wrote %s (%d bytes)"):format(out, #png))
end)
browser:close()
srv:stop(0.5)
if not ok then error(err, 0) end
