# Sourced by the scripts in scripts/tools: installs the Debian packages
# that are missing (as root; through sudo otherwise).
need_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
      missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "== installing: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
      --no-install-recommends "${missing[@]}" >/dev/null ||
    { echo "could not install: ${missing[*]}" >&2; return 1; }
}

# What building greenlua needs.
GL_BUILD_PACKAGES=(cmake make gcc libc6-dev pkg-config liblua5.4-dev
  libuv1-dev lua-busted libssl-dev libhttp-parser-dev zlib1g-dev)

# What the test suite needs besides: the peers the specs talk to.
GL_TEST_PACKAGES=(openssl curl python3 wrk lua-dkjson clang
  libclang-rt-14-dev)
# The Lua ecosystem (LuaSocket, LuaSec, redis-lua) and the servers its
# specs run; lua5.4 runs Debian's LuaSocket as the reference.
GL_TEST_PACKAGES+=(lua5.4 lua-socket lua-sec lua-redis redis-server
  python3-pyftpdlib)
