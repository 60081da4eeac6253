"""Wire tests: scapy-built PCP requests against a running pcpd in a
namespace lab, as plain-mode B4s (IPv6 + THIRD_PARTY) and as
encapsulated-mode hosts (IPv4 through the softwire). Each test names the
RFC section it checks in its docstring.

Tests that leave state behind or need known-free ports run as fresh
subscribers (fresh_b4); features switched off by configuration are
tested against a second lab with its own pcpd (LabCase)."""
import ipaddress
import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pcp_scapy import (PCPRequest, MAPData, PEERData, AnnounceData, NATPMPMap, parse_response,
                       opt_third_party, opt_prefer_failure, opt_filter, opt_description,
                       opt_port_set, PCPOption, R, TCP, UDP, v6)
import netlab

BUILD = os.environ.get("PCPD_BUILD", os.path.join(os.path.dirname(__file__), "../../build"))
PCPD = os.path.join(BUILD, "pcpd/pcpd")

CONF = """
server {
  listen = {"2001:db8:ffff::1", "192.0.0.1"}
  workers = 2
  min-lifetime = 120
  max-lifetime = 86400
  max-filters = 4
  state-dir = "/tmp"
}
aftr {
  pool = {"203.0.113.0/28"}
  port-min = 1024
  ports-per-subscriber = 2048
  pcp-ports = 512
  subscriber-prefix-length = 64
  b4-prefixes = {"2001:db8:100::/56"}
  max-mappings = 8
  rate-limit = 0
  hold-down = 120
  subscriber "b4a" { b4 = "2001:db8:100:a::/64"  interface = "sw-a"  index = 300 }
  subscriber "b4b" { b4 = "2001:db8:100:b::/64"  interface = "sw-b"  index = 301 }
}
"""

B4 = {"b4a": "2001:db8:100:a::1", "b4b": "2001:db8:100:b::1"}
HOST = netlab.HOST_V4
LAB = None


def setUpModule():
    global LAB
    if os.geteuid() != 0:
        raise unittest.SkipTest("wire tests need root for network namespaces")
    LAB = netlab.Lab(PCPD, CONF)
    try:
        LAB.start()
    except BaseException:
        LAB.stop()          # tearDownModule does not run after a failed setUpModule
        raise


def tearDownModule():
    if LAB:
        rc = LAB.stop()
        if rc not in (0, None):
            raise AssertionError("pcpd exited with %d at shutdown; log %s" % (rc, LAB.log_path))


class Client:
    """One PCP client endpoint inside a B4 namespace."""

    def __init__(self, ns, family=6, src=None, port=0, lab=None):
        self.family = family
        self.src = src or (B4[ns] if family == 6 else HOST)
        self.sock = (lab or LAB).socket(ns, family, self.src, port)
        self.sock.settimeout(2)
        self.server = (netlab.AFTR_V6 if family == 6 else netlab.AFTR_V4, 5351)

    def close(self):
        self.sock.close()

    def send_raw(self, data, expect=True):
        self.sock.sendto(data, self.server)
        if not expect:
            self.sock.settimeout(0.5)
            try:
                self.sock.recv(2000)
            except socket.timeout:
                return None
            finally:
                self.sock.settimeout(2)
            raise AssertionError("expected no response")
        return self.sock.recv(2000)

    def request(self, opcode, body, lifetime=3600, client=None):
        req = PCPRequest(opcode=opcode, lifetime=lifetime, client=v6(client or self.src)) / body
        raw = self.send_raw(bytes(req))
        hdr, rb = parse_response(raw)
        return hdr, rb, raw

    def map(self, port=80, proto=TCP, lifetime=3600, nonce=b"\x01" * 12, sugg_port=0,
            sugg_addr="0.0.0.0", options=(), tp=None):
        opts = ([opt_third_party(tp)] if tp else []) + list(options)
        body = MAPData(nonce=nonce, proto=proto, int_port=port, ext_port=sugg_port,
                       ext_addr=v6(sugg_addr), options=opts)
        return self.request(1, body, lifetime)

    def peer(self, port=5000, proto=TCP, lifetime=3600, nonce=b"\x02" * 12,
             peer=("198.51.100.7", 443), sugg_port=0, options=(), tp=None,
             sugg_addr="0.0.0.0"):
        opts = ([opt_third_party(tp)] if tp else []) + list(options)
        body = PEERData(nonce=nonce, proto=proto, int_port=port, ext_port=sugg_port,
                        ext_addr=v6(sugg_addr), peer_addr=v6(peer[0]), peer_port=peer[1],
                        options=opts)
        return self.request(2, body, lifetime)


def result(h):
    return h.result


# The deterministic layout of CONF (RFC 7422, docs/config.md): index i gets
# pool[i % 16] and the i // 16-th block of 2048 ports from 1024; the first
# 512 serve PCP, the rest NAPT (PEER).
POOL = ipaddress.ip_network("203.0.113.0/28")
PORT_MIN, BLOCK, PCP_PORTS = 1024, 2048, 512


class Sub:
    def __init__(self, index, addr=None):
        self.index = index
        self.addr = addr                      # the B4 address (plain mode)
        self.ext = "::ffff:%s" % POOL[index % POOL.num_addresses]
        self.lo = PORT_MIN + (index // POOL.num_addresses) * BLOCK
        self.pcp = range(self.lo, self.lo + PCP_PORTS)
        self.napt = range(self.lo + PCP_PORTS, self.lo + BLOCK)


SUB = {"b4a": Sub(300), "b4b": Sub(301)}
_next_b4 = [0x40]
BLOCK2_B4 = 0x2f      # index 47: block 2 = ports 5120..7167, PCP part holds 5350/5351


def fresh_b4(lab=None, index=None):
    """A B4 nobody else uses: a new /64 inside b4-prefixes (a derived
    subscriber whose index is the /64 number), on b4a's link. Tests that
    leave state behind (a PEER mapping cannot be deleted) or need a
    known-free port use one, so they never eat b4a's or b4b's quota."""
    if index is None:
        i = _next_b4[0]
        _next_b4[0] += 1
    else:
        i = index
    assert i < 0x100
    addr = "2001:db8:100:%x::1" % i
    lab = lab or LAB
    lab.ip("b4a", "addr", "add", addr + "/64", "dev", "eth0", "nodad")
    lab.ip("aftr", "-6", "route", "add", "2001:db8:100:%x::/64" % i, "dev", "sw-a")
    settle(lab)
    return Sub(i, addr)


def settle(lab, timeout=5):
    """Waits until the link-local addresses of a new lab have passed DAD: before
    that the AFTR cannot send a neighbour solicitation for a new B4 address and
    the first reply waits a second for the retransmission."""
    deadline = time.time() + timeout
    for ns, dev in (("aftr", "sw-a"), ("b4a", "eth0")):
        while lab.ip(ns, "-6", "addr", "show", "dev", dev, "tentative").stdout.strip():
            if time.time() > deadline:
                break
            time.sleep(0.05)


def expect_silence(sock, wait=0.5):
    sock.settimeout(wait)
    try:
        data = sock.recv(2000)
    except socket.timeout:
        return
    finally:
        sock.settimeout(2)
    raise AssertionError("unexpected datagram: %r" % data[:32])


def pcp_bytes(opcode, client, body=b"", lifetime=0):
    return bytes(PCPRequest(opcode=opcode, lifetime=lifetime, client=v6(client))) + bytes(body)


def codes(body):
    return [o.code for o in body.options]


class Base(unittest.TestCase):
    def setUp(self):
        self.clients = []

    def tearDown(self):
        for c in self.clients:
            c.close()

    def client(self, ns="b4a", family=6, src=None, port=0, lab=None):
        c = Client(ns, family, src, port, lab)
        self.clients.append(c)
        return c

    def fresh(self, lab=None, index=None):
        """A plain-mode client that is a subscriber of its own (see fresh_b4)."""
        b4 = fresh_b4(lab, index)
        return self.client("b4a", 6, b4.addr, lab=lab), b4


class TestFraming(Base):
    def test_s8_2_short_dropped(self):
        """§8.2: under 2 octets -> silently dropped"""
        self.client().send_raw(b"\x02", expect=False)

    def test_s8_2_r_bit_dropped(self):
        """§8.2: R bit set -> silently dropped"""
        c = self.client()
        raw = bytearray(bytes(PCPRequest(opcode=0, lifetime=0, client=v6(c.src)) / AnnounceData()))
        raw[1] |= 0x80
        c.send_raw(bytes(raw), expect=False)

    def test_s8_2_unsupp_version_before_length(self):
        """§8.2/§9: version 1 and 3 -> UNSUPP_VERSION even when short; reply says version 2"""
        c = self.client()
        for data in (b"\x01\x00", b"\x03\x01" + b"\0" * 30):
            raw = c.send_raw(data)
            h = parse_response(raw)[0]
            self.assertEqual(h.result, R["UNSUPP_VERSION"])
            self.assertEqual(h.version, 2)
            self.assertGreaterEqual(len(raw), 24)
            self.assertEqual(len(raw) % 4, 0)

    def test_s8_2_under_24_dropped(self):
        """§8.2: supported version under 24 octets -> silently dropped"""
        self.client().send_raw(b"\x02\x00" + b"\0" * 20, expect=False)

    def test_s8_2_length_rules(self):
        """§8.2: >1100, not multiple of 4, too short for opcode -> MALFORMED_REQUEST"""
        c = self.client()
        base = bytes(PCPRequest(opcode=1, client=v6(c.src)) / MAPData())
        for data in (base + b"\0" * (1104 - len(base)), base + b"\0" * 2, base[:56]):
            raw = c.send_raw(data)
            h = parse_response(raw)[0]
            self.assertEqual(h.result, R["MALFORMED_REQUEST"], len(data))
            self.assertLessEqual(len(raw), 1100)
            # §7.2: not parsed -> reserved 96 bits copied from the client address
            self.assertEqual(raw[12:24], data[12:24])

    def test_s8_2_unsupp_opcode(self):
        """§8.2: unknown opcode -> UNSUPP_OPCODE, payload copied as is"""
        c = self.client()
        data = bytes(PCPRequest(opcode=9, client=v6(c.src))) + b"\xab" * 16
        raw = c.send_raw(data)
        self.assertEqual(parse_response(raw)[0].result, R["UNSUPP_OPCODE"])
        self.assertEqual(raw[24:], data[24:])

    def test_s8_2_address_mismatch(self):
        """§8.2: client address field != source -> ADDRESS_MISMATCH (also ANNOUNCE, §14.1.1)"""
        c = self.client()
        h, _, _ = c.request(0, AnnounceData(), 0, client="2001:db8:100:a::99")
        self.assertEqual(h.result, R["ADDRESS_MISMATCH"])
        body = MAPData(options=[opt_third_party(HOST)])
        h, _, _ = c.request(1, body, 3600, client="2001:db8:100:a::99")
        self.assertEqual(h.result, R["ADDRESS_MISMATCH"])

    def test_s7_2_response_header(self):
        """§7.2: version 2, R set, opcode copied, epoch present"""
        c = self.client()
        h, _, raw = c.request(0, AnnounceData(), 0)
        self.assertEqual((raw[0], raw[1]), (2, 0x80))
        self.assertEqual(h.result, 0)
        self.assertEqual(h.lifetime, 0)
        self.assertEqual(raw[12:24], b"\0" * 12)


class TestMap(Base):
    def test_s11_plain_mode_third_party(self):
        """§11.3/§13.1: B4 maps its host with THIRD_PARTY; mapping is on the pool"""
        c = self.client()
        h, b, _ = c.map(port=8080, tp=HOST, nonce=b"A" * 12)
        self.assertEqual(h.result, 0)
        self.assertTrue(b.ext_addr.startswith("::ffff:203.0.113."))
        self.assertGreaterEqual(b.ext_port, 1024)
        self.assertEqual(h.lifetime, 3600)
        self.assertEqual(b.options[0].code, 1)   # THIRD_PARTY echoed
        c.map(port=8080, tp=HOST, nonce=b"A" * 12, lifetime=0)

    def test_overlapping_subscribers_independent(self):
        """RFC 6333 §6.6: two B4s, same private address, independent mappings"""
        a, b = self.client("b4a"), self.client("b4b")
        ha, ma, _ = a.map(port=81, tp=HOST, nonce=b"a" * 12)
        hb, mb, _ = b.map(port=81, tp=HOST, nonce=b"b" * 12)
        self.assertEqual((ha.result, hb.result), (0, 0))
        self.assertNotEqual((ma.ext_addr, ma.ext_port), (mb.ext_addr, mb.ext_port))
        # b4b cannot delete or take over b4a's mapping: its request only ever
        # reaches its own subscriber's table
        hd, _, _ = b.map(port=81, tp=HOST, nonce=b"b" * 12, lifetime=0)
        self.assertEqual(hd.result, 0)
        h2, m2, _ = a.map(port=81, tp=HOST, nonce=b"a" * 12)
        self.assertEqual((h2.result, m2.ext_port), (0, ma.ext_port))
        a.map(port=81, tp=HOST, nonce=b"a" * 12, lifetime=0)

    def test_encapsulated_mode(self):
        """DS-Lite encapsulated mode: IPv4 host in the softwire, subscriber from the interface"""
        c4 = self.client("b4a", 4)
        h, b, _ = c4.map(port=82, nonce=b"E" * 12)
        self.assertEqual(h.result, 0)
        # the same subscriber over plain mode sees the same mapping (same nonce -> refresh)
        c6 = self.client("b4a")
        h6, b6, _ = c6.map(port=82, tp=HOST, nonce=b"E" * 12)
        self.assertEqual((h6.result, b6.ext_port), (0, b.ext_port))
        c4.map(port=82, nonce=b"E" * 12, lifetime=0)

    def test_s11_3_renewal_same_port(self):
        """§11.4: an identical MAP renews and returns the same external port"""
        c = self.client()
        _, b1, _ = c.map(port=83, tp=HOST, nonce=b"R" * 12)
        _, b2, _ = c.map(port=83, tp=HOST, nonce=b"R" * 12, sugg_port=60000)
        self.assertEqual(b1.ext_port, b2.ext_port)
        c.map(port=83, tp=HOST, nonce=b"R" * 12, lifetime=0)

    def test_s11_3_nonce_mismatch(self):
        """§11.3: other nonce -> NOT_AUTHORIZED with the mapping's remaining lifetime"""
        c = self.client()
        c.map(port=84, tp=HOST, nonce=b"N" * 12, lifetime=1000)
        h, _, _ = c.map(port=84, tp=HOST, nonce=b"X" * 12)
        self.assertEqual(h.result, R["NOT_AUTHORIZED"])
        self.assertTrue(990 <= h.lifetime <= 1000, h.lifetime)
        h, _, _ = c.map(port=84, tp=HOST, nonce=b"X" * 12, lifetime=0)
        self.assertEqual(h.result, R["NOT_AUTHORIZED"])
        c.map(port=84, tp=HOST, nonce=b"N" * 12, lifetime=0)

    def test_s15_1_delete(self):
        """§15.1: delete -> SUCCESS lifetime 0, suggested fields copied; non-existent -> SUCCESS"""
        c = self.client()
        c.map(port=85, tp=HOST, nonce=b"D" * 12)
        h, b, _ = c.map(port=85, tp=HOST, nonce=b"D" * 12, lifetime=0, sugg_port=4321,
                        sugg_addr="192.0.2.9")
        self.assertEqual((h.result, h.lifetime, b.ext_port, b.ext_addr),
                         (0, 0, 4321, "::ffff:192.0.2.9"))
        h, _, _ = c.map(port=85, tp=HOST, nonce=b"D" * 12, lifetime=0)
        self.assertEqual(h.result, 0)

    def test_s11_3_unsupp_protocol(self):
        """§11.3: all-ports, DMZ and unsupported protocols -> UNSUPP_PROTOCOL; proto 0 + port -> MALFORMED_REQUEST"""
        c = self.client()
        self.assertEqual(c.map(port=0, tp=HOST)[0].result, R["UNSUPP_PROTOCOL"])
        self.assertEqual(c.map(port=0, proto=0, tp=HOST)[0].result, R["UNSUPP_PROTOCOL"])
        self.assertEqual(c.map(port=80, proto=132, tp=HOST)[0].result, R["UNSUPP_PROTOCOL"])
        self.assertEqual(c.map(port=80, proto=0, tp=HOST)[0].result, R["MALFORMED_REQUEST"])

    def test_s11_3_never_forbidden_ports(self):
        """§11.3: never external UDP 5350/5351 or ports below 1024, even when suggested"""
        c = self.client()
        for sugg in (5350, 5351, 80, 1023):
            h, b, _ = c.map(port=86, proto=UDP, tp=HOST, nonce=b"F" * 12, sugg_port=sugg)
            self.assertEqual(h.result, 0)
            self.assertNotIn(b.ext_port, (5350, 5351))
            self.assertGreaterEqual(b.ext_port, 1024)
            c.map(port=86, proto=UDP, tp=HOST, nonce=b"F" * 12, lifetime=0)

    def test_s15_lifetime_clamped(self):
        """§15: lifetime clamped to [min, max] (120 s .. 24 h)"""
        c = self.client()
        h, _, _ = c.map(port=87, tp=HOST, nonce=b"L" * 12, lifetime=5)
        self.assertEqual(h.lifetime, 120)
        h, _, _ = c.map(port=87, tp=HOST, nonce=b"L" * 12, lifetime=10 ** 9)
        self.assertEqual(h.lifetime, 86400)
        c.map(port=87, tp=HOST, nonce=b"L" * 12, lifetime=0)

    def test_s11_3_suggested_port_honoured(self):
        """§11.3: a free suggested port in the subscriber's PCP range is used"""
        c = self.client()
        _, b1, _ = c.map(port=88, tp=HOST, nonce=b"S" * 12)
        c.map(port=88, tp=HOST, nonce=b"S" * 12, lifetime=0)
        # next-fit: the port after the one just handed out is free; the one
        # before may be held down (§15) for the previous test's mapping
        pcp = SUB["b4a"].pcp
        want = b1.ext_port + 1 if b1.ext_port + 1 in pcp else pcp[0]
        _, b2, _ = c.map(port=89, tp=HOST, nonce=b"T" * 12, sugg_port=want)
        self.assertEqual(b2.ext_port, want)
        c.map(port=89, tp=HOST, nonce=b"T" * 12, lifetime=0)

    def test_s13_2_prefer_failure(self):
        """§13.2: PREFER_FAILURE with an unavailable port -> CANNOT_PROVIDE_EXTERNAL; port 0 -> MALFORMED_OPTION"""
        c = self.client()
        h, _, _ = c.map(port=90, tp=HOST, sugg_port=80, options=[opt_prefer_failure()])
        self.assertEqual(h.result, R["CANNOT_PROVIDE_EXTERNAL"])
        h, _, _ = c.map(port=90, tp=HOST, sugg_port=0, options=[opt_prefer_failure()])
        self.assertEqual(h.result, R["MALFORMED_OPTION"])

    def test_s13_1_third_party_is_source(self):
        """§13.1: THIRD_PARTY naming the packet source -> MALFORMED_REQUEST"""
        c = self.client()
        h, _, _ = c.map(port=91, tp=c.src)
        self.assertEqual(h.result, R["MALFORMED_REQUEST"])

    def test_third_party_outside_softwire(self):
        """DS-Lite: THIRD_PARTY may only name internal (private) addresses -> NOT_AUTHORIZED"""
        c = self.client()
        h, _, _ = c.map(port=92, tp="198.51.100.1")
        self.assertEqual(h.result, R["NOT_AUTHORIZED"])

    def test_outside_b4_prefixes(self):
        """§13.1: THIRD_PARTY from a host that is not authorized for it (outside every B4
        prefix) -> UNSUPP_OPTION (MUST); its requests without THIRD_PARTY -> NOT_AUTHORIZED
        (§7.4: disabled for this client)"""
        c = self.client("b4a", 6, "2001:db8:200::1")
        h, _, _ = c.map(port=93, tp=HOST)
        self.assertEqual(h.result, R["UNSUPP_OPTION"])
        h, _, _ = c.map(port=93)
        self.assertEqual(h.result, R["NOT_AUTHORIZED"])

    def test_s7_3_unknown_options(self):
        """§7.3: unknown mandatory -> UNSUPP_OPTION; unknown optional ignored and not echoed"""
        c = self.client()
        h, _, _ = c.map(port=94, tp=HOST, options=[PCPOption(code=99, data=b"xx")])
        self.assertEqual(h.result, R["UNSUPP_OPTION"])
        h, b, _ = c.map(port=94, tp=HOST, nonce=b"U" * 12,
                        options=[PCPOption(code=200, data=b"xx")])
        self.assertEqual(h.result, 0)
        self.assertEqual([o.code for o in b.options], [1])
        c.map(port=94, tp=HOST, nonce=b"U" * 12, lifetime=0)

    def test_s7_3_duplicate_option(self):
        """§7.3: THIRD_PARTY twice -> MALFORMED_OPTION; error response is a full copy"""
        c = self.client()
        body = MAPData(options=[opt_third_party(HOST), opt_third_party(HOST)])
        h, _, raw = c.request(1, body)
        self.assertEqual(h.result, R["MALFORMED_OPTION"])
        self.assertEqual(len(raw), 24 + 36 + 2 * 20)

    def test_s13_3_filter(self):
        """§13.3: FILTER stored and echoed; over the limit -> EXCESSIVE_REMOTE_PEERS; no state change"""
        c = self.client()
        fl = [opt_filter("198.51.100.%d" % i, 128) for i in range(1, 4)]
        h, b, _ = c.map(port=95, tp=HOST, nonce=b"Q" * 12, options=fl)
        self.assertEqual(h.result, 0)
        self.assertEqual([o.code for o in b.options], [1, 3, 3, 3])
        more = [opt_filter("198.51.100.%d" % i, 128) for i in range(10, 12)]
        h, _, _ = c.map(port=95, tp=HOST, nonce=b"Q" * 12, options=more)
        self.assertEqual(h.result, R["EXCESSIVE_REMOTE_PEERS"])
        # prefix 0 clears, then new filters fit
        h, _, _ = c.map(port=95, tp=HOST, nonce=b"Q" * 12,
                        options=[opt_filter("0.0.0.0", 0)] + more)
        self.assertEqual(h.result, 0)
        h, _, _ = c.map(port=95, tp=HOST, nonce=b"Q" * 12, options=[opt_filter("198.51.100.1", 90)])
        self.assertEqual(h.result, R["MALFORMED_OPTION"])
        c.map(port=95, tp=HOST, nonce=b"Q" * 12, lifetime=0)

    def test_rfc7220_description(self):
        """RFC 7220: DESCRIPTION stored and echoed (truncated to what is stored)"""
        c = self.client()
        h, b, _ = c.map(port=96, tp=HOST, nonce=b"W" * 12, options=[opt_description("web server")])
        self.assertEqual(h.result, 0)
        d = [o for o in b.options if o.code == 128]
        self.assertEqual(d[0].data, b"web server")
        c.map(port=96, tp=HOST, nonce=b"W" * 12, lifetime=0)

    def test_rfc7753_port_set_single(self):
        """RFC 7753 §4.2: single port mapped -> PORT_SET not in the response; size 0 -> MALFORMED_OPTION"""
        c = self.client()
        h, b, _ = c.map(port=97, tp=HOST, nonce=b"P" * 12, options=[opt_port_set(4, 97)])
        self.assertEqual(h.result, 0)
        self.assertNotIn(130, [o.code for o in b.options])
        h, _, _ = c.map(port=98, tp=HOST, options=[opt_port_set(0, 98)])
        self.assertEqual(h.result, R["MALFORMED_OPTION"])
        c.map(port=97, tp=HOST, nonce=b"P" * 12, lifetime=0)

    def test_quota(self):
        """§11.3/§17.2: more than max-mappings -> USER_EX_QUOTA, other subscriber unaffected"""
        c = self.client()
        made = []
        res = None
        for p in range(2000, 2020):
            h, _, _ = c.map(port=p, tp=HOST, nonce=b"Z" * 12)
            if h.result != 0:
                res = h
                break
            made.append(p)
        self.assertIsNotNone(res)
        self.assertEqual(res.result, R["USER_EX_QUOTA"])
        self.assertEqual(res.lifetime, 30)
        self.assertLessEqual(len(made), 8)
        other = self.client("b4b")
        self.assertEqual(other.map(port=2000, tp=HOST, nonce=b"Z" * 12)[0].result, 0)
        other.map(port=2000, tp=HOST, nonce=b"Z" * 12, lifetime=0)
        for p in made:
            c.map(port=p, tp=HOST, nonce=b"Z" * 12, lifetime=0)


class TestPeer(Base):
    def test_s12_peer_create_and_refresh(self):
        """§12.3: PEER creates an outbound mapping; refresh keeps the port; cannot shorten"""
        c = self.client()
        h, b, _ = c.peer(port=5001, tp=HOST, lifetime=1000)
        self.assertEqual(h.result, 0)
        self.assertEqual(b.peer_port, 443)
        h2, b2, _ = c.peer(port=5001, tp=HOST, lifetime=0)
        self.assertEqual((h2.result, b2.ext_port), (0, b.ext_port))
        self.assertGreaterEqual(h2.lifetime, 990)

    def test_s12_1_peer_prefer_failure(self):
        """§12.1: PEER with PREFER_FAILURE -> MALFORMED_REQUEST"""
        c = self.client()
        h, _, _ = c.peer(port=5002, tp=HOST, options=[opt_prefer_failure()])
        self.assertEqual(h.result, R["MALFORMED_REQUEST"])

    def test_s12_3_peer_invalid(self):
        """§12.1/§12.3: zero ports or an invalid remote peer -> MALFORMED_REQUEST"""
        c = self.client()
        self.assertEqual(c.peer(port=0, tp=HOST)[0].result, R["MALFORMED_REQUEST"])
        self.assertEqual(c.peer(port=5003, tp=HOST, peer=("127.0.0.1", 80))[0].result,
                         R["MALFORMED_REQUEST"])

    def test_s12_3_peer_nonce(self):
        """§12.3: PEER refresh with another nonce -> NOT_AUTHORIZED"""
        c = self.client()
        c.peer(port=5004, tp=HOST, nonce=b"1" * 12)
        h, _, _ = c.peer(port=5004, tp=HOST, nonce=b"2" * 12)
        self.assertEqual(h.result, R["NOT_AUTHORIZED"])

    def test_s15_1_map_cannot_delete_outbound(self):
        """§15.1: MAP delete of an outbound (PEER) mapping -> NOT_AUTHORIZED"""
        c = self.client()
        c.peer(port=5005, tp=HOST, nonce=b"3" * 12)
        h, _, _ = c.map(port=5005, tp=HOST, nonce=b"3" * 12, lifetime=0)
        self.assertEqual(h.result, R["NOT_AUTHORIZED"])

    def test_s11_3_map_over_peer_replicates_port(self):
        """§11.3 item 4: MAP over an outbound mapping replicates its external port"""
        c = self.client()
        _, p, _ = c.peer(port=5006, tp=HOST, nonce=b"4" * 12)
        h, m, _ = c.map(port=5006, tp=HOST, nonce=b"4" * 12)
        self.assertEqual((h.result, m.ext_port), (0, p.ext_port))
        c.map(port=5006, tp=HOST, nonce=b"4" * 12, lifetime=0)


class TestAnnounceAndNatpmp(Base):
    def test_s14_1_announce(self):
        """§14.1.1: ANNOUNCE -> SUCCESS, lifetime 0, epoch increasing"""
        c = self.client("b4b", 4)
        h1, _, _ = c.request(0, AnnounceData(), 0)
        self.assertEqual((h1.result, h1.lifetime), (0, 0))
        import time
        time.sleep(1.1)
        h2, _, _ = c.request(0, AnnounceData(), 0)
        self.assertGreater(h2.epoch, h1.epoch)

    def test_rfc6886_natpmp(self):
        """RFC 6886: NAT-PMP map over IPv4 in the softwire, same engine"""
        c = self.client("b4b", 4)
        raw = c.send_raw(bytes(NATPMPMap(opcode=2, int_port=8081, lifetime=600)))
        self.assertEqual(len(raw), 16)
        self.assertEqual(raw[0:4], b"\x00\x82\x00\x00")
        ext = int.from_bytes(raw[10:12], "big")
        self.assertGreaterEqual(ext, 1024)
        raw = c.send_raw(b"\x00\x00")
        self.assertEqual(len(raw), 12)
        self.assertTrue(raw[8:12].startswith(bytes([203, 0, 113])))
        raw = c.send_raw(bytes(NATPMPMap(opcode=2, int_port=8081, lifetime=0)))
        self.assertEqual(raw[2:4], b"\x00\x00")

    def test_unknown_softwire_ignored(self):
        """§8.2: an IPv4 request from an interface that is no softwire is silently ignored"""
        s = LAB.socket("aftr", 4, "127.0.0.1")
        s.settimeout(0.5)
        req = bytes(PCPRequest(opcode=0, lifetime=0, client=v6("127.0.0.1")) / AnnounceData())
        s.sendto(req, (netlab.AFTR_V4, 5351))
        with self.assertRaises(socket.timeout):
            s.recv(2000)
        s.close()


# ---------------------------------------------------------------------------
# More rules of spec §1, one test each. Tests that leave state behind (PEER
# mappings cannot be deleted) or need known-free ports run as fresh
# subscribers (fresh_b4), so b4a's and b4b's quotas stay untouched.


class TestErrors(Base):
    """Error responses: §7.2, §7.3, §7.4, §8.2, §9."""

    def test_s7_2_error_reserved_zero_when_parsed(self):
        """§7.2: an error for a request that was parsed has the 96 reserved bits zero
        (the B4 address tail is not zero, so a copy would show)"""
        c = self.client()
        data = pcp_bytes(1, c.src, MAPData(options=[opt_third_party(HOST),
                                                    PCPOption(code=99, data=b"zz")]), 3600)
        self.assertNotEqual(data[12:24], bytes(12))
        raw = c.send_raw(data)
        self.assertEqual(parse_response(raw)[0].result, R["UNSUPP_OPTION"])
        self.assertEqual(raw[12:24], bytes(12))

    def test_s7_3_error_is_complete_copy(self):
        """§7.3/§8.2/§11.1: an error response is the whole request, every option included,
        with version 2, R set, the 8 reserved bits 0 (§7.2) even when the request's were
        not, and the suggested port and address copied back"""
        c = self.client()
        body = MAPData(nonce=b"C" * 12, int_port=7001, ext_port=4444,
                       ext_addr=v6("192.0.2.44"),
                       options=[opt_third_party(HOST), PCPOption(code=200, data=b"opt"),
                                PCPOption(code=99, data=b"mandatory")])
        data = bytearray(pcp_bytes(1, c.src, body, 3600))
        data[2] = data[3] = 0xff          # the request's 16 reserved bits
        raw = c.send_raw(bytes(data))
        self.assertEqual(len(raw), len(data))
        self.assertEqual(tuple(raw[0:4]), (2, 0x81, 0, R["UNSUPP_OPTION"]))
        self.assertEqual(raw[24:], bytes(data[24:]))
        _, b = parse_response(raw)
        self.assertEqual((b.nonce, b.int_port, b.ext_port, b.ext_addr),
                         (b"C" * 12, 7001, 4444, "::ffff:192.0.2.44"))
        self.assertEqual(codes(b), [1, 200, 99])

    def test_s7_4_long_error_lifetimes(self):
        """§7.4: long-lifetime errors carry 30 minutes (UNSUPP_VERSION, NOT_AUTHORIZED,
        MALFORMED_REQUEST, UNSUPP_OPCODE, UNSUPP_OPTION, MALFORMED_OPTION, UNSUPP_PROTOCOL,
        ADDRESS_MISMATCH, EXCESSIVE_REMOTE_PEERS)"""
        c = self.client()
        tp = [opt_third_party(HOST)]
        cases = [
            ("UNSUPP_VERSION", b"\x03\x01" + bytes(22)),
            ("MALFORMED_REQUEST", pcp_bytes(1, c.src, MAPData(), 3600)[:56]),
            ("UNSUPP_OPCODE", pcp_bytes(9, c.src)),
            ("UNSUPP_OPTION", pcp_bytes(1, c.src, MAPData(options=tp + [PCPOption(code=99)]),
                                        3600)),
            ("MALFORMED_OPTION", pcp_bytes(1, c.src, MAPData(options=tp + tp), 3600)),
            ("UNSUPP_PROTOCOL", pcp_bytes(1, c.src, MAPData(proto=132, options=tp), 3600)),
            ("ADDRESS_MISMATCH", pcp_bytes(1, "2001:db8:100:a::77", MAPData(options=tp), 3600)),
            ("NOT_AUTHORIZED", pcp_bytes(1, c.src, MAPData(options=[
                opt_third_party("198.51.100.1")]), 3600)),
            ("EXCESSIVE_REMOTE_PEERS", pcp_bytes(1, c.src, MAPData(options=tp + [
                opt_filter("198.51.100.%d" % i, 128) for i in range(1, 7)]), 3600)),
        ]
        for name, data in cases:
            h = parse_response(c.send_raw(data))[0]
            self.assertEqual((h.result, h.lifetime), (R[name], 1800), name)

    def test_s8_2_address_mismatch_ipv4(self):
        """§8.2/§5: an encapsulated IPv4 request whose client field is another IPv4 address,
        or its own address in a form that is not IPv4-mapped (all 96 bits are checked)
        -> ADDRESS_MISMATCH"""
        c = self.client("b4a", 4)
        for field in ("::ffff:192.168.1.3", "::192.168.1.2", "::1:ffff:192.168.1.2"):
            raw = c.send_raw(pcp_bytes(0, field))
            self.assertEqual(parse_response(raw)[0].result, R["ADDRESS_MISMATCH"], field)

    def test_s9_natpmp_address_request_from_ipv6(self):
        """§8.2/§9/Appendix A, RFC 6886: NAT-PMP is IPv4 only; a 2-octet version 0 request
        from a B4's IPv6 address -> PCP UNSUPP_VERSION naming version 2, padded to 24 octets"""
        c = self.client()
        raw = c.send_raw(b"\x00\x00")
        self.assertEqual(len(raw), 24)
        h = parse_response(raw)[0]
        self.assertEqual((h.version, h.r, h.result, h.lifetime),
                         (2, 1, R["UNSUPP_VERSION"], 1800))

    def test_s9_natpmp_map_from_ipv6_not_served(self):
        """§9, RFC 6886: a NAT-PMP mapping request over IPv6 -> PCP UNSUPP_VERSION
        (version 2), and no mapping is made"""
        c = self.client()
        raw = c.send_raw(bytes(NATPMPMap(opcode=2, int_port=7002, lifetime=600)))
        self.assertEqual(len(raw), 24)
        h = parse_response(raw)[0]
        self.assertEqual((h.version, h.result), (2, R["UNSUPP_VERSION"]))
        # served, it would have given b4a's host TCP 7002 under the NAT-PMP nonce
        h, _, _ = c.map(port=7002, tp=HOST, nonce=b"q" * 12)
        self.assertEqual(h.result, 0)
        c.map(port=7002, tp=HOST, nonce=b"q" * 12, lifetime=0)


    def test_s8_3_reply_from_request_destination(self):
        """§8.3/§8.2: clients drop responses that do not come from the address and port they
        sent to; pcpd answers from the request's destination, over IPv6 and IPv4"""
        for c in (self.client(), self.client("b4b", 4)):
            c.sock.sendto(pcp_bytes(0, c.src), c.server)
            raw, src = c.sock.recvfrom(2000)
            self.assertEqual(parse_response(raw)[0].result, 0)
            self.assertEqual((ipaddress.ip_address(src[0]), src[1]),
                             (ipaddress.ip_address(c.server[0]), 5351))


class TestIsolation(Base):
    """RFC 6333 §6.6: subscribers share private addresses but nothing else."""

    def test_rfc6333_other_b4_cannot_delete(self):
        """§15.1/RFC 6333 §6.6: b4b's IPv4 host (same address, same nonce) deleting
        192.168.1.2:7010 gets SUCCESS for its own, empty, table; b4a's mapping stays"""
        a, b = self.client("b4a", 4), self.client("b4b", 4)
        n = b"I" * 12
        self.assertEqual(a.map(port=7010, nonce=n, lifetime=1000)[0].result, 0)
        hb, _, _ = b.map(port=7010, nonce=n, lifetime=0)
        self.assertEqual((hb.result, hb.lifetime), (0, 0))
        h, _, _ = a.map(port=7010, nonce=b"J" * 12)
        self.assertEqual(h.result, R["NOT_AUTHORIZED"])    # still b4a's
        self.assertTrue(990 <= h.lifetime <= 1000, h.lifetime)
        a.map(port=7010, nonce=n, lifetime=0)

    def test_rfc6333_reply_through_ingress_softwire(self):
        """RFC 6333 §6.6, §8.2: the answer to 192.168.1.2 behind b4b goes back through b4b's
        softwire only, although both B4s' hosts listen on the same address and port"""
        a = self.client("b4a", 4, port=40001)
        b = self.client("b4b", 4, port=40001)
        for asker, other in ((b, a), (a, b)):
            h, _, _ = asker.map(port=7011, nonce=b"K" * 12)
            self.assertEqual(h.result, 0)
            h, _, _ = asker.request(0, AnnounceData(), 0)
            self.assertEqual(h.result, 0)
            expect_silence(other.sock)
            asker.map(port=7011, nonce=b"K" * 12, lifetime=0)
            expect_silence(other.sock, 0.2)

    def test_rfc6333_peer_does_not_see_other_subscriber(self):
        """§12.3/RFC 6333 §6.6: a PEER from another B4 for the same internal endpoint (and
        nonce) gets a mapping of its own, not the first B4's external port (EIM, §11.3 item 4);
        asking for the first B4's address and port -> CANNOT_PROVIDE_EXTERNAL"""
        c1, s1 = self.fresh()
        c2, s2 = self.fresh()
        h1, m1, _ = c1.map(port=7012, tp=HOST, nonce=b"L" * 12)
        h2, p2, _ = c2.peer(port=7012, tp=HOST, nonce=b"L" * 12)
        self.assertEqual((h1.result, h2.result), (0, 0))
        self.assertEqual(p2.ext_addr, s2.ext)
        self.assertIn(p2.ext_port, s2.napt)
        self.assertNotEqual((p2.ext_addr, p2.ext_port), (m1.ext_addr, m1.ext_port))
        h3, _, _ = c2.peer(port=7013, tp=HOST, nonce=b"L" * 12, sugg_port=m1.ext_port,
                           sugg_addr=m1.ext_addr[7:])
        self.assertEqual(h3.result, R["CANNOT_PROVIDE_EXTERNAL"])
        c1.map(port=7012, tp=HOST, nonce=b"L" * 12, lifetime=0)


class TestMapRules(Base):
    """MAP: §11.1, §11.3, §13.2, §13.3, §15.1."""

    def test_s11_1_response_fields_rfc7422_block(self):
        """§11.1: a MAP success copies nonce, protocol and internal port; the external address
        and port are the subscriber's own (RFC 7422 deterministic address, PCP part of its block)"""
        for ns in ("b4a", "b4b"):
            c = self.client(ns)
            h, b, _ = c.map(port=7020, proto=UDP, tp=HOST, nonce=b"F" * 12)
            self.assertEqual(h.result, 0)
            self.assertEqual((b.nonce, b.proto, b.int_port), (b"F" * 12, UDP, 7020))
            self.assertEqual(b.ext_addr, SUB[ns].ext)
            self.assertIn(b.ext_port, SUB[ns].pcp)
            c.map(port=7020, proto=UDP, tp=HOST, nonce=b"F" * 12, lifetime=0)

    def test_s11_3_protocols_independent(self):
        """§11.3: a MAP for UDP creates no TCP mapping: TCP for the same internal port is
        independent (another nonce gets a mapping of its own) and deleting it leaves UDP"""
        c = self.client()
        hu, bu, _ = c.map(port=7021, proto=UDP, tp=HOST, nonce=b"u" * 12)
        self.assertEqual(hu.result, 0)
        ht, bt, _ = c.map(port=7021, proto=TCP, tp=HOST, nonce=b"t" * 12)
        self.assertEqual(ht.result, 0)
        self.assertEqual(c.map(port=7021, proto=TCP, tp=HOST, nonce=b"t" * 12,
                               lifetime=0)[0].result, 0)
        h, _, _ = c.map(port=7021, proto=UDP, tp=HOST, nonce=b"x" * 12)
        self.assertEqual(h.result, R["NOT_AUTHORIZED"])      # UDP is still there
        c.map(port=7021, proto=UDP, tp=HOST, nonce=b"u" * 12, lifetime=0)

    def test_s11_3_udp_5350_5351_inside_block(self):
        """§11.3: never external UDP 5350/5351, even when they lie inside the subscriber's PCP
        range and are suggested: another port without PREFER_FAILURE, CANNOT_PROVIDE_EXTERNAL
        with it; TCP 5351 is an ordinary port"""
        c, s = self.fresh(index=BLOCK2_B4)
        self.assertIn(5350, s.pcp)
        for i, port in enumerate((5350, 5351)):
            n = bytes([0x30 + i]) * 12
            h, b, _ = c.map(port=7090 + i, proto=UDP, tp=HOST, nonce=n, sugg_port=port)
            self.assertEqual(h.result, 0)
            self.assertNotIn(b.ext_port, (5350, 5351))
            self.assertIn(b.ext_port, s.pcp)
            h, _, _ = c.map(port=7092 + i, proto=UDP, tp=HOST, nonce=n, sugg_port=port,
                            options=[opt_prefer_failure()])
            self.assertEqual(h.result, R["CANNOT_PROVIDE_EXTERNAL"])
        h, b, _ = c.map(port=7094, proto=TCP, tp=HOST, nonce=b"5" * 12, sugg_port=5351)
        self.assertEqual((h.result, b.ext_port), (0, 5351))

    def test_s11_3_nonce_mismatch_delete_lifetime(self):
        """§11.3/§15.1: a delete with another nonce -> NOT_AUTHORIZED whose lifetime is the
        mapping's remaining lifetime; the mapping stays"""
        c = self.client()
        c.map(port=7022, tp=HOST, nonce=b"N" * 12, lifetime=700)
        h, _, _ = c.map(port=7022, tp=HOST, nonce=b"X" * 12, lifetime=0)
        self.assertEqual(h.result, R["NOT_AUTHORIZED"])
        self.assertTrue(690 <= h.lifetime <= 700, h.lifetime)
        h, _, _ = c.map(port=7022, tp=HOST, nonce=b"X" * 12)
        self.assertEqual(h.result, R["NOT_AUTHORIZED"])
        c.map(port=7022, tp=HOST, nonce=b"N" * 12, lifetime=0)

    def test_s11_3_prefer_failure_existing_mapping(self):
        """§13.2/§11.3 item 1/§7.3: PREFER_FAILURE with a free port -> that port, option
        echoed; then a different suggested port or address -> CANNOT_PROVIDE_EXTERNAL with no
        state change; the same suggestion -> SUCCESS"""
        c, s = self.fresh()
        want = s.pcp[100]
        pf = [opt_prefer_failure()]
        h, b, _ = c.map(port=7023, tp=HOST, nonce=b"M" * 12, sugg_port=want, options=pf)
        self.assertEqual((h.result, b.ext_addr, b.ext_port), (0, s.ext, want))
        self.assertEqual(codes(b), [1, 2])
        other = str(POOL[(s.index + 1) % POOL.num_addresses])
        for port, addr in ((want + 1, s.ext[7:]), (want, other)):
            h, b, _ = c.map(port=7023, tp=HOST, nonce=b"M" * 12, sugg_port=port,
                            sugg_addr=addr, options=pf)
            self.assertEqual(h.result, R["CANNOT_PROVIDE_EXTERNAL"], (port, addr))
            self.assertEqual(b.ext_port, port)
        h, b, _ = c.map(port=7023, tp=HOST, nonce=b"M" * 12, sugg_port=want,
                        sugg_addr=s.ext[7:], options=pf)
        self.assertEqual((h.result, b.ext_port), (0, want))
        h, b, _ = c.map(port=7023, tp=HOST, nonce=b"M" * 12)
        self.assertEqual((h.result, b.ext_port), (0, want))
        c.map(port=7023, tp=HOST, nonce=b"M" * 12, lifetime=0)

    def test_s11_3_suggested_address_not_ours(self):
        """§11.3: a suggested external address that is not the subscriber's cannot be honoured:
        without PREFER_FAILURE another is assigned (the client is not penalized), with it
        -> CANNOT_PROVIDE_EXTERNAL"""
        c, s = self.fresh()
        h, b, _ = c.map(port=7024, tp=HOST, nonce=b"O" * 12, sugg_addr="192.0.2.1",
                        sugg_port=s.pcp[5])
        self.assertEqual((h.result, b.ext_addr), (0, s.ext))
        h, _, _ = c.map(port=7025, tp=HOST, nonce=b"O" * 12, sugg_addr="192.0.2.1",
                        sugg_port=s.pcp[6], options=[opt_prefer_failure()])
        self.assertEqual(h.result, R["CANNOT_PROVIDE_EXTERNAL"])
        c.map(port=7024, tp=HOST, nonce=b"O" * 12, lifetime=0)

    def test_s11_3_prefer_failure_lifetime_zero(self):
        """§11.3: PREFER_FAILURE in a delete (lifetime 0) makes no sense -> MALFORMED_OPTION;
        the mapping stays (§7.3)"""
        c = self.client()
        _, b, _ = c.map(port=7026, tp=HOST, nonce=b"P" * 12, lifetime=600)
        h, _, _ = c.map(port=7026, tp=HOST, nonce=b"P" * 12, lifetime=0, sugg_port=b.ext_port,
                        options=[opt_prefer_failure()])
        self.assertEqual(h.result, R["MALFORMED_OPTION"])
        self.assertEqual(c.map(port=7026, tp=HOST, nonce=b"Y" * 12)[0].result,
                         R["NOT_AUTHORIZED"])
        c.map(port=7026, tp=HOST, nonce=b"P" * 12, lifetime=0)

    def test_s13_3_filter_lifetime_zero(self):
        """§13.3: a delete (lifetime 0) with FILTER -> MALFORMED_OPTION; the mapping stays"""
        c = self.client()
        c.map(port=7027, tp=HOST, nonce=b"G" * 12, lifetime=600)
        h, _, _ = c.map(port=7027, tp=HOST, nonce=b"G" * 12, lifetime=0,
                        options=[opt_filter("198.51.100.1", 128)])
        self.assertEqual(h.result, R["MALFORMED_OPTION"])
        self.assertEqual(c.map(port=7027, tp=HOST, nonce=b"Y" * 12)[0].result,
                         R["NOT_AUTHORIZED"])
        c.map(port=7027, tp=HOST, nonce=b"G" * 12, lifetime=0)

    def test_s13_3_filter_prefix_lengths(self):
        """§13.3: prefix length beyond 128 (IPv4-mapped or IPv6) -> MALFORMED_OPTION;
        IPv4-mapped 96 and 128 are valid"""
        c = self.client()
        for addr, plen in (("198.51.100.0", 129), ("2001:db8::", 129), ("198.51.100.0", 95)):
            h, _, _ = c.map(port=7028, tp=HOST, nonce=b"H" * 12,
                            options=[opt_filter(addr, plen)])
            self.assertEqual(h.result, R["MALFORMED_OPTION"], (addr, plen))
        h, b, _ = c.map(port=7028, tp=HOST, nonce=b"H" * 12,
                        options=[opt_filter("0.0.0.0", 96), opt_filter("198.51.100.1", 128, 443)])
        self.assertEqual(h.result, 0)
        self.assertEqual(codes(b), [1, 3, 3])
        c.map(port=7028, tp=HOST, nonce=b"H" * 12, lifetime=0)

    def test_s15_1_delete_special_cases(self):
        """§15.1/§11.3: protocol 0 with a port -> MALFORMED_REQUEST for a delete too; deleting
        the all-ports and DMZ mappings that do not exist -> SUCCESS, lifetime 0"""
        c = self.client()
        h, _, _ = c.map(port=80, proto=0, tp=HOST, lifetime=0)
        self.assertEqual(h.result, R["MALFORMED_REQUEST"])
        for proto in (TCP, 0):
            h, b, _ = c.map(port=0, proto=proto, tp=HOST, lifetime=0)
            self.assertEqual((h.result, h.lifetime, b.proto, b.int_port), (0, 0, proto, 0))

    def test_s5_third_party_not_ipv4_mapped(self):
        """§5/§13.1: THIRD_PARTY naming an IPv6 address, or one that is not IPv4-mapped in all
        of its first 96 bits -> NOT_AUTHORIZED (an AFTR maps IPv4 hosts only)"""
        c = self.client()
        for tp in ("2001:db8:100:a::5", "::1:ffff:192.168.1.2", "::192.168.1.2"):
            h, _, _ = c.map(port=7029, tp=tp)
            self.assertEqual(h.result, R["NOT_AUTHORIZED"], tp)


    def test_s13_1_encapsulated_third_party(self):
        """§13.1: THIRD_PARTY from an IPv4 host naming itself -> MALFORMED_REQUEST; naming
        another host of its own softwire -> SUCCESS, for that host, option echoed"""
        c = self.client("b4b", 4)
        h, _, _ = c.map(port=7035, tp=HOST)
        self.assertEqual(h.result, R["MALFORMED_REQUEST"])
        h, b, _ = c.map(port=7035, tp="192.168.1.3", nonce=b"3" * 12)
        self.assertEqual(h.result, 0)
        self.assertEqual(b.options[0].code, 1)
        # it is 192.168.1.3's mapping: 192.168.1.2's own request for the port is independent
        h2, b2, _ = c.map(port=7035, nonce=b"4" * 12)
        self.assertEqual(h2.result, 0)
        self.assertNotEqual(b2.ext_port, b.ext_port)
        c.map(port=7035, tp="192.168.1.3", nonce=b"3" * 12, lifetime=0)
        c.map(port=7035, nonce=b"4" * 12, lifetime=0)


class TestOptionsPerOpcode(Base):
    """§7.3, §13, §14.1.1, RFC 7220, RFC 7753: which options go with which opcode."""

    def test_s13_mandatory_options_in_announce(self):
        """§13/§11.3 ("does not make sense"): THIRD_PARTY, PREFER_FAILURE or FILTER in an
        ANNOUNCE -> MALFORMED_OPTION; an unknown mandatory option -> UNSUPP_OPTION (§7.3)"""
        c = self.client()
        for opt in (opt_third_party(HOST), opt_prefer_failure(),
                    opt_filter("198.51.100.1", 128)):
            raw = c.send_raw(pcp_bytes(0, c.src, AnnounceData(options=[opt])))
            self.assertEqual(parse_response(raw)[0].result, R["MALFORMED_OPTION"], opt.code)
        raw = c.send_raw(pcp_bytes(0, c.src, AnnounceData(options=[PCPOption(code=99)])))
        self.assertEqual(parse_response(raw)[0].result, R["UNSUPP_OPTION"])

    def test_s14_1_1_announce_optional_options_ignored(self):
        """§14.1.1/§7.3: an ANNOUNCE with an unknown optional option (or DESCRIPTION, not
        valid there) -> SUCCESS, nothing echoed, lifetime 0 even when one was requested"""
        c = self.client()
        for opt in (PCPOption(code=201, data=b"abc"), opt_description("x")):
            raw = c.send_raw(pcp_bytes(0, c.src, AnnounceData(options=[opt]), lifetime=3600))
            h = parse_response(raw)[0]
            self.assertEqual((h.result, h.lifetime, len(raw)), (0, 0, 24), opt.code)

    def test_s13_filter_in_peer(self):
        """§7.3/§13: FILTER is mandatory and valid for MAP only; in a PEER -> MALFORMED_OPTION
        and no mapping (another nonce then succeeds)"""
        c, _ = self.fresh()
        h, _, _ = c.peer(port=7030, tp=HOST, nonce=b"1" * 12,
                         options=[opt_filter("198.51.100.7", 128)])
        self.assertEqual(h.result, R["MALFORMED_OPTION"])
        self.assertEqual(c.peer(port=7030, tp=HOST, nonce=b"2" * 12)[0].result, 0)

    def test_rfc7753_port_set_in_peer(self):
        """RFC 7753 §4 (PORT_SET is valid for MAP only) with RFC 6887 §7.3: it is optional
        to process, so in a PEER the server may refuse it (MALFORMED_OPTION) or ignore it,
        and then it must not be echoed"""
        c, _ = self.fresh()
        h, b, _ = c.peer(port=7031, tp=HOST, options=[opt_port_set(4, 7031)])
        self.assertIn(h.result, (0, R["MALFORMED_OPTION"]))
        if h.result == 0:
            self.assertNotIn(130, codes(b))

    def test_rfc7753_port_set_exclusions(self):
        """RFC 7753 §4.2: PORT_SET with PREFER_FAILURE (in either order) or PORT_SET twice
        -> MALFORMED_OPTION"""
        c, s = self.fresh()
        ps, pf = opt_port_set(4, 7032), opt_prefer_failure()
        for opts in ([ps, pf], [pf, ps], [ps, opt_port_set(2, 7032)]):
            h, _, _ = c.map(port=7032, tp=HOST, sugg_port=s.pcp[1], options=opts)
            self.assertEqual(h.result, R["MALFORMED_OPTION"], [o.code for o in opts])

    def test_rfc7753_port_set_checks_only_nonzero_lifetime(self):
        """RFC 7753 §4.2: the PORT_SET checks apply to a non-zero lifetime; a delete carrying
        PORT_SET with size 0 is handled as a single-port delete -> SUCCESS"""
        c = self.client()
        c.map(port=7033, tp=HOST, nonce=b"S" * 12, options=[opt_port_set(2, 7033)])
        h, b, _ = c.map(port=7033, tp=HOST, nonce=b"S" * 12, lifetime=0,
                        options=[opt_port_set(0, 7033)])
        self.assertEqual((h.result, h.lifetime), (0, 0))
        self.assertNotIn(130, codes(b))

    def test_rfc7220_description_rules(self):
        """RFC 7220 §3: invalid UTF-8 is ignored (not echoed); a long text is stored truncated
        (>= 128 octets, on a character boundary) and the stored value echoed; a refresh without
        DESCRIPTION echoes none; twice in one request -> MALFORMED_OPTION (max 1, §7.3)"""
        c = self.client()
        n = b"D" * 12
        h, b, _ = c.map(port=7034, tp=HOST, nonce=n, options=[opt_description(b"bad \xff\xfe")])
        self.assertEqual(h.result, 0)
        self.assertNotIn(128, codes(b))
        text = "a" + "\u00e9" * 150                     # 301 octets of UTF-8
        h, b, _ = c.map(port=7034, tp=HOST, nonce=n, options=[opt_description(text)])
        d = [o.data for o in b.options if o.code == 128]
        self.assertEqual(len(d), 1)
        stored = d[0]
        self.assertGreaterEqual(len(stored), 127)
        self.assertTrue(text.encode().startswith(stored))
        stored.decode("utf-8")                           # a whole number of characters
        h, b, _ = c.map(port=7034, tp=HOST, nonce=n)
        self.assertEqual(h.result, 0)
        self.assertNotIn(128, codes(b))
        h, _, _ = c.map(port=7034, tp=HOST, nonce=n,
                        options=[opt_description("a"), opt_description("b")])
        self.assertEqual(h.result, R["MALFORMED_OPTION"])
        c.map(port=7034, tp=HOST, nonce=n, lifetime=0)


    def test_rfc7220_empty_description_clears(self):
        """RFC 7220 §3: an empty DESCRIPTION erases the stored text, and the server shows it
        did so by returning the empty DESCRIPTION option"""
        c = self.client()
        n = b"d" * 12
        h, b, _ = c.map(port=7036, tp=HOST, nonce=n, options=[opt_description("printer")])
        self.assertEqual([o.data for o in b.options if o.code == 128], [b"printer"])
        try:
            h, b, _ = c.map(port=7036, tp=HOST, nonce=n, options=[opt_description(b"")])
            self.assertEqual(h.result, 0)
            self.assertEqual([o.data for o in b.options if o.code == 128], [b""])
        finally:
            c.map(port=7036, tp=HOST, nonce=n, lifetime=0)


class TestPeerRules(Base):
    """PEER: §12.1, §12.3 (fresh subscribers: PEER mappings cannot be deleted)."""

    def test_s12_3_suggestion_not_honoured(self):
        """§12.3: a PEER whose suggested external port cannot be honoured (80; the PCP part of
        the block) or whose suggested address is not the subscriber's -> CANNOT_PROVIDE_EXTERNAL
        and no state (another nonce then succeeds)"""
        c, s = self.fresh()
        for port, addr in ((80, "0.0.0.0"), (s.pcp[3], "0.0.0.0"), (s.napt[3], "192.0.2.1")):
            h, b, _ = c.peer(port=7040, tp=HOST, nonce=b"1" * 12, sugg_port=port,
                             sugg_addr=addr)
            self.assertEqual(h.result, R["CANNOT_PROVIDE_EXTERNAL"], (port, addr))
            self.assertEqual(b.ext_port, port)
        self.assertEqual(c.peer(port=7040, tp=HOST, nonce=b"2" * 12)[0].result, 0)

    def test_s12_3_suggestion_honoured_and_fields(self):
        """§12.3: a PEER with a free suggested port -> that port; the response copies protocol,
        internal port, remote peer address and port, nonce, THIRD_PARTY; DESCRIPTION may be
        ignored (RFC 7220 §3) but is then not echoed"""
        c, s = self.fresh()
        want = s.napt[10]
        h, b, _ = c.peer(port=7041, proto=UDP, tp=HOST, nonce=b"3" * 12, sugg_port=want,
                         peer=("198.51.100.9", 53), options=[opt_description("dns")])
        self.assertEqual(h.result, 0)
        self.assertEqual((b.ext_addr, b.ext_port), (s.ext, want))
        self.assertEqual((b.proto, b.int_port, b.nonce, b.peer_addr, b.peer_port),
                         (UDP, 7041, b"3" * 12, "::ffff:198.51.100.9", 53))
        self.assertEqual(b.options[0].code, 1)
        for o in b.options:
            if o.code == 128:
                self.assertEqual(o.data, b"dns")

    def test_s12_3_nonce_mismatch_lifetime(self):
        """§12.3: a PEER for an existing 5-tuple with another nonce -> NOT_AUTHORIZED whose
        lifetime is the mapping's remaining lifetime"""
        c, _ = self.fresh()
        self.assertEqual(c.peer(port=7042, tp=HOST, nonce=b"4" * 12, lifetime=800)[0].result, 0)
        h, _, _ = c.peer(port=7042, tp=HOST, nonce=b"5" * 12, lifetime=3000)
        self.assertEqual(h.result, R["NOT_AUTHORIZED"])
        self.assertTrue(790 <= h.lifetime <= 800, h.lifetime)

    def test_s10_peer_remote_family(self):
        """§10 (Figure 5): the remote peer has the internal address's family; an IPv6 remote
        peer for an IPv4 host -> MALFORMED_REQUEST (§12.3 invalid remote peer)"""
        c, _ = self.fresh()
        h, _, _ = c.peer(port=7043, tp=HOST, peer=("2001:db8:9::1", 443))
        self.assertEqual(h.result, R["MALFORMED_REQUEST"])


class TestNatpmpRules(Base):
    """NAT-PMP (RFC 6886) in encapsulated mode."""

    def test_rfc6886_unsupported_opcode(self):
        """RFC 6886 §3.5: an opcode below 128 that is not supported -> the entire request
        returned with the opcode's top bit set and result code 5"""
        c = self.client("b4b", 4)
        req = b"\x00\x07\x00\x00" + bytes(range(1, 13))
        raw = c.send_raw(req)
        self.assertEqual(raw[0:4], b"\x00\x87\x00\x05")
        self.assertGreaterEqual(len(raw), len(req))
        # octets 4..7 may carry the epoch; the rest is the request
        self.assertEqual(raw[8:len(req)], req[8:])

    def test_rfc6886_unsupported_opcode_short(self):
        """RFC 6886 §3.5: a 2-octet request with an unsupported opcode -> result code 5"""
        c = self.client("b4b", 4)
        raw = c.send_raw(b"\x00\x03")
        self.assertGreaterEqual(len(raw), 4)
        self.assertEqual(raw[0:4], b"\x00\x83\x00\x05")

    def test_rfc6886_responses_ignored(self):
        """RFC 6886 §3.5: opcode 128 or more is a response -> silently ignored"""
        c = self.client("b4b", 4)
        c.send_raw(b"\x00\x80\x00\x00" + bytes(8), expect=False)
        c.send_raw(b"\x00\x82\x00\x00" + bytes(12), expect=False)

    def test_rfc6886_only_from_softwires(self):
        """§8.2 ¶2, RFC 6886 §3: NAT-PMP from an interface that is no softwire is silently
        ignored"""
        s = LAB.socket("aftr", 4, "127.0.0.1")
        try:
            s.sendto(b"\x00\x00", (netlab.AFTR_V4, 5351))
            expect_silence(s)
            s.sendto(bytes(NATPMPMap(opcode=1, int_port=7050, lifetime=60)),
                     (netlab.AFTR_V4, 5351))
            expect_silence(s)
        finally:
            s.close()

    def test_rfc6886_udp_map_and_failure(self):
        """RFC 6886 §3.3/§3.5: a UDP map -> opcode 129 with the internal port; a failure
        (the port is a PCP client's, other nonce) -> result 2 with the internal port, external
        port and lifetime 0"""
        c = self.client("b4b", 4)
        raw = c.send_raw(bytes(NATPMPMap(opcode=1, int_port=7051, lifetime=600)))
        self.assertEqual(len(raw), 16)
        self.assertEqual(raw[0:4], b"\x00\x81\x00\x00")
        self.assertEqual(int.from_bytes(raw[8:10], "big"), 7051)
        self.assertIn(int.from_bytes(raw[10:12], "big"), SUB["b4b"].pcp)
        c.send_raw(bytes(NATPMPMap(opcode=1, int_port=7051, lifetime=0)))
        self.assertEqual(c.map(port=7052, proto=UDP, nonce=b"Q" * 12)[0].result, 0)
        raw = c.send_raw(bytes(NATPMPMap(opcode=1, int_port=7052, lifetime=600)))
        self.assertEqual(len(raw), 16)
        self.assertEqual(raw[0:4], b"\x00\x81\x00\x02")
        self.assertEqual(int.from_bytes(raw[8:10], "big"), 7052)
        self.assertEqual(raw[10:16], bytes(6))
        c.map(port=7052, proto=UDP, nonce=b"Q" * 12, lifetime=0)


    def test_rfc6886_lifetime_not_raised(self):
        """RFC 6886 §3.3: the gateway MAY reduce the requested lifetime and SHOULD NOT offer
        a longer one (PCP's minimum lifetime, RFC 6887 §15, is not NAT-PMP's rule)"""
        c = self.client("b4b", 4)
        raw = c.send_raw(bytes(NATPMPMap(opcode=2, int_port=7053, lifetime=60)))
        try:
            self.assertEqual(raw[2:4], b"\x00\x00")
            self.assertLessEqual(int.from_bytes(raw[12:16], "big"), 60)
        finally:
            c.send_raw(bytes(NATPMPMap(opcode=2, int_port=7053, lifetime=0)))


class TestEpoch(Base):
    def test_s8_5_one_epoch(self):
        """§8.5/§7.2: one epoch for ANNOUNCE, MAP success and error responses, over IPv6 and
        IPv4, and NAT-PMP's seconds since start of epoch; it never goes back and counts seconds"""
        c6, c4 = self.client(), self.client("b4b", 4)

        def sample():
            e = [c6.request(0, AnnounceData(), 0)[0].epoch]
            h, _, _ = c6.map(port=7060, tp=HOST, nonce=b"E" * 12)
            self.assertEqual(h.result, 0)
            e.append(h.epoch)
            e.append(c6.map(port=7060, tp=HOST, nonce=b"e" * 12)[0].epoch)   # error
            e.append(parse_response(c6.send_raw(b"\x01\x00"))[0].epoch)     # unsupp version
            e.append(c4.request(0, AnnounceData(), 0)[0].epoch)
            e.append(int.from_bytes(c4.send_raw(b"\x00\x00")[4:8], "big"))   # NAT-PMP
            e.append(c6.request(0, AnnounceData(), 0)[0].epoch)
            return e

        e1 = sample()
        self.assertEqual(e1, sorted(e1))
        self.assertLessEqual(e1[-1] - e1[0], 1, e1)
        time.sleep(2.2)
        e2 = sample()
        self.assertEqual(e2, sorted(e2))
        self.assertTrue(2 <= e2[0] - e1[-1] <= 3, (e1, e2))
        c6.map(port=7060, tp=HOST, nonce=b"E" * 12, lifetime=0)


# ---------------------------------------------------------------------------
# Features switched off by configuration: a second lab with its own pcpd.

CONF_OFF = CONF.replace("  state-dir", """  peer = false
  nat-pmp = false
  third-party = false
  state-dir""").replace("rate-limit = 0", "rate-limit = 2\n  rate-burst = 4")
CONF_NOMAP = CONF.replace("  state-dir", "  map = false\n  state-dir")
assert "rate-burst = 4" in CONF_OFF and "third-party = false" in CONF_OFF
assert "map = false" in CONF_NOMAP


class LabCase(Base):
    """A test class with its own lab and pcpd configuration."""
    conf = None
    lab = None
    tag = ""

    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise unittest.SkipTest("wire tests need root for network namespaces")
        cls.lab = netlab.Lab(PCPD, cls.conf, tag="w%d%s" % (os.getpid(), cls.tag))
        try:
            cls.lab.start()
        except BaseException:
            cls.lab.stop()          # tearDownClass does not run after a failed setUpClass
            raise

    @classmethod
    def tearDownClass(cls):
        rc = cls.lab.stop()
        if rc not in (0, None):
            raise AssertionError("pcpd exited with %d at shutdown; log %s" %
                                 (rc, cls.lab.log_path))

    def c(self, ns="b4a", family=6, src=None):
        return self.client(ns, family, src, lab=self.lab)


class TestSwitchedOff(LabCase):
    """peer, nat-pmp and third-party off; rate limit 2/s, burst 4."""
    conf = CONF_OFF
    tag = "o"

    def test_s12_peer_disabled(self):
        """§12 (PEER SHOULD be disableable), §8.2: PEER when disabled -> UNSUPP_OPCODE"""
        c = self.c("b4b", 4)
        h, _, _ = c.peer(port=7070)
        self.assertEqual((h.result, h.lifetime), (R["UNSUPP_OPCODE"], 1800))

    def test_s13_1_third_party_prohibited(self):
        """§13.1: THIRD_PARTY prohibited by configuration -> UNSUPP_OPTION; an encapsulated
        MAP without it still works"""
        c, _ = self.fresh(self.lab)
        h, _, _ = c.map(port=7071, tp=HOST)
        self.assertEqual(h.result, R["UNSUPP_OPTION"])
        c4 = self.c("b4b", 4)
        self.assertEqual(c4.map(port=7071, nonce=b"T" * 12)[0].result, 0)
        c4.map(port=7071, nonce=b"T" * 12, lifetime=0)

    def test_s9_natpmp_disabled(self):
        """Appendix A/§9: with NAT-PMP off, version 0 from a softwire host is a PCP version
        mismatch -> UNSUPP_VERSION naming version 2"""
        c = self.c("b4a", 4)
        raw = c.send_raw(b"\x00\x00")
        h = parse_response(raw)[0]
        self.assertEqual((h.version, h.result), (2, R["UNSUPP_VERSION"]))
        self.assertGreaterEqual(len(raw), 24)

    def test_s8_2_overload_no_resources(self):
        """§8.2/§7.4/§17: over the per-subscriber rate -> NO_RESOURCES, lifetime 30 s; the
        version check still answers and another subscriber is unaffected"""
        c, _ = self.fresh(self.lab)
        got = [c.request(0, AnnounceData(), 0)[0] for _ in range(6)]
        res = [h.result for h in got]
        self.assertIn(R["NO_RESOURCES"], res, res)
        first = res.index(R["NO_RESOURCES"])
        self.assertGreaterEqual(first, 4, res)
        self.assertEqual(got[first].lifetime, 30)
        self.assertEqual(parse_response(c.send_raw(b"\x01\x00"))[0].result,
                         R["UNSUPP_VERSION"])
        other, _ = self.fresh(self.lab)
        self.assertEqual(other.request(0, AnnounceData(), 0)[0].result, 0)


class TestMapOff(LabCase):
    conf = CONF_NOMAP
    tag = "m"

    def test_s8_5_epoch_reset_on_restart(self):
        """§8.5/§18.3.3: a restart loses the (in-memory) mappings, so the epoch starts again
        from 0 and a mapping's old nonce no longer guards it"""
        c, _ = self.fresh(self.lab)
        time.sleep(2.1)
        h, b, _ = c.peer(port=7081, tp=HOST, nonce=b"6" * 12)
        self.assertEqual(h.result, 0)
        self.assertGreaterEqual(h.epoch, 2)
        self.assertEqual(self.lab.stop_pcpd(), 0)
        self.lab.start_pcpd()
        h2, _, _ = c.request(0, AnnounceData(), 0)
        self.assertLess(h2.epoch, h.epoch)
        self.assertLessEqual(h2.epoch, 1)
        self.assertEqual(c.peer(port=7081, tp=HOST, nonce=b"7" * 12)[0].result, 0)

    def test_s11_map_disabled(self):
        """§11 (MAP SHOULD be disableable), §8.2: MAP when disabled -> UNSUPP_OPCODE; PEER and
        ANNOUNCE still served"""
        c, _ = self.fresh(self.lab)
        self.assertEqual(c.map(port=7080, tp=HOST)[0].result, R["UNSUPP_OPCODE"])
        self.assertEqual(c.peer(port=7080, tp=HOST)[0].result, 0)
        self.assertEqual(c.request(0, AnnounceData(), 0)[0].result, 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
