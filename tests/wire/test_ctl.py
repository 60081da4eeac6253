"""The control socket of a running pcpd, through pcpctl: socket modes, the
read-only monitor socket, exit codes, and static mappings and listings
seen from both sides (pcpctl and PCP clients). Protocol details are
tested in tests/unit/test_ctl.c; this checks the daemon wiring."""
import json
import os
import stat
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pcp_scapy import PCPRequest, MAPData, parse_response, opt_third_party, R, TCP, v6
import netlab

BUILD = os.environ.get("PCPD_BUILD", os.path.join(os.path.dirname(__file__), "../../build"))
PCPD = os.path.join(BUILD, "pcpd/pcpd")
PCPCTL = os.path.join(BUILD, "pcpd/pcpctl")
CTL_DIR = "/tmp/pcpd-c%d.ctl" % os.getpid()
ADMIN = CTL_DIR + "/pcpd.sock"
MONITOR = CTL_DIR + "/pcpd-monitor.sock"

CONF = """
server {
  listen = {"2001:db8:ffff::1", "192.0.0.1"}
  workers = 1
  state-dir = "/tmp"
}
control {
  socket = "%s"
  monitor-socket = "%s"
}
aftr {
  pool = {"203.0.113.0/28"}
  ports-per-subscriber = 2048
  pcp-ports = 512
  subscriber-prefix-length = 64
  b4-prefixes = {"2001:db8:100::/56"}
  rate-limit = 0
  subscriber "b4a" { b4 = "2001:db8:100:a::/64"  interface = "sw-a"  index = 300 }
  subscriber "b4b" { b4 = "2001:db8:100:b::/64"  interface = "sw-b"  index = 301 }
}
""" % (ADMIN, MONITOR)

LAB = None


def setUpModule():
    global LAB
    if os.geteuid() != 0:
        raise unittest.SkipTest("wire tests need root for network namespaces")
    LAB = netlab.Lab(PCPD, CONF, tag="c%d" % os.getpid())
    try:
        LAB.start()
    except BaseException:
        LAB.stop()
        raise
    deadline = time.time() + 5
    while not os.path.exists(MONITOR) and time.time() < deadline:
        time.sleep(0.05)
    # until the softwires' link-local addresses pass DAD, the AFTR's first
    # reply to a B4 waits for a neighbour solicitation retransmission
    for ns, dev in (("aftr", "sw-a"), ("aftr", "sw-b"), ("b4a", "eth0"), ("b4b", "eth0")):
        while (LAB.ip(ns, "-6", "addr", "show", "dev", dev, "tentative").stdout.strip()
               and time.time() < deadline + 5):
            time.sleep(0.05)
    if not os.path.exists(MONITOR):
        LAB.stop()
        raise unittest.SkipTest("this pcpd serves no control socket")


def tearDownModule():
    if LAB:
        rc = LAB.stop()
        if rc not in (0, None):
            raise AssertionError("pcpd exited with %d; log %s" % (rc, LAB.log_path))
        # pcpd removes its sockets on exit
        assert not os.path.exists(ADMIN) and not os.path.exists(MONITOR)
        try:
            os.rmdir(CTL_DIR)
        except OSError:
            pass


def pcpctl(*args, sock=ADMIN):
    r = subprocess.run([PCPCTL, "-s", sock, "-t", "10"] + list(args),
                       capture_output=True, text=True)
    return r.returncode, r.stdout, r.stderr


def pcpctl_json(*args, sock=ADMIN):
    rc, out, err = pcpctl("-j", *args, sock=sock)
    if rc != 0:
        raise AssertionError("pcpctl %s: rc %d: %s" % (" ".join(args), rc, err))
    return [json.loads(line) for line in out.splitlines()]


def pcp_map(ns, b4, port, lifetime=3600, nonce=b"\x07" * 12):
    """One MAP for HOST:port through THIRD_PARTY from a B4."""
    s = LAB.socket(ns, 6, b4)
    s.settimeout(3)
    try:
        body = MAPData(nonce=nonce, proto=TCP, int_port=port, ext_port=0,
                       ext_addr=v6("0.0.0.0"), options=[opt_third_party(netlab.HOST_V4)])
        s.sendto(bytes(PCPRequest(opcode=1, lifetime=lifetime, client=v6(b4)) / body),
                 (netlab.AFTR_V6, 5351))
        return parse_response(s.recv(2000))
    finally:
        s.close()


class TestControl(unittest.TestCase):
    def test_socket_modes(self):
        self.assertEqual(stat.S_IMODE(os.stat(ADMIN).st_mode), 0o660)
        self.assertEqual(stat.S_IMODE(os.stat(MONITOR).st_mode), 0o666)

    def test_status(self):
        (st,) = pcpctl_json("status", sock=MONITOR)
        self.assertEqual(st["protocol"], 1)
        self.assertEqual(st["workers"], 1)
        self.assertGreaterEqual(st["subscribers"], 2)
        rc, out, _ = pcpctl("status")
        self.assertEqual(rc, 0)
        self.assertIn("backend", out)

    def test_exit_codes(self):
        rc, _, err = pcpctl("subscriber", "flush", "b4a", sock=MONITOR)
        self.assertEqual(rc, 1)
        self.assertIn("read-only socket", err)
        self.assertEqual(pcpctl("show", "mappings", "subscriber", "nobody")[0], 1)
        self.assertEqual(pcpctl("show", "mappings", "port", "x")[0], 2)
        self.assertEqual(pcpctl("frobnicate")[0], 2)
        self.assertEqual(pcpctl("status", sock=CTL_DIR + "/none.sock")[0], 3)

    def test_static_mapping_seen_by_pcp(self):
        """RFC 6887 §11.3 item 2: a MAP for a static mapping's internal
        endpoint gets the static mapping; §15.1: MAP cannot delete it."""
        (m,) = pcpctl_json("static", "add", "b4a", "tcp", netlab.HOST_V4, "2222")
        self.assertEqual(m["type"], "static")
        hdr, body = pcp_map("b4a", "2001:db8:100:a::1", 2222)
        self.assertEqual(hdr.result, R["SUCCESS"])
        self.assertEqual(body.ext_port, m["external_port"])
        hdr, _ = pcp_map("b4a", "2001:db8:100:a::1", 2222, lifetime=0)
        self.assertEqual(hdr.result, R["NOT_AUTHORIZED"])
        pcpctl_json("static", "del", "b4a", "tcp", netlab.HOST_V4, "2222")
        self.assertEqual(pcpctl_json("show", "mappings", "subscriber", "b4a", "port", "2222"),
                         [])

    def test_pcp_mapping_listed_and_flushed(self):
        hdr, body = pcp_map("b4b", "2001:db8:100:b::1", 8080, lifetime=600)
        self.assertEqual(hdr.result, R["SUCCESS"])
        rows = pcpctl_json("show", "mappings", "subscriber", "301", "port", "8080",
                           sock=MONITOR)
        self.assertEqual(len(rows), 1)
        self.assertEqual(rows[0]["type"], "map")
        self.assertEqual(rows[0]["external_port"], body.ext_port)
        self.assertLessEqual(rows[0]["lifetime"], 600)
        self.assertTrue(rows[0]["third_party"])
        (f,) = pcpctl_json("subscriber", "flush", "b4b")
        self.assertGreaterEqual(f["deleted"], 1)
        self.assertEqual(pcpctl_json("show", "mappings", "subscriber", "b4b"), [])


if __name__ == "__main__":
    unittest.main()
