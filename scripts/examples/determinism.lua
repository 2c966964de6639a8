-- The same work on a Pool twice gives the same results in the same order:
-- greenthreads are scheduled deterministically (gevent tutorial,
-- "Determinism").
local green = require "green"

local function echo(i)
  green.sleep(0.001)  -- sleepers wake in deadline order
  return i
end

-- Runs echo over 1..10 in a pool of 10 and lists the results as they
-- complete.
local function run()
  local pool, out = green.Pool(10), {}
  for r in pool:imap_unordered(echo, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}) do
    out[#out + 1] = r
  end
  return table.concat(out, " ")
end

local run1, run2 = run(), run()
print("run 1: " .. run1)
print("run 2: " .. run2)
print("same result twice: " .. tostring(run1 == run2))
