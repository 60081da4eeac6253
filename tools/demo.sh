#!/bin/bash
# README command 1 (until the DS-Lite lab lands): builds pcpd, runs it in
# the foreground on loopback with conf/pcpd.conf, and shows it answering an
# ANNOUNCE, MAPs in both DS-Lite modes, a PEER and a delete from the
# shipped client. Leaves nothing running.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
[ -d build ] || meson setup build >/dev/null
ninja -C build >/dev/null
PCPD=build/pcpd/pcpd CLIENT=build/pcpd/pcp-client
$PCPD -n -c conf/pcpd.conf && echo "conf/pcpd.conf: valid"

$PCPD -c conf/pcpd.conf -d &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  $CLIENT -s 127.0.0.1 -w 100 -r 1 announce >/dev/null 2>&1 && break
  sleep 0.1
done
run() { echo; echo "\$ pcp-client $*"; $CLIENT "$@" || true; }
echo; echo "== ANNOUNCE from an encapsulated-mode host (IPv4 on the 'lo' softwire)"
run -s 127.0.0.1 announce
echo; echo "== MAP TCP 80 for that host (encapsulated mode: subscriber from the ingress interface)"
run -s 127.0.0.1 -N 0102030405060708090a0b0c -d "demo web server" map tcp 80
echo; echo "== MAP TCP 80 for host 192.168.1.2 behind B4 ::1 (plain mode, THIRD_PARTY)"
run -s ::1 -t 192.168.1.2 -N 0c0b0a090807060504030201 map tcp 80
echo; echo "== the same MAP again: a renewal keeps the external port"
run -s ::1 -t 192.168.1.2 -N 0c0b0a090807060504030201 map tcp 80
echo; echo "== another client (other nonce) cannot take it over: NOT_AUTHORIZED"
run -s ::1 -t 192.168.1.2 -N ffffffffffffffffffffffff map tcp 80
echo; echo "== PEER: outbound mapping towards 198.51.100.7:443"
run -s 127.0.0.1 peer tcp 40000 198.51.100.7 443
echo; echo "== delete the plain-mode MAP (lifetime 0)"
run -s ::1 -t 192.168.1.2 -N 0c0b0a090807060504030201 -l 0 map tcp 80
echo
