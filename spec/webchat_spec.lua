-- scripts/examples/webchat.lua in a real browser: a headless Chromium
-- (Debian's chromium) opens two pages of the chat, driven through the
-- DevTools protocol by green.websocket (scripts/tools/cdp.lua), so the
-- pages' WebSockets talk to green.websocket.upgrade and our client talks
-- to Chromium's own server.  Each page joins, says something, and must
-- show what the other said; the server's log must show both.  A Python
-- websockets client joins too, and is dropped when it stops reading.
local green = require "green"
local h = require "spec.helpers"
local cdp = dofile("scripts/tools/cdp.lua")

describe("scripts/examples/webchat.lua", function()
  local server, port, browser

  setup(function()
    server = h.spawn(h.BIN .. " scripts/examples/webchat.lua 0")
    port = tonumber(server:await("web chat on http://127%.0%.0%.1:(%d+)/"))
    browser = assert(cdp.launch())
  end)

  teardown(function()
    if browser then browser:close() end
    if server then server:kill() end
  end)

  -- The text of a page's message log.
  local LOG = "document.getElementById('log').innerText"

  local function say(page, text)
    assert(page:eval(("(() => { const t = document.getElementById('text');"
      .. " t.value = %q; document.getElementById('send').click(); return true })()")
      :format(text)))
  end

  it("lets two browser pages join and talk to each other", function()
    local url = ("http://127.0.0.1:%d/"):format(port)
    local alice = assert(browser:open(url .. "?nick=alice"))
    assert(alice:wait("document.getElementById('status').textContent"
      .. " === 'connected as alice'", 15), "alice did not join")
    local bob = assert(browser:open(url .. "?nick=bob"))
    assert(bob:wait("document.getElementById('status').textContent"
      .. " === 'connected as bob'", 15), "bob did not join")
    assert(alice:wait(LOG .. ".includes('bob joined.')", 10))

    say(alice, "hello from alice, ça va?")
    say(bob, "hi alice, bob here")
    assert(bob:wait(LOG .. ".includes('hello from alice, ça va?')", 10),
           "bob's page: " .. tostring(bob:eval(LOG)))
    assert(alice:wait(LOG .. ".includes('hi alice, bob here')", 10),
           "alice's page: " .. tostring(alice:eval(LOG)))
    -- the user lists, and the history a newcomer gets
    assert.equal("alice (you)\nbob", alice:eval("document.getElementById('users').innerText"))
    local carol = assert(browser:open(url .. "?nick=carol"))
    assert(carol:wait(LOG .. ".includes('hi alice, bob here')", 15),
           "carol's history: " .. tostring(carol:eval(LOG)))
    assert.truthy(carol:eval(LOG .. ".includes('hello from alice, ça va?')"))
    -- the browsers agreed on permessage-deflate, and a long line goes
    -- through it both ways
    assert.matches("^permessage%-deflate", alice:eval("ws.extensions"))
    local long = ("compressed? "):rep(150) .. "end"
    say(bob, long)
    assert(alice:wait(("%s.includes(%q)"):format(LOG, long), 10))

    local out = server:output()
    for _, line in ipairs{"alice joined", "bob joined", "carol joined",
                          "<alice> hello from alice, ça va?",
                          "<bob> hi alice, bob here"} do
      assert.matches(line, out, 1, true)
    end
    local png = assert(alice:screenshot())
    assert.equal("\137PNG\r\n\26\n", png:sub(1, 8))
  end)

  it("drops a client that stops reading, and the others go on", function()
    local url = ("http://127.0.0.1:%d/"):format(port)
    local dave = assert(browser:open(url .. "?nick=dave"))
    assert(dave:wait("document.getElementById('status').textContent"
      .. " === 'connected as dave'", 15))
    -- a Python client that joins, then reads nothing while others talk
    local py = h.spawn(("%s -c %s %d"):format(h.PYTHON, h.q([[
import asyncio, socket, sys, websockets
async def main():
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", int(sys.argv[1])))
    ws = await websockets.connect("ws://127.0.0.1:%s/ws" % sys.argv[1],
                                  sock=s, compression=None, max_queue=1)
    ws.transport.pause_reading()  # stop reading at once
    await ws.send("sleepy")
    print("joined", flush=True)
    await asyncio.sleep(60)
asyncio.run(main())
]]), port))
    py:await("joined", 15)
    assert(dave:wait(LOG .. ".includes('sleepy joined.')", 10))
    local chunk = ("z"):rep(1900)
    for i = 1, 400 do
      say(dave, i .. " " .. chunk)
      if i % 50 == 0 and dave:eval(LOG .. ".includes('sleepy was dropped')") then
        break
      end
    end
    assert(dave:wait(LOG .. ".includes('sleepy was dropped (too slow).')", 20),
           "dave's page: " .. tostring(dave:eval(LOG)):sub(-300))
    say(dave, "still here")
    assert(dave:wait(LOG .. ".includes('still here')", 10))
    assert.matches("sleepy dropped (too slow)", server:output(), 1, true)
    py:kill()
  end)
end)
