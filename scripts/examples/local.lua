-- A Local's fields are separate for each greenthread (gevent tutorial,
-- "Thread Locals").
local green = require "green"

local stash = green.Local()

local function f1()
  stash.x = 1
  print(stash.x)
end

local function f2()
  stash.y = 2
  print(stash.y)
  if stash.x == nil then  -- f1's x is not visible here
    print("x is not local to f2")
  end
end

green.joinall({green.spawn(f1), green.spawn(f2)})
