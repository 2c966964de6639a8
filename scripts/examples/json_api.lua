-- A small JSON API: a to-do list kept in memory, with Debian's dkjson
-- (lua-dkjson) for JSON.
--
--   greenlua scripts/examples/json_api.lua [port]        (default 8080; 0: any)
--   curl http://127.0.0.1:8080/todos
--   curl -d '{"title": "write a server"}' http://127.0.0.1:8080/todos
--   curl http://127.0.0.1:8080/todos/1
--   curl -X PATCH -d '{"done": true}' http://127.0.0.1:8080/todos/1
--   curl -X DELETE http://127.0.0.1:8080/todos/1
local http = require "green.http"
local json = require "dkjson"

local port = math.tointeger(tonumber(arg[1])) or 8080
local JSON = {["Content-Type"] = "application/json"}

local todos, order, nextid = {}, {}, 1

local function reply(status, value)
  return status, JSON, json.encode(value) .. "\n"
end

local function fail(status, message)
  return reply(status, {error = message})
end

-- The JSON object of the request body, or nil and the answer to send.
local function readobject(req)
  local body, err = req:body()
  if not body then return nil, fail(400, err) end
  local value, _, jerr = json.decode(body)
  if type(value) ~= "table" then
    return nil, fail(400, "a JSON object expected" ..
      (jerr and (": " .. jerr) or ""))
  end
  return value
end

local function list()
  local out = {}
  for _, id in ipairs(order) do
    if todos[id] then out[#out + 1] = todos[id] end
  end
  return reply(200, out)
end

local function create(req)
  local obj, status, headers, body = readobject(req)
  if not obj then return status, headers, body end
  if type(obj.title) ~= "string" or obj.title == "" then
    return fail(422, "title: a non-empty string expected")
  end
  local todo = {id = nextid, title = obj.title, done = false}
  todos[nextid], order[#order + 1], nextid = todo, nextid, nextid + 1
  return reply(201, todo)
end

local function update(req, todo)
  local obj, status, headers, body = readobject(req)
  if not obj then return status, headers, body end
  if obj.title ~= nil then
    if type(obj.title) ~= "string" then return fail(422, "title: a string") end
    todo.title = obj.title
  end
  if obj.done ~= nil then
    if type(obj.done) ~= "boolean" then return fail(422, "done: a boolean") end
    todo.done = obj.done
  end
  return reply(200, todo)
end

local function handler(req)
  if req.path == "/todos" then
    if req.method == "GET" then return list() end
    if req.method == "POST" then return create(req) end
    return fail(405, "GET or POST")
  end
  local id = math.tointeger(tonumber(req.path:match("^/todos/(%d+)$")))
  local todo = id and todos[id]
  if not todo then return fail(404, "no such to-do") end
  if req.method == "GET" then return reply(200, todo) end
  if req.method == "PATCH" then return update(req, todo) end
  if req.method == "DELETE" then
    todos[id] = nil
    return 204
  end
  return fail(405, "GET, PATCH or DELETE")
end

local srv = assert(http.server("127.0.0.1", port, handler))
assert(srv:start())
print(("listening on http://127.0.0.1:%d/todos"):format(srv.port))
io.stdout:flush()
srv:serve_forever()
