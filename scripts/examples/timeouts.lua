-- The forms of a timeout (gevent tutorial, "Timeouts").
local green = require "green"

local function wait()
  green.sleep(1)
  return "finished"
end

-- 1. Start and cancel: a fired Timeout raises itself at the blocking call.
local timer = green.Timeout(0.01):start()
local ok, err = pcall(function() green.spawn(wait):join() end)
timer:cancel()
if not ok and err == timer then print("Thread 1 timed out") end

-- 2. A to-be-closed Timeout is cancelled at the end of its scope.
local _, msg = pcall(function()
  local _ <close> = green.Timeout(0.01, "too long"):start()
  wait()
end)
print("Thread 2: " .. msg)

-- 3. with_timeout returns nil, "timeout" instead of raising.
print("Thread 3:", green.with_timeout(0.01, wait))

-- 4. start_new makes and starts one.
local t = green.Timeout.start_new(0.01)
ok, err = pcall(wait)
if not ok and green.is_timeout(err) and err == t then
  print("Thread 4 timed out")
end

-- 5. g:get(timeout) raises a green.Timeout if g is not done in time.
local g = green.spawn(wait)
ok, err = pcall(g.get, g, 0.01)
if not ok and green.is_timeout(err) then print("Thread 5 timed out") end
g:kill()

-- A timeout that does not elapse changes nothing.
print("Thread 6:", green.with_timeout(1, function() return "in time" end))
