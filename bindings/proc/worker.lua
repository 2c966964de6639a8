-- A --workers worker's side of stopping and reloading (the master is
-- host/workers.c).  In a worker, SIGTERM and SIGINT stop it gracefully
-- unless the script handles them itself (green.signal): every server
-- that serves stops accepting and gets the grace period to finish the
-- requests in flight (StreamServer:stop, which green.http.server uses
-- too), then the worker exits 0.  A SIGHUP reaching a worker (a hangup
-- of the terminal, which the master answers) does not end it.  The first
-- server that starts tells the master that the worker serves.
-- require "green.worker" gives green.worker.
local green = ...
local StreamServer = require "green.server"

local spawn, joinall, sleep = green.spawn, green.joinall, green.sleep
local pairs = pairs

if green.worker() then
  local stopping = false

  local function stop()
    if stopping then return end
    stopping = true
    local grace, stops = green._worker_grace(), {}
    for srv in pairs(StreamServer._serving) do
      stops[#stops + 1] = spawn(srv.stop, srv, grace)
    end
    joinall(stops)
    sleep(0)  -- serve_forever returns: the script's last lines run
    green.exit(0)
  end

  green._signal_default("SIGTERM", stop)
  green._signal_default("SIGINT", stop)
  green._signal_default("SIGHUP", function() end)
  StreamServer._onstart = green._worker_ready
end

return green.worker
