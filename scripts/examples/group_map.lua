-- Groups: join a set of greenthreads, and map a function over inputs in
-- input order or completion order (gevent tutorial, "Groups and Pools").
local green = require "green"

local function talk(msg)
  for _ = 1, 3 do
    print(msg)
    green.sleep(0)
  end
end

-- Greenthreads spawned elsewhere, added to a group and joined together.
local g1, g2 = green.spawn(talk, "bar"), green.spawn(talk, "foo")
local g3 = green.spawn(talk, "fizz")
local group = green.Group()
group:add(g1)
group:add(g2)
group:join()
group:add(g3)
group:join()

-- map: every call is a member of the group while it runs.
local function hello_from(n)
  print(("Size of group %d, hello from call %d"):format(#group, n))
  green.sleep(0)  -- stay a member while the other calls print
  return n * n
end
print("map: " .. table.concat(group:map(hello_from, {1, 2, 3}), " "))

local function intensive(n)
  green.sleep(0.01 * (3 - n))  -- the last input finishes first
  return "task " .. n
end

print("Ordered")
for r in group:imap(intensive, {0, 1, 2}) do print(r) end

print("Unordered")
for r in group:imap_unordered(intensive, {0, 1, 2}) do print(r) end
