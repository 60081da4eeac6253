"""Wire tests: scapy-built PCP requests against a running pcpd in a
namespace lab, as plain-mode B4s (IPv6 + THIRD_PARTY) and as
encapsulated-mode hosts (IPv4 through the softwire). Each test names the
RFC section it checks."""
import os
import socket
import sys
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
    LAB.start()


def tearDownModule():
    if LAB:
        rc = LAB.stop()
        if rc not in (0, None):
            raise AssertionError("pcpd exited with %d at shutdown; log %s" % (rc, LAB.log_path))


class Client:
    """One PCP client endpoint inside a B4 namespace."""

    def __init__(self, ns, family=6, src=None):
        self.family = family
        self.src = src or (B4[ns] if family == 6 else HOST)
        self.sock = LAB.socket(ns, family, self.src)
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
             peer=("198.51.100.7", 443), sugg_port=0, options=(), tp=None):
        opts = ([opt_third_party(tp)] if tp else []) + list(options)
        body = PEERData(nonce=nonce, proto=proto, int_port=port, ext_port=sugg_port,
                        peer_addr=v6(peer[0]), peer_port=peer[1], options=opts)
        return self.request(2, body, lifetime)


def result(h):
    return h.result


class Base(unittest.TestCase):
    def setUp(self):
        self.clients = []

    def tearDown(self):
        for c in self.clients:
            c.close()

    def client(self, ns="b4a", family=6, src=None):
        c = Client(ns, family, src)
        self.clients.append(c)
        return c


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
        h, _, _ = c.map(tp=HOST) if False else (None, None, None)
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
        want = b1.ext_port + 1 if b1.ext_port % 2 == 0 else b1.ext_port - 1
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
        """Requests from outside the configured B4 prefixes are refused"""
        c = self.client("b4a", 6, "2001:db8:200::1")
        h, _, _ = c.map(port=93, tp=HOST)
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


if __name__ == "__main__":
    unittest.main(verbosity=2)
