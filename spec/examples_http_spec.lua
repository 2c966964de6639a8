-- The HTTP examples: scripts/examples/http_hello.lua and json_api.lua run
-- as child processes and are asked with green.http's client; crawler.lua
-- crawls a generated site served here by green.http.
local green = require "green"
local http = require "green.http"
local h = require "spec.helpers"
local json = require "dkjson"

local DIR = "scripts/examples/"

-- Runs fn(base URL) against an example server started on a free port,
-- which is stopped after it however fn ends, and must have said nothing
-- on stderr.
local function withexample(name, fn)
  local child = h.spawn(("env -u LUA_INIT -u LUA_INIT_5_4 %s %s 0")
    :format(h.q(h.BIN), h.q(DIR .. name)))
  local port = child:await("listening on http://127%.0%.0%.1:(%d+)/")
  local ok, err = pcall(fn, "http://127.0.0.1:" .. port)
  local _, stderr = child:kill()
  http.close_idle()
  assert(ok, err)
  assert.equal("", stderr)
end

describe("scripts/examples/http_hello.lua", function()
  it("answers its paths", function()
    withexample("http_hello.lua", function(base)
      assert.equal("Hello, World!\n", assert(http.get(base .. "/")).body)
      assert.equal("Hello, green!\n",
        assert(http.get(base .. "/hello?name=green")).body)
      assert.equal("4 bytes: text\n",
        assert(http.request(base .. "/echo", {body = "text"})).body)
      local res = assert(http.get(base .. "/count"))
      assert.equal("chunked", res.headers["transfer-encoding"])
      assert.equal("1\n2\n3\n", res.body)
      assert.equal(404, assert(http.get(base .. "/nowhere")).status)
    end)
  end)
end)

describe("scripts/examples/json_api.lua", function()
  it("creates, lists, updates and deletes to-dos", function()
    withexample("json_api.lua", function(base)
      local function call(method, path, body)
        local res = assert(http.request(base .. path, {method = method,
          body = body and json.encode(body)}))
        return res.status, res.body ~= "" and json.decode(res.body) or nil
      end
      local status, doc = call("POST", "/todos", {title = "write a server"})
      assert.equal(201, status)
      assert.same({id = 1, title = "write a server", done = false}, doc)
      assert.equal(201, (call("POST", "/todos", {title = "test it"})))
      status, doc = call("GET", "/todos")
      assert.equal(200, status)
      assert.equal(2, #doc)
      doc = select(2, call("PATCH", "/todos/1", {done = true}))
      assert.is_true(doc.done)
      assert.equal(204, (call("DELETE", "/todos/1")))
      assert.equal(404, (call("GET", "/todos/1")))
      assert.equal(422, (call("POST", "/todos", {title = 5})))
      status = assert(http.request(base .. "/todos", {body = "{not json"}))
        .status
      assert.equal(400, status)
      assert.equal(405, (call("PUT", "/todos")))
    end)
  end)
end)

describe("scripts/examples/crawler.lua", function()
  -- A site of 259 pages: a tree of depth 3 where each page has 6
  -- children, links to its parent, to the home page, forward to a page
  -- of the next level, and to what is not followed (another host, a
  -- fragment, mailto:).  The home page also links to a slow page and a
  -- redirect loop, and some pages to pages that do not exist (404).
  -- Every path to a page of level k is k links long, so that the crawler
  -- finds each page at its level, whatever order the fetches end in.
  local BRANCH, LEVELS, DELAY = 6, 3, 0.02

  local function count(level) return BRANCH ^ level // 1 end

  local function site(base)
    local hits, inflight, maxinflight = {}, 0, 0
    local function page(level, i)
      local links = {'<a href="/">home</a>', '<a href="#top">top</a>',
        '<a href="mailto:x@example.invalid">mail</a>',
        '<a href="http://example.invalid/away">away</a>'}
      if level > 1 then  -- (the home page is level 1's parent)
        links[#links + 1] = ('<a href="/p/%d/%d">up</a>')
          :format(level - 1, (i - 1) // BRANCH + 1)
      end
      if level < LEVELS then
        for c = 1, BRANCH do
          local child = (i - 1) * BRANCH + c
          -- three spellings of a link: relative, absolute path, full URL
          local href = c % 3 == 0 and (level == 0 and "p/%d/%d"
              or "../%d/%d"):format(level + 1, child)
            or c % 3 == 1 and ("/p/%d/%d"):format(level + 1, child)
            or ("%s/p/%d/%d"):format(base, level + 1, child)
          links[#links + 1] = ('<a href="%s">child</a>'):format(href)
        end
        links[#links + 1] = ('<A HREF=\'/p/%d/%d\'>cross</A>')
          :format(level + 1, (i * 7) % count(level + 1) + 1)
        if i % 5 == 0 then
          links[#links + 1] = ('<a href="/missing/%d/%d">gone</a>')
            :format(level, i)
        end
      end
      return "<html><body>" .. table.concat(links, "\n") .. "</body></html>"
    end
    local function handler(req)
      hits[req.path] = (hits[req.path] or 0) + 1
      inflight = inflight + 1
      if inflight > maxinflight then maxinflight = inflight end
      local _ <close> = setmetatable({}, {__close = function()
        inflight = inflight - 1
      end})
      green.sleep(DELAY)
      local html = {["Content-Type"] = "text/html"}
      if req.path == "/" then
        local body = page(0, 1):gsub("</body>",
          '<a href="/slow">slow</a><a href="/loop">loop</a></body>')
        return 200, html, body
      elseif req.path == "/slow" then
        green.sleep(0.3)
        return 200, html, "slow"
      elseif req.path == "/loop" then
        return 302, {Location = "/loop"}
      end
      local level, i = req.path:match("^/p/(%d+)/(%d+)$")
      level, i = tonumber(level), tonumber(i)
      if level and level >= 1 and level <= LEVELS and i <= count(level) then
        return 200, html, page(level, i)
      end
      return 404, nil, "not found"
    end
    return handler, hits, function() return maxinflight end
  end

  it("fetches every page of a site once, concurrently, within the per-host limit",
     function()
    local handler  -- made once the base URL is known
    local srv = assert(http.server("127.0.0.1", 0, function(...)
      return handler(...)
    end))
    assert(srv:start())
    local base = "http://127.0.0.1:" .. srv.port
    local hits, maxinflight
    handler, hits, maxinflight = site(base)
    local out, err, status = h.run(("env -u LUA_INIT -u LUA_INIT_5_4 %s %s "
      .. "%s/ %d 16 8"):format(h.q(h.BIN), h.q(DIR .. "crawler.lua"), base,
      LEVELS), 60)
    srv:stop(1)
    assert.equal(0, status, err)
    -- each page of the tree, and each missing page, exactly once
    local pages, missing = 0, 0
    for level = 1, LEVELS do
      for i = 1, count(level) do
        assert.equal(1, hits[("/p/%d/%d"):format(level, i)],
          ("/p/%d/%d"):format(level, i))
        pages = pages + 1
        if level < LEVELS and i % 5 == 0 then
          assert.equal(1, hits[("/missing/%d/%d"):format(level, i)])
          missing = missing + 1
        end
      end
    end
    assert.equal(1, hits["/"])
    assert.equal(1, hits["/slow"])
    local total = 0
    for _, n in pairs(hits) do total = total + n end
    assert.equal(pages + missing + 2 + hits["/loop"], total)
    -- what it printed
    assert.truthy(out:find("ERR 1 " .. base .. "/loop (too many redirects)",
      1, true), out)
    assert.truthy(out:find("404 3 " .. base .. "/missing/2/5", 1, true), out)
    local npages, nerrors, nbytes, secs = out:match(
      "pages (%d+), errors (%d+), bytes (%d+), time ([%d.]+) s\n$")
    assert.equal(pages + missing + 2, tonumber(npages))
    assert.equal(missing + 1, tonumber(nerrors))
    assert.is_true(tonumber(nbytes) > pages * 100)
    -- concurrency: up to the per-host limit at once, never more, and far
    -- less time than one fetch after the other
    assert.is_true(maxinflight() >= 4 and maxinflight() <= 8,
      "in flight at most: " .. maxinflight())
    local serial = (pages + missing + 2) * DELAY + 0.3
    assert.is_true(tonumber(secs) < serial / 2,
      ("%s s, one after the other: %.1f s"):format(secs, serial))
  end)
end)
