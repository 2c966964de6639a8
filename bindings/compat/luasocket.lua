-- The socket module when LuaSocket's own socket.lua is not installed:
-- our socket.core (ls_core.c) with the helpers LuaSocket's module adds to
-- it: bind, connect4, connect6, try, choose, sink, source and BLOCKSIZE.
-- Preloaded as green.luasocket, it returns the function that builds the
-- module, which require "socket" calls (ls_core.c) the first time.
return function()
  local socket = require "socket.core"
  local ipairs, type, min, setmetatable = ipairs, type, math.min,
    setmetatable

  function socket.connect4(address, port, laddress, lport)
    return socket.connect(address, port, laddress, lport, "inet")
  end

  function socket.connect6(address, port, laddress, lport)
    return socket.connect(address, port, laddress, lport, "inet6")
  end

  -- A listening TCP socket on host:port (the first address that works),
  -- with reuseaddr set; "*" is any IPv4 address.
  function socket.bind(host, port, backlog)
    if host == "*" then host = "0.0.0.0" end
    local infos, err = socket.dns.getaddrinfo(host)
    if not infos then return nil, err end
    err = "no info on address"
    for _, info in ipairs(infos) do
      local s, e = (info.family == "inet6" and socket.tcp6 or socket.tcp4)()
      if not s then return nil, e end
      s:setoption("reuseaddr", true)
      local ok
      ok, err = s:bind(info.addr, port)
      if ok then ok, err = s:listen(backlog) end
      if ok then return s end
      s:close()
    end
    return nil, err
  end

  socket.try = socket.newtry()
  socket.BLOCKSIZE = 2048

  -- choose(t) -> f(name, ...) calling t[name](...), "default" when name is
  -- not a string.
  function socket.choose(t)
    return function(name, a, b)
      if type(name) ~= "string" then name, a, b = "default", name, a end
      local f = t[name or "nil"]
      if not f then error("unknown key (" .. tostring(name) .. ")", 3) end
      return f(a, b)
    end
  end

  -- LTN12 sinks and sources over a socket.
  local function wrapper(sock, call)
    return setmetatable({
      getfd = function() return sock:getfd() end,
      dirty = function() return sock:dirty() end,
    }, {__call = call})
  end

  socket.sinkt = {
    ["close-when-done"] = function(sock)
      return wrapper(sock, function(_, chunk)
        if chunk then return sock:send(chunk) end
        sock:close()
        return 1
      end)
    end,
    ["keep-open"] = function(sock)
      return wrapper(sock, function(_, chunk)
        if chunk then return sock:send(chunk) end
        return 1
      end)
    end,
  }
  socket.sinkt.default = socket.sinkt["keep-open"]
  socket.sink = socket.choose(socket.sinkt)

  socket.sourcet = {
    ["by-length"] = function(sock, length)
      return wrapper(sock, function()
        if length <= 0 then return nil end
        local chunk, err = sock:receive(min(socket.BLOCKSIZE, length))
        if err then return nil, err end
        length = length - #chunk
        return chunk
      end)
    end,
    ["until-closed"] = function(sock)
      local finished = false
      return wrapper(sock, function()
        if finished then return nil end
        local chunk, err, partial = sock:receive(socket.BLOCKSIZE)
        if not err then return chunk end
        if err ~= "closed" then return nil, err end
        sock:close()
        finished = true
        return partial
      end)
    end,
  }
  socket.sourcet.default = socket.sourcet["until-closed"]
  socket.source = socket.choose(socket.sourcet)

  return socket
end
