-- A BoundedSemaphore lets two workers at a time into a section (gevent
-- tutorial, "Locks and Semaphores").
local green = require "green"

local sem = green.BoundedSemaphore(2)

local function worker1(n)
  sem:acquire()
  print(("Worker %d acquired semaphore"):format(n))
  green.sleep(0)
  sem:release()
  print(("Worker %d released semaphore"):format(n))
end

-- The same with a to-be-closed guard: released at the end of the scope.
local function worker2(n)
  do
    local _ <close> = sem:hold()
    print(("Worker %d acquired semaphore"):format(n))
    green.sleep(0)
  end
  print(("Worker %d released semaphore"):format(n))
end

local pool = green.Pool()
pool:map(worker1, {0, 1})
pool:map(worker2, {3, 4, 5})
