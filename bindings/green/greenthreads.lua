-- Operations on lists of greenthreads: joinall and killall, composed from
-- g:join and g:kill.
local green = ...

local function checklist(fname, list)
  if type(list) ~= "table" then
    error(("bad argument #1 to '%s' (table expected, got %s)")
      :format(fname, type(list)), 3)
  end
end

-- green.joinall(list, [timeout]) -> the list of those that finished, in
-- list order.
function green.joinall(list, timeout)
  checklist("joinall", list)
  if timeout ~= nil and type(timeout) ~= "number" then
    error(("bad argument #2 to 'joinall' (number expected, got %s)")
      :format(type(timeout)), 2)
  end
  local deadline = timeout and green.now() + timeout
  for _, g in ipairs(list) do
    local left = deadline and math.max(0, deadline - green.now())
    if not g:join(left) then break end
  end
  local done = {}
  for _, g in ipairs(list) do
    if g:ready() then done[#done + 1] = g end
  end
  return done
end

-- green.killall(list, [err]): kills them all, then waits for them to end.
function green.killall(list, err)
  checklist("killall", list)
  for _, g in ipairs(list) do g:kill(err, false) end
  for _, g in ipairs(list) do g:join() end
end
