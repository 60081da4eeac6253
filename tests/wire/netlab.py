"""A small DS-Lite lab in network namespaces for the wire tests.

  b4a (2001:db8:100:a::1, 192.168.1.2) --veth sw-a--\
                                                     aftr: pcpd on 2001:db8:ffff::1 and 192.0.0.1
  b4b (2001:db8:100:b::1, 192.168.1.2) --veth sw-b--/

Both B4s use the SAME private IPv4 address. The veths stand in for the
softwires (this kernel has no ip6tnl). Everything is created here and
removed in stop(), also after a failure."""
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import time

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL("libc.so.6", use_errno=True)

AFTR_V6 = "2001:db8:ffff::1"
AFTR_V4 = "192.0.0.1"
HOST_V4 = "192.168.1.2"


def sh(*cmd, check=True):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(cmd), r.stderr.strip()))
    return r


class Lab:
    def __init__(self, pcpd, conf_text, tag=None):
        self.tag = tag or ("w%d" % os.getpid())
        self.pcpd = pcpd
        self.conf_text = conf_text
        self.ns = {n: "pcp%s-%s" % (self.tag, n) for n in ("aftr", "b4a", "b4b")}
        self.proc = None
        self.conf_path = "/tmp/pcpd-%s.conf" % self.tag
        self.log_path = "/tmp/pcpd-%s.log" % self.tag
        self.state_dir = "/tmp/pcpd-%s.state" % self.tag

    # -- namespaces ------------------------------------------------------
    def ip(self, ns, *args):
        return sh("ip", "-n", self.ns[ns], *args)

    def start(self):
        self.stop()
        for n in self.ns.values():
            sh("ip", "netns", "add", n)
        for n in self.ns:
            self.ip(n, "link", "set", "lo", "up")
        self.ip("aftr", "addr", "add", AFTR_V6 + "/128", "dev", "lo")
        self.ip("aftr", "addr", "add", AFTR_V4 + "/32", "dev", "lo")
        for i, b in enumerate(("b4a", "b4b")):
            sw, x = "sw-" + b[-1], b[-1]
            sh("ip", "link", "add", sw, "netns", self.ns["aftr"], "type", "veth",
               "peer", "name", "eth0", "netns", self.ns[b])
            self.ip("aftr", "link", "set", sw, "up")
            self.ip(b, "link", "set", "eth0", "up")
            self.ip("aftr", "addr", "add", "2001:db8:100:%s::ffff/64" % x, "dev", sw, "nodad")
            self.ip(b, "addr", "add", "2001:db8:100:%s::1/64" % x, "dev", "eth0", "nodad")
            self.ip(b, "-6", "route", "add", "default", "via", "2001:db8:100:%s::ffff" % x)
            self.ip(b, "addr", "add", HOST_V4 + "/24", "dev", "eth0")
            self.ip(b, "route", "add", AFTR_V4 + "/32", "dev", "eth0")
            # one route per softwire for the shared private prefix; replies are
            # pinned to the ingress softwire by pcpd (IP_PKTINFO ifindex)
            self.ip("aftr", "route", "add", "192.168.1.0/24", "dev", sw, "metric", str(10 + i))
        # a B4 address outside every configured B4 prefix
        self.ip("b4a", "addr", "add", "2001:db8:200::1/64", "dev", "eth0", "nodad")
        self.ip("aftr", "-6", "route", "add", "2001:db8:200::/64", "dev", "sw-a")
        with open(self.conf_path, "w") as f:
            # every lab its own state directory: pcpd locks it
            text = self.conf_text.replace('state-dir = "/tmp"',
                                          'state-dir = "%s"' % self.state_dir)
            if "control {" not in text:
                # several labs run at once: each its own control sockets
                text += ('control {\n  socket = "%s/ctl.sock"\n'
                         '  monitor-socket = "%s/mon.sock"\n}\n'
                         % (self.state_dir, self.state_dir))
            f.write(text)
        self.start_pcpd()

    def start_pcpd(self):
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen(["ip", "netns", "exec", self.ns["aftr"], self.pcpd,
                                      "-c", self.conf_path, "-d"],
                                     stdout=log, stderr=subprocess.STDOUT)
        # ready when it answers an ANNOUNCE
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("pcpd exited with %s; log:\n%s" %
                                   (self.proc.returncode, open(self.log_path).read()))
            try:
                s = self.socket("b4a", 6)
                s.settimeout(0.2)
                s.sendto(announce_bytes(s), (AFTR_V6, 5351))
                s.recv(2000)
                s.close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("pcpd did not answer within 20 s")

    def stop_pcpd(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode if self.proc else 0
        self.proc = None
        return rc

    def stop(self):
        rc = self.stop_pcpd()
        for n in self.ns.values():
            sh("ip", "netns", "del", n, check=False)
        if os.path.exists(self.conf_path):
            os.unlink(self.conf_path)
        shutil.rmtree(self.state_dir, ignore_errors=True)
        if rc == 0 and os.path.exists(self.log_path):
            os.unlink(self.log_path)   # kept only when something went wrong
        return rc

    # -- sockets inside a namespace -------------------------------------
    def socket(self, ns, family, src=None, port=0):
        """A UDP socket created inside namespace ns (sockets keep their netns)."""
        own = os.open("/proc/self/ns/net", os.O_RDONLY)
        target = os.open("/run/netns/" + self.ns[ns], os.O_RDONLY)
        try:
            if _libc.setns(target, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns")
            af = socket.AF_INET6 if family == 6 else socket.AF_INET
            s = socket.socket(af, socket.SOCK_DGRAM)
            if src or port:
                s.bind((src or ("::" if family == 6 else "0.0.0.0"), port))
        finally:
            _libc.setns(own, CLONE_NEWNET)
            os.close(own)
            os.close(target)
        return s


def announce_bytes(sock):
    from pcp_scapy import PCPRequest, AnnounceData, v6
    return bytes(PCPRequest(opcode=0, lifetime=0, client=v6(local_addr(sock))) / AnnounceData())


def local_addr(sock):
    """The source address the server will see (connect to learn it)."""
    return sock.getsockname()[0]
