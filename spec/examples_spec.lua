-- scripts/examples/*.lua: each example runs as a child greenlua and
-- prints exactly what its comments promise.

local BIN = os.getenv("GREENLUA") or "build/greenlua"
local DIR = "scripts/examples/"

local helpers = require "spec.helpers"
local q, slurp = helpers.q, helpers.slurp

-- Runs an example and returns its stdout, stderr and exit status.
local function run(name)
  local errfile = os.tmpname()
  local cmd = ("</dev/null env -u LUA_INIT -u LUA_INIT_5_4 timeout 20 %s %s"
    .. " 2>%s; echo \"status=$?\""):format(q(BIN), q(DIR .. name), q(errfile))
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  local err = slurp(errfile)
  os.remove(errfile)
  local status = tonumber(out:match("status=(%d+)\n$"))
  return (out:gsub("status=%d+\n$", "")), err, status
end

-- Lines joined with newlines, one after the last.
local function lines(t)
  return table.concat(t, "\n") .. "\n"
end

-- Asserts that example `name` exits 0 with stdout `expected` and nothing
-- on stderr.
local function check(name, expected)
  local out, err, status = run(name)
  assert.equal("", err)
  assert.equal(expected, out)
  assert.equal(0, status)
end

describe("scripts/examples", function()
  it("context_switch.lua interleaves foo and bar at each sleep(0)",
     function()
    check("context_switch.lua", lines {
      "Running in foo",
      "Explicit context to bar",
      "Explicit context switch to foo again",
      "Implicit context switch back to bar",
    })
  end)

  it("determinism.lua gets the same result twice from a Pool", function()
    check("determinism.lua", lines {
      "run 1: 1 2 3 4 5 6 7 8 9 10",
      "run 2: 1 2 3 4 5 6 7 8 9 10",
      "same result twice: true",
    })
  end)

  it("event.lua wakes the five waiters once the setter is done", function()
    local expected = {"A: Hey wait for me, I have to do something"}
    for n = 1, 5 do
      expected[#expected + 1] = ("I'll wait for you (waiter %d)"):format(n)
    end
    expected[#expected + 1] = "Ok, I'm done"
    for n = 1, 5 do
      expected[#expected + 1] = ("It's about time (waiter %d)"):format(n)
    end
    check("event.lua", lines(expected))
  end)

  it("asyncresult.lua hands a value and an error over", function()
    check("asyncresult.lua", lines {"Hello!", "false\tno luck"})
  end)

  it("queue_workers.lua shares the tasks among the workers in turn",
     function()
    local expected, names = {}, {"steve", "john", "nancy"}
    for task = 1, 9 do
      expected[#expected + 1] = ("Worker %s got task %d")
        :format(names[(task - 1) % 3 + 1], task)
    end
    for _ = 1, 3 do expected[#expected + 1] = "Quitting time!" end
    check("queue_workers.lua", lines(expected))
  end)

  it("queue_timeout.lua bounds the queue; workers quit on a timeout",
     function()
    local expected, names = {}, {"steve", "john", "bob"}
    local function got(task)
      expected[#expected + 1] = ("Worker %s got task %d")
        :format(names[(task - 1) % 3 + 1], task)
    end
    for task = 1, 6 do got(task) end
    expected[#expected + 1] = "Assigned all work in iteration 1"
    for task = 7, 12 do got(task) end
    expected[#expected + 1] = "Assigned all work in iteration 2"
    for task = 13, 15 do got(task) end
    for _, name in ipairs(names) do
      expected[#expected + 1] = ("Quitting time! (%s: timeout)"):format(name)
    end
    check("queue_timeout.lua", lines(expected))
  end)

  it("group_map.lua joins a group and maps in input and completion order",
     function()
    check("group_map.lua", lines {
      "bar", "foo", "fizz", "bar", "foo", "fizz", "bar", "foo", "fizz",
      "Size of group 3, hello from call 1",
      "Size of group 3, hello from call 2",
      "Size of group 3, hello from call 3",
      "map: 1 4 9",
      "Ordered", "task 0", "task 1", "task 2",
      "Unordered", "task 2", "task 1", "task 0",
    })
  end)

  it("pool_size.lua runs two calls at a time and refuses work when full",
     function()
    check("pool_size.lua", lines {
      "Size of pool 2 (call 1)",
      "Size of pool 2 (call 2)",
      "Size of pool 1 (call 3)",
      "Accepted a, 2 slots free",
      "Accepted b, 1 slots free",
      "Accepted c, 0 slots free",
      "At maximum pool size: refusing d",
      "After join: 3 slots free",
    })
  end)

  it("semaphore.lua lets two workers at a time in", function()
    check("semaphore.lua", lines {
      "Worker 0 acquired semaphore",
      "Worker 1 acquired semaphore",
      "Worker 0 released semaphore",
      "Worker 1 released semaphore",
      "Worker 3 acquired semaphore",
      "Worker 4 acquired semaphore",
      "Worker 3 released semaphore",
      "Worker 4 released semaphore",
      "Worker 5 acquired semaphore",
      "Worker 5 released semaphore",
    })
  end)

  it("local.lua keeps each greenthread's fields apart", function()
    check("local.lua", lines {"1", "2", "x is not local to f2"})
  end)

  it("timeouts.lua shows each form of a timeout", function()
    check("timeouts.lua", lines {
      "Thread 1 timed out",
      "Thread 2: too long",
      "Thread 3:\tnil\ttimeout",
      "Thread 4 timed out",
      "Thread 5 timed out",
      "Thread 6:\tin time",
    })
  end)

  it("greenthread_states.lua shows ready, successful, value and error",
     function()
    local out, err, status = run("greenthread_states.lua")
    assert.equal(lines {
      "false\tfalse",
      "You win!",
      "nil",
      "true\ttrue",
      "true\tfalse",
      "You fail at failing.",
      "true\tGreenletExit",
    }, out)
    assert.equal(0, status)
    -- The loser's error escaped it: reported with its traceback.
    assert.truthy(err:find("error in greenthread", 1, true))
    assert.truthy(err:find("You fail at failing.", 1, true))
    assert.truthy(err:find("stack traceback", 1, true))
  end)
end)
