-- The queue family: green.Queue, LifoQueue, PriorityQueue, JoinableQueue
-- and Channel.  Ordering, bounds, timeouts, close, kills and green.Timeout
-- interrupting waiters, and a stress run per kind checking that no item is
-- lost or delivered twice while waiters time out and are killed.
local green = require "green"

-- Calls fn, which must raise, and returns the message.
local function errorof(fn, ...)
  local args = table.pack(...)
  local function call() return fn(table.unpack(args, 1, args.n)) end
  assert.has_error(call)
  local _, err = pcall(call)
  return tostring(err)
end

-- Packs the results of a call, for assert.same.
local function pack(...) return {n = select("#", ...), ...} end

-- Takes every item get_nowait gives, in order.
local function drain(q)
  local items = {}
  while true do
    local v = q:get_nowait()
    if v == nil then return items end
    items[#items + 1] = v
  end
end

-- Runs producers and consumers on q with random timeouts, yields and
-- kills (fixed seed), then checks that every item a put accepted was got
-- exactly once and that no other item showed up.  `kind` names the
-- constructor (its maxsize is 5 unless a Channel).
local function stress(kind, opts)
  opts = opts or {}
  math.randomseed(opts.seed or 42)
  local q = opts.make and opts.make() or green[kind](5)
  local NP, NC, PER = 20, 20, 30
  local put, got, twice = {}, {}, {}
  local producers, consumers = {}, {}
  local tasks_done = 0
  for p = 1, NP do
    producers[p] = green.spawn(function()
      for k = 1, PER do
        local id = p * 1000 + k
        local r = math.random()
        local ok
        if r < 0.1 then
          ok = q:put_nowait(id)
        elseif r < 0.6 then
          ok = q:put(id, math.random() * 0.003)
        else
          ok = q:put(id)
        end
        if ok then put[id] = true end
        if math.random() < 0.3 then green.sleep(0) end
      end
    end)
  end
  for c = 1, NC do
    consumers[c] = green.spawn(function()
      while true do
        local r = math.random()
        local v, err
        if r < 0.1 then
          v, err = q:get_nowait()
        elseif r < 0.6 then
          v, err = q:get(math.random() * 0.003)
        else
          v, err = q:get()
        end
        if v ~= nil then
          if got[v] then twice[#twice + 1] = v end
          got[v] = true
          if q.task_done then q:task_done(); tasks_done = tasks_done + 1 end
        elseif err == "closed" then
          return
        end
        if math.random() < 0.3 then green.sleep(0) end
      end
    end)
  end
  -- Kill producers and consumers (the first five of each are spared, so
  -- that the run ends) while they wait.
  local killer = green.spawn(function()
    for _ = 1, 40 do
      green.sleep(math.random() * 0.001)
      local list = math.random() < 0.5 and producers or consumers
      list[math.random(6, #list)]:kill(nil, false)
    end
  end)
  green.joinall(producers)
  killer:join()
  -- Consumers drain what is left, then see "closed".
  q:close()
  assert.equal(NC, #green.joinall(consumers, 5))
  for _, v in ipairs(drain(q)) do
    if got[v] then twice[#twice + 1] = v end
    got[v] = true
  end
  assert.same({}, twice)
  local nput, lost, extra = 0, {}, {}
  for id in pairs(put) do
    nput = nput + 1
    if not got[id] then lost[#lost + 1] = id end
  end
  for id in pairs(got) do
    if not put[id] then extra[#extra + 1] = id end
  end
  assert.same({}, lost)
  assert.same({}, extra)
  assert.is_true(nput > NP * PER / 4, "too few puts: " .. nput)
  for _, g in ipairs(producers) do assert.is_true(g:dead()) end
  for _, g in ipairs(consumers) do assert.is_true(g:dead()) end
  assert.equal(0, q:qsize())
  if q.unfinished then
    assert.equal(nput - tasks_done, q:unfinished())
  end
  return nput
end

describe("green.Queue", function()
  it("gives items back in the order they were put", function()
    local q = green.Queue()
    for i = 1, 5 do assert.is_true(q:put(i)) end
    assert.equal(5, q:qsize())
    assert.equal(5, #q)
    for i = 1, 5 do assert.equal(i, q:get()) end
    assert.is_true(q:empty())
  end)

  it("keeps order across growth of an unbounded queue", function()
    local q = green.Queue()
    local n = 0
    for round = 1, 3 do
      for i = 1, 100 * round do q:put(i + round * 1000) end
      for i = 1, 50 * round do
        assert.equal(i + round * 1000, q:get())
        n = n + 1
      end
      for i = 50 * round + 1, 100 * round do
        assert.equal(i + round * 1000, q:get())
      end
    end
    assert.equal(0, #q)
  end)

  it("is unbounded with nil or 0, bounded with a positive maxsize", function()
    for _, q in ipairs({green.Queue(), green.Queue(0), green.Queue(nil)}) do
      for i = 1, 1000 do assert.is_true(q:put_nowait(i)) end
      assert.is_false(q:full())
      assert.is_nil(q:maxsize())
    end
    local q = green.Queue(2)
    assert.equal(2, q:maxsize())
    assert.is_false(q:full())
    assert.is_true(q:put_nowait("a"))
    assert.is_true(q:put_nowait("b"))
    assert.is_true(q:full())
    assert.same(pack(nil, "full"), pack(q:put_nowait("c")))
    assert.same({"a", "b"}, drain(q))
  end)

  it("returns nil, 'empty' from get_nowait and nil, 'timeout' from get",
     function()
    local q = green.Queue()
    assert.same(pack(nil, "empty"), pack(q:get_nowait()))
    local t0 = green.now()
    assert.same(pack(nil, "timeout"), pack(q:get(0.02)))
    assert.is_true(green.now() - t0 >= 0.02)
    assert.same(pack(nil, "timeout"), pack(q:get(0)))
    assert.same(pack(nil, "timeout"), pack(q:get(-1)))
  end)

  it("returns nil, 'timeout' from a put that finds no room in time, and"
     .. " leaves nothing behind", function()
    local q = green.Queue(1)
    q:put("a")
    assert.same(pack(nil, "timeout"), pack(q:put("b", 0.01)))
    assert.same(pack(nil, "timeout"), pack(q:put("b", 0)))
    assert.same({"a"}, drain(q))
  end)

  it("wakes blocked getters in the order they started waiting", function()
    local q, order = green.Queue(), {}
    for i = 1, 3 do
      green.spawn(function() local v = q:get(); order[#order + 1] = i .. v end)
    end
    green.sleep(0)
    q:put("a"); q:put("b"); q:put("c")
    green.sleep(0)
    assert.same({"1a", "2b", "3c"}, order)
  end)

  it("wakes blocked putters in the order they started waiting", function()
    local q = green.Queue(1)
    q:put(0)
    for i = 1, 3 do green.spawn(function() q:put(i) end) end
    green.sleep(0)
    local got = {}
    for _ = 1, 4 do got[#got + 1] = q:get() end
    assert.same({0, 1, 2, 3}, got)
  end)

  it("hands a put to a waiting getter: nobody arriving later takes it",
     function()
    local q, got = green.Queue(), nil
    green.spawn(function() got = q:get() end)
    green.sleep(0)
    q:put("x")
    assert.equal(0, q:qsize())
    assert.is_true(q:empty())
    assert.same(pack(nil, "empty"), pack(q:get_nowait()))
    green.sleep(0)
    assert.equal("x", got)
  end)

  it("keeps a place freed by a get for the first blocked putter", function()
    local q, done = green.Queue(1), false
    q:put("a")
    green.spawn(function() done = q:put("b") end)
    green.sleep(0)
    assert.equal("a", q:get())
    assert.is_true(q:full())
    assert.same(pack(nil, "full"), pack(q:put_nowait("c")))
    green.sleep(0)
    assert.is_true(done)
    assert.same({"b"}, drain(q))
  end)

  it("delivers an item to a getter killed after it was handed over",
     function()
    local q, got = green.Queue(), nil
    local g = green.spawn(function()
      got = q:get()
      green.sleep(1)  -- the kill is raised here
    end)
    green.sleep(0)
    q:put("mine")
    g:kill(nil, false)
    g:join()
    assert.equal("mine", got)
    assert.equal(0, q:qsize())
  end)

  it("serves the next getter when a blocked one is killed or times out",
     function()
    local q, got = green.Queue(), {}
    local g1 = green.spawn(function() got[1] = q:get() end)
    green.spawn(function() got[2] = pack(q:get(0.01)) end)
    green.spawn(function() got[3] = q:get() end)
    green.sleep(0)
    g1:kill()
    green.sleep(0.03)
    q:put("v")
    green.sleep(0)
    assert.is_nil(got[1])
    assert.same(pack(nil, "timeout"), got[2])
    assert.equal("v", got[3])
    assert.equal(0, #q)
  end)

  it("drops the item of a blocked putter that is killed or times out",
     function()
    local q = green.Queue(1)
    q:put("a")
    local g1 = green.spawn(function() q:put("killed") end)
    local res
    green.spawn(function() res = pack(q:put("late", 0.01)) end)
    green.spawn(function() q:put("c") end)
    green.sleep(0)
    g1:kill()
    green.sleep(0.03)
    assert.same(pack(nil, "timeout"), res)
    assert.equal("a", q:get())
    green.sleep(0)
    assert.same({"c"}, drain(q))
  end)

  it("is interrupted by a green.Timeout in get, put and peek", function()
    local q = green.Queue(1)
    local calls = {
      function() q:get() end,
      function() q:peek() end,
      function() q:put(1); q:put(2) end,
    }
    for _, call in ipairs(calls) do
      local ok, err = pcall(function()
        local t <close> = green.Timeout(0.01):start()
        call()
      end)
      assert.is_false(ok)
      assert.is_true(green.is_timeout(err))
    end
    assert.same({1}, drain(q))
  end)

  it("peeks at the next item without taking it, waiting for one", function()
    local q = green.Queue()
    assert.same(pack(nil, "timeout"), pack(q:peek(0.01)))
    assert.same(pack(nil, "timeout"), pack(q:peek(0)))
    local seen = {}
    for i = 1, 2 do green.spawn(function() seen[i] = q:peek() end) end
    green.sleep(0)
    q:put("p")
    green.sleep(0)
    assert.same({"p", "p"}, seen)
    assert.equal(1, #q)
    assert.equal("p", q:peek())
    assert.equal("p", q:get())
  end)

  it("lets a peeker wait on when a getter took the item first", function()
    local q, seen = green.Queue(), nil
    green.spawn(function() seen = q:peek() end)
    green.sleep(0)
    q:put(1)
    assert.equal(1, q:get())
    green.sleep(0)
    assert.is_nil(seen)
    q:put(2)
    green.sleep(0)
    assert.equal(2, seen)
  end)

  it("raises on a put after close, and drains gets before 'closed'",
     function()
    local q = green.Queue()
    q:put(1); q:put(2)
    assert.is_false(q:closed())
    q:close()
    q:close()
    assert.is_true(q:closed())
    assert.matches("put into a closed queue", errorof(q.put, q, 3))
    assert.matches("put into a closed queue", errorof(q.put_nowait, q, 3))
    assert.equal(1, q:get())
    assert.equal(2, q:get_nowait())
    assert.same(pack(nil, "closed"), pack(q:get()))
    assert.same(pack(nil, "closed"), pack(q:get_nowait()))
    assert.same(pack(nil, "closed"), pack(q:peek()))
  end)

  it("wakes blocked getters and peekers with nil, 'closed' on close",
     function()
    local q, res = green.Queue(), {}
    green.spawn(function() res[1] = pack(q:get()) end)
    green.spawn(function() res[2] = pack(q:get(10)) end)
    green.spawn(function() res[3] = pack(q:peek()) end)
    green.sleep(0)
    q:close()
    green.sleep(0)
    assert.same({pack(nil, "closed"), pack(nil, "closed"),
      pack(nil, "closed")}, res)
  end)

  it("raises in blocked putters on close, as a put after close", function()
    local q, errs = green.Queue(1), {}
    q:put("kept")
    for i = 1, 2 do
      green.spawn(function() errs[i] = select(2, pcall(q.put, q, i)) end)
    end
    green.sleep(0)
    q:close()
    green.sleep(0)
    for i = 1, 2 do assert.matches("put into a closed queue", errs[i]) end
    assert.same({"kept"}, drain(q))
  end)

  it("iterates until closed and drained", function()
    local q, got = green.Queue(2), {}
    local g = green.spawn(function()
      for v in q:iter() do got[#got + 1] = v end
    end)
    for i = 1, 5 do q:put(i) end
    q:close()
    g:join()
    assert.same({1, 2, 3, 4, 5}, got)
  end)

  it("blocks from inside a coroutine of a greenthread", function()
    local q = green.Queue()
    local gen = coroutine.wrap(function()
      while true do coroutine.yield(q:get()) end
    end)
    green.spawn(function() q:put("a"); q:put("b") end)
    assert.equal("a", gen())
    assert.equal("b", gen())
  end)

  it("keeps any value but nil: false, tables, functions", function()
    local q, t, f = green.Queue(), {}, print
    q:put(false); q:put(t); q:put(f)
    assert.same(pack(false), pack(q:get()))
    assert.equal(t, q:get())
    assert.equal(f, q:get())
  end)

  it("names itself in tostring", function()
    assert.matches("^green.Queue", tostring(green.Queue()))
  end)

  it("raises naming the function and argument for bad arguments", function()
    local q = green.Queue()
    assert.matches("bad argument #1 to 'put' %(value expected%)",
      errorof(function() q:put() end))
    assert.matches("bad argument #1 to 'put_nowait' %(value expected%)",
      errorof(function() q:put_nowait(nil) end))
    assert.matches("bad argument #2 to 'put' %(number expected, got string%)",
      errorof(function() q:put(1, "x") end))
    assert.matches("bad argument #1 to 'get' %(number expected, got table%)",
      errorof(function() q:get({}) end))
    assert.matches("bad argument #1 to 'peek' %(number expected",
      errorof(function() q:peek("x") end))
    assert.matches("calling 'get' on bad self %(green.Queue expected, got"
      .. " table%)", errorof(function() local t = {get = q.get}; t:get() end))
    assert.matches("bad argument #1 to 'qsize' %(green.Queue expected, got"
      .. " green.Event%)", errorof(function() q.qsize(green.Event()) end))
    assert.matches("bad argument #1 to 'Queue' %(integer expected, got"
      .. " string%)", errorof(green.Queue, "x"))
    assert.matches("bad argument #1 to 'Queue' %(integer expected, got"
      .. " non%-integer number%)", errorof(green.Queue, 1.5))
    assert.matches("bad argument #1 to 'Queue' %(maxsize must not be"
      .. " negative%)", errorof(green.Queue, -1))
    assert.equal(0, #q)  -- arguments are checked before anything is put
  end)

  it("loses and duplicates nothing under timeouts and kills", function()
    stress("Queue")
  end)

  it("refuses another queue or a forged one as self", function()
    local q, q2 = green.Queue(), green.Queue()
    assert.matches("green.Queue expected", errorof(q.put, q2, 1))
    assert.matches("green.Queue expected", errorof(q.get_nowait, {}))
    assert.equal(0, #q2)
    local fake = setmetatable({[0] = io.stdout, put = q.put},
                              getmetatable(q))
    assert.matches("green.Queue expected", errorof(function()
      return #fake end))
    assert.matches("green.Queue expected", errorof(fake.qsize, fake))
    assert.matches("green.Queue expected", errorof(fake.put, fake, 1))
    assert.equal(0, #q)
  end)

  it("keeps order as its ring of items wraps around", function()
    local q, want, got, full = green.Queue(3), {}, {}, 0
    for i = 1, 40 do
      for _, v in ipairs(i % 3 == 0 and {i, -i} or {i}) do
        if q:put_nowait(v) then want[#want + 1] = v else full = full + 1 end
      end
      if i % 4 == 0 then got[#got + 1] = q:get_nowait() end
      got[#got + 1] = q:get_nowait()
    end
    assert.is_true(#want > 40 and full > 0)
    for _, v in ipairs(drain(q)) do got[#got + 1] = v end
    assert.same(want, got)
  end)

  it("holds items put for woken getters beyond its bound, in order",
     function()
    -- Each put finds a getter waiting and stores the item for it: those
    -- items count until the getters run, far past maxsize.
    local q, got = green.Queue(2), {}
    for i = 1, 30 do green.spawn(function() got[i] = q:get() end) end
    green.sleep(0)
    for i = 1, 30 do assert.is_true(q:put_nowait(i)) end
    assert.equal(0, q:qsize())
    green.sleep(0)
    assert.same((function()
      local t = {}
      for i = 1, 30 do t[i] = i end
      return t
    end)(), got)
    -- and it is still bounded, and in order, afterwards
    for i = 1, 2 do assert.is_true(q:put_nowait(i)) end
    assert.same(pack(nil, "full"), pack(q:put_nowait(3)))
    assert.same({1, 2}, drain(q))
  end)

  it("loses and duplicates nothing at its largest inline bound and past it",
     function()
    stress("Queue", {make = function() return green.Queue(1024) end})
    stress("Queue", {make = function() return green.Queue(1025) end})
  end)
end)

describe("green.LifoQueue", function()
  it("gives back the last item put first", function()
    local q = green.LifoQueue()
    for i = 1, 4 do q:put(i) end
    assert.equal(4, q:peek())
    assert.same({4, 3, 2, 1}, drain(q))
  end)

  it("bounds its size and wakes putters in order", function()
    local q = green.LifoQueue(2)
    q:put(1); q:put(2)
    assert.is_true(q:full())
    assert.same(pack(nil, "full"), pack(q:put_nowait(3)))
    green.spawn(function() q:put(3) end)
    green.spawn(function() q:put(4) end)
    green.sleep(0)
    assert.equal(2, q:get())
    green.sleep(0)
    assert.same({3, 1}, {q:get(), q:get()})
    green.sleep(0)
    assert.same({4}, drain(q))
  end)

  it("holds items put for woken getters beyond its bound", function()
    local q, got = green.LifoQueue(2), {}
    for _ = 1, 30 do
      green.spawn(function() local v = q:get(); got[#got + 1] = v end)
    end
    green.sleep(0)
    for i = 1, 30 do assert.is_true(q:put_nowait(i)) end
    green.sleep(0)
    table.sort(got)
    assert.equal(30, #got)
    for i = 1, 30 do assert.equal(i, got[i]) end
    q:put(1); q:put(2)
    assert.same(pack(nil, "full"), pack(q:put_nowait(3)))
    assert.same({2, 1}, drain(q))
  end)

  it("raises for a bad maxsize, naming LifoQueue", function()
    assert.matches("bad argument #1 to 'LifoQueue'",
      errorof(green.LifoQueue, "x"))
    assert.matches("^green.LifoQueue", tostring(green.LifoQueue()))
  end)

  it("loses and duplicates nothing under timeouts and kills", function()
    stress("LifoQueue")
  end)
end)

describe("green.PriorityQueue", function()
  it("gives back the smallest item first", function()
    local q = green.PriorityQueue()
    local items = {5, 3, 9, 1, 7, 2, 8, 2, 6, 4, 0}
    for _, v in ipairs(items) do q:put(v) end
    assert.equal(0, q:peek())
    table.sort(items)
    assert.same(items, drain(q))
    for _, s in ipairs({"pear", "apple", "fig"}) do q:put(s) end
    assert.same({"apple", "fig", "pear"}, drain(q))
  end)

  it("orders by a given less function", function()
    local q = green.PriorityQueue(nil, function(a, b) return a.p > b.p end)
    for _, p in ipairs({3, 10, 1, 7}) do q:put({p = p}) end
    local got = {}
    for _, v in ipairs(drain(q)) do got[#got + 1] = v.p end
    assert.same({10, 7, 3, 1}, got)
  end)

  it("sorts many random items, with a less that blocks", function()
    math.randomseed(7)
    local q = green.PriorityQueue(nil, function(a, b)
      if math.random() < 0.1 then green.sleep(0) end
      return a < b
    end)
    local items, gs = {}, {}
    for p = 1, 4 do
      gs[p] = green.spawn(function()
        for _ = 1, 50 do
          local v = math.random(1, 1000)
          items[#items + 1] = v
          q:put(v)
        end
      end)
    end
    green.joinall(gs)
    table.sort(items)
    local got = {}
    for _ = 1, #items do got[#got + 1] = q:get() end
    assert.same(items, got)
  end)

  it("passes a comparison error to put's caller and keeps the queue"
     .. " unchanged", function()
    local q = green.PriorityQueue()
    q:put(1); q:put(2)
    assert.matches("attempt to compare", errorof(q.put, q, "x"))
    assert.matches("attempt to compare", errorof(q.put, q, {}))
    assert.equal(2, #q)
    assert.same({1, 2}, drain(q))
  end)

  it("passes a comparison error to get's caller and loses nothing",
     function()
    local fail = false
    local q = green.PriorityQueue(nil, function(a, b)
      if fail then error("less failed", 0) end
      return a < b
    end)
    for _, v in ipairs({3, 1, 2}) do q:put(v) end
    fail = true
    assert.equal("less failed", errorof(q.get, q))
    assert.equal(3, #q)
    fail = false
    assert.same({1, 2, 3}, drain(q))
  end)

  it("passes the item of a woken getter whose comparison failed on to"
     .. " others", function()
    local failer
    local q = green.PriorityQueue(nil, function(a, b)
      if green.getcurrent() == failer then error("boom", 0) end
      return a < b
    end)
    local res = {}
    failer = green.spawn(function() res[1] = pack(pcall(q.get, q)) end)
    green.spawn(function() res[2] = q:get() end)
    green.sleep(0)
    q:put(5); q:put(3); q:put(4)   -- 5 and 3 handed over, 4 left
    green.sleep(0)
    assert.same(pack(false, "boom"), res[1])
    assert.equal(3, res[2])
    assert.same({4, 5}, drain(q))
  end)

  it("does not put the item of a putter killed inside less", function()
    local q = green.PriorityQueue(nil, function(a, b)
      green.sleep(0.01)
      return a < b
    end)
    q:put(1)
    local g = green.spawn(function() q:put(0) end)
    green.sleep(0)
    g:kill()
    assert.is_true(g:dead())
    assert.same({1}, drain(q))
  end)

  it("raises naming PriorityQueue for a bad maxsize or less", function()
    assert.matches("bad argument #2 to 'PriorityQueue' %(function expected,"
      .. " got number%)", errorof(green.PriorityQueue, nil, 3))
    assert.matches("bad argument #1 to 'PriorityQueue' %(maxsize must not be"
      .. " negative%)", errorof(green.PriorityQueue, -2))
    assert.matches("^green.PriorityQueue", tostring(green.PriorityQueue()))
  end)

  it("loses and duplicates nothing under timeouts and kills", function()
    stress("PriorityQueue")
  end)

  it("loses and duplicates nothing with a less that blocks", function()
    stress("PriorityQueue", {seed = 3, make = function()
      return green.PriorityQueue(5, function(a, b)
        if math.random() < 0.2 then green.sleep(0) end
        return a < b
      end)
    end})
  end)
end)

describe("green.JoinableQueue", function()
  it("joins once every item put was marked done", function()
    local q = green.JoinableQueue()
    assert.is_true(q:join())
    q:put("a"); q:put("b")
    assert.equal(2, q:unfinished())
    local joined = false
    green.spawn(function() joined = q:join() end)
    green.sleep(0)
    q:get(); q:task_done()
    green.sleep(0)
    assert.is_false(joined)
    q:get(); q:task_done()
    green.sleep(0)
    assert.is_true(joined)
    assert.equal(0, q:unfinished())
  end)

  it("returns nil, 'timeout' from join when items stay unfinished",
     function()
    local q = green.JoinableQueue()
    q:put(1)
    assert.same(pack(nil, "timeout"), pack(q:join(0.01)))
    assert.same(pack(nil, "timeout"), pack(q:join(0)))
  end)

  it("raises when task_done is called more times than items were put",
     function()
    local q = green.JoinableQueue()
    q:put(1)
    q:task_done()
    assert.matches("task_done%(%) called too many times",
      errorof(q.task_done, q))
  end)

  it("waits for workers to finish every item", function()
    local q, done = green.JoinableQueue(3), 0
    for _ = 1, 3 do
      green.spawn(function()
        for _ in q:iter() do
          green.sleep(0)
          done = done + 1
          q:task_done()
        end
      end)
    end
    for i = 1, 10 do q:put(i) end
    assert.is_true(q:join())
    assert.equal(10, done)
    q:close()
  end)

  it("has task_done and join that other queues lack", function()
    assert.is_nil(green.Queue().task_done)
    local q = green.JoinableQueue()
    assert.matches("bad argument #1 to 'join' %(green.JoinableQueue"
      .. " expected", errorof(function() q.join(green.Queue()) end))
    assert.matches("^green.JoinableQueue", tostring(q))
  end)

  it("loses and duplicates nothing under timeouts and kills", function()
    stress("JoinableQueue")
  end)
end)

describe("green.Channel", function()
  it("makes a put wait until a get takes the item", function()
    local c, done = green.Channel(), nil
    green.spawn(function() done = c:put("x") end)
    green.sleep(0)
    assert.is_nil(done)
    assert.equal(0, c:qsize())
    assert.is_false(c:empty())
    assert.equal("x", c:get())
    green.sleep(0)
    assert.is_true(done)
  end)

  it("hands a put to a waiting getter at once", function()
    local c, got = green.Channel(), nil
    green.spawn(function() got = c:get() end)
    green.sleep(0)
    assert.is_false(c:full())
    assert.is_true(c:put_nowait("y"))
    green.sleep(0)
    assert.equal("y", got)
  end)

  it("fails put_nowait without a getter and get_nowait without a putter",
     function()
    local c = green.Channel()
    assert.is_true(c:full())
    assert.is_true(c:empty())
    assert.same(pack(nil, "full"), pack(c:put_nowait(1)))
    assert.same(pack(nil, "empty"), pack(c:get_nowait()))
    assert.equal(0, c:maxsize())
  end)

  it("serves putters and getters in the order they waited", function()
    local c, order = green.Channel(), {}
    for i = 1, 3 do green.spawn(function() c:put(i) end) end
    green.sleep(0)
    for _ = 1, 3 do order[#order + 1] = c:get_nowait() end
    assert.same({1, 2, 3}, order)
    order = {}
    for i = 1, 3 do
      green.spawn(function() local v = c:get(); order[#order + 1] = i .. v end)
    end
    green.sleep(0)
    for _, v in ipairs({"a", "b", "c"}) do c:put(v) end
    green.sleep(0)
    assert.same({"1a", "2b", "3c"}, order)
  end)

  it("never delivers the item of a putter that timed out or was killed",
     function()
    local c, res = green.Channel(), nil
    local g = green.spawn(function() c:put("killed") end)
    green.spawn(function() res = pack(c:put("late", 0.01)) end)
    green.sleep(0)
    g:kill()
    green.sleep(0.03)
    assert.same(pack(nil, "timeout"), res)
    assert.same(pack(nil, "empty"), pack(c:get_nowait()))
    assert.same(pack(nil, "timeout"), pack(c:put("t", 0.01)))
  end)

  it("peeks at the first waiting putter's item", function()
    local c, seen = green.Channel(), nil
    green.spawn(function() seen = c:peek() end)
    green.sleep(0)
    green.spawn(function() c:put("z") end)
    green.sleep(0)
    green.sleep(0)
    assert.equal("z", seen)
    assert.equal("z", c:peek(0))
    assert.equal("z", c:get())
  end)

  it("raises in blocked putters and ends blocked getters on close",
     function()
    local c, res = green.Channel(), {}
    green.spawn(function() res.put = select(2, pcall(c.put, c, 1)) end)
    green.sleep(0)
    c:close()
    green.sleep(0)
    assert.matches("put into a closed queue", res.put)
    assert.same(pack(nil, "closed"), pack(c:get()))
    local c2 = green.Channel()
    green.spawn(function() res.get = pack(c2:get()) end)
    green.sleep(0)
    c2:close()
    green.sleep(0)
    assert.same(pack(nil, "closed"), res.get)
  end)

  it("iterates until closed", function()
    local c, got = green.Channel(), {}
    local g = green.spawn(function()
      for v in c:iter() do got[#got + 1] = v end
    end)
    for i = 1, 3 do c:put(i) end
    c:close()
    g:join()
    assert.same({1, 2, 3}, got)
  end)

  it("names itself in tostring", function()
    assert.matches("^green.Channel", tostring(green.Channel()))
  end)

  it("loses and duplicates nothing under timeouts and kills", function()
    stress("Channel", {make = green.Channel})
  end)
end)
