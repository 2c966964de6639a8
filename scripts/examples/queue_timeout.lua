-- A bounded Queue: the boss waits while it is full, and workers quit when
-- no task comes within their timeout (gevent tutorial, "Queues", with
-- maxsize and get(timeout)).
local green = require "green"

local tasks = green.Queue(3)

local function worker(name)
  while true do
    local task, err = tasks:get(0.05)
    if task == nil then  -- err is "timeout": nothing came in time
      print(("Quitting time! (%s: %s)"):format(name, err))
      return
    end
    print(("Worker %s got task %d"):format(name, task))
    green.sleep(0)
  end
end

local function boss()
  for i = 1, 9 do tasks:put(i) end  -- waits while 3 tasks are queued
  print("Assigned all work in iteration 1")
  for i = 10, 15 do tasks:put(i) end
  print("Assigned all work in iteration 2")
end

green.joinall({
  green.spawn(boss),
  green.spawn(worker, "steve"),
  green.spawn(worker, "john"),
  green.spawn(worker, "bob"),
})
