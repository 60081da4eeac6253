#!/bin/bash
# README command 2: installs dependencies, builds warning-free, builds with
# ASan+UBSan, runs unit tests (kernel ones in private namespaces),
# fuzz-corpus replays, the wire tests and the DS-Lite lab tests (real
# nftables, conntrack and traffic) against the sanitized daemon, and ends
# with "N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh || { echo "0 passed, 1 failed"; exit 1; }

passed=0 failed=0
fail() { echo "FAILED: $*"; failed=$((failed + 1)); }

# 1. warning-free build (-Wall -Wextra, warnings are errors here)
[ -d build-werror ] || meson setup build-werror --werror >/dev/null
if ninja -C build-werror >build-werror/build.out 2>&1; then passed=$((passed + 1)); else
  cat build-werror/build.out; fail "warning-free build"; fi

# 2. sanitized build; every test below runs it
[ -d build-asan ] || meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
if ! ninja -C build-asan >build-asan/build.out 2>&1; then
  cat build-asan/build.out; fail "sanitizer build"
  echo "$passed passed, $failed failed"; exit 1
fi
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

# 3. unit tests and fuzz-corpus replays (meson)
meson test -C build-asan --print-errorlogs --num-processes 2 | tee build-asan/meson-test.out
ok=$(sed -n 's/^Ok: *\([0-9]*\).*/\1/p' build-asan/meson-test.out | tail -1)
bad=$(sed -n 's/^Fail: *\([0-9]*\).*/\1/p' build-asan/meson-test.out | tail -1)
to=$(sed -n 's/^Timeout: *\([0-9]*\).*/\1/p' build-asan/meson-test.out | tail -1)
passed=$((passed + ${ok:-0})); failed=$((failed + ${bad:-0} + ${to:-0}))
[ -n "$ok" ] || fail "meson test printed no summary"

# 4. wire tests (scapy against the running sanitized pcpd in namespaces)
rm -f build-asan/wire.counts build-asan/lab.counts
PCPD_BUILD=$PWD/build-asan /usr/bin/python3 tests/wire/run.py --counts build-asan/wire.counts
read -r wp wf < build-asan/wire.counts || { wp=0; wf=1; }
passed=$((passed + wp)); failed=$((failed + wf))

# 5. lab tests: pcpd programming real nftables/conntrack, real TCP/UDP
PCPD_BUILD=$PWD/build-asan /usr/bin/python3 tests/lab/run.py --counts build-asan/lab.counts
read -r lp lf < build-asan/lab.counts || { lp=0; lf=1; }
passed=$((passed + lp)); failed=$((failed + lf))

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
