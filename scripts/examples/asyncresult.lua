-- An AsyncResult carries a value (or an error) from one greenthread to
-- those waiting for it (gevent tutorial, "Events", AsyncResult).
local green = require "green"

local a = green.AsyncResult()

local function setter()
  green.sleep(0.05)  -- after a while, the value is ready
  a:set("Hello!")
end

local function waiter()
  print(a:get())  -- blocks until setter sets it
end

green.joinall({green.spawn(setter), green.spawn(waiter)})

-- An error set with set_error is raised again by get.
local b = green.AsyncResult()
green.spawn(function() b:set_error("no luck") end)
print(pcall(b.get, b))
