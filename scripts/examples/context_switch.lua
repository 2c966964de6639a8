-- Two greenthreads hand control to each other: green.sleep(0) is an
-- explicit context switch (gevent tutorial, "Synchronous & Asynchronous
-- Execution").  Run: greenlua scripts/examples/context_switch.lua
local green = require "green"

local function foo()
  print("Running in foo")
  green.sleep(0)  -- let bar run
  print("Explicit context switch to foo again")
end

local function bar()
  print("Explicit context to bar")
  green.sleep(0)  -- back to foo
  print("Implicit context switch back to bar")
end

-- spawn only schedules: both start once the main greenthread waits.
green.joinall({green.spawn(foo), green.spawn(bar)})
