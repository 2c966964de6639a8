#!/usr/bin/env bash
# The full test suite: installs what is missing, builds greenlua in Release
# and with AddressSanitizer + UndefinedBehaviorSanitizer (warnings as
# errors in both), then runs the C unit tests (ctest) and every busted spec
# under each build.  Ends with one line: "N passed, N failed".
set -u
cd "$(dirname "$0")/../.."
. scripts/tools/deps.sh
need_packages "${GL_BUILD_PACKAGES[@]}" "${GL_TEST_PACKAGES[@]}" || exit 1

jobs=$(nproc)
passed=0 failed=0
log=$(mktemp -d)

build() {  # build DIR TYPE
  echo "== build $2 in $1"
  cmake -S . -B "$1" -DCMAKE_BUILD_TYPE="$2" -DGL_WERROR=ON >"$log/cmake" 2>&1 &&
    cmake --build "$1" -j"$jobs" >"$log/make" 2>&1 ||
    { cat "$log/cmake" "$log/make" | tail -40; return 1; }
}

ctests() {  # ctests DIR
  echo "== C unit tests ($1)"
  ctest --test-dir "$1" --output-on-failure -j"$jobs" --timeout 120 \
    >"$log/ctest" 2>&1
  grep -E "tests passed|Failed|\*\*\*" "$log/ctest" | tail -20
  local total fails
  total=$(sed -nE 's/.*tests failed out of ([0-9]+).*/\1/p' "$log/ctest")
  fails=$(sed -nE 's/.* ([0-9]+) tests failed out of.*/\1/p' "$log/ctest")
  [ -n "$total" ] || { echo "ctest did not run"; failed=$((failed + 1)); return; }
  passed=$((passed + total - fails)); failed=$((failed + fails))
}

specs() {  # specs DIR [LABEL [SPEC...]]
  local dir=$1 label=${2:-}
  shift; shift 2>/dev/null
  echo "== busted specs ($dir${label:+, $label})"
  GREENLUA="$PWD/$dir/greenlua" timeout 1800 "$dir/greenlua" /usr/bin/busted \
    -o utfTerminal "${@:-spec}" >"$log/busted" 2>&1
  grep -vE '^[+●◼✱-]*$' "$log/busted" | tail -60
  local line s f e
  line=$(grep -E '[0-9]+ successes? / [0-9]+ failures? / [0-9]+ errors?' \
           "$log/busted" | tail -1)
  [ -n "$line" ] || { echo "busted did not finish"; failed=$((failed + 1)); return; }
  s=$(sed -nE 's/^([0-9]+) success.*/\1/p' <<<"$line")
  f=$(sed -nE 's/.* ([0-9]+) failures?.*/\1/p' <<<"$line")
  e=$(sed -nE 's/.* ([0-9]+) errors?.*/\1/p' <<<"$line")
  passed=$((passed + s)); failed=$((failed + f + e))
}

# The later sections of the API.md names check, each added here once the
# layer it checks is built.
GL_CONTRACT_SECTIONS=(tls processes workers http)

contract() {  # contract DIR [SECTION...]: every API.md name exists
  # The project's shared documents, beside the clone, hold the check; a
  # clone on its own (CI) uses the copy kept in spec/contract/.
  local check=../shared/checks/api_names.lua out p f dir=$1
  shift
  [ -f "$check" ] || check=spec/contract/api_names.lua
  echo "== API.md names ($dir${1:+: $*})"
  out=$("$dir/greenlua" "$check" "$@" 2>&1 | tail -20)
  echo "$out" | grep -v "passed, .* failed"
  p=$(sed -nE 's/^([0-9]+) passed, ([0-9]+) failed$/\1/p' <<<"$out")
  f=$(sed -nE 's/^([0-9]+) passed, ([0-9]+) failed$/\2/p' <<<"$out")
  [ -n "$p" ] || { failed=$((failed + 1)); return; }
  passed=$((passed + p)); failed=$((failed + f))
}

# The libFuzzer harnesses of spec/fuzz, each on GL_FUZZ_RUNS inputs grown
# from the seed corpus of the repository, in a clang build with
# AddressSanitizer + UndefinedBehaviorSanitizer (GL_FUZZ); each counts as
# one test.
fuzz() {
  local dir=build-fuzz runs=${GL_FUZZ_RUNS:-20000} h work
  echo "== fuzz harnesses ($dir, clang, $runs inputs each)"
  cmake -S . -B $dir -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Asan \
    -DGL_FUZZ=ON >"$log/cmake" 2>&1 &&
    cmake --build $dir -j"$jobs" --target fuzz_http_request \
      fuzz_http_response >"$log/make" 2>&1 ||
    { cat "$log/cmake" "$log/make" | tail -40; failed=$((failed + 1)); return; }
  for h in request response; do
    work=$(mktemp -d)
    if $dir/spec/fuzz/fuzz_http_$h -runs="$runs" -max_len=4096 -timeout=10 \
         -artifact_prefix="$log/" "$work" spec/fuzz/corpus/$h \
         >"$log/fuzz" 2>&1; then
      echo "fuzz_http_$h: $(grep -E '^Done' "$log/fuzz")"
      passed=$((passed + 1))
    else
      grep -vE '^(INFO|#[0-9])' "$log/fuzz" | tail -40
      failed=$((failed + 1))
    fi
    rm -rf "$work"
  done
}

for cfg in "build Release" "build-asan Asan"; do
  set -- $cfg
  if build "$1" "$2"; then
    ctests "$1"
    specs "$1"
    GREENLUA_UNWIND_EAGERLY=1 specs "$1" "stacks given up at every wait"
    contract "$1"
    [ ${#GL_CONTRACT_SECTIONS[@]} -eq 0 ] ||
      contract "$1" "${GL_CONTRACT_SECTIONS[@]}"
    # Stress: every greenthread on a shared stack, so that its frames are
    # copied out and back at nearly every switch; anything that points
    # into a displaced stack corrupts memory and fails a spec, or, under
    # the sanitizers (which are told about the copies), is reported.
    GREENLUA_PRIVATE_STACKS=0 specs "$1" "all stacks shared"
    if [ "$2" = Release ]; then
      # Stress: every socket read and write moves one byte, so that every
      # call parks and every partial path runs.
      GREENLUA_IO_ONEBYTE=1 specs "$1" "one-byte I/O" spec/socket_*_spec.lua \
        spec/server_spec.lua spec/examples_net_spec.lua spec/tls_spec.lua \
        spec/subprocess_spec.lua spec/luasocket_*_spec.lua spec/http_*_spec.lua
    fi
  else
    echo "build $2 failed"; failed=$((failed + 1))
  fi
done
fuzz
rm -rf "$log"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
