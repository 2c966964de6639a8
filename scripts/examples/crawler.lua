-- A web crawler: from a start URL, follows the href links of each page
-- on the same host, down to a depth, visiting each URL once.  Workers of
-- a green.Pool fetch concurrently, at most `perhost` at once per host (a
-- Semaphore each); redirects, timeouts and bodies are green.http's.
--
--   greenlua scripts/examples/crawler.lua URL [depth=2] [workers=10] [perhost=4]
--
-- Prints a line per page (status or error, depth, URL, bytes), then a
-- summary: pages, errors, bytes, time.
local green = require "green"
local http = require "green.http"

local start = arg[1]
if not start then
  io.stderr:write("usage: crawler.lua URL [depth=2] [workers=10] [perhost=4]\n")
  os.exit(2)
end
local maxdepth = math.tointeger(tonumber(arg[2])) or 2
local nworkers = math.tointeger(tonumber(arg[3])) or 10
local perhost = math.tointeger(tonumber(arg[4])) or 4

-- The scheme, host and port of a URL: what "the same host" means.
local function origin(url)
  return url:match("^(%a[%w+.-]*://[^/?#]+)")
end

-- The absolute URLs of the href links of an HTML page, without fragments.
local function links(body, base)
  local out = {}
  for ref in body:gmatch("[Hh][Rr][Ee][Ff]%s*=%s*[\"']([^\"'#]*)") do
    if ref ~= "" and not ref:find("^%a[%w+.-]*:") or ref:find("^https?:") then
      out[#out + 1] = http.resolve(base, ref)
    end
  end
  return out
end

local root = origin(start)
local seen = {[start] = true}
local queue = green.JoinableQueue()
local hosts = {}  -- origin -> Semaphore(perhost)
local stats = {pages = 0, errors = 0, bytes = 0}

local function fetch(url, depth)
  local host = origin(url)
  local sem = hosts[host]
  if not sem then
    sem = green.Semaphore(perhost)
    hosts[host] = sem
  end
  local _ <close> = sem:hold()
  local res, err = http.get(url, {timeout = 10})
  if not res then
    stats.errors = stats.errors + 1
    print(("ERR %d %s (%s)"):format(depth, url, err))
    return
  end
  stats.pages, stats.bytes = stats.pages + 1, stats.bytes + #res.body
  if res.status >= 400 then stats.errors = stats.errors + 1 end
  print(("%d %d %s (%d bytes)"):format(res.status, depth, url, #res.body))
  local ctype = res.headers["content-type"] or ""
  if depth < maxdepth and res.status == 200 and ctype:find("html") then
    for _, link in ipairs(links(res.body, res.url)) do
      if not seen[link] and origin(link) == root then
        seen[link] = true
        queue:put({link, depth + 1})
      end
    end
  end
end

local function worker()
  for job in queue:iter() do
    local ok, err = pcall(fetch, job[1], job[2])
    if not ok then
      stats.errors = stats.errors + 1
      print(("ERR %d %s (%s)"):format(job[2], job[1], tostring(err)))
    end
    queue:task_done()
  end
end

local t0 = green.now()
local pool = green.Pool(nworkers)
for _ = 1, nworkers do pool:spawn(worker) end
queue:put({start, 0})
queue:join()
queue:close()
pool:join()
print(("pages %d, errors %d, bytes %d, time %.2f s"):format(stats.pages,
  stats.errors, stats.bytes, green.now() - t0))
