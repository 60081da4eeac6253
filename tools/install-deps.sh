#!/bin/bash
# Installs what pcpd needs to build, test and run the demo, from Debian 12
# packages. Idempotent: does nothing when everything is present.
set -euo pipefail
PKGS=(
  meson ninja-build pkg-config gcc clang          # build; clang for libFuzzer
  libev-dev liburcu-dev libconfuse-dev            # event loop, RCU hash table, config parser
  libmnl-dev libnftnl-dev                         # nftables backend (netlink, nf_tables messages)
  libnetfilter-conntrack-dev                      # conntrack flush and PEER implicit mappings
  libjson-c-dev                                   # control socket protocol and pcpctl
  libldns-dev libssl-dev                          # DDNS hook: RFC 2136 UPDATE + TSIG; HMAC for webhooks
  libcurl4-openssl-dev libsqlite3-dev             # DDNS hook: dyndns2/webhook over HTTPS; durable state
  libcmocka-dev                                   # unit tests
  nftables conntrack netcat-openbsd               # lab tests and demo: inspect kernel state, traffic
  knot knot-dnsutils openssl                      # lab/unit: a real DNS server, kdig; the test CA
  python3 python3-scapy                           # wire tests
  iproute2 procps                                 # namespaces for wire tests and the demo
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
