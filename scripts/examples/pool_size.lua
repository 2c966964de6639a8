-- A Pool bounds how many of its greenthreads run at once: spawn waits for
-- a free slot (gevent tutorial, "Groups and Pools").
local green = require "green"

local pool = green.Pool(2)

local function hello_from(n)
  print(("Size of pool %d (call %d)"):format(#pool, n))
  green.sleep(0)  -- the third call waits for a free slot meanwhile
end

pool:map(hello_from, {1, 2, 3})

-- A handler pool that refuses work when it is full, as a server would.
local handlers = green.Pool(3)
local function add_handler(name)
  if handlers:full() then
    print("At maximum pool size: refusing " .. name)
    return
  end
  handlers:spawn(green.sleep, 0.01)
  print(("Accepted %s, %d slots free"):format(name, handlers:free_count()))
end

for _, name in ipairs({"a", "b", "c", "d"}) do add_handler(name) end
handlers:join()
print(("After join: %d slots free"):format(handlers:free_count()))
