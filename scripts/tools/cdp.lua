-- A small client of the Chrome DevTools Protocol over green.websocket, to
-- drive a headless Chromium from greenlua: spec/webchat_spec.lua runs the
-- web chat example in real browser pages with it, and
-- scripts/tools/webchat_screenshot.lua takes the README's picture.
--
--   local cdp = dofile("scripts/tools/cdp.lua")
--   local browser = assert(cdp.launch())          -- a fresh Chromium
--   local page = assert(browser:open("http://127.0.0.1:8080/"))
--   page:eval("document.title")                   -- -> the value
--   page:wait("document.querySelector('#x')", 5)  -- until truthy
--   local png = page:screenshot()                 -- PNG bytes
--   browser:close()                               -- ends Chromium
--
-- Needs Debian's chromium and lua-dkjson.  Chromium runs as the user
-- (--no-sandbox, as root needs), with a new empty profile and without
-- its background networking, whose connections this machine's closed
-- network refuses.
local green = require "green"
local websocket = require "green.websocket"
local json = require "dkjson"

local cdp = {}

local CHROMIUM = "/usr/bin/chromium"
local FLAGS = "--headless --no-sandbox --disable-gpu --disable-quic "
  .. "--no-first-run --disable-background-networking "
  .. "--disable-component-update --disable-sync --disable-extensions "
  .. "--disable-default-apps --mute-audio --hide-scrollbars"

local Browser, Page = {}, {}
Browser.__index, Page.__index = Browser, Page

local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function readfile(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- Reads messages until the answer to command `id` comes; events go to
-- the browser's handlers (none are needed here: they are dropped).
local function await(b, id, deadline)
  while true do
    local left = deadline - green.now()
    if left <= 0 then return nil, "timeout" end
    local text, err = b.ws:receive(left)
    if not text then return nil, err end
    local m = json.decode(text)
    if m and m.id == id then
      if m.error then return nil, m.error.message or "error" end
      return m.result
    end
  end
end

-- b:call(method, params, [session], [timeout=10]) -> result | nil, err
function Browser:call(method, params, session, timeout)
  self.seq = self.seq + 1
  local msg = {id = self.seq, method = method,
               params = params or setmetatable({}, {__jsontype = "object"})}
  if session then msg.sessionId = session end
  local ok, err = self.ws:send(json.encode(msg))
  if not ok then return nil, err end
  return await(self, self.seq, green.now() + (timeout or 10))
end

-- cdp.launch([opts]) -> browser | nil, err: starts Chromium (opts.size:
-- its window, "1000,640"; opts.timeout: for it to listen, 20 s) and
-- connects to it.
function cdp.launch(opts)
  opts = opts or {}
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. q(dir)))
  local b = setmetatable({dir = dir, seq = 0}, Browser)
  local pidfile = dir .. ".pid"
  local cmd = ("%s %s --window-size=%s --user-data-dir=%s "
    .. "--remote-debugging-port=0 about:blank"):format(CHROMIUM, FLAGS,
    opts.size or "1000,640", q(dir .. "/profile"))
  -- its own process group, so that close ends every process of it
  assert(os.execute(("setsid sh -c %s </dev/null >%s 2>&1 & echo $! >%s")
    :format(q("exec " .. cmd), q(dir .. "/log"), q(pidfile))))
  b.pid = tonumber(readfile(pidfile))
  os.remove(pidfile)
  local deadline = green.now() + (opts.timeout or 20)
  local port, path
  repeat
    green.sleep(0.02)
    port, path = (readfile(dir .. "/profile/DevToolsActivePort") or "")
      :match("^(%d+)\n(/%S+)")
  until port or green.now() > deadline
  if not port then
    local log = readfile(dir .. "/log") or ""
    b:close()
    return nil, "chromium did not start: " .. log:sub(-500)
  end
  local ws, err = websocket.connect(("ws://127.0.0.1:%s%s"):format(port, path),
                                    {timeout = 10, max_message = 64 << 20})
  if not ws then
    b:close()
    return nil, err
  end
  b.ws = ws
  return b
end

-- b:open(url) -> page | nil, err: a new tab showing url.
function Browser:open(url)
  local r, err = self:call("Target.createTarget", {url = url})
  if not r then return nil, err end
  local a
  a, err = self:call("Target.attachToTarget", {targetId = r.targetId,
                                               flatten = true})
  if not a then return nil, err end
  return setmetatable({browser = self, session = a.sessionId,
                       target = r.targetId}, Page)
end

-- b:close(): ends Chromium (its whole process group) and removes its
-- profile.
function Browser:close()
  if self.ws then
    self:call("Browser.close", nil, nil, 2)
    self.ws:close(1000, "", 0.5)
    self.ws = nil
  end
  if self.pid then
    os.execute(("kill -TERM -%d 2>/dev/null"):format(self.pid))
    local deadline = green.now() + 5
    while os.execute(("kill -0 -%d 2>/dev/null"):format(self.pid))
          and green.now() < deadline do
      green.sleep(0.05)
    end
    os.execute(("kill -KILL -%d 2>/dev/null"):format(self.pid))
    self.pid = nil
  end
  os.execute("rm -rf " .. q(self.dir))
end

-- page:eval(js) -> its value (JSON-able) | nil, err
function Page:eval(js)
  local r, err = self.browser:call("Runtime.evaluate", {expression = js,
    returnByValue = true, awaitPromise = true}, self.session)
  if not r then return nil, err end
  if r.exceptionDetails then
    return nil, "exception: " .. tostring(r.exceptionDetails.text)
  end
  return r.result.value
end

-- page:wait(js, [timeout=10]) -> its first truthy value | nil, "timeout"
function Page:wait(js, timeout)
  local deadline = green.now() + (timeout or 10)
  while true do
    local v = self:eval(js)
    if v then return v end
    if green.now() > deadline then return nil, "timeout" end
    green.sleep(0.05)
  end
end

-- page:screenshot() -> PNG bytes | nil, err
function Page:screenshot()
  local r, err = self.browser:call("Page.bringToFront", nil, self.session)
  if not r then return nil, err end
  r, err = self.browser:call("Page.captureScreenshot", {format = "png"},
                             self.session, 30)
  if not r then return nil, err end
  local mime = require "mime"  -- lua-socket's base64
  return (mime.unb64(r.data))
end

return cdp
