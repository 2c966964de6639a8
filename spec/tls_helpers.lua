-- What the TLS specs share (tls_spec.lua, http_tls_spec.lua): a
-- throwaway PKI made with the openssl command line in a temporary
-- directory (a CA; certificates for localhost and 127.0.0.1, expired, for
-- another host, for SNI; a self-signed one), and peers run as background
-- child processes while the hub goes on running our side.
local green = require "green"
local h = require "spec.helpers"
local q, slurp = h.q, h.slurp

local T = {peer = "spec/fixtures/tls_peer.py"}
local dir

-- The path of a file of the PKI.
function T.pki(name) return dir .. "/" .. name end
-- Makes the PKI; T.ca is the CA's certificate.
function T.makepki()
  local f = assert(io.popen("mktemp -d"))
  dir = f:read("l")
  f:close()
  T.ca = T.pki("ca.pem")
  local script = [[
set -e
cd "$1"
ec() { openssl ecparam -name prime256v1 -genkey -noout -out "$1"; }
sign() {  # name cn san days
  ec "$1.key"
  openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr"
  printf 'subjectAltName=%s\n' "$3" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial \
    -days "$4" -extfile "$1.ext" -out "$1.pem"
}
ec ca.key
openssl req -x509 -new -key ca.key -subj "/CN=greenlua test CA" -days 2 \
  -out ca.pem
sign srv localhost "DNS:localhost,IP:127.0.0.1" 2
sign expired localhost "DNS:localhost,IP:127.0.0.1" -1
sign wrong wrong.example "DNS:wrong.example" 2
sign other other.test "DNS:other.test" 2
cat srv.pem ca.pem > chain.pem
ec self.key
openssl req -x509 -new -key self.key -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost -days 2 -out self.pem
]]
  local sh = T.pki("make.sh")
  local out = assert(io.open(sh, "w"))
  out:write(script)
  out:close()
  assert(os.execute(("sh %s %s >%s 2>&1"):format(q(sh), q(dir),
    q(T.pki("make.log")))), "openssl failed: " .. slurp(T.pki("make.log")))
end

-- {====== Child processes ======
-- A peer runs in the background with its output in a file, so that the
-- hub goes on running our side (io.popen would block it).

local Child = {}
Child.__index = Child

local function exists(path)
  local f = io.open(path)
  if f then f:close() end
  return f ~= nil
end

-- Starts the shell command `cmd` in the background, killed after 20 s
-- whatever happens.
function T.child(cmd)
  local c = setmetatable({out = os.tmpname(), rc = os.tmpname(),
                          pidfile = os.tmpname()}, Child)
  os.remove(c.rc)
  os.remove(c.pidfile)
  assert(os.execute(("(timeout 20 sh -c %s >%s 2>&1 & echo $! >%s; "
    .. "wait $!; echo $? >%s.tmp; mv %s.tmp %s) </dev/null >/dev/null 2>&1 &")
    :format(q(cmd), q(c.out), q(c.pidfile), q(c.rc), q(c.rc), q(c.rc))))
  return c
end

function Child:output() return slurp(self.out) end

-- Waits (10 s at most) for the child's output to match `pattern`.
function Child:await(pattern)
  local deadline = green.now() + 10
  while true do
    local r = {self:output():match(pattern)}
    if r[1] ~= nil then return table.unpack(r) end
    assert(green.now() < deadline, "no match for " .. pattern .. " in:\n"
      .. self:output())
    green.sleep(0.005)
  end
end

-- Waits (15 s at most) for the child to end: its output and status.
function Child:wait()
  local deadline = green.now() + 15
  while not exists(self.rc) do
    assert(green.now() < deadline, "child did not end:\n" .. self:output())
    green.sleep(0.005)
  end
  local out, rc = self:output(), tonumber(slurp(self.rc))
  os.remove(self.out); os.remove(self.rc); os.remove(self.pidfile)
  return out, rc
end

-- Stops the child (its `timeout`, which passes the signal on).
function Child:kill()
  while not exists(self.pidfile) or slurp(self.pidfile) == "" do
    green.sleep(0.005)
  end
  os.execute("kill " .. tonumber(slurp(self.pidfile)) .. " 2>/dev/null")
  return self:wait()
end
-- }======


function T.removepki() os.execute("rm -rf " .. q(dir)) end

return T
