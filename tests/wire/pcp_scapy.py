"""PCP (RFC 6887) and NAT-PMP (RFC 6886) as scapy layers, for the wire tests.

Only the packet formats live here; the tests decide what is right."""
from scapy.fields import (ByteEnumField, ByteField, BitField, IntField, IP6Field,
                          ShortField, StrFixedLenField, StrLenField, XByteField,
                          PacketListField, ConditionalField, FieldLenField)
from scapy.packet import Packet
import ipaddress

RESULTS = {0: "SUCCESS", 1: "UNSUPP_VERSION", 2: "NOT_AUTHORIZED", 3: "MALFORMED_REQUEST",
           4: "UNSUPP_OPCODE", 5: "UNSUPP_OPTION", 6: "MALFORMED_OPTION", 7: "NETWORK_FAILURE",
           8: "NO_RESOURCES", 9: "UNSUPP_PROTOCOL", 10: "USER_EX_QUOTA",
           11: "CANNOT_PROVIDE_EXTERNAL", 12: "ADDRESS_MISMATCH", 13: "EXCESSIVE_REMOTE_PEERS"}
R = {v: k for k, v in RESULTS.items()}
OP_ANNOUNCE, OP_MAP, OP_PEER = 0, 1, 2
TCP, UDP = 6, 17


def v6(addr):
    """IPv4 as IPv4-mapped, IPv6 as is (RFC 6887 §5)."""
    a = ipaddress.ip_address(addr)
    if a.version == 4:
        return "::ffff:" + str(a)
    return str(a)


class PCPOption(Packet):
    name = "PCP option"
    fields_desc = [ByteField("code", 0), ByteField("reserved", 0),
                   FieldLenField("length", None, length_of="data", fmt="!H"),
                   StrLenField("data", b"", length_from=lambda p: p.length)]

    def post_build(self, p, pay):
        pad = (-len(p)) % 4
        return p + b"\0" * pad + pay

    def extract_padding(self, s):
        pad = (-self.length) % 4
        return b"", s[pad:]


def opt_third_party(addr):
    return PCPOption(code=1, data=ipaddress.IPv6Address(v6(addr)).packed)


def opt_prefer_failure():
    return PCPOption(code=2, data=b"")


def opt_filter(addr, plen, port=0):
    return PCPOption(code=3, data=bytes([0, plen]) + port.to_bytes(2, "big") +
                     ipaddress.IPv6Address(v6(addr)).packed)


def opt_description(text):
    return PCPOption(code=128, data=text if isinstance(text, bytes) else text.encode())


def opt_port_set(size, first, parity=0):
    return PCPOption(code=130, data=size.to_bytes(2, "big") + first.to_bytes(2, "big") +
                     bytes([parity & 1]))


class PCPRequest(Packet):
    name = "PCP request"
    fields_desc = [ByteField("version", 2), BitField("r", 0, 1), BitField("opcode", 1, 7),
                   ShortField("reserved", 0), IntField("lifetime", 3600),
                   IP6Field("client", "::")]


class PCPResponse(Packet):
    name = "PCP response"
    fields_desc = [ByteField("version", 2), BitField("r", 1, 1), BitField("opcode", 1, 7),
                   ByteField("reserved", 0), ByteEnumField("result", 0, RESULTS),
                   IntField("lifetime", 0), IntField("epoch", 0),
                   StrFixedLenField("reserved2", b"\0" * 12, 12)]


class MAPData(Packet):
    name = "MAP"
    fields_desc = [StrFixedLenField("nonce", b"\x01" * 12, 12), ByteField("proto", TCP),
                   StrFixedLenField("reserved", b"\0" * 3, 3), ShortField("int_port", 80),
                   ShortField("ext_port", 0), IP6Field("ext_addr", "::ffff:0.0.0.0"),
                   PacketListField("options", [], PCPOption)]


class PEERData(Packet):
    name = "PEER"
    fields_desc = [StrFixedLenField("nonce", b"\x01" * 12, 12), ByteField("proto", TCP),
                   StrFixedLenField("reserved", b"\0" * 3, 3), ShortField("int_port", 5000),
                   ShortField("ext_port", 0), IP6Field("ext_addr", "::ffff:0.0.0.0"),
                   ShortField("peer_port", 443), ShortField("reserved2", 0),
                   IP6Field("peer_addr", "::ffff:198.51.100.7"),
                   PacketListField("options", [], PCPOption)]


class AnnounceData(Packet):
    name = "ANNOUNCE"
    fields_desc = [PacketListField("options", [], PCPOption)]


def parse_response(raw):
    """Returns (header, body) where body is MAPData/PEERData/AnnounceData or None."""
    hdr = PCPResponse(raw[:24])
    body = raw[24:]
    if hdr.opcode == OP_MAP and len(body) >= 36:
        return hdr, MAPData(body)
    if hdr.opcode == OP_PEER and len(body) >= 56:
        return hdr, PEERData(body)
    return hdr, AnnounceData(body) if hdr.opcode == OP_ANNOUNCE else None


class NATPMPMap(Packet):
    name = "NAT-PMP map"
    fields_desc = [ByteField("version", 0), ByteField("opcode", 2), ShortField("reserved", 0),
                   ShortField("int_port", 80), ShortField("ext_port", 0),
                   IntField("lifetime", 7200)]
