#!/bin/sh
# Runs the C tests of the context switch and the coroutines on AArch64
# without an AArch64 machine: cross-compiles spec/c/test_ctx.c and
# test_coro.c with host/arch/ctx_aarch64.S (statically, with a stand-in for
# gl_fatal instead of the libuv hub) and runs every case under qemu-aarch64.
# Installs what it needs with apt-get.  Prints "N passed, N failed, N
# skipped" and exits non-zero if a case failed.
set -eu

root=$(cd "$(dirname "$0")/../.." && pwd)
out=${GL_AARCH64_OUT:-${TMPDIR:-/tmp}/greenlua-aarch64}
cc="aarch64-linux-gnu-gcc"
qemu="qemu-aarch64"

if ! command -v "$cc" >/dev/null 2>&1 || ! command -v "$qemu" >/dev/null 2>&1
then
  sudo=
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
    gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user >/dev/null
fi

mkdir -p "$out"
cat >"$out/fatal.c" <<'STUB'
/* gl_fatal as host/hub.c defines it, without libuv. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "gl.h"

void gl_fatal(const char *fmt, ...) {
  va_list ap;
  fflush(stdout);
  fputs("greenlua: fatal: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  abort();
}
STUB

flags="-std=c11 -O2 -g -static -D_DEFAULT_SOURCE -I$root/host
  -Wall -Wextra -Wshadow -Wundef -Wstrict-prototypes -Wmissing-prototypes
  -Wwrite-strings -Wformat=2 -Werror"
ctx="$root/host/arch/ctx_aarch64.S $out/fatal.c"
# shellcheck disable=SC2086
$cc $flags "$root/spec/c/test_ctx.c" $ctx -o "$out/test_ctx" -lm
units=test_ctx
if [ -f "$root/spec/c/test_coro.c" ]; then
  # shellcheck disable=SC2086
  $cc $flags "$root/spec/c/test_coro.c" "$root/host/coro.c" \
    "$root/host/stack.c" $ctx -o "$out/test_coro" -lm
  units="$units test_coro"
fi

# qemu-user answers madvise(MADV_GUARD_INSTALL) with success but installs
# no guard page, so an overflow runs past it: not a fault of ours.
skip=" coro_overflow_is_reported "

passed=0
failed=0
skipped=0
for unit in $units; do
  for name in $("$qemu" "$out/$unit" --list); do
    case $skip in
      *" $name "*)
        skipped=$((skipped + 1))
        echo "skip   $name (qemu-user)"
        continue
        ;;
    esac
    if "$qemu" "$out/$unit" "$name" >"$out/$name.log" 2>&1; then
      passed=$((passed + 1))
      echo "ok     $name"
    else
      failed=$((failed + 1))
      echo "FAILED $name"
      sed 's/^/    /' "$out/$name.log"
    fi
  done
done
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
