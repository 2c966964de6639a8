-- A boss fills a Queue, three workers take tasks from it in turn until it
-- is empty (gevent tutorial, "Queues").
local green = require "green"

local tasks = green.Queue()

local function worker(name)
  while not tasks:empty() do
    local task = tasks:get()
    print(("Worker %s got task %d"):format(name, task))
    green.sleep(0)  -- let the other workers take one
  end
  print("Quitting time!")
end

local function boss()
  for i = 1, 9 do tasks:put_nowait(i) end
end

green.spawn(boss):join()
green.joinall({
  green.spawn(worker, "steve"),
  green.spawn(worker, "john"),
  green.spawn(worker, "nancy"),
})
