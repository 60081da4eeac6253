#!/bin/bash
# README command 1: installs what is missing, builds pcpd (build dir
# "build"), and runs the DS-Lite lab demo (tests/lab/demo.py): an AFTR
# running pcpd with its nftables backend, an Internet host and two B4s
# whose hosts both use 192.168.1.2; each B4 asks for TCP port 80 with
# pcp-client (one in plain IPv6 mode with THIRD_PARTY, one in encapsulated
# mode) and the Internet host reaches the web server behind each. Run as
# root; it removes everything it created, also on failure or Ctrl-C, and
# can be run again at any time.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "demo.sh: run as root (it creates network namespaces and nftables tables)" >&2
  exit 1
fi
bash tools/install-deps.sh
echo "building pcpd (meson/ninja, build dir: build)"
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build >build/ninja.out 2>&1 || { cat build/ninja.out; exit 1; }
exec /usr/bin/python3 tests/lab/demo.py --build build
