-- The checks of the libFuzzer harness fuzz_http.c: parses the input as a
-- stream of requests (or of responses, when `responses`), once whole and
-- once cut in pieces of 1 to 16 bytes (chosen by the first byte), and
-- fails if the two disagree or a message table is malformed.  A bad
-- message must fail with the same status either way; its message may
-- differ (http-parser meets one fault or another first depending on
-- where the bytes are cut).
local responses = ...
local core = package.loaded["green.http.core"]
local concat, sort, type = table.concat, table.sort, type

-- A canonical text of a value (tables with sorted keys).
local function dump(v)
  if type(v) ~= "table" then return type(v) .. ":" .. tostring(v) end
  local keys, out = {}, {}
  for k in pairs(v) do keys[#keys + 1] = k end
  sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  for _, k in ipairs(keys) do out[#out + 1] = dump(k) .. "=" .. dump(v[k]) end
  return "{" .. concat(out, ",") .. "}"
end

local function check(head)
  assert(type(head.headers) == "table", "headers")
  for k, v in pairs(head.headers) do
    assert(type(k) == "string" and k == k:lower(), "header name " .. k)
    if k == "set-cookie" then
      assert(type(v) == "table" and #v >= 1, "set-cookie")
    else
      assert(type(v) == "string", "header value")
      assert(not v:find("[\r\n]"), "CR or LF in a value")
    end
  end
  if responses then
    assert(math.type(head.status) == "integer", "status")
  else
    for _, k in ipairs{"method", "target", "path", "query", "version"} do
      assert(type(head[k]) == "string", k)
    end
  end
end

-- The messages read from data given in pieces of `step` bytes.
local function run(data, step, nobody)
  local p = responses and core.responseparser(2048, 65536)
    or core.requestparser(2048, 65536)
  local log, i = {}, 1
  local function piece()
    if i > #data then return nil end
    local s = data:sub(i, i + step - 1)
    i = i + step
    return s
  end
  while true do
    local head, status, msg = p:head(nil, nobody)
    while head == false do
      local s = piece()
      if not s then
        log[#log + 1] = "end"
        return log
      end
      head, status, msg = p:head(s, nobody)
    end
    if not head then
      assert(type(msg) == "string", "no message")
      log[#log + 1] = ("head failed %s"):format(status)
      return log
    end
    check(head)
    log[#log + 1] = dump(head)
    local body
    body, status, msg = p:body()
    while body == false do
      local s = piece()
      body, status, msg = p:body(s, s == nil)
    end
    if not body then
      assert(type(msg) == "string", "no message")
      log[#log + 1] = ("body failed %s"):format(status)
      return log
    end
    log[#log + 1] = "body " .. body
    if responses and head.headers["content-encoding"] then
      core.inflate(body, "gzip", 1 << 20)
      core.inflate(body, "deflate", 1 << 20)
    end
  end
end

return function(data)
  local nobody = #data > 0 and data:byte(#data) % 7 == 0
  local whole = concat(run(data, #data + 1, nobody), "\n")
  local step = 1 + (#data > 0 and data:byte(1) % 16 or 0)
  local cut = concat(run(data, step, nobody), "\n")
  if whole ~= cut then
    error(("whole and in pieces of %d differ:\n%s\n----\n%s")
      :format(step, whole, cut))
  end
  core.parse_query(data)
  core.parseurl(data)
end
