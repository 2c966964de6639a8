-- Helpers shared by the greenlua side of the benchmarks (scripts/bench/*.lua).
-- Every script prints its figures on one line of the form the peers use:
--   RESULT bench=<name> peer=greenlua key=value ...
-- or, when the runtime lacks what the benchmark needs:
--   UNAVAILABLE <reason>
-- and exits 0, so that scripts/bench/compare can say why in its table.
local M = {}

-- Prints the UNAVAILABLE line and ends the process.
function M.unavailable(reason)
  io.stdout:write("UNAVAILABLE ", reason, "\n")
  io.stdout:flush()
  os.exit(0)
end

-- Loads the green module and checks that each dotted name in `needs`
-- (e.g. "spawn", "Queue", "socket.listen") is there; returns the module.
function M.green(needs)
  local ok, green = pcall(require, "green")
  if not ok then
    M.unavailable("require 'green' failed: " .. tostring(green):gsub("\n.*", ""))
  end
  for _, name in ipairs(needs or {}) do
    local v = green
    for part in name:gmatch("[^.]+") do
      v = type(v) == "table" and v[part] or nil
      if v == nil then
        -- a submodule may be loadable on its own (green.socket, green.http)
        local okm, m = pcall(require, "green." .. part)
        v = okm and m or nil
      end
      if v == nil then break end
    end
    if v == nil then M.unavailable("green." .. name .. " missing") end
  end
  return green
end

-- VmRSS and VmHWM of this process, in bytes.
function M.status()
  local f = assert(io.open("/proc/self/status"))
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)")) * 1024,
    tonumber(s:match("VmHWM:%s*(%d+)")) * 1024
end

-- The MINSTD sequence every peer uses: 1 + x % 100 milliseconds, seed 42.
function M.delays(n, seed)
  local ds, x = {}, seed or 42
  for i = 1, n do
    x = x * 48271 % 2147483647
    ds[i] = 1 + x % 100
  end
  return ds
end

-- Prints one RESULT line; kv is an array of {key, value} pairs.
function M.result(bench, kv)
  local t = { "RESULT", "bench=" .. bench, "peer=greenlua" }
  for _, p in ipairs(kv) do
    local v = p[2]
    if math.type(v) == "float" then v = string.format("%.3f", v) end
    t[#t + 1] = p[1] .. "=" .. tostring(v)
  end
  io.stdout:write(table.concat(t, " "), "\n")
  io.stdout:flush()
end

-- The first numeric argument, or a default.
function M.narg(default)
  return math.tointeger(tonumber(arg and arg[1])) or default
end

-- With "watchdog" as the second argument, turns green.watchdog on with a
-- limit of one second (nothing in a benchmark runs that long without a
-- switch): the rows that show what watching costs the switch path.
function M.options(green)
  if arg and arg[2] == "watchdog" then
    if type(green.watchdog) ~= "function" then
      M.unavailable("green.watchdog missing")
    end
    green.watchdog(1)
  end
end

return M
