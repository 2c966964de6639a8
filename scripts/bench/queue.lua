-- queue: a green.Queue bounded to 100, one producer and one consumer
-- greenthread, N items (default 1,000,000) -> ns per item.
-- Usage: greenlua scripts/bench/queue.lua [N]
local lib = dofile((arg[0]:match("^(.*)/") or ".") .. "/lib/benchlib.lua")
local green = lib.green { "spawn", "joinall", "now", "Queue" }

local N = lib.narg(1000000)
local q = green.Queue(100)
local got = 0

local function producer()
  for i = 1, N do q:put(i) end
end

local function consumer()
  for _ = 1, N do
    q:get()
    got = got + 1
  end
end

local t0 = green.now()
green.joinall { green.spawn(producer), green.spawn(consumer) }
local dt = green.now() - t0
if got ~= N then error(string.format("consumer got %d of %d items", got, N)) end
lib.result("queue", { { "n", N }, { "ns_per_item", dt / N * 1e9 } })
