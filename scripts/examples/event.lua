-- One greenthread sets an Event that five others wait on (gevent
-- tutorial, "Events").
local green = require "green"

local evt = green.Event()

local function setter()
  print("A: Hey wait for me, I have to do something")
  green.sleep(0.05)
  print("Ok, I'm done")
  evt:set()  -- wakes every waiter, in the order they started waiting
end

local function waiter(n)
  print("I'll wait for you (waiter " .. n .. ")")
  evt:wait()
  print("It's about time (waiter " .. n .. ")")
end

local gs = {green.spawn(setter)}
for n = 1, 5 do gs[#gs + 1] = green.spawn(waiter, n) end
green.joinall(gs)
