-- green.monkey: for scripts written for gevent's habit.  Under greenlua
-- nothing needs patching: require "socket" and require "ssl" give green
-- modules already (bindings/compat), and every blocking call parks only
-- its greenthread.  So patch_all does nothing and says it worked.
local green = ...

local monkey = {}

function monkey.patch_all()
  return true
end

green.monkey = monkey
return monkey
