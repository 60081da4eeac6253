"""The demo (README command 1, run by tools/demo.sh): the DS-Lite lab of
tests/lab/lab.py with pcpd programming the AFTR's nftables.

Two B4s whose hosts both use 192.168.1.2 each ask pcpd for TCP port 80
with pcp-client, one in plain IPv6 mode (THIRD_PARTY), one in
encapsulated mode; a small server behind each answers with its own name;
the Internet host connects to both external address:port pairs. Then
`pcpctl show mappings`, and everything is torn down (also on failure or
Ctrl-C)."""
import argparse
import os
import shlex
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lab as L                                                  # noqa: E402

BOLD, DIM, OFF = ("\033[1m", "\033[2m", "\033[0m") if sys.stdout.isatty() else ("", "", "")


def say(text):
    print("\n%s== %s%s" % (BOLD, text, OFF), flush=True)


def show(prompt, out):
    print("%s$ %s%s" % (DIM, prompt, OFF))
    out = out.rstrip("\n")
    if out:
        print(out)
    sys.stdout.flush()


def dns_records(lab, mappings):
    """Place for the DDNS hook (issue 4): once pcpd publishes A + SRV
    records for the mappings, query the lab's DNS server here and print
    them next to the answers above."""
    return


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(L.TOP, "build"))
    args = ap.parse_args()
    os.environ["PCPD_BUILD"] = os.path.abspath(args.build)
    if os.geteuid() != 0:
        sys.exit("demo: run as root (network namespaces, nftables)")

    lab = L.Lab(server={"min-lifetime": 120, "log-level": "info"})
    ns = lab.ns
    with lab:
        say("The DS-Lite lab (network namespaces %s*)" % ns["aftr"][:-4])
        print("  AFTR      %s, %s: pcpd (nftables backend, table ip %s), pool %s"
              % (L.AFTR_V4, L.AFTR_V6, lab.table, ", ".join(lab.aftr_opts["pool"])))
        print("  Internet  %s" % L.INET)
        for b in ("b4a", "b4b"):
            print("  B4 %s    %s on softwire %s, its host %s"
                  % (b, L.B4S[b]["v6"], L.B4S[b]["sw"], L.HOST_V4))
        print("  (both hosts use the same private address; a veth per B4 stands in for its\n"
              "   IPv4-in-IPv6 softwire, as this kernel has no ip6tnl)")

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
        dns_records(lab, {"b4a": a, "b4b": b})

        say("What pcpd holds: pcpctl show mappings")
        show("pcpctl -s %s show mappings" % lab.ctl_sock,
             lab.pcpctl("show", "mappings", check=False))
        say("What the kernel holds: the inbound DNAT map of pcpd's table")
        r = lab.nft("list", "map", "ip", lab.table, "pcp_dnat", check=False)
        show("(aftr) nft list map ip %s pcp_dnat" % lab.table, r.stdout or r.stderr)

        say("pcpd's log")
        show("(aftr) pcpd -c %s" % lab.conf_path,
             "\n".join(line for line in lab.log().splitlines() if not line.startswith("====")))

        ok = all(answers[n].startswith("hello from %s " % n) for n in answers)
        say("Tearing the lab down")
    print("done: %s" % ("each B4 answered through its own mapping" if ok else
                        "an answer was missing or wrong (see above)"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
