-- redis: CONC greenthreads, each with its own redis-lua connection
-- (Debian's lua-redis on our socket.core), alternate SET and GET of their
-- own key for SECS seconds against the redis-server on PORT (the redis
-- row of scripts/bench/compare).  Ops are commands answered.
-- Usage: greenlua scripts/bench/redis.lua PORT SECS CONC
local lib = dofile((arg[0]:match("^(.*)/") or ".") .. "/lib/benchlib.lua")
local green = lib.green { "spawn" }

-- Debian installs redis.lua for Lua 5.1 to 5.3 only; it runs on 5.4.
package.path = package.path .. ";/usr/share/lua/5.3/?.lua"
local okr, redis = pcall(require, "redis")
if not okr then lib.unavailable("redis-lua (lua-redis) not installed") end
local oks = pcall(require, "socket.core")
if not oks then lib.unavailable("socket.core missing") end

local port = math.tointeger(tonumber(arg[1]))
local secs = tonumber(arg[2]) or 10
local conc = math.tointeger(tonumber(arg[3])) or 50
local now = green.now
local n, errors = 0, 0
local deadline = now() + secs

local function worker(i)
  local c = redis.connect("127.0.0.1", port)
  local key, value = "key:" .. i, ("v"):rep(16)
  while now() < deadline do
    local ok = pcall(function()
      c:set(key, value)
      assert(c:get(key) == value)
    end)
    if ok then n = n + 2 else errors = errors + 1 end
  end
  c:quit()
end

local t0 = now()
local gs = {}
for i = 1, conc do gs[i] = green.spawn(worker, i) end
green.joinall(gs)
lib.result("redis", {{"ops_per_s", n / (now() - t0)},
                     {"errors", errors}})
