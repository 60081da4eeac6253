"""The DS-Lite lab: network namespaces with real nftables, real conntrack
and real TCP/UDP traffic through pcpd's mappings.

                                   AFTR (pcpd, nft table "pcpd")
  b4a  2001:db8:100:a::1 ──veth── sw-a   192.0.0.1, 2001:db8:ffff::1 (lo)
       192.168.1.2                         │
  b4b  2001:db8:100:b::1 ──veth── sw-b     inet0 198.51.100.1/24 ──veth── inet  198.51.100.2/24
       192.168.1.2                                                              198.51.100.3/24
                                                                  (203.0.113.0/24 via 198.51.100.1)

Every B4 namespace holds the B4 and its host at once; all hosts use the
SAME private IPv4 address 192.168.1.2. This machine's kernel has no ip6tnl,
so a veth per B4 stands in for its IPv4-in-IPv6 softwire: the AFTR sees
the B4's IPv4 packets arrive on "its" interface (sw-a, sw-b) exactly as
they would arrive decapsulated from a per-B4 tunnel, and the B4's IPv6
address (plain-mode PCP) lives on the same link. Nothing in pcpd depends
on which kind of interface it is.

Return traffic finds its B4 by the packet mark pcpd's table puts on it
(subscriber index + 1, aftr/backend.h): one `ip rule fwmark M table T` per
B4 with `192.168.1.0/24 dev sw-X` in table T. The public pool
203.0.113.0/24 is unreachable on the AFTR except through pcpd's NAT, so a
packet that no mapping catches is answered with an ICMP error at once.

Namespaces carry a per-run tag (the creating process id) so labs never
collide; stop() removes everything, and is run on exceptions, at exit and
on SIGTERM/SIGHUP. Namespaces of a dead lab process are removed by the
next lab that starts. Only addresses inside these namespaces are ever
targets."""
import atexit
import ctypes
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.normpath(os.path.join(HERE, "../.."))
sys.path.insert(0, os.path.join(TOP, "tests/wire"))

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL("libc.so.6", use_errno=True)
_setns_lock = threading.Lock()

AFTR_V4 = "192.0.0.1"
AFTR_V6 = "2001:db8:ffff::1"
AFTR_INET = "198.51.100.1"
HOST_V4 = "192.168.1.2"
INET = "198.51.100.2"          # the Internet host
INET2 = "198.51.100.3"         # a second address on it (a peer FILTER does not name)
POOL_NET = "203.0.113.0/24"
PREFIX = "pcpl"                # namespace names: pcpl<pid>.<n>-<role>

# B4s: name -> its softwire on the AFTR, IPv6 address, subscriber index.
B4S = {
    "b4a": {"sw": "sw-a", "v6": "2001:db8:100:a::1", "gw6": "2001:db8:100:a::ffff", "index": 1},
    "b4b": {"sw": "sw-b", "v6": "2001:db8:100:b::1", "gw6": "2001:db8:100:b::ffff", "index": 2},
    "b4c": {"sw": "sw-c", "v6": "2001:db8:100:c::1", "gw6": "2001:db8:100:c::ffff", "index": 3},
}


def zone_of(index):
    """aftr/backend.h kzone_of()"""
    return index + 1


def mark_of(index):
    """aftr/backend.h kmark_of()"""
    return index + 1


def sh(*cmd, check=True, timeout=30, input=None):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input)
    if check and r.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(cmd), r.returncode,
                                                (r.stderr or r.stdout).strip()))
    return r


def build_dir():
    return os.environ.get("PCPD_BUILD", os.path.join(TOP, "build"))


# ---------------------------------------------------------------- cleanup
_live = []                      # labs not yet stopped


def _stop_all():
    for lab in list(_live):
        try:
            lab.stop()
        except Exception as e:   # keep going: remove the rest
            print("lab cleanup: %s" % e, file=sys.stderr)


def _on_signal(signum, frame):
    # turn the signal into an exception so `with` blocks and finally clauses
    # run; atexit catches whatever is left
    raise SystemExit(128 + signum)


_installed = False


def _install_handlers():
    global _installed
    if _installed:
        return
    _installed = True
    atexit.register(_stop_all)
    for s in (signal.SIGTERM, signal.SIGHUP):
        try:
            if signal.getsignal(s) in (signal.SIG_DFL, None):
                signal.signal(s, _on_signal)
        except ValueError:       # not the main thread
            pass


def remove_stale():
    """Removes namespaces left by lab processes that no longer exist."""
    r = sh("ip", "netns", "list", check=False)
    for line in r.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.match(r"^%s(\d+)\.\d+-" % PREFIX, name)
        if m and not os.path.exists("/proc/%s" % m.group(1)):
            sh("ip", "netns", "del", name, check=False)


# ---------------------------------------------------------------- config
def render(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "{" + ", ".join(render(v) for v in value) + "}"
    return '"%s"' % value


def render_section(name, opts, indent="  "):
    lines = ["%s {" % name]
    for k, v in opts.items():
        if isinstance(v, dict):
            for sub in render_section(k, v).splitlines():
                lines.append(indent + sub)
        else:
            lines.append("%s%s = %s" % (indent, k, render(v)))
    lines.append("}")
    return "\n".join(lines)


def render_ddns(d):
    """ddns { }: plain keys, then titled provider and binding sections."""
    lines = ["ddns {"]
    for k, v in d.items():
        if k in ("provider", "binding"):
            for title, opts in v.items():
                lines.append('  %s "%s" {' % (k, title))
                lines += ["    %s = %s" % (kk, render(vv)) for kk, vv in opts.items()]
                lines.append("  }")
        else:
            lines.append("  %s = %s" % (k, render(v)))
    lines.append("}")
    return "\n".join(lines)


# ---------------------------------------------------------------- the lab
class Lab:
    _count = 0

    def __init__(self, b4s=("b4a", "b4b"), server=None, aftr=None, tag=None,
                 pcpd=None, pcpctl=None, control=True, configured=None, ddns=None):
        """server/aftr: pcpd.conf keys overriding the lab's defaults
        (None as a value removes a key). configured: the B4s pcpd.conf
        names as subscribers (default: all of b4s). ddns: the ddns { }
        section as a dict; "provider" and "binding" map titles to dicts."""
        Lab._count += 1
        self.tag = tag or "%d.%d" % (os.getpid(), Lab._count)
        self.b4s = list(b4s)
        self.configured = list(b4s if configured is None else configured)
        bd = build_dir()
        self.pcpd_bin = pcpd or os.path.join(bd, "pcpd/pcpd")
        self.pcpctl_bin = pcpctl or os.path.join(bd, "pcpd/pcpctl")
        self.client_bin = os.path.join(bd, "pcpd/pcp-client")
        self.ns = {r: "%s%s-%s" % (PREFIX, self.tag, r) for r in ["aftr", "inet"] + self.b4s}
        self.dir = "/tmp/pcpd-lab-%s" % self.tag
        self.conf_path = os.path.join(self.dir, "pcpd.conf")
        self.log_path = os.path.join(self.dir, "pcpd.log")
        self.state_dir = os.path.join(self.dir, "state")
        self.ctl_sock = os.path.join(self.dir, "control.sock")
        self.mon_sock = os.path.join(self.dir, "monitor.sock")
        self.table = "pcpd"
        self.proc = None
        self.servers = []
        self.up = False
        self.keep_log = False
        self.server_opts = {
            "listen": [AFTR_V6, AFTR_V4],
            "workers": 2,
            "min-lifetime": 2,            # lets the expiry tests wait seconds, not minutes
            "max-lifetime": 86400,
            "max-filters": 4,
            "backend": "nftables",
            "nft-table": self.table,
            "keep-table": True,
            "state-dir": self.state_dir,
            "log": "stderr",
            "log-level": "info",
        }
        self.server_opts.update(server or {})
        self.aftr_opts = {
            # one public address: both B4s share it, their port blocks tell them apart
            "pool": ["203.0.113.10"],
            "port-min": 1024,
            "ports-per-subscriber": 2048,
            "pcp-ports": 512,
            "internal-prefixes": ["192.168.1.0/24"],
            "max-mappings": 64,
            "rate-limit": 0,
            "hold-down": 120,
        }
        self.aftr_opts.update(aftr or {})
        self.control = control
        self.ddns = ddns
        self.knots = []                  # DNS servers (dnslab.Knot) to stop with the lab
        self.pcpd_on_enter = True        # `with Lab()` starts pcpd too
        for d in (self.server_opts, self.aftr_opts):
            for k in [k for k, v in d.items() if v is None]:
                del d[k]

    # -- configuration ------------------------------------------------------
    def conf_text(self):
        aftr = dict(self.aftr_opts)
        text = [render_section("server", self.server_opts)]
        subs = []
        for b in self.configured:
            d = B4S[b]
            subs.append('  subscriber "%s" { b4 = "%s"  interface = "%s"  index = %d }'
                        % (b, d["v6"], d["sw"], d["index"]))
        a = render_section("aftr", aftr).splitlines()
        text.append("\n".join(a[:-1] + subs + a[-1:]))
        if self.control:
            text.append(render_section("control", {"socket": self.ctl_sock,
                                                   "monitor-socket": self.mon_sock}))
        if self.ddns:
            text.append(render_ddns(self.ddns))
        return "\n".join(text) + "\n"

    # -- deterministic allocation (RFC 7422, docs/config.md) ---------------
    def ext_addr(self, b4):
        """The public address of a B4's subscriber (first pool entry must
        be a single address or range; the lab uses single addresses)."""
        pool = self.pool_addrs()
        return str(pool[B4S[b4]["index"] % len(pool)])

    def block(self, b4):
        pool = self.pool_addrs()
        i = B4S[b4]["index"]
        lo = self.aftr_opts["port-min"] + (i // len(pool)) * self.aftr_opts["ports-per-subscriber"]
        return range(lo, lo + self.aftr_opts["ports-per-subscriber"])

    def pcp_range(self, b4):
        b = self.block(b4)
        return range(b.start, b.start + self.aftr_opts["pcp-ports"])

    def pool_addrs(self):
        out = []
        for p in self.aftr_opts["pool"]:
            if "-" in p:
                a, z = (ipaddress.ip_address(x) for x in p.split("-"))
                out += [ipaddress.ip_address(i) for i in range(int(a), int(z) + 1)]
            else:
                out += list(ipaddress.ip_network(p).hosts()) if "/" in p else \
                    [ipaddress.ip_address(p)]
        return out

    # -- namespaces ---------------------------------------------------------
    def ip(self, role, *args, check=True):
        return sh("ip", "-n", self.ns[role], *args, check=check)

    def run(self, role, *cmd, check=True, timeout=30, input=None):
        """A command inside a namespace."""
        return sh("ip", "netns", "exec", self.ns[role], *cmd, check=check, timeout=timeout,
                  input=input)

    def sysctl(self, role, key, value):
        self.run(role, "sysctl", "-q", "-w", "%s=%s" % (key, value))

    def start(self, pcpd=True):
        if os.geteuid() != 0:
            raise PermissionError("the lab needs root (network namespaces, nftables)")
        _install_handlers()
        remove_stale()
        _live.append(self)
        self.up = True
        os.makedirs(self.state_dir, exist_ok=True)
        for n in self.ns.values():
            sh("ip", "netns", "add", n)
        for role in self.ns:
            self.ip(role, "link", "set", "lo", "up")
            # no DAD: new addresses are usable at once, and so are the
            # link-local ones neighbour discovery needs
            self.sysctl(role, "net.ipv6.conf.all.accept_dad", 0)
            self.sysctl(role, "net.ipv6.conf.default.accept_dad", 0)
        for k in ("all", "default"):
            self.sysctl("aftr", "net.ipv4.conf.%s.rp_filter" % k, 0)
        self.sysctl("aftr", "net.ipv4.ip_forward", 1)
        self.ip("aftr", "addr", "add", AFTR_V6 + "/128", "dev", "lo")
        self.ip("aftr", "addr", "add", AFTR_V4 + "/32", "dev", "lo")

        # the Internet side
        sh("ip", "link", "add", "inet0", "netns", self.ns["aftr"], "type", "veth",
           "peer", "name", "eth0", "netns", self.ns["inet"])
        self.ip("aftr", "addr", "add", AFTR_INET + "/24", "dev", "inet0")
        self.ip("aftr", "link", "set", "inet0", "up")
        self.ip("inet", "addr", "add", INET + "/24", "dev", "eth0")
        self.ip("inet", "addr", "add", INET2 + "/24", "dev", "eth0")
        self.ip("inet", "link", "set", "eth0", "up")
        self.ip("inet", "route", "add", POOL_NET, "via", AFTR_INET)
        # the pool is reached only through pcpd's NAT: anything else gets
        # an ICMP error at once instead of looping
        self.ip("aftr", "route", "add", "unreachable", POOL_NET)

        # the B4s: one veth "softwire" each, all hosts 192.168.1.2
        for b in self.b4s:
            d = B4S[b]
            sw, idx = d["sw"], d["index"]
            sh("ip", "link", "add", sw, "netns", self.ns["aftr"], "type", "veth",
               "peer", "name", "eth0", "netns", self.ns[b])
            self.sysctl("aftr", "net.ipv4.conf.%s.rp_filter" % sw, 0)
            self.ip("aftr", "link", "set", sw, "up")
            self.ip(b, "link", "set", "eth0", "up")
            self.ip("aftr", "addr", "add", d["gw6"] + "/64", "dev", sw, "nodad")
            self.ip(b, "addr", "add", d["v6"] + "/64", "dev", "eth0", "nodad")
            self.ip(b, "-6", "route", "add", "default", "via", d["gw6"])
            self.ip(b, "addr", "add", HOST_V4 + "/24", "dev", "eth0")
            self.ip(b, "route", "add", "default", "via", AFTR_V4, "dev", "eth0", "onlink")
            # return traffic: packet mark (set by pcpd's table) -> this softwire
            table = str(100 + idx)
            self.ip("aftr", "rule", "add", "fwmark", str(mark_of(idx)), "table", table,
                    "pref", str(1000 + idx))
            self.ip("aftr", "route", "add", "192.168.1.0/24", "dev", sw, "table", table)
        if pcpd:
            self.start_pcpd()
        return self

    def __enter__(self):
        try:
            return self.start(pcpd=self.pcpd_on_enter)
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc):
        if exc[0] is not None:
            self.keep_log = True
        self.stop()
        return False

    def stop(self):
        """Removes everything this lab created. Returns pcpd's exit status
        (None if it was not running). The log is kept (and its path
        printed) when pcpd failed or a test asked for it."""
        rc = self.stop_pcpd()
        for k in self.knots:
            k.stop()
        self.knots = []
        for s in self.servers:
            s.close()
        self.servers = []
        for n in self.ns.values():
            if os.path.exists("/run/netns/" + n):
                sh("ip", "netns", "del", n, check=False)
        if self in _live:
            _live.remove(self)
        if self.up:
            self.up = False
            keep = None
            if (rc not in (0, None) or self.keep_log) and os.path.exists(self.log_path):
                keep = "/tmp/pcpd-lab-%s.log" % self.tag
                shutil.copy(self.log_path, keep)
            shutil.rmtree(self.dir, ignore_errors=True)
            if keep:
                try:
                    print("lab %s: pcpd log kept in %s" % (self.tag, keep), file=sys.stderr)
                except OSError:
                    pass
        return rc

    # -- pcpd ----------------------------------------------------------------
    def write_conf(self):
        os.makedirs(self.dir, exist_ok=True)
        with open(self.conf_path, "w") as f:
            f.write(self.conf_text())

    def start_pcpd(self, wait=True):
        if self.proc and self.proc.poll() is None:
            raise RuntimeError("pcpd is already running")
        self.write_conf()
        log = open(self.log_path, "a")
        log.write("==== pcpd start %s\n" % time.strftime("%H:%M:%S"))
        log.flush()
        # `ip netns exec` execs pcpd itself: proc.pid is pcpd's pid
        self.proc = subprocess.Popen(["ip", "netns", "exec", self.ns["aftr"], self.pcpd_bin,
                                      "-c", self.conf_path],
                                     stdout=log, stderr=subprocess.STDOUT)
        log.close()
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout=20):
        """Ready when it answers an ANNOUNCE and (with a control section)
        its control socket exists. The ANNOUNCE comes from the AFTR's own
        address, which is no subscriber's: pcpd answers it (NOT_AUTHORIZED)
        without counting it against a subscriber or noting a client."""
        import pcp_scapy as P
        deadline = time.time() + timeout
        s = self.udp_socket("aftr", 6, (AFTR_V6, 0))
        s.settimeout(0.2)
        req = bytes(P.PCPRequest(opcode=0, lifetime=0, client=AFTR_V6) / P.AnnounceData())
        try:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError("pcpd exited with %s; log:\n%s" %
                                       (self.proc.returncode, self.log()))
                if time.time() > deadline:
                    raise RuntimeError("pcpd did not answer within %d s; log:\n%s" %
                                       (timeout, self.log()))
                try:
                    s.sendto(req, (AFTR_V6, 5351))
                    s.recv(2000)
                    break
                except OSError:
                    time.sleep(0.05)
        finally:
            s.close()
        while self.control and not os.path.exists(self.ctl_sock):
            if time.time() > deadline:
                raise RuntimeError("no control socket %s within %d s" % (self.ctl_sock, timeout))
            time.sleep(0.05)

    def kill_pcpd(self, sig=signal.SIGKILL):
        """Sends sig (default SIGKILL) and waits for pcpd to exit; returns its status."""
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        rc = self.proc.wait(15)
        self.proc = None
        return rc

    def stop_pcpd(self):
        """SIGTERM, as a service manager would; the exit status."""
        if not self.proc:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode
        self.proc = None
        return rc

    def restart_pcpd(self, kill=True):
        if kill:
            self.kill_pcpd()
        else:
            self.stop_pcpd()
        self.start_pcpd()

    def pcpd_alive(self):
        return bool(self.proc) and self.proc.poll() is None

    def log(self):
        try:
            with open(self.log_path) as f:
                return f.read()
        except OSError:
            return ""

    def pcpctl(self, *args, json_out=False, monitor=False, check=True):
        """Runs pcpctl against this lab's pcpd (it talks to a UNIX socket,
        so it runs outside the namespaces). With json_out, the list of
        JSON objects printed (the end marker included)."""
        sock = self.mon_sock if monitor else self.ctl_sock
        cmd = [self.pcpctl_bin, "-s", sock] + (["-j"] if json_out else []) + list(args)
        r = sh(*cmd, check=check)
        if not json_out:
            return r.stdout
        return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]

    def ctl_request(self, cmd, args=None, monitor=False, timeout=10):
        """One request on the control socket, spoken directly
        (docs/control-protocol.md): returns (result objects, end marker)."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect(self.mon_sock if monitor else self.ctl_sock)
            req = {"v": 1, "cmd": cmd}
            if args is not None:
                req["args"] = args
            s.sendall(json.dumps(req).encode() + b"\n")
            buf, results = b"", []
            while True:
                while b"\n" not in buf:
                    d = s.recv(65536)
                    if not d:
                        raise RuntimeError("control socket closed before the end marker")
                    buf += d
                line, buf = buf.split(b"\n", 1)
                o = json.loads(line)
                if o.get("end") is True:
                    return results, o
                results.append(o)
        finally:
            s.close()

    def pcp_client(self, b4, *args, check=False):
        """Runs pcp-client inside a B4 namespace; returns (exit, parsed key=value dict, output)."""
        r = self.run(b4, self.client_bin, *args, check=check)
        return r.returncode, parse_kv(r.stdout), r.stdout + r.stderr

    # -- kernel state --------------------------------------------------------
    def nft(self, *args, check=True):
        return self.run("aftr", "nft", *args, check=check)

    def nft_json(self, *what):
        r = self.run("aftr", "nft", "-j", "list", *what)
        return json.loads(r.stdout)["nftables"]

    def table_exists(self):
        r = self.run("aftr", "nft", "list", "table", "ip", self.table, check=False)
        return r.returncode == 0

    def delete_table(self):
        self.nft("delete", "table", "ip", self.table)

    def elements(self, kind, name):
        """Elements of a set or map of pcpd's table: a list of dicts with
        key (tuple), value (tuple or None), timeout, expires (seconds)."""
        objs = self.nft_json(kind, "ip", self.table, name)
        out = []
        for o in objs:
            body = o.get(kind)
            if not body:
                continue
            for e in body.get("elem", []):
                if kind == "map":
                    k, v = e
                else:
                    k, v = e, None
                meta = {}
                if isinstance(k, dict) and "elem" in k:
                    meta = k["elem"]
                    k = meta["val"]
                out.append({"key": _flat(k), "value": None if v is None else _flat(v),
                            "timeout": meta.get("timeout"), "expires": meta.get("expires")})
        return out

    def dnat(self):
        """pcp_dnat: {(proto, ext addr, ext port): {"int": (addr, port), "expires", "timeout"}}"""
        out = {}
        for e in self.elements("map", "pcp_dnat"):
            addr, proto, port = e["key"]
            out[(_proto(proto), addr, int(port))] = {
                "int": (e["value"][0], int(e["value"][1])),
                "expires": e["expires"], "timeout": e["timeout"]}
        return out

    def snat(self):
        """pcp_snat: {(zone, int addr, proto, int port): (ext addr, ext port)}"""
        out = {}
        for e in self.elements("map", "pcp_snat"):
            zone, addr, proto, port = e["key"]
            out[(int(zone), addr, _proto(proto), int(port))] = (e["value"][0], int(e["value"][1]))
        return out

    def conntrack(self, zone=None, proto=None):
        """conntrack entries (optionally of one zone): dicts with proto,
        orig (src, dst, sport, dport), reply (...), mark, zone, state."""
        cmd = ["conntrack", "-L"]
        if zone is not None:
            cmd += ["-w", str(zone)]
        if proto:
            cmd += ["-p", proto]
        r = self.run("aftr", *cmd, check=False)
        if r.returncode != 0 and "0 flow entries" not in r.stderr:
            raise RuntimeError("conntrack: %s" % r.stderr.strip())
        return [parse_conntrack(line) for line in r.stdout.splitlines() if line.strip()]

    # -- sockets inside a namespace -----------------------------------------
    def socket(self, role, family, type_):
        """A socket created inside a namespace (sockets keep their netns)."""
        with _setns_lock:
            own = os.open("/proc/self/ns/net", os.O_RDONLY)
            target = os.open("/run/netns/" + self.ns[role], os.O_RDONLY)
            try:
                if _libc.setns(target, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns")
                af = socket.AF_INET6 if family == 6 else socket.AF_INET
                return socket.socket(af, type_)
            finally:
                if _libc.setns(own, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns back")
                os.close(own)
                os.close(target)

    def udp_socket(self, role, family=4, bind=None):
        s = self.socket(role, family, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if bind:
            s.bind(bind)
        return s

    def tcp_connect(self, role, dst, timeout=2.0, src=None):
        """A connected TCP socket from a namespace; src = (addr, port) to bind.
        Raises OSError (timeout, refused, unreachable) when it cannot connect."""
        s = self.socket(role, 4, socket.SOCK_STREAM)
        try:
            if src:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                s.bind(src)
            s.settimeout(timeout)
            s.connect(dst)
            return s
        except BaseException:
            s.close()
            raise

    def tcp_server(self, role, port, name=None, addr="0.0.0.0"):
        srv = TCPServer(self.socket(role, 4, socket.SOCK_STREAM), (addr, port), name or role)
        self.servers.append(srv)
        return srv

    def udp_server(self, role, port, name=None, addr="0.0.0.0"):
        srv = UDPServer(self.udp_socket(role, 4), (addr, port), name or role)
        self.servers.append(srv)
        return srv


def _flat(x):
    if isinstance(x, dict):
        if "concat" in x:
            return tuple(_flat(i) for i in x["concat"])
        if "range" in x:
            return tuple(x["range"])
        if "prefix" in x:
            return "%s/%s" % (x["prefix"]["addr"], x["prefix"]["len"])
    return x


def _proto(p):
    return {6: "tcp", 17: "udp", "6": "tcp", "17": "udp"}.get(p, p)


def parse_kv(text):
    """pcp-client's key=value line."""
    out = {}
    for m in re.finditer(r'(\w+)=("[^"]*"|\S+)', text):
        out[m.group(1)] = m.group(2).strip('"')
    return out


def parse_conntrack(line):
    toks = line.split()
    e = {"proto": toks[0], "orig": {}, "reply": {}, "flags": [], "line": line}
    side = "orig"
    for t in toks[1:]:
        if t.startswith("[") and t.endswith("]"):
            e["flags"].append(t.strip("[]"))
            continue
        if "=" not in t:
            if t.isupper():
                e["state"] = t
            continue
        k, v = t.split("=", 1)
        if k in ("src", "dst", "sport", "dport"):
            if k in e[side]:
                side = "reply"
            e[side][k] = int(v) if k.endswith("port") else v
        elif k in ("mark", "zone", "use"):
            e[k] = int(v)
        else:
            e[k] = v
    return e


# ---------------------------------------------------------------- servers
class TCPServer:
    """Answers every connection with
    "hello from <name> (<addr>:<port>), you are <peer>:<port>\\n", then
    echoes each chunk it receives as "<name>: <chunk>". Remembers what it
    received (self.received) and who connected (self.peers)."""

    def __init__(self, sock, addr, name):
        self.name = name
        self.sock = sock
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        self.sock.bind(addr)
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.received = []
        self.peers = []
        self.conns = []
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                c, peer = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.peers.append(peer)
                self.conns.append(c)
            threading.Thread(target=self._serve, args=(c, peer), daemon=True).start()

    def _serve(self, c, peer):
        try:
            me = c.getsockname()
            c.sendall(("hello from %s (%s:%d), you are %s:%d\n" %
                       (self.name, me[0], me[1], peer[0], peer[1])).encode())
            while True:
                data = c.recv(4096)
                if not data:
                    break
                with self.lock:
                    self.received.append(data)
                c.sendall(self.name.encode() + b": " + data)
        except OSError:
            pass
        finally:
            c.close()

    def got(self, data):
        with self.lock:
            return any(data in r for r in self.received)

    def close(self):
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        with self.lock:
            for c in self.conns:
                try:
                    c.close()
                except OSError:
                    pass


class UDPServer:
    """Answers each datagram with "<name>: <data> from <addr>:<port>"."""

    def __init__(self, sock, addr, name):
        self.name = name
        self.sock = sock
        self.sock.bind(addr)
        self.port = self.sock.getsockname()[1]
        self.received = []            # (data, peer)
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while not self.closed:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            if self.closed or peer is None:
                return
            with self.lock:
                self.received.append((data, peer))
            try:
                self.sock.sendto(self.name.encode() + b": " + data +
                                 (" from %s:%d" % peer[:2]).encode(), peer)
            except OSError:
                pass

    def got(self, data):
        with self.lock:
            return any(data in d for d, _ in self.received)

    def peers_of(self, data):
        with self.lock:
            return [p for d, p in self.received if data in d]

    def close(self):
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


# ---------------------------------------------------------------- traffic
def recv_line(sock, timeout=2.0):
    """Reads up to a newline (or what comes before the timeout / EOF)."""
    sock.settimeout(timeout)
    buf = b""
    deadline = time.time() + timeout
    while b"\n" not in buf and time.time() < deadline:
        try:
            d = sock.recv(4096)
        except socket.timeout:
            break
        if not d:
            break
        buf += d
    return buf.decode(errors="replace")


def udp_ask(lab, role, dst, data, src=None, timeout=1.0, tries=2):
    """Sends a datagram from a namespace and returns the answer text (None if none)."""
    s = lab.udp_socket(role, 4, src)
    try:
        s.settimeout(timeout)
        for _ in range(tries):
            s.sendto(data, dst)
            try:
                return s.recv(4096).decode(errors="replace")
            except (socket.timeout, ConnectionRefusedError, OSError):
                continue
        return None
    finally:
        s.close()


def tcp_ask(lab, role, dst, data=None, timeout=2.0, src=None):
    """Connects, reads the greeting, optionally sends data and reads the
    echo. Returns the text received; raises OSError if it cannot connect."""
    s = lab.tcp_connect(role, dst, timeout, src)
    try:
        out = recv_line(s, timeout)
        if data:
            s.sendall(data)
            out += recv_line(s, timeout)
        return out
    finally:
        s.close()


def wait_for(pred, timeout=5.0, interval=0.05):
    """Polls pred() until it is truthy or the deadline passes; its last value."""
    deadline = time.time() + timeout
    while True:
        v = pred()
        if v or time.time() > deadline:
            return v
        time.sleep(interval)
