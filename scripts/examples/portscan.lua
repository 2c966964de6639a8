-- A port scanner: tries to connect to many ports of 127.0.0.1 at once (at
-- most 200 connects in flight, a green.Pool), each with a timeout, and
-- prints the open ones in port order.
-- Usage: greenlua scripts/examples/portscan.lua [ports=1-1024]
-- where ports is a list like 22,80,8000-8100.
local green = require "green"

local HOST, CONCURRENCY, TIMEOUT = "127.0.0.1", 200, 0.5

-- "22,80,8000-8100" -> {22, 80, 8000, ..., 8100}
local function parseports(spec)
  local ports = {}
  for item in spec:gmatch("[^,]+") do
    local a, b = item:match("^(%d+)%-(%d+)$")
    a, b = tonumber(a or item), tonumber(b or a or item)
    if not a or not b or a < 1 or b > 65535 or a > b then
      error("bad port list: " .. spec, 0)
    end
    for p = a, b do ports[#ports + 1] = p end
  end
  return ports
end

-- true if something accepts connections on `port`.
local function isopen(port)
  local sock = green.socket.connect(HOST, port, TIMEOUT)
  if not sock then return false end  -- refused, or no answer in time
  sock:close()
  return true
end

local ports = parseports(arg[1] or "1-1024")
local results = green.Pool(CONCURRENCY):map(isopen, ports)  -- input order
local open = 0
for i, port in ipairs(ports) do
  if results[i] then
    print(("%s:%d open"):format(HOST, port))
    open = open + 1
  end
end
print(("%d ports scanned, %d open"):format(#ports, open))
