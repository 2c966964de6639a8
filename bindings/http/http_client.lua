-- green.http.request and green.http.get: an HTTP/1.1 client.  Requests
-- go out as message.c formats them; responses are read with a parser of
-- parser.c; connections are kept alive in a pool per scheme, host and
-- port; redirects are followed here, gzip and deflate bodies decoded by
-- codec.c.
local green = ...
local core = require "green.http.core"
local Group = require "green.group"
local typename = Group._lib.typename

local now, socket = green.now, green.socket
local parseurl, formatrequest = core.parseurl, core.request
local clientconn, inflate = core.clientconn, core.inflate
local type, tostring, tointeger, pairs, error = type, tostring,
  math.tointeger, pairs, error
local format, lower, concat = string.format, string.lower, table.concat

local MAX_IDLE = 32           -- idle connections kept per scheme, host, port
local MAX_HEADER = 80 * 1024  -- of a response head
local DEFAULT_TIMEOUT = 30
local DEFAULT_REDIRECTS = 5

-- {====== The pool ======

-- "scheme://host:port" -> array of idle connections {sock, p}, the most
-- recently used last.
local pools = {}

-- An idle connection to key that is still usable, or nil.
local function takeconn(key)
  local list = pools[key]
  while list do
    local n = #list
    if n == 0 then return nil end
    local c = list[n]
    list[n] = nil
    if c.conn:reusable() then return c end
    c.sock:close()
  end
end

local function giveconn(key, c)
  local list = pools[key]
  if list == nil then
    list = {}
    pools[key] = list
  end
  if #list < MAX_IDLE then
    list[#list + 1] = c
  else
    c.sock:close()
  end
end

-- The seconds left until deadline; nil, "timeout" once none are.
local function remaining(deadline)
  local left = deadline - now()
  if left <= 0 then return nil end
  return left
end

-- A new connection to host:port within the deadline: {sock, conn} or
-- nil, err.  For https the TLS handshake is the socket's (sslhandshake,
-- from the TLS layer); without it, https is not available.
local function connect(scheme, host, port, deadline, opts)
  local left = remaining(deadline)
  if not left then return nil, "timeout" end
  local sock, err = socket.connect(host, port, left)
  if not sock then return nil, err end
  if scheme == "https" then
    if sock.sslhandshake == nil then
      sock:close()
      return nil, "https not available"
    end
    left = remaining(deadline)
    if not left then
      sock:close()
      return nil, "timeout"
    end
    sock:settimeout(left)
    local ok, herr = sock:sslhandshake(host, opts.verify ~= false,
                                       {cafile = opts.cafile})
    if not ok then
      sock:close()
      return nil, herr
    end
  end
  return {sock = sock, conn = clientconn(sock, MAX_HEADER, opts.max_body)}
end
-- }======

-- {====== One exchange ======

-- The error of a failed read: a bad message, or the stream's.
local function readerror(status, msg)
  if status == 0 then return msg end  -- the stream ended too early
  if type(status) == "number" then return "invalid response (" .. msg .. ")" end
  return status
end

-- Sends the request bytes on connection c and reads the response.
-- Returns the response table, or nil, err, retry: retry when it failed
-- before any byte of the response came (a reused connection the server
-- closed meanwhile).
local function roundtrip(c, bytes, nobody, deadline, opts)
  local sock, conn = c.sock, c.conn
  local left = deadline - now()
  if left <= 0 then return nil, "timeout" end
  sock:settimeout(left)
  local ok, err = sock:send(bytes)
  if not ok then return nil, err, err ~= "timeout" end
  local head, body, msg
  repeat  -- 1xx answers come before the response: skipped
    head, err, msg = conn:readhead(false, deadline, nobody)
    if not head then
      return nil, readerror(err, msg), err ~= "timeout" and not conn:seen()
    end
    body, err, msg = conn:readbody(deadline)
    if not body then return nil, readerror(err, msg) end
  until head.status >= 200 or head.status == 101
  local coding = head.headers["content-encoding"]
  if coding and #body > 0 then
    coding = lower(coding)
    if coding == "gzip" or coding == "x-gzip" or coding == "deflate" then
      body, err = inflate(body, coding == "deflate" and "deflate" or "gzip",
                          opts.max_body)
      if not body then return nil, err end
    end
  end
  head.body = body
  return head
end

-- The Host header of a URL's authority: the port only when not the
-- scheme's own; an IPv6 address in brackets.
local function hostheader(scheme, host, port)
  if host:find(":", 1, true) then host = "[" .. host .. "]" end
  if (scheme == "http" and port == 80) or (scheme == "https" and port == 443)
  then
    return host
  end
  return host .. ":" .. port
end

-- What a URL says, parsed once: {scheme, host, port, target, hosthdr,
-- key (of the pool), get (the bytes of a plain GET)}, or nil, err.  The
-- last URLs asked for are kept (a crawler asks each once; a client of an
-- API, the same ones again and again).
local urls, nurls = {}, 0
local MAX_URLS = 256

local function urlinfo(url)
  local u = urls[url]
  if u then return u end
  local scheme, host, port, path, query = parseurl(url)
  if not scheme then return nil, "invalid url" end
  if scheme ~= "http" and scheme ~= "https" then
    return nil, "unsupported scheme '" .. scheme .. "'"
  end
  port = port or (scheme == "https" and 443 or 80)
  u = {scheme = scheme, host = host, port = port,
       target = query and path .. "?" .. query or path,
       hosthdr = hostheader(scheme, host, port),
       key = scheme .. "://" .. host .. ":" .. port}
  u.get = formatrequest("GET", u.target, u.hosthdr)
  if nurls >= MAX_URLS then urls, nurls = {}, 0 end
  urls[url], nurls = u, nurls + 1
  return u
end

-- One request and its response, on a pooled connection if there is one:
-- a reused connection that fails before any byte of the response is
-- replaced once by a new one.
local function exchange(url, method, headers, body, deadline, opts)
  local u, err = urlinfo(url)
  if not u then return nil, err end
  local bytes = method == "GET" and headers == nil and body == nil and u.get
    or formatrequest(method, u.target, u.hosthdr, headers, body)
  local key, nobody = u.key, method == "HEAD"
  for _ = 1, 2 do
    local c = takeconn(key)
    local reused = c ~= nil
    if not c then
      c, err = connect(u.scheme, u.host, u.port, deadline, opts)
      if not c then return nil, err end
    end
    local res, rerr, retry = roundtrip(c, bytes, nobody, deadline, opts)
    if res then
      if c.conn:reusable() then giveconn(key, c) else c.sock:close() end
      return res
    end
    c.sock:close()
    if not (reused and retry) then return nil, rerr end
  end
end
-- }======

-- {====== Redirects ======

-- Removes the "." and ".." segments of a path (RFC 3986, 5.2.4).
local function removedots(path)
  local out = {}
  for seg in (path .. "/"):gmatch("([^/]*)/") do
    if seg == ".." then
      if #out > 1 then out[#out] = nil end
    elseif seg ~= "." then
      out[#out + 1] = seg
    end
  end
  local last = path:match("[^/]*$")
  if last == "." or last == ".." then out[#out + 1] = "" end
  local s = concat(out, "/")
  if s:sub(1, 1) ~= "/" then s = "/" .. s end
  return s
end

-- The URL that `location` points to from `base` (RFC 3986, 5.2).
local function resolve(base, location)
  if location:find("^%a[%w+.-]*:") then return location end
  local scheme, rest = base:match("^(%a[%w+.-]*:)(.*)$")
  if location:sub(1, 2) == "//" then return scheme .. location end
  local authority = rest:match("^//[^/?#]*") or ""
  local path = rest:sub(#authority + 1):match("^[^?#]*")
  local lpath, lrest = location:match("^([^?#]*)(.*)$")
  if lpath == "" then
    if lrest:sub(1, 1) == "?" then return scheme .. authority .. path .. lrest end
    return scheme .. authority .. path .. (rest:match("%?[^#]*") or "")
  end
  if lpath:sub(1, 1) ~= "/" then
    lpath = (path:match("^(.*/)") or "/") .. lpath
  end
  return scheme .. authority .. removedots(lpath) .. lrest
end

local REDIRECT = {[301] = true, [302] = true, [303] = true, [307] = true,
                  [308] = true}
-- What a redirect to another host must not carry.
local PRIVATE = {authorization = true, cookie = true,
                 ["proxy-authorization"] = true}

-- The headers for the next hop: without content-* when the body is
-- dropped, without credentials when the host changes.
local function nexthop(headers, dropbody, newhost)
  if headers == nil or not (dropbody or newhost) then return headers end
  local out = {}
  for k, v in pairs(headers) do
    local l = type(k) == "string" and lower(k) or ""
    if not ((dropbody and (l:find("^content%-") or
                           l == "transfer-encoding")) or
            (newhost and PRIVATE[l])) then
      out[k] = v
    end
  end
  return out
end
-- }======

-- {====== green.http.request ======

local function argerror(fname, n, msg)
  error(format("bad argument #%d to '%s' (%s)", n, fname, msg), 3)
end

local NOOPTS = {}

local function checkopts(fname, url, opts)
  if type(url) ~= "string" then
    argerror(fname, 1, "string expected, got " .. typename(url))
  end
  if opts == nil then return NOOPTS end
  if type(opts) ~= "table" then
    argerror(fname, 2, "table expected, got " .. typename(opts))
  end
  local function want(k, t, ok)
    local v = opts[k]
    if v ~= nil and (type(v) ~= t or (ok and not ok(v))) then
      argerror(fname, 2, format("option '%s': %s expected, got %s", k,
        t == "number" and "non-negative number" or t,
        type(v) == "number" and tostring(v) or typename(v)))
    end
  end
  local function nonneg(v) return v == v and v >= 0 end
  want("method", "string")
  want("headers", "table")
  want("body", "string")
  want("timeout", "number", nonneg)
  want("redirects", "number", function(v) return tointeger(v) and v >= 0 end)
  want("cafile", "string")
  want("verify", "boolean")
  want("max_body", "number", nonneg)
  return opts
end

local function request(fname, url, opts, method)
  opts = checkopts(fname, url, opts)
  local body, headers = opts.body, opts.headers
  method = method or opts.method or (body and "POST" or "GET")
  local redirects = opts.redirects or DEFAULT_REDIRECTS
  local deadline = now() + (opts.timeout or DEFAULT_TIMEOUT)
  local hops = 0
  while true do
    local res, err = exchange(url, method, headers, body, deadline, opts)
    if not res then return nil, err end
    local location = res.headers.location
    if not (REDIRECT[res.status] and location and redirects > 0) then
      res.url = url
      return res
    end
    if hops >= redirects then return nil, "too many redirects" end
    hops = hops + 1
    local nexturl = resolve(url, location)
    local dropbody = res.status == 303 and method ~= "HEAD" or
      ((res.status == 301 or res.status == 302) and method == "POST")
    if dropbody then method, body = "GET", nil end
    local _, oldhost, oldport = parseurl(url)
    local _, newhost, newport = parseurl(nexturl)
    headers = nexthop(headers, dropbody,
                      oldhost ~= newhost or oldport ~= newport)
    url = nexturl
  end
end

local client = {}

-- green.http.request(url, [opts]) -> res | nil, err
function client.request(url, opts)
  return request("request", url, opts)
end

-- green.http.get(url, [opts]) -> res | nil, err: request with GET.
function client.get(url, opts)
  return request("get", url, opts, "GET")
end

-- Closes every idle connection of the pool (tests, long-running programs
-- that want to let go of their peers).
function client.close_idle()
  for key, list in pairs(pools) do
    for i = 1, #list do list[i].sock:close() end
    pools[key] = nil
  end
end

-- green.http.resolve(base, ref) -> the absolute URL that the reference
-- `ref` (a link, a Location) found in `base` points to (RFC 3986, 5.2).
function client.resolve(base, ref)
  if type(base) ~= "string" then
    argerror("resolve", 1, "string expected, got " .. typename(base))
  end
  if type(ref) ~= "string" then
    argerror("resolve", 2, "string expected, got " .. typename(ref))
  end
  if not base:find("^%a[%w+.-]*:") then
    argerror("resolve", 1, "absolute URL expected")
  end
  return resolve(base, ref)
end

return client
