"""Lab tests: pcpd with its nftables backend programs a real AFTR in
network namespaces (tests/lab/lab.py), and real TCP and UDP traffic from
an Internet host goes through its mappings to B4s whose hosts all use
192.168.1.2. b4a speaks PCP in plain IPv6 mode with THIRD_PARTY (from its
B4 address), b4b in encapsulated mode (IPv4 from 192.168.1.2 to 192.0.0.1
through its softwire).

Every check is on what really happens: which host a packet reaches, what
source address:port the Internet host sees, what the kernel holds
(nft -j list map/set, conntrack -L). Waits have deadlines; assertions have
no timing thresholds other than "did not arrive while we waited".

  TestDataPlane       one lab: MAP TCP/UDP for two B4s, endpoint-independent
                      outbound, delete and expiry on established flows,
                      refresh, PEER (existing flow, new flow), FILTER,
                      pcpctl mappings/subscribers vs the kernel
  TestControlAdmin    pcpctl subscriber add / static add / flush / remove
  TestQuotaHoldDown   max-mappings 3, hold-down: in the kernel too
  TestRateLimit       rate-limit 1/s burst 3: in the kernel too
  TestRestart         a lab per test: kill -9 under load, expiry while down,
                      clean restart (keep-table true/false), clients known
                      across restarts, table deleted while down (ANNOUNCE)

Run: sudo PCPD_BUILD=build /usr/bin/python3 tests/lab/run.py [-k NAME]"""
import os
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lab as L                                                        # noqa: E402
from pcp_scapy import (PCPRequest, MAPData, PEERData, AnnounceData,    # noqa: E402
                       parse_response, opt_third_party, opt_filter, RESULTS, TCP, UDP, v6)

HOST = L.HOST_V4
PROTO = {TCP: "tcp", UDP: "udp"}


def setUpModule():
    if os.geteuid() != 0:
        raise unittest.SkipTest("lab tests need root (network namespaces, nftables, conntrack)")
    for b in ("pcpd/pcpd", "pcpd/pcpctl"):
        p = os.path.join(L.build_dir(), b)
        if not os.access(p, os.X_OK):
            raise AssertionError("%s is not built (PCPD_BUILD=%s)" % (p, L.build_dir()))


# ------------------------------------------------------------------ PCP client
class Resp:
    def __init__(self, raw, t):
        hdr, body = parse_response(raw)
        self.raw, self.t = raw, t
        self.opcode, self.r = hdr.opcode, hdr.r
        self.result, self.lifetime, self.epoch = hdr.result, hdr.lifetime, hdr.epoch
        self.body = body
        self.ext_addr = self.ext_port = None
        if hdr.opcode in (1, 2) and body is not None:
            a = body.ext_addr
            self.ext_addr = a[7:] if a.startswith("::ffff:") else a
            self.ext_port = body.ext_port

    @property
    def name(self):
        return RESULTS.get(self.result, str(self.result))

    def __repr__(self):
        return "<%s op=%d lifetime=%d epoch=%d ext=%s:%s>" % (
            self.name, self.opcode, self.lifetime, self.epoch, self.ext_addr, self.ext_port)


class Client:
    """A PCP client of one B4 on a fixed UDP port: plain IPv6 mode with
    THIRD_PARTY 192.168.1.2 from the B4 address, or encapsulated mode
    (IPv4 from 192.168.1.2 through the softwire). Remembers every response
    (for the epoch rules) and every unsolicited ANNOUNCE."""

    def __init__(self, lab, b4, mode, port=0):
        self.lab, self.b4, self.mode = lab, b4, mode
        if mode == "plain":
            self.src = L.B4S[b4]["v6"]
            self.sock = lab.udp_socket(b4, 6, (self.src, port))
            self.server = (L.AFTR_V6, 5351)
            self.tp = HOST
        else:
            self.src = HOST
            self.sock = lab.udp_socket(b4, 4, (self.src, port))
            self.server = (L.AFTR_V4, 5351)
            self.tp = None
        self.port = self.sock.getsockname()[1]
        self.unsolicited = []
        self.responses = []
        self.lock = threading.Lock()

    def close(self):
        self.sock.close()

    def _note(self, r):
        with self.lock:
            if r.opcode == 0 and r.r:
                self.unsolicited.append(r)
            self.responses.append(r)

    def drain(self):
        """Takes in whatever arrived unasked (ANNOUNCEs, late duplicates)."""
        self.sock.setblocking(False)
        try:
            while True:
                try:
                    raw = self.sock.recv(2000)
                except (BlockingIOError, OSError):
                    return
                if len(raw) >= 24:
                    r = Resp(raw, time.monotonic())
                    if r.opcode == 0:
                        self._note(r)
        finally:
            self.sock.setblocking(True)

    def request(self, opcode, body, lifetime, tries=3, wait=1.0, match=None):
        req = bytes(PCPRequest(opcode=opcode, lifetime=lifetime, client=v6(self.src)) / body)
        self.drain()
        for _ in range(tries):
            self.sock.sendto(req, self.server)
            deadline = time.time() + wait
            while time.time() < deadline:
                self.sock.settimeout(max(0.01, deadline - time.time()))
                try:
                    raw = self.sock.recv(2000)
                except socket.timeout:
                    break
                except OSError:       # ICMP error while pcpd is down
                    time.sleep(0.05)
                    continue
                if len(raw) < 24:
                    continue
                r = Resp(raw, time.monotonic())
                if r.opcode == 0 and opcode != 0:
                    self._note(r)      # unsolicited ANNOUNCE
                    continue
                if r.opcode != opcode or (match and not match(r)):
                    continue
                with self.lock:
                    self.responses.append(r)
                return r
        raise TimeoutError("%s: no PCP response from %s" % (self.b4, self.server[0]))

    def map(self, proto, int_port, lifetime=3600, nonce=None, sugg_port=0, filters=(),
            **kw):
        nonce = nonce or b"\x11" * 12
        opts = ([opt_third_party(self.tp)] if self.tp else []) + \
            [opt_filter(a, plen, p) for a, plen, p in filters]
        body = MAPData(nonce=nonce, proto=proto, int_port=int_port, ext_port=sugg_port,
                       ext_addr=v6("0.0.0.0"), options=opts)
        return self.request(1, body, lifetime, match=lambda r: r.body is not None and
                            r.body.nonce == nonce and r.body.int_port == int_port, **kw)

    def peer(self, proto, int_port, peer, lifetime=3600, nonce=None, **kw):
        nonce = nonce or b"\x22" * 12
        opts = [opt_third_party(self.tp)] if self.tp else []
        body = PEERData(nonce=nonce, proto=proto, int_port=int_port, ext_port=0,
                        ext_addr=v6("0.0.0.0"), peer_addr=v6(peer[0]), peer_port=peer[1],
                        options=opts)
        return self.request(2, body, lifetime, match=lambda r: r.body is not None and
                            r.body.nonce == nonce and r.body.int_port == int_port, **kw)

    def announce(self, **kw):
        return self.request(0, AnnounceData(), 0, **kw)


def epoch_valid(prev, cur):
    """RFC 6887 §8.5: does response cur (after prev) show the server kept
    its state? prev/cur: (client time of receipt, server epoch)."""
    (pc, ps), (cc, cs) = prev, cur
    if cs + 1 < ps:
        return False            # went back by more than one second
    cd, sd = cc - pc, cs - ps
    if cd + 2 < sd - sd / 16 or sd + 2 < cd - cd / 16:
        return False
    return True


def nonce(tag):
    return (tag.encode() * 12)[:12]


# ------------------------------------------------------------------ base
class LabCase(unittest.TestCase):
    """Starts one lab for the class (labs: keyword arguments for L.Lab)."""
    lab_args = {}
    lab = None

    @classmethod
    def setUpClass(cls):
        cls.lab = L.Lab(**cls.lab_args)
        try:
            cls.lab.start()
            cls.start_servers()
        except BaseException:
            cls.lab.keep_log = True
            cls.lab.stop()
            raise

    @classmethod
    def start_servers(cls):
        lab = cls.lab
        for b in lab.b4s:
            lab.tcp_server(b, 80)
            lab.udp_server(b, 5300)
        lab.tcp_server("inet", 9000)
        lab.udp_server("inet", 9000)

    @classmethod
    def tearDownClass(cls):
        if cls.lab:
            alive = cls.lab.pcpd_alive()
            rc = cls.lab.stop()
            cls.lab = None
            if alive and rc not in (0, None):
                raise AssertionError("pcpd exited with %s at shutdown" % rc)

    def _bad(self):
        r = getattr(self._outcome, "result", None)
        return len(r.failures) + len(r.errors) if r else 0

    def setUp(self):
        self.clients = []
        self.socks = []
        self.bad_before = self._bad()

    def tearDown(self):
        # a failed test keeps pcpd's log (Lab.stop() says where)
        if self.lab and (self._bad() > self.bad_before or
                         any(e for _, e in getattr(self._outcome, "errors", []) if e)):
            self.lab.keep_log = True
        for s in self.socks:
            s.close()
        for c in self.clients:
            c.close()

    def client(self, b4, mode=None, port=0):
        mode = mode or ("plain" if b4 == "b4a" else "encap")
        c = Client(self.lab, b4, mode, port)
        self.clients.append(c)
        return c

    def ok_map(self, c, proto, port, **kw):
        r = c.map(proto, port, **kw)
        self.assertEqual(r.name, "SUCCESS", "%s MAP %s %d: %r\n%s" %
                         (c.b4, PROTO[proto], port, r, self.lab.log()[-3000:]))
        return r

    def delete(self, c, proto, port, nonce_):
        r = c.map(proto, port, lifetime=0, nonce=nonce_)
        self.assertEqual(r.name, "SUCCESS", "delete %s %s %d: %r" % (c.b4, PROTO[proto], port, r))
        self.assertEqual(r.lifetime, 0)
        return r

    def assert_in_kernel(self, r, b4, proto, int_port):
        """The response's external endpoint is a pcp_dnat element to 192.168.1.2:int_port
        and it is in the B4's own port block."""
        self.assertEqual(r.ext_addr, self.lab.ext_addr(b4))
        self.assertIn(r.ext_port, self.lab.pcp_range(b4))
        d = self.lab.dnat()
        key = (PROTO[proto], r.ext_addr, r.ext_port)
        self.assertIn(key, d, "no pcp_dnat element for %s; kernel has %s" % (key, sorted(d)))
        self.assertEqual(d[key]["int"], (HOST, int_port))

    def binding_elements(self, b4, proto, ext_addr, ext_port, int_port):
        """Every element of pcpd's table that belongs to one binding:
        {map name: element} for pcp_dnat, pcp_imark, pcp_filtered (keyed
        by the external endpoint) and pcp_snat, pcp_omark (keyed by zone
        and internal endpoint); pcp_allow: the list of its entries."""
        p = PROTO[proto]
        ext = (ext_addr, p, ext_port)
        internal = (L.zone_of(L.B4S[b4]["index"]), HOST, p, int_port)
        out = {}
        for kind, name, key in (("map", "pcp_dnat", ext), ("map", "pcp_imark", ext),
                                ("set", "pcp_filtered", ext), ("map", "pcp_snat", internal),
                                ("map", "pcp_omark", internal)):
            for e in self.lab.elements(kind, name):
                if tuple(e["key"]) == key:
                    out[name] = e
        allow = [e for e in self.lab.elements("set", "pcp_allow")
                 if tuple(e["key"][:3]) == ext]
        if allow:
            out["pcp_allow"] = allow
        return out

    def tcp_session(self, role, dst, src=None):
        s = self.lab.tcp_connect(role, dst, 2.0, src)
        self.socks.append(s)
        return s

    def ct_of(self, b4, **match):
        """conntrack entries in the B4's zone whose orig tuple matches."""
        out = []
        for e in self.lab.conntrack(L.zone_of(L.B4S[b4]["index"])):
            if all(e["orig"].get(k) == v for k, v in match.items()):
                out.append(e)
        return out


def greeting_of(text):
    """(name, remote address:port it saw) from the TCP server's first line,
    'hello from <name> (<addr>:<port>), you are <addr>:<port>'."""
    line = text.splitlines()[0] if text else ""
    parts = line.split()
    if len(parts) == 7 and parts[:2] == ["hello", "from"]:
        return parts[2], parts[-1]
    return None, None


# ------------------------------------------------------------------ data plane
class TestDataPlane(LabCase):
    """One lab, pcpd with the nftables backend, two B4s."""

    def test_map_tcp_udp_two_b4s_share_192_168_1_2(self):
        """Inbound TCP and UDP through MAP mappings of two B4s that both use
        192.168.1.2 reach the right host, and the answers come back; the
        flows sit in each subscriber's own conntrack zone."""
        lab = self.lab
        ca, cb = self.client("b4a"), self.client("b4b")
        got = {}
        for c in (ca, cb):
            t = self.ok_map(c, TCP, 80, nonce=nonce("t" + c.b4))
            u = self.ok_map(c, UDP, 5300, nonce=nonce("u" + c.b4))
            self.assert_in_kernel(t, c.b4, TCP, 80)
            self.assert_in_kernel(u, c.b4, UDP, 5300)
            got[c.b4] = (t, u)
        self.assertNotEqual(got["b4a"][0].ext_port, got["b4b"][0].ext_port)
        for b4, other in (("b4a", "b4b"), ("b4b", "b4a")):
            t, u = got[b4]
            msg = ("ping-%s" % b4).encode()
            text = L.tcp_ask(lab, "inet", (t.ext_addr, t.ext_port), msg + b"\n")
            name, seen = greeting_of(text)
            self.assertEqual(name, b4, "TCP to %s:%d answered %r" % (t.ext_addr, t.ext_port, text))
            self.assertTrue(seen.startswith(L.INET + ":"), "the host sees the real remote: %r" % text)
            self.assertIn("%s: %s" % (b4, msg.decode()), text, "data both ways")
            ans = L.udp_ask(lab, "inet", (u.ext_addr, u.ext_port), msg)
            self.assertIsNotNone(ans, "no UDP answer through %s:%d" % (u.ext_addr, u.ext_port))
            self.assertTrue(ans.startswith("%s: %s from %s:" % (b4, msg.decode(), L.INET)), ans)
            srv = [s for s in lab.servers if s.name == other]
            self.assertFalse(any(s.got(msg) for s in srv), "the other B4 got %s's traffic" % b4)
            # conntrack: the flows are in this subscriber's zone only
            self.assertTrue(self.ct_of(b4, dport=t.ext_port, src=L.INET),
                            "no TCP flow to %d in %s's zone" % (t.ext_port, b4))
            self.assertTrue(self.ct_of(b4, dport=u.ext_port, src=L.INET))
            self.assertFalse(self.ct_of(other, dport=t.ext_port, src=L.INET))
        for c in (ca, cb):
            self.delete(c, TCP, 80, nonce("t" + c.b4))
            self.delete(c, UDP, 5300, nonce("u" + c.b4))

    def test_outbound_from_mapped_port_leaves_from_external_port(self):
        """Traffic a host starts from a mapped internal port leaves from the
        mapped external address:port, whatever the destination
        (endpoint-independent mapping, RFC 6887 §11.1 / RFC 4787)."""
        lab = self.lab
        for b4 in ("b4a", "b4b"):
            c = self.client(b4)
            u = self.ok_map(c, UDP, 5301, nonce=nonce("o" + b4))
            t = self.ok_map(c, TCP, 8080, nonce=nonce("p" + b4))
            for dst in (L.INET, L.INET2):
                ans = L.udp_ask(lab, b4, (dst, 9000), b"out", src=(HOST, 5301))
                self.assertEqual(ans, "inet: out from %s:%d" % (u.ext_addr, u.ext_port),
                                 "%s UDP from mapped port to %s" % (b4, dst))
                text = L.tcp_ask(lab, b4, (dst, 9000), src=(HOST, 8080))
                self.assertEqual(greeting_of(text)[1], "%s:%d" % (t.ext_addr, t.ext_port),
                                 "%s TCP from mapped port to %s: %r" % (b4, dst, text))
            self.delete(c, UDP, 5301, nonce("o" + b4))
            self.delete(c, TCP, 8080, nonce("p" + b4))

    def _established(self, b4, tport, uport):
        """A mapping pair with a live TCP connection and a UDP flow through it."""
        lab = self.lab
        tsrv = lab.tcp_server(b4, tport)
        usrv = lab.udp_server(b4, uport)
        c = self.client(b4)
        t = self.ok_map(c, TCP, tport, nonce=nonce("d" + b4), lifetime=self.lifetime)
        u = self.ok_map(c, UDP, uport, nonce=nonce("e" + b4), lifetime=self.lifetime)
        conn = self.tcp_session("inet", (t.ext_addr, t.ext_port))
        self.assertEqual(greeting_of(L.recv_line(conn))[0], b4)
        conn.sendall(b"before\n")
        self.assertIn("%s: before" % b4, L.recv_line(conn))
        us = lab.udp_socket("inet", 4)
        self.socks.append(us)
        us.settimeout(1.0)
        us.sendto(b"before", (u.ext_addr, u.ext_port))
        self.assertTrue(us.recv(2000).startswith(("%s: before" % b4).encode()))
        return c, t, u, conn, us, tsrv, usrv

    def _assert_dead(self, b4, t, u, conn, us, tsrv, usrv, what):
        """No data reaches the internal host any more, old flow or new."""
        try:
            conn.sendall(b"after\n")
            echo = L.recv_line(conn, 1.5)
        except OSError:
            echo = ""
        try:
            us.sendto(b"after", (u.ext_addr, u.ext_port))
            us.settimeout(1.5)
            uecho = us.recv(2000)
        except OSError:
            uecho = b""
        self.assertFalse(tsrv.got(b"after"), "%s: data on the established TCP flow still "
                         "reached %s" % (what, b4))
        self.assertNotIn("after", echo)
        self.assertFalse(usrv.got(b"after"), "%s: UDP on the old flow still reached %s" % (what, b4))
        self.assertEqual(uecho, b"")
        with self.assertRaises(OSError, msg="%s: a new TCP connection still works" % what):
            L.tcp_ask(self.lab, "inet", (t.ext_addr, t.ext_port), timeout=1.5)
        self.assertEqual(self.ct_of(b4, dport=t.ext_port, dst=t.ext_addr), [],
                         "%s: conntrack still holds TCP flows of the mapping" % what)

    lifetime = 3600

    def test_delete_stops_traffic_at_once(self):
        """A delete (lifetime 0) removes the kernel elements and the
        conntrack entries before the response: an established TCP
        connection and a UDP flow stop carrying data at once."""
        for b4, tp, up in (("b4a", 81, 5381), ("b4b", 81, 5381)):
            c, t, u, conn, us, tsrv, usrv = self._established(b4, tp, up)
            self.delete(c, TCP, tp, nonce("d" + b4))
            self.delete(c, UDP, up, nonce("e" + b4))
            # at once: the response came after the kernel commit
            self.assertEqual(self.binding_elements(b4, TCP, t.ext_addr, t.ext_port, tp), {})
            self.assertEqual(self.binding_elements(b4, UDP, u.ext_addr, u.ext_port, up), {})
            self.assertEqual(self.ct_of(b4, dport=t.ext_port, dst=t.ext_addr), [],
                             "conntrack entries of the deleted TCP mapping remain")
            self.assertEqual(self.ct_of(b4, dport=u.ext_port, dst=u.ext_addr), [],
                             "conntrack entries of the deleted UDP mapping remain")
            self._assert_dead(b4, t, u, conn, us, tsrv, usrv, "after delete")

    def test_expiry_stops_traffic(self):
        """A mapping that expires (lifetime 3 s, min-lifetime 2 in the lab)
        leaves the kernel, its conntrack entries go, and established flows
        stop carrying data."""
        self.lifetime = 3
        try:
            est = [self._established(b4, 82, 5382) for b4 in ("b4a", "b4b")]
        finally:
            self.lifetime = 3600
        for (c, t, u, *_rest), b4 in zip(est, ("b4a", "b4b")):
            self.assertLessEqual(t.lifetime, 3)
            self.assertGreater(t.lifetime, 0)
        deadline = 3 + 10
        for (c, t, u, conn, us, tsrv, usrv), b4 in zip(est, ("b4a", "b4b")):
            gone = L.wait_for(lambda: ("tcp", t.ext_addr, t.ext_port) not in self.lab.dnat() and
                              ("udp", u.ext_addr, u.ext_port) not in self.lab.dnat(), deadline)
            self.assertTrue(gone, "the expired mapping is still in pcp_dnat: %s" % self.lab.dnat())
            # pcpd's expiry removes the conntrack entries (a kernel element
            # timeout alone would leave established flows running)
            flushed = L.wait_for(lambda: not self.ct_of(b4, dport=t.ext_port, dst=t.ext_addr) and
                                 not self.ct_of(b4, dport=u.ext_port, dst=u.ext_addr), 3)
            self.assertTrue(flushed, "conntrack entries of the expired mapping remain: %s" %
                            [e["line"] for e in self.ct_of(b4, dst=t.ext_addr)])
            self._assert_dead(b4, t, u, conn, us, tsrv, usrv, "after expiry")

    def test_refresh_keeps_port_extends_kernel_timeout(self):
        """A refresh (same nonce) keeps the external port, and the kernel
        element's timeout follows the new lifetime."""
        for b4 in ("b4a", "b4b"):
            self.lab.tcp_server(b4, 86)
            c = self.client(b4)
            n = nonce("r" + b4)
            r1 = self.ok_map(c, TCP, 86, nonce=n, lifetime=300)
            key = ("tcp", r1.ext_addr, r1.ext_port)
            e1 = self.lab.dnat()[key]["expires"]
            self.assertIsNotNone(e1, "pcp_dnat element without timeout")
            self.assertLessEqual(e1, 300 + 60)
            r2 = self.ok_map(c, TCP, 86, nonce=n, lifetime=1200)
            self.assertEqual((r2.ext_addr, r2.ext_port), (r1.ext_addr, r1.ext_port))
            self.assertEqual(r2.lifetime, 1200)
            d = self.lab.dnat()
            self.assertIn(key, d)
            e2 = d[key]["expires"]
            self.assertGreater(e2, e1)
            # the kernel must not drop any part of the mapping before the
            # granted lifetime: inbound DNAT, outbound SNAT, their ct marks
            els = self.binding_elements(b4, TCP, r2.ext_addr, r2.ext_port, 86)
            self.assertEqual(sorted(els), ["pcp_dnat", "pcp_imark", "pcp_omark", "pcp_snat"])
            for name, e in els.items():
                self.assertGreaterEqual(e["expires"], r2.lifetime - 5,
                                        "%s element expires in %s s after a refresh to %d s"
                                        % (name, e["expires"], r2.lifetime))
            name, _ = greeting_of(L.tcp_ask(self.lab, "inet", (r2.ext_addr, r2.ext_port)))
            self.assertEqual(name, b4)
            self.delete(c, TCP, 86, n)

    def test_peer_returns_port_of_existing_flow(self):
        """PEER for the 5-tuple of an outbound flow that already exists
        returns the external address:port the Internet host sees it from."""
        lab = self.lab
        # UDP from b4b (encapsulated mode)
        us = lab.udp_socket("b4b", 4, (HOST, 41000))
        self.socks.append(us)
        us.settimeout(1.0)
        us.sendto(b"flow", (L.INET, 9000))
        ans = us.recv(2000).decode()
        seen = ans.rsplit(" ", 1)[-1]
        self.assertTrue(seen.startswith(lab.ext_addr("b4b") + ":"), ans)
        self.assert_napt_port("b4b", seen)
        r = self.client("b4b").peer(UDP, 41000, (L.INET, 9000), nonce=nonce("q"))
        self.assertEqual(r.name, "SUCCESS", r)
        self.assertEqual("%s:%d" % (r.ext_addr, r.ext_port), seen)
        # the flow keeps its port after PEER
        us.sendto(b"flow2", (L.INET, 9000))
        self.assertEqual(us.recv(2000).decode().rsplit(" ", 1)[-1], seen)
        # TCP from b4a (plain mode + THIRD_PARTY), connection kept open
        conn = self.tcp_session("b4a", (L.INET, 9000), src=(HOST, 41001))
        seen = greeting_of(L.recv_line(conn))[1]
        self.assertTrue(seen and seen.startswith(lab.ext_addr("b4a") + ":"), seen)
        self.assert_napt_port("b4a", seen)
        r = self.client("b4a").peer(TCP, 41001, (L.INET, 9000), nonce=nonce("s"))
        self.assertEqual(r.name, "SUCCESS", r)
        self.assertEqual("%s:%d" % (r.ext_addr, r.ext_port), seen)

    def assert_napt_port(self, b4, endpoint):
        """Dynamic NAPT uses the B4's block outside its PCP part."""
        port = int(endpoint.rsplit(":", 1)[1])
        self.assertIn(port, self.lab.block(b4), "%s: NAPT port outside its block" % b4)
        self.assertNotIn(port, self.lab.pcp_range(b4), "%s: NAPT port in the PCP part" % b4)

    def test_peer_creates_mapping_the_flow_then_uses(self):
        """PEER for a flow that does not exist yet creates the implicit
        mapping: the flow, started afterwards, leaves from the external
        port PEER returned."""
        lab = self.lab
        lab.udp_server("inet", 9001)
        for b4, port in (("b4a", 41100), ("b4b", 41101)):
            r = self.client(b4).peer(UDP, port, (L.INET, 9001), nonce=nonce("c" + b4))
            self.assertEqual(r.name, "SUCCESS", r)
            self.assertEqual(r.ext_addr, lab.ext_addr(b4))
            ans = L.udp_ask(lab, b4, (L.INET, 9001), b"new", src=(HOST, port))
            self.assertEqual(ans, "inet: new from %s:%d" % (r.ext_addr, r.ext_port))

    def test_filter_lets_only_named_peer_in(self):
        """A MAP with FILTER 198.51.100.2/32: that peer gets through, the same
        Internet host's other address 198.51.100.3 does not (TCP and UDP).
        A refresh with FILTER 0/0 then 198.51.100.3/32 port 9100 changes it
        (RFC 6887 §13.3), FILTER 0/0 alone lifts it, and a delete leaves no
        filter element behind."""
        lab = self.lab
        cases = (("b4a", TCP, 83), ("b4b", UDP, 5383))
        srv = {}
        for b4, proto, port in cases:
            srv[b4] = lab.tcp_server(b4, port) if proto == TCP else lab.udp_server(b4, port)

        def reaches(b4, proto, dst, src, tag):
            if proto == TCP:
                try:
                    return greeting_of(L.tcp_ask(lab, "inet", dst, timeout=1.5, src=src))[0] == b4
                except OSError:
                    return False
            ans = L.udp_ask(lab, "inet", dst, tag, src=src)
            if ans is not None:
                self.assertTrue(ans.startswith(b4 + ":"), ans)
            return ans is not None

        for b4, proto, port in cases:
            c = self.client(b4)
            n = nonce("f" + b4)
            r = self.ok_map(c, proto, port, nonce=n, filters=[(L.INET, 128, 0)])
            dst = (r.ext_addr, r.ext_port)
            self.assertTrue(reaches(b4, proto, dst, (L.INET, 0), b"allowed"))
            self.assertFalse(reaches(b4, proto, dst, (L.INET2, 0), b"refused"),
                             "%s: 198.51.100.3 got through FILTER 198.51.100.2/32" % b4)
            # replace the filter: only 198.51.100.3 from port 9100
            r2 = self.ok_map(c, proto, port, nonce=n,
                             filters=[("0.0.0.0", 0, 0), (L.INET2, 128, 9100)])
            self.assertEqual(r2.ext_port, r.ext_port)
            self.assertTrue(reaches(b4, proto, dst, (L.INET2, 9100), b"allowed2"),
                            "%s: the new filter does not let 198.51.100.3:9100 in" % b4)
            self.assertFalse(reaches(b4, proto, dst, (L.INET2, 9101), b"refused2"),
                             "%s: 198.51.100.3:9101 got through a filter for port 9100" % b4)
            self.assertFalse(reaches(b4, proto, dst, (L.INET, 0), b"refused3"),
                             "%s: the old filter still lets 198.51.100.2 in" % b4)
            # lift it
            self.ok_map(c, proto, port, nonce=n, filters=[("0.0.0.0", 0, 0)])
            self.assertTrue(reaches(b4, proto, dst, (L.INET2, 9101), b"open"),
                            "%s: FILTER 0/0 did not lift the filter" % b4)
            self.assertTrue(reaches(b4, proto, dst, (L.INET, 0), b"open2"))
            if proto == TCP:
                self.assertFalse([p for p in srv[b4].peers if p[0] == L.INET2 and p[1] != 9100
                                  and p[1] != 9101])
            else:
                for tag in (b"refused", b"refused2", b"refused3"):
                    self.assertFalse(srv[b4].got(tag), "%r reached %s" % (tag, b4))
            self.delete(c, proto, port, n)
            left = self.binding_elements(b4, proto, r.ext_addr, r.ext_port, port)
            self.assertEqual(left, {}, "elements left after the delete")

    def test_pcpctl_matches_kernel(self):
        """pcpctl show mappings (JSON and text) lists exactly the MAP
        mappings the kernel's pcp_dnat holds."""
        lab = self.lab
        made = []
        for b4 in ("b4a", "b4b"):
            c = self.client(b4)
            for proto, port in ((TCP, 84), (UDP, 5384), (TCP, 85)):
                n = nonce("m%s%d" % (b4, port))
                self.ok_map(c, proto, port, nonce=n)
                made.append((c, proto, port, n))
        kernel = {(k[0], k[1], k[2], v["int"][0], v["int"][1]) for k, v in lab.dnat().items()}
        self.assertGreaterEqual(len(kernel), 6)
        # the protocol itself: result objects, then the end marker
        objs, end = lab.ctl_request("show-mappings")
        self.assertEqual((end.get("v"), end.get("ok"), end.get("count")), (1, True, len(objs)),
                         "end marker %s" % end)
        self.assertEqual({m for m in map(mapping_tuple, objs) if m}, kernel,
                         "control socket vs pcp_dnat")
        # pcpctl -j prints the result objects (pcpctl(8): not the end marker)
        objs = lab.pcpctl("show", "mappings", json_out=True)
        self.assertEqual({m for m in map(mapping_tuple, objs) if m}, kernel, "pcpctl -j vs pcp_dnat")
        text = lab.pcpctl("show", "mappings")
        self.assertEqual(text_mappings(text), kernel, "pcpctl text vs pcp_dnat:\n" + text)
        # the read-only monitor socket serves the same listing
        objs = lab.pcpctl("show", "mappings", json_out=True, monitor=True)
        self.assertEqual({m for m in map(mapping_tuple, objs) if m}, kernel, "monitor socket")
        for c, proto, port, n in made:
            self.delete(c, proto, port, n)

    def test_pcpctl_subscribers_match_kernel(self):
        """pcpctl show subscribers (JSON and text) matches the
        per-subscriber state in the kernel, which follows the mark/zone
        contract (aftr/backend.h: zone = mark = index + 1): softwire ->
        zone, public port block -> zone and mark, NAPT range and address."""
        lab = self.lab
        subs = lab.pcpctl("show", "subscribers", json_out=True)
        self.assertEqual(sorted((s["name"], s["index"]) for s in subs),
                         sorted((b, L.B4S[b]["index"]) for b in lab.b4s))
        want = {"sw_zone": {}, "pub_zone": {}, "pub_mark": {}, "zone_block": {}, "zone_addr": {}}
        for s in subs:
            z, m = L.zone_of(s["index"]), L.mark_of(s["index"])
            ext, blk = s["external_addr"], (s["block_lo"], s["block_hi"])
            self.assertEqual(ext, lab.ext_addr(s["name"]))
            self.assertEqual(range(blk[0], blk[1] + 1), lab.block(s["name"]))
            want["sw_zone"][s["interface"]] = z
            want["pub_zone"][(ext, blk)] = z
            want["pub_mark"][(ext, blk)] = m
            want["zone_block"][z] = (ext, (s["pcp_hi"] + 1, s["block_hi"]))
            want["zone_addr"][z] = ext
        for name, exp in want.items():
            got = {e["key"]: e["value"] for e in lab.elements("map", name)}
            self.assertEqual(got, exp, "map %s vs pcpctl show subscribers" % name)
        text = lab.pcpctl("show", "subscribers")
        lines = [line.split() for line in text.splitlines() if line.strip()]
        cols = lines[0]
        rows = {int(r[cols.index("INDEX")]): r for r in lines[1:]}
        for s in subs:
            r = rows.get(s["index"])
            self.assertTrue(r, "no text row for subscriber %d:\n%s" % (s["index"], text))
            self.assertEqual(r[cols.index("EXTERNAL")], s["external_addr"])
            self.assertEqual(r[cols.index("BLOCK")], "%d-%d" % (s["block_lo"], s["block_hi"]))
            self.assertTrue(r[cols.index("SOFTWIRE")].startswith(s["interface"]))


def mapping_tuple(o):
    """(proto, ext addr, ext port, int addr, int port) of a mapping with an
    inbound part in pcpctl's JSON (docs/control-protocol.md); None for
    other objects (PEER-only mappings, the end marker)."""
    if o.get("type") not in ("map", "static", "natpmp") or "external_port" not in o:
        return None
    strip = lambda a: a[7:] if a.startswith("::ffff:") else a    # noqa: E731
    return (str(o["proto"]).lower(), strip(o["external_addr"]), int(o["external_port"]),
            strip(o["internal_addr"]), int(o["internal_port"]))


def text_mappings(text):
    """The same tuples from pcpctl's text table (columns found by the
    header: PROTO, INTERNAL addr:port, EXTERNAL addr:port, TYPE)."""
    lines = [line for line in text.splitlines() if line.strip()]
    head = next((i for i, line in enumerate(lines) if "EXTERNAL" in line.split()), None)
    if head is None:
        return None
    cols = lines[head].split()
    out = set()
    for line in lines[head + 1:]:
        cells = dict(zip(cols, line.split(None, len(cols) - 1)))
        if cells.get("TYPE") not in ("map", "static", "natpmp"):
            continue
        ea, ep = cells["EXTERNAL"].rsplit(":", 1)
        ia, ip = cells["INTERNAL"].rsplit(":", 1)
        out.add((cells["PROTO"].lower(), ea, int(ep), ia, int(ip)))
    return out


# ------------------------------------------------------------------ control socket
class TestControlAdmin(LabCase):
    """pcpctl's mutating commands act on the kernel: a subscriber added at
    run time gets its data-plane state, a static mapping carries traffic,
    flush removes every mapping of a subscriber (and its flows), remove
    takes the subscriber's state out; the monitor socket refuses them."""
    lab_args = {"b4s": ("b4a", "b4b", "b4c"), "configured": ("b4a", "b4b")}

    def test_subscriber_add_static_flush_remove(self):
        lab = self.lab
        idx = L.B4S["b4c"]["index"]
        z = L.zone_of(idx)
        self.assertNotIn("sw-c", {e["key"] for e in lab.elements("map", "sw_zone")})
        # the monitor socket is read-only
        r = L.sh(lab.pcpctl_bin, "-s", lab.mon_sock, "subscriber", "add", "b4c", "index", str(idx),
                 "b4", L.B4S["b4c"]["v6"], "interface", "sw-c", check=False)
        self.assertNotEqual(r.returncode, 0, "the monitor socket accepted subscriber add")
        lab.pcpctl("subscriber", "add", "b4c", "index", str(idx), "b4", L.B4S["b4c"]["v6"],
                   "interface", "sw-c")
        self.assertEqual({e["key"]: e["value"] for e in lab.elements("map", "sw_zone")}.get("sw-c"),
                         z, "softwire of the added subscriber")
        blk = lab.block("b4c")
        pz = {e["key"]: e["value"] for e in lab.elements("map", "pub_zone")}
        self.assertEqual(pz.get((lab.ext_addr("b4c"), (blk.start, blk.stop - 1))), z)
        # a static mapping through pcpctl reaches b4c's host
        objs = lab.pcpctl("static", "add", "b4c", "tcp", HOST, "80", json_out=True)
        st = [m for m in map(mapping_tuple, objs) if m]
        self.assertEqual(len(st), 1, "static add printed %s" % objs)
        proto, ea, ep, ia, ip = st[0]
        self.assertEqual(lab.dnat().get(("tcp", ea, ep), {}).get("int"), (HOST, 80))
        conn = self.tcp_session("inet", (ea, ep))
        self.assertEqual(greeting_of(L.recv_line(conn))[0], "b4c")
        # a PCP mapping of the new subscriber (encapsulated mode) works too
        c = self.client("b4c", "encap")
        u = self.ok_map(c, UDP, 5300, nonce=nonce("c3"))
        self.assertTrue((L.udp_ask(lab, "inet", (u.ext_addr, u.ext_port), b"x") or "")
                        .startswith("b4c: x"))
        shown = {m for m in map(mapping_tuple, lab.pcpctl("show", "mappings", "subscriber", "b4c",
                                                          json_out=True)) if m}
        self.assertEqual(shown, {("tcp", ea, ep, HOST, 80), ("udp", u.ext_addr, u.ext_port, HOST,
                                                             5300)})
        # flush: every mapping of b4c leaves the kernel and its flows stop
        lab.pcpctl("subscriber", "flush", "b4c")
        d = lab.dnat()
        self.assertNotIn(("tcp", ea, ep), d)
        self.assertNotIn(("udp", u.ext_addr, u.ext_port), d)
        self.assertEqual([e for e in lab.conntrack(z) if e["orig"].get("dst") == ea and
                          e["orig"].get("dport") in (ep, u.ext_port)], [],
                         "flows of flushed mappings remain in conntrack")
        conn.sendall(b"after-flush\n")
        L.recv_line(conn, 1.5)
        srv = [x for x in lab.servers if x.name == "b4c" and isinstance(x, L.TCPServer)][0]
        self.assertFalse(srv.got(b"after-flush"), "an established flow survived the flush")
        self.assertEqual({m for m in map(mapping_tuple, lab.pcpctl(
            "show", "mappings", "subscriber", "b4c", json_out=True)) if m}, set())
        # remove: the subscriber's data-plane state goes
        lab.pcpctl("subscriber", "remove", "b4c")
        self.assertNotIn("sw-c", {e["key"] for e in lab.elements("map", "sw_zone")})
        self.assertNotIn(z, {e["value"] for e in lab.elements("map", "pub_zone")})
        self.assertNotIn(z, {e["key"] for e in lab.elements("map", "zone_block")})
        try:        # IPv4 from a softwire pcpd does not know is dropped (§8.2)
            r = c.map(UDP, 5300, nonce=nonce("c4"), tries=1)
            self.assertNotEqual(r.name, "SUCCESS", "a removed subscriber still gets mappings")
        except TimeoutError:
            pass
        self.assertNotIn(("udp", lab.ext_addr("b4c")), {k[:2] for k in lab.dnat()
                                                        if k[2] in lab.block("b4c")})


# ------------------------------------------------------------------ limits
class TestQuotaHoldDown(LabCase):
    """max-mappings 3, hold-down 120 s: refused requests leave nothing in
    the kernel; a released port is not handed out again within hold-down."""
    lab_args = {"b4s": ("b4a", "b4b", "b4c"), "aftr": {"max-mappings": 3}}

    def test_quota_holds_in_kernel(self):
        lab = self.lab
        c = self.client("b4a")
        ports = []
        for i in range(3):
            r = self.ok_map(c, TCP, 1001 + i, nonce=nonce("Q%d" % i))
            self.assert_in_kernel(r, "b4a", TCP, 1001 + i)
            ports.append(r.ext_port)
        r = c.map(TCP, 1004, nonce=nonce("Q4"))
        self.assertEqual(r.name, "USER_EX_QUOTA", r)
        r = c.map(UDP, 1004, nonce=nonce("Q5"))
        self.assertEqual(r.name, "USER_EX_QUOTA", r)
        mine = {k: v for k, v in lab.dnat().items() if k[2] in lab.block("b4a")}
        self.assertEqual(sorted(k[2] for k in mine), sorted(ports),
                         "the kernel holds exactly the granted mappings")
        self.assertNotIn((HOST, 1004), [v["int"] for v in mine.values()])
        # freeing one lets the next in
        self.delete(c, TCP, 1001, nonce("Q0"))
        r = self.ok_map(c, TCP, 1004, nonce=nonce("Q4"))
        self.assert_in_kernel(r, "b4a", TCP, 1004)
        for i in (1, 2):
            self.delete(c, TCP, 1001 + i, nonce("Q%d" % i))
        self.delete(c, TCP, 1004, nonce("Q4"))

    def test_hold_down_in_kernel(self):
        lab = self.lab
        cb = self.client("b4b")
        r = self.ok_map(cb, TCP, 2001, nonce=nonce("H1"))
        p = r.ext_port
        self.delete(cb, TCP, 2001, nonce("H1"))
        self.assertNotIn(("tcp", r.ext_addr, p), lab.dnat())
        # another mapping of the same B4 asks for exactly that port
        r2 = self.ok_map(cb, TCP, 2002, nonce=nonce("H2"), sugg_port=p)
        self.assertNotEqual(r2.ext_port, p, "released port handed out again within hold-down")
        self.assert_in_kernel(r2, "b4b", TCP, 2002)
        self.assertNotIn(("tcp", r.ext_addr, p), lab.dnat())
        # and so does another B4
        cc = self.client("b4c", "plain")
        r3 = self.ok_map(cc, TCP, 2001, nonce=nonce("H3"), sugg_port=p)
        self.assertFalse((r3.ext_addr, r3.ext_port) == (r.ext_addr, p),
                         "another B4 got the held port")
        self.assertNotIn(("tcp", r.ext_addr, p), lab.dnat())
        # nothing reaches b4b through the released port
        with self.assertRaises(OSError):
            L.tcp_ask(lab, "inet", (r.ext_addr, p), timeout=1.5)
        self.delete(cb, TCP, 2002, nonce("H2"))
        self.delete(cc, TCP, 2001, nonce("H3"))


class TestRateLimit(LabCase):
    """rate-limit 1/s, burst 3: the requests refused for rate leave
    nothing in the kernel."""
    lab_args = {"aftr": {"rate-limit": 1, "rate-burst": 3}}

    def test_rate_limit_holds_in_kernel(self):
        lab = self.lab
        c = self.client("b4b")
        ok, refused = [], []
        for i in range(8):
            r = c.map(UDP, 3001 + i, nonce=nonce("R%d" % i))
            (ok if r.name == "SUCCESS" else refused).append((3001 + i, r))
        self.assertTrue(ok, "no request got through")
        self.assertTrue(refused, "no request was rate limited")
        for _, r in refused:
            self.assertEqual(r.name, "NO_RESOURCES", r)
        mine = {k: v for k, v in lab.dnat().items() if k[2] in lab.block("b4b")}
        self.assertEqual(sorted(v["int"][1] for v in mine.values()), [p for p, _ in ok])
        for p, r in ok:
            self.assert_in_kernel(r, "b4b", UDP, p)


# ------------------------------------------------------------------ restart
class RestartCase(LabCase):
    """A fresh lab per test."""

    @classmethod
    def setUpClass(cls):
        pass

    @classmethod
    def tearDownClass(cls):
        pass

    def setUp(self):
        super().setUp()
        type(self).lab = L.Lab()
        try:
            self.lab.start()
            type(self).start_servers()
        except BaseException:
            self.lab.keep_log = True
            self.lab.stop()
            raise

    def tearDown(self):
        super().tearDown()
        lab, type(self).lab = self.lab, None
        if lab:
            alive = lab.pcpd_alive()
            rc = lab.stop()
            if alive and rc not in (0, None):
                raise AssertionError("pcpd exited with %s at shutdown" % rc)

    def check_traffic(self, maps, what):
        for (b4, proto, port), r in maps.items():
            dst = (r.ext_addr, r.ext_port)
            if proto == TCP:
                try:
                    text = L.tcp_ask(self.lab, "inet", dst)
                except OSError as e:
                    self.fail("%s: TCP to %s:%d (%s) failed: %s" % (what, dst[0], dst[1], b4, e))
                self.assertEqual(greeting_of(text)[0], b4, "%s: %r" % (what, text))
            else:
                ans = L.udp_ask(self.lab, "inet", dst, b"hello")
                self.assertTrue(ans and ans.startswith(b4 + ":"),
                                "%s: UDP to %s:%d (%s): %r" % (what, dst[0], dst[1], b4, ans))


class TestRestart(RestartCase):
    def test_kill9_under_load_restart_keeps_state(self):
        """kill -9 while clients refresh in a loop, restart: every mapping
        keeps working (also while pcpd is down), refreshes with the same
        nonce get the same external ports, and the epoch stays continuous
        (RFC 6887 §8.5) for every client."""
        lab = self.lab
        clients = {"b4a": self.client("b4a", port=40100), "b4b": self.client("b4b", port=40101)}
        maps = {}
        for b4, c in clients.items():
            for proto, port in ((TCP, 80), (UDP, 5300)):
                maps[(b4, proto, port)] = self.ok_map(c, proto, port, lifetime=600,
                                                      nonce=nonce("k%s%d" % (b4, proto)))
        self.check_traffic(maps, "before")
        # and an implicit mapping made by PEER, with its flow
        pn = nonce("kpeer")
        pr = clients["b4b"].peer(UDP, 41200, (L.INET, 9000), nonce=pn)
        self.assertEqual(pr.name, "SUCCESS", pr)
        peer_ext = "%s:%d" % (pr.ext_addr, pr.ext_port)
        self.assertEqual(L.udp_ask(lab, "b4b", (L.INET, 9000), b"p", src=(HOST, 41200)),
                         "inet: p from " + peer_ext)
        before = lab.dnat()
        stop = threading.Event()
        seen, errors = [], []

        def load(b4, c):
            # MAP refreshes of each mapping in turn, and now and then an ANNOUNCE
            keys = [k for k in maps if k[0] == b4] + [None]
            i = 0
            while not stop.is_set():
                key = keys[i % len(keys)]
                i += 1
                try:
                    if key is None:
                        c.announce(tries=1, wait=0.5)
                        continue
                    b, proto, port = key
                    r = c.map(proto, port, lifetime=600, nonce=nonce("k%s%d" % (b, proto)),
                              tries=1, wait=0.5)
                except TimeoutError:
                    continue          # pcpd is down
                except Exception as e:  # noqa: BLE001
                    errors.append(e)
                    return
                seen.append((key, r))
                time.sleep(0.01)

        threads = [threading.Thread(target=load, args=kv, daemon=True)
                   for kv in clients.items()]
        for t in threads:
            t.start()
        try:
            # a running epoch: at least 2 s of load before the kill
            time.sleep(2)
            self.assertTrue(L.wait_for(lambda: len(seen) >= 20, 10), "the load does not run")
            lab.kill_pcpd()
            n_before = len(seen)
            down = time.monotonic()
            # the kernel carries on without pcpd
            self.check_traffic(maps, "while pcpd is down")
            # an element pcpd did not write (no user data): dropped on restore
            bogus = (lab.ext_addr("b4a"), lab.pcp_range("b4a")[-1])
            lab.nft("add", "element", "ip", lab.table, "pcp_dnat",
                    "{ %s . tcp . %d timeout 1h : 192.168.1.2 . 22 }" % bogus)
            # down long enough that an epoch which forgot the downtime fails §8.5
            time.sleep(max(0, 4 - (time.monotonic() - down)))
            lab.start_pcpd()
            self.assertTrue(L.wait_for(lambda: len(seen) >= n_before + 20, 15),
                            "no refreshes answered after the restart")
            time.sleep(1)
        finally:
            stop.set()
            for t in threads:
                t.join(5)
        self.assertEqual(errors, [])
        for key, r in seen:
            self.assertEqual(r.name, "SUCCESS", "%s: %r\n%s" % (key, r, lab.log()[-3000:]))
            self.assertEqual((r.ext_addr, r.ext_port), (maps[key].ext_addr, maps[key].ext_port),
                             "%s: refresh with the same nonce got another port" % (key,))
        self.assertTrue(any(r.t > down for _, r in seen), "no response after the restart")
        for b4, c in clients.items():
            hist = [(r.t, r.epoch) for r in c.responses]    # MAP and ANNOUNCE
            self.assertTrue(any(e for _, e in hist), "%s: the epoch never moved" % b4)
            for prev, cur in zip(hist, hist[1:]):
                self.assertTrue(epoch_valid(prev, cur),
                                "%s: epoch not continuous: %s then %s (client seconds, epoch)"
                                % (b4, prev, cur))
        after = lab.dnat()
        for (b4, proto, port), r in maps.items():
            key = (PROTO[proto], r.ext_addr, r.ext_port)
            self.assertIn(key, after)
            self.assertEqual(after[key]["int"], before[key]["int"])
        self.assertNotIn(("tcp",) + bogus, after, "an element without pcpd's user data survived "
                         "the restore")
        ctl = {m for m in map(mapping_tuple, lab.pcpctl("show", "mappings", json_out=True)) if m}
        self.assertEqual(ctl, {(k[0], k[1], k[2]) + v["int"] for k, v in after.items()},
                         "pcpctl after the restart vs the kernel")
        self.check_traffic(maps, "after the restart")
        self.assertEqual(L.udp_ask(lab, "b4b", (L.INET, 9000), b"p", src=(HOST, 41200)),
                         "inet: p from " + peer_ext, "the PEER mapping after the restart")
        pr2 = clients["b4b"].peer(UDP, 41200, (L.INET, 9000), nonce=pn)
        self.assertEqual((pr2.name, "%s:%d" % (pr2.ext_addr, pr2.ext_port)),
                         ("SUCCESS", peer_ext), "PEER refresh after the restart")
        self.assertTrue(epoch_valid((pr.t, pr.epoch), (pr2.t, pr2.epoch)))

    def test_expired_while_down_flows_stop_after_restart(self):
        """A mapping whose lifetime ends while pcpd is down leaves the kernel
        by its element timeout; its established flows must not outlive it:
        once pcpd is back, no data reaches the host through them."""
        lab = self.lab
        srv = lab.tcp_server("b4a", 87)
        c = self.client("b4a")
        r = self.ok_map(c, TCP, 87, nonce=nonce("x"), lifetime=3)
        conn = self.tcp_session("inet", (r.ext_addr, r.ext_port))
        self.assertEqual(greeting_of(L.recv_line(conn))[0], "b4a")
        lab.kill_pcpd()
        gone = L.wait_for(lambda: ("tcp", r.ext_addr, r.ext_port) not in lab.dnat(), 10)
        self.assertTrue(gone, "the kernel did not expire the element while pcpd was down")
        lab.start_pcpd()
        z = L.zone_of(L.B4S["b4a"]["index"])
        flushed = L.wait_for(lambda: not [e for e in lab.conntrack(z, "tcp")
                                          if e["orig"].get("dport") == r.ext_port], 5)
        conn.sendall(b"after\n")
        L.recv_line(conn, 1.5)
        self.assertFalse(srv.got(b"after"), "data still reaches the host through a mapping that "
                         "expired while pcpd was down (its conntrack entry was never removed)")
        self.assertTrue(flushed, "conntrack entries of the expired mapping remain: %s" %
                        [e["line"] for e in lab.conntrack(z, "tcp")])

    def test_clean_restart_keep_table(self):
        """SIGTERM with keep-table = true (the default) leaves the table and
        its mappings in the kernel and the epoch runs on; with keep-table =
        false the table goes at exit and the next start announces the loss."""
        lab = self.lab
        c = self.client("b4b", port=40300)
        n = nonce("ct")
        r1 = self.ok_map(c, TCP, 80, nonce=n)
        self.assertEqual(lab.stop_pcpd(), 0)
        self.assertTrue(lab.table_exists(), "keep-table = true, but the table is gone")
        self.check_traffic({("b4b", TCP, 80): r1}, "while pcpd is stopped")
        lab.start_pcpd()
        r2 = self.ok_map(c, TCP, 80, nonce=n)
        self.assertEqual(r2.ext_port, r1.ext_port)
        self.assertTrue(epoch_valid((r1.t, r1.epoch), (r2.t, r2.epoch)),
                        "epoch %d then %d" % (r1.epoch, r2.epoch))
        c.drain()
        self.assertEqual(c.unsolicited, [], "ANNOUNCE after a restart without loss")
        lab.server_opts["keep-table"] = False
        lab.restart_pcpd(kill=False)     # the new config only applies to this run's exit
        r3 = self.ok_map(c, TCP, 80, nonce=n)
        self.assertEqual(r3.ext_port, r1.ext_port)
        self.assertEqual(lab.stop_pcpd(), 0)
        self.assertFalse(lab.table_exists(), "keep-table = false, but the table stayed")
        lab.start_pcpd()
        got = L.wait_for(lambda: (c.drain(), c.unsolicited)[1], 10)
        self.assertTrue(got, "no ANNOUNCE after the table was removed at exit\n" +
                        lab.log()[-2000:])

    def test_clients_remembered_across_restart(self):
        """A client whose mapping survived a restart without loss is still
        a client pcpd knows: if the state is lost later (table deleted while
        pcpd is down), it gets the unsolicited ANNOUNCE although it has not
        spoken to the restarted pcpd."""
        lab = self.lab
        c = self.client("b4a", port=40400)
        r1 = self.ok_map(c, TCP, 80, nonce=nonce("cr"))
        lab.restart_pcpd(kill=False)               # no loss: the mapping is restored
        self.assertIn(("tcp", r1.ext_addr, r1.ext_port), lab.dnat())
        self.assertEqual(lab.stop_pcpd(), 0)
        lab.delete_table()
        lab.start_pcpd()
        got = L.wait_for(lambda: (c.drain(), c.unsolicited)[1], 10)
        clients = open(os.path.join(lab.state_dir, "clients")).read() \
            if os.path.exists(os.path.join(lab.state_dir, "clients")) else None
        self.assertTrue(got, "the client of a restored mapping was not told of the state loss "
                        "(state-dir clients file now: %r)\n%s" % (clients, lab.log()[-2000:]))

    def test_table_removed_restart_announces_and_clients_recover(self):
        """With pcpd's nft table deleted while it is down, the restart sends
        unsolicited ANNOUNCEs to its clients (RFC 6887 §14.1.3) whose epoch
        shows the state loss, and the clients get working mappings again
        by re-creating them."""
        lab = self.lab
        clients = {"b4a": self.client("b4a", port=40200), "b4b": self.client("b4b", port=40201)}
        maps = {}
        last = {}
        for b4, c in clients.items():
            maps[(b4, TCP, 80)] = self.ok_map(c, TCP, 80, nonce=nonce("a" + b4))
        self.check_traffic(maps, "before")
        # let the epoch grow so that a restart at 0 is a visible loss (§8.5)
        for b4, c in clients.items():
            a = L.wait_for(lambda: (lambda r: r if r.epoch >= 3 else None)(c.announce()), 10, 0.5)
            self.assertTrue(a, "the epoch does not advance")
            last[b4] = (a.t, a.epoch)
        lab.kill_pcpd()
        lab.delete_table()
        with self.assertRaises(OSError, msg="traffic without the table"):
            L.tcp_ask(lab, "inet", (maps[("b4a", TCP, 80)].ext_addr,
                                    maps[("b4a", TCP, 80)].ext_port), timeout=1.5)
        lab.start_pcpd()
        self.assertTrue(lab.table_exists(), "pcpd did not create its table again")
        for b4, c in clients.items():
            got = L.wait_for(lambda: (c.drain(), c.unsolicited)[1], 10)
            self.assertTrue(got, "%s (%s mode, port %d) got no unsolicited ANNOUNCE\n%s" %
                            (b4, c.mode, c.port, lab.log()[-3000:]))
            a = got[0]
            self.assertEqual((a.opcode, a.r, a.name, a.lifetime), (0, 1, "SUCCESS", 0))
            self.assertFalse(epoch_valid(last[b4], (a.t, a.epoch)),
                             "%s: the ANNOUNCE epoch %d does not show the state loss "
                             "(before: %d)" % (b4, a.epoch, last[b4][1]))
        # the clients re-create their mappings
        for b4, c in clients.items():
            r = self.ok_map(c, TCP, 80, nonce=nonce("a" + b4))
            self.assert_in_kernel(r, b4, TCP, 80)
            maps[(b4, TCP, 80)] = r
        self.check_traffic(maps, "after re-creating")


if __name__ == "__main__":
    unittest.main(verbosity=2)
