-- The parser glue of green.http (bindings/http/parser.c) on its own: a
-- message given whole or a byte at a time gives the same tables, and bad
-- messages fail the same way wherever the bytes are cut.
local core = require "green.http.core"

-- Feeds `bytes` to a fresh request parser in pieces of `step` bytes;
-- returns the head and body, or nil, status, message.
local function parse(bytes, step, kind, nobody)
  local p = kind == "response" and core.responseparser(8192)
    or core.requestparser(8192, 1024 * 1024)
  local head, status, msg
  local i = 1
  repeat
    head, status, msg = p:head(bytes:sub(i, i + step - 1), nobody)
    i = i + step
  until head ~= false or i > #bytes
  if not head then return nil, status, msg end
  local rest = bytes:sub(i)
  local body
  body, status, msg = p:body()
  i = 1
  while body == false do
    if i > #rest then
      body, status, msg = p:body(nil, true)
      break
    end
    body, status, msg = p:body(rest:sub(i, i + step - 1))
    i = i + step
  end
  if body == nil then return nil, status, msg end
  return head, body, p
end

local REQUEST = "POST /p%2Fq?a=1 HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nx-a: 2\r\n"
  .. "Cookie: c\r\nTransfer-Encoding: chunked\r\n\r\n"
  .. "5\r\nhello\r\n6;x=y\r\n world\r\n0\r\nTrailer: t\r\n\r\n"

describe("the http-parser glue", function()
  it("gives the same request, whole or a byte at a time", function()
    local whole, wbody = parse(REQUEST, #REQUEST)
    for _, step in ipairs{1, 2, 3, 7} do
      local head, body = parse(REQUEST, step)
      assert.same(whole, head)
      assert.equal(wbody, body)
    end
    assert.equal("POST", whole.method)
    assert.equal("/p/q", whole.path)
    assert.equal("a=1", whole.query)
    assert.same({host = "h", ["x-a"] = "1, 2", cookie = "c",
                 ["transfer-encoding"] = "chunked"}, whole.headers)
    assert.equal("hello world", wbody)
  end)

  it("reads pipelined messages one after the other", function()
    local p = core.requestparser(8192)
    local two = "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n"
    assert.equal("/1", p:head(two).path)
    assert.equal("", p:body())
    assert.equal("/2", p:head().path)
    assert.equal(false, p:head())
  end)

  it("refuses an obsolete line fold wherever the bytes are cut", function()
    local folded = "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n"
    local empty = "GET / HTTP/1.1\r\nHost: h\r\nX:\r\n b\r\n\r\n"
    for _, step in ipairs{1, 2, 5, 100} do
      assert.same({nil, 400, "obsolete line folding"}, {parse(folded, step)})
      assert.same({nil, 400, "obsolete line folding"}, {parse(empty, step)})
    end
  end)

  it("counts a head that never ends against max_header", function()
    local p = core.requestparser(100)
    assert.equal(false, p:head("GET / HTTP/1.1\r\n"))
    local r = {p:head(("X: y\r\n"):rep(30))}
    assert.same({nil, 431, "header too large"}, r)
    assert.same({nil, 431, "header too large"}, {p:head("more")})
  end)

  it("refuses a body over max_body as it comes", function()
    local p = core.requestparser(8192, 10)
    assert(p:head("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked"
      .. "\r\n\r\n"))
    assert.equal(false, p:body("8\r\n12345678\r\n"))
    assert.same({nil, 413, "body too large"}, {p:body("8\r\n12345678\r\n")})
  end)

  it("reads responses: length, chunked, until the close, and HEAD's", function()
    local head, body = parse("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
      1, "response")
    assert.equal(200, head.status)
    assert.equal("OK", head.reason)
    assert.equal("abc", body)
    head, body = parse("HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked"
      .. "\r\n\r\n2\r\nno\r\n0\r\n\r\n", 3, "response")
    assert.equal(404, head.status)
    assert.equal("no", body)
    head, body = parse("HTTP/1.0 200 OK\r\n\r\nuntil the end", 4, "response")
    assert.equal("1.0", head.version)
    assert.equal("until the end", body)
    head, body = parse("HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", 5,
      "response", true)
    assert.equal("", body)
  end)

  it("says \"closed\" for a response cut short", function()
    assert.same({nil, 0, "closed"}, {parse("HTTP/1.1 200 OK\r\n"
      .. "Content-Length: 10\r\n\r\nshort", 100, "response")})
  end)

  it("parses URLs with http_parser_parse_url", function()
    assert.same({"http", "example.com", 8080, "/a/b", "x=1", nil},
      {core.parseurl("HTTP://example.com:8080/a/b?x=1#frag")})
    assert.same({"https", "::1", nil, "/", nil, "u:p"},
      {core.parseurl("https://u:p@[::1]")})
    assert.same({nil, "invalid url"}, {core.parseurl("/relative")})
    assert.same({nil, "invalid url"}, {core.parseurl("http://h:0/")})
  end)

  it("inflates gzip and deflate, and refuses garbage", function()
    local text = ("green "):rep(1000)
    assert.equal(text, core.inflate(core.deflate(text, "gzip"), "gzip"))
    assert.equal(text, core.inflate(core.deflate(text, "deflate"), "deflate"))
    assert.same({nil, "invalid compressed body"},
      {core.inflate("not compressed", "gzip")})
    assert.same({nil, "body too large"},
      {core.inflate(core.deflate(text), "gzip", 100)})
  end)
end)
