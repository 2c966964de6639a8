-- What a greenthread tells once it has ended: ready, successful, value
-- and error (gevent tutorial, "Greenlet State").  The loser's error is
-- also reported on stderr: nothing caught it.
local green = require "green"

local function win()
  return "You win!"
end

local function fail()
  error("You fail at failing.", 0)
end

local winner, loser = green.spawn(win), green.spawn(fail)
print(winner:ready(), loser:ready())  -- not started yet

-- joinall does not raise a greenthread's error.
green.joinall({winner, loser})

print(winner.value)   -- You win!
print(loser.value)    -- nil
print(winner:ready(), loser:ready())
print(winner:successful(), loser:successful())
print(loser.error)    -- the error value itself

-- A killed greenthread counts as successful; its value is GreenletExit.
local sleeper = green.spawn(green.sleep, 10)
green.sleep(0)
sleeper:kill()
print(sleeper:successful(), sleeper.value)
