-- green.subprocess: spawn (process.c) and run, composed here.  run reads
-- the child's stdout and stderr in greenthreads of their own while
-- another writes its input, so a child that fills one pipe while we
-- write the other never deadlocks; one timeout bounds it all, and the
-- child is killed when it passes.
local green = ...
local subprocess = green.subprocess

local spawn, now, killall, setmetatable = green.spawn, green.now,
  green.killall, setmetatable
local concat, type, pairs, ipairs, error = table.concat, type, pairs,
  ipairs, error

local options = {stdin = true, stderr = true, env = true, cwd = true,
                 input = true, timeout = true}

local function argerror(n, msg)
  error(("bad argument #%d to 'run' (%s)"):format(n, msg), 3)
end

-- Reads stream s until the end into parts.
local function drain(s, parts)
  local data, _, partial = s:receive("*a")
  parts[#parts + 1] = data or partial
end

-- Writes input to s, then closes it (the child sees the end).  A child
-- that exits without reading it all closes the pipe: that is no error.
local function feed(s, input)
  s:send(input)
  s:close()
end

-- The greenthreads and streams of a run still going, for cleanup.
local function cleanup(run)
  if run.done then return end
  killall(run.helpers)
  for _, s in pairs(run.streams) do s:close() end
  if run.p then run.p:kill("SIGKILL") end  -- libuv reaps it
end

local cleanupmeta = {__close = cleanup}

-- green.subprocess.run(argv, [opts]) -> {code=, signal=, stdout=,
-- stderr=} | nil, err.  opts: stdin, env and cwd as spawn's; stdout and
-- stderr are captured (stderr = "stdout" captures both together, in
-- stdout); stdin defaults to "inherit", or a pipe fed `input` (a
-- string); timeout (seconds for the whole run: the child is killed with
-- SIGKILL when it passes, and the result is nil, "timeout", then the
-- partial result).
function subprocess.run(argv, opts)
  if type(argv) ~= "table" then
    argerror(1, "table expected, got " .. type(argv))
  end
  if opts ~= nil and type(opts) ~= "table" then
    argerror(2, "table expected, got " .. type(opts))
  end
  opts = opts or {}
  for k in pairs(opts) do
    if not options[k] then argerror(2, ("unknown option '%s'"):format(k)) end
  end
  local input, timeout = opts.input, opts.timeout
  if input ~= nil and type(input) ~= "string" then
    argerror(2, "option 'input': string expected, got " .. type(input))
  end
  if timeout ~= nil and (type(timeout) ~= "number" or timeout ~= timeout) then
    argerror(2, "option 'timeout': number expected, got " .. type(timeout))
  end
  local merge = opts.stderr == "stdout"
  if opts.stderr ~= nil and not merge and opts.stderr ~= "pipe" then
    argerror(2, "option 'stderr': \"pipe\" or \"stdout\" expected")
  end
  local p, err = subprocess.spawn(argv, {
    stdin = input and "pipe" or opts.stdin, stdout = "pipe",
    stderr = merge and "stdout" or "pipe", env = opts.env, cwd = opts.cwd})
  if not p then return nil, err end
  local run <close> = setmetatable({p = p, helpers = {},
    streams = {p.stdin, p.stdout, p.stderr}}, cleanupmeta)
  local out, errs = {}, {}
  local helpers = run.helpers
  helpers[1] = spawn(drain, p.stdout, out)
  if not merge then helpers[#helpers + 1] = spawn(drain, p.stderr, errs) end
  if input then helpers[#helpers + 1] = spawn(feed, p.stdin, input) end
  local deadline = timeout and now() + timeout
  local function left() return deadline and deadline - now() end
  local code, signal = p:wait(left())
  local timedout = code == nil and signal == "timeout"
  if not timedout then
    for _, g in ipairs(helpers) do
      if not g:join(left()) then timedout = true; break end
    end
  end
  if timedout then
    p:kill("SIGKILL")
    code, signal = p:wait()
  end
  for _, s in pairs(run.streams) do s:close() end
  killall(helpers)  -- after a timeout, those still reading or writing
  run.done = true
  local result = {code = code, signal = signal, stdout = concat(out),
                  stderr = concat(errs)}
  if timedout then return nil, "timeout", result end
  return result
end

return subprocess
