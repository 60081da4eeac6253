"""The demo (README command 1, run by tools/demo.sh): the DS-Lite lab of
tests/lab/lab.py with pcpd programming the AFTR's nftables.

Two B4s whose hosts both use 192.168.1.2 each ask pcpd for TCP port 80
with pcp-client, one in plain IPv6 mode (THIRD_PARTY), one in
encapsulated mode; a small server behind each answers with its own name;
the Internet host connects to both external address:port pairs. pcpd's
DDNS hook publishes each B4's external address and port in a real DNS
server (knotd in the AFTR namespace, RFC 2136 UPDATE signed with TSIG):
the demo reads the A and SRV records back with kdig and connects to the
port the SRV record names. Then `pcpctl show mappings`, `pcpctl ddns
status`, and everything is torn down (also on failure or Ctrl-C)."""
import argparse
import os
import shlex
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lab as L                                                  # noqa: E402
import dnslab                                                    # noqa: E402

BOLD, DIM, OFF = ("\033[1m", "\033[2m", "\033[0m") if sys.stdout.isatty() else ("", "", "")


def say(text):
    print("\n%s== %s%s" % (BOLD, text, OFF), flush=True)


def show(prompt, out):
    print("%s$ %s%s" % (DIM, prompt, OFF))
    out = out.rstrip("\n")
    if out:
        print(out)
    sys.stdout.flush()


def dns_records(lab, knot, mappings):
    """The DDNS hook's work: A + SRV (+ TXT) per B4 in knotd, read back
    with kdig as any resolver would; then a connection to the port the SRV
    record names. True when both B4s' records match their mappings."""
    ok = True
    for b4, m in mappings.items():
        addr, port = m["external"].rsplit(":", 1)
        name = "%s.%s" % (b4, dnslab.ZONE)
        want_srv = "0 0 %s %s." % (port, name)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 10:
            if knot.query("_http._tcp." + name, "SRV") == [want_srv] and knot.query(name, "A") == [addr]:
                break
            time.sleep(0.05)
        for rtype, qname in (("A", name), ("SRV", "_http._tcp." + name), ("TXT", name)):
            r = lab.run("aftr", "kdig", "@127.0.0.1", "-p", str(dnslab.PORT), "+noall", "+answer",
                        qname, rtype, check=False)
            show("(aftr) kdig @127.0.0.1 -p %d %s %s +noall +answer" % (dnslab.PORT, qname, rtype),
                 r.stdout or r.stderr)
        srv = knot.query("_http._tcp." + name, "SRV") or []
        if srv != [want_srv]:
            print("  %s: SRV %s, expected %s" % (b4, srv, want_srv))
            ok = False
            continue
        sport = srv[0].split()[2]
        r = lab.run("inet", "nc", "-N", "-w", "3", addr, sport, check=False, input="")
        show("(internet) nc %s %s    # the address and port DNS gave for %s" % (addr, sport, name),
             r.stdout or r.stderr)
        ok &= r.stdout.startswith("hello from %s " % b4)
    return ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(L.TOP, "build"))
    args = ap.parse_args()
    os.environ["PCPD_BUILD"] = os.path.abspath(args.build)
    if os.geteuid() != 0:
        sys.exit("demo: run as root (network namespaces, nftables)")

    lab = L.Lab(server={"min-lifetime": 120, "log-level": "info"})
    ns = lab.ns
    lab.pcpd_on_enter = False            # started below, once its DNS server is up
    with lab:
        knot = dnslab.Knot(lab)
        knot.start()
        lab.ddns = {
            "provider": {"knot": knot.provider()},
            "binding": {"{name}.%s" % dnslab.ZONE: {
                "provider": "knot", "subscribers": "2001:db8:100::/48",
                "srv": ["_http._tcp=80"], "txt": "pcpd demo"}},
        }
        lab.start_pcpd()
        say("The DS-Lite lab (network namespaces %s*)" % ns["aftr"][:-4])
        print("  AFTR      %s, %s: pcpd (nftables backend, table ip %s), pool %s"
              % (L.AFTR_V4, L.AFTR_V6, lab.table, ", ".join(lab.aftr_opts["pool"])))
        print("  Internet  %s" % L.INET)
        for b in ("b4a", "b4b"):
            print("  B4 %s    %s on softwire %s, its host %s"
                  % (b, L.B4S[b]["v6"], L.B4S[b]["sw"], L.HOST_V4))
        print("  (both hosts use the same private address; a veth per B4 stands in for its\n"
              "   IPv4-in-IPv6 softwire, as this kernel has no ip6tnl)")
        print("  DNS       knotd on the AFTR's 127.0.0.1 port %d, zone %s, updated by pcpd's\n"
              "            DDNS hook (RFC 2136 + TSIG hmac-sha256): name {subscriber}.%s,\n"
              "            A = external address, SRV _http._tcp = external port of internal TCP 80"
              % (dnslab.PORT, dnslab.ZONE, dnslab.ZONE))

        say("A small web server behind each B4, both on %s:80" % L.HOST_V4)
        for b in ("b4a", "b4b"):
            lab.tcp_server(b, 80)
            print("  %s: answers \"hello from %s ...\"" % (b, b))

        say("b4a asks for TCP port 80 in plain IPv6 mode (PCP from its B4 address, "
            "THIRD_PARTY %s)" % L.HOST_V4)
        cmd = ["-s", L.AFTR_V6, "-t", L.HOST_V4, "-d", "b4a web", "map", "tcp", "80"]
        rc, a, out = lab.pcp_client("b4a", *cmd)
        show("(b4a) pcp-client " + shlex.join(cmd), out)
        say("b4b's host asks for TCP port 80 in encapsulated mode "
            "(PCP over IPv4 from %s to %s through its softwire)" % (L.HOST_V4, L.AFTR_V4))
        cmd = ["-s", L.AFTR_V4, "-d", "b4b web", "map", "tcp", "80"]
        rc2, b, out = lab.pcp_client("b4b", *cmd)
        show("(b4b) pcp-client " + shlex.join(cmd), out)
        if rc or rc2 or "external" not in a or "external" not in b:
            raise SystemExit("demo: a MAP request failed (pcpd log: %s)" % lab.log_path)

        say("The Internet host %s connects to each external address:port" % L.INET)
        answers = {}
        for name, m in (("b4a", a), ("b4b", b)):
            addr, port = m["external"].rsplit(":", 1)
            r = lab.run("inet", "nc", "-N", "-w", "3", addr, port, check=False, input="")
            answers[name] = r.stdout.strip()
            show("(internet) nc %s %s" % (addr, port), r.stdout or r.stderr)
        say("pcpd's DDNS hook published each B4's address and port in DNS")
        dns_ok = dns_records(lab, knot, {"b4a": a, "b4b": b})
        show("pcpctl ddns status", lab.pcpctl("ddns", "status", check=False))

        say("What pcpd holds: pcpctl show mappings")
        show("pcpctl -s %s show mappings" % lab.ctl_sock,
             lab.pcpctl("show", "mappings", check=False))
        say("What the kernel holds: the inbound DNAT map of pcpd's table")
        r = lab.nft("list", "map", "ip", lab.table, "pcp_dnat", check=False)
        show("(aftr) nft list map ip %s pcp_dnat" % lab.table, r.stdout or r.stderr)

        say("pcpd's log")
        show("(aftr) pcpd -c %s" % lab.conf_path,
             "\n".join(line for line in lab.log().splitlines() if not line.startswith("====")))

        ok = all(answers[n].startswith("hello from %s " % n) for n in answers) and dns_ok
        say("Tearing the lab down")
    print("done: %s" % ("each B4 answered through its own mapping, and at the port DNS names" if ok else
                        "an answer was missing or wrong (see above)"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
