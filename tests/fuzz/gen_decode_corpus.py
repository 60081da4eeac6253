#!/usr/bin/env python3
"""Writes the seed corpus for fuzz_decode: valid ANNOUNCE/MAP/PEER requests
with each option, one file per RFC 6887 §8.2 / option error, and a few
responses. Usage: gen_decode_corpus.py [outdir]"""
import ipaddress
import os
import struct
import sys

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), 'corpus', 'decode')
NONCE = bytes(range(1, 13))


def a6(s):
    ip = ipaddress.ip_address(s)
    if ip.version == 4:
        return b'\0' * 10 + b'\xff\xff' + ip.packed
    return ip.packed


def hdr(op, life=3600, ver=2, r=0):
    return struct.pack('!BBHI', ver, op | r, 0, life) + a6('2001:db8::1')


def mapdata(proto=6, iport=80, sport=8080, saddr='0.0.0.0'):
    return NONCE + struct.pack('!B3xHH', proto, iport, sport) + a6(saddr)


def peerdata(rport=443, raddr='203.0.113.9'):
    return mapdata() + struct.pack('!H2x', rport) + a6(raddr)


def opt(code, data, length=None):
    n = len(data) if length is None else length
    return struct.pack('!BBH', code, 0, n) + data + b'\0' * (-len(data) % 4)


def filt(plen, port, addr):
    return opt(3, struct.pack('!xBH', plen, port) + a6(addr))


def port_set(size, first, flags=0):
    return opt(130, struct.pack('!HHB', size, first, flags))


def req(op, life=3600, *opts):
    body = b'' if op == 0 else mapdata() if op == 1 else peerdata()
    return hdr(op, life) + body + b''.join(opts)


TP = opt(1, a6('192.168.1.2'))
PF = opt(2, b'')
DESC = opt(128, 'web café'.encode())

SEEDS = {
    # valid
    'announce': req(0, 0),
    'announce_desc': req(0, 0, DESC),
    'map': req(1),
    'map_delete': req(1, 0),
    'map_third_party': req(1, 3600, TP),
    'map_prefer_failure': req(1, 3600, PF),
    'map_filters': req(1, 3600, filt(0, 0, '::'), filt(120, 22, '198.51.100.0'),
                       filt(64, 0, '2001:db8::')),
    'map_description': req(1, 3600, DESC),
    'map_desc_empty': req(1, 3600, opt(128, b'')),
    'map_desc_bad_utf8': req(1, 3600, opt(128, b'\xc0\x80x')),
    'map_port_set': req(1, 3600, port_set(100, 80, 1)),
    'map_all_options': req(1, 3600, TP, PF, filt(128, 0, '203.0.113.5'), DESC),
    'map_unknown_optional': req(1, 3600, opt(200, b'abc'), opt(255, b'')),
    'peer': req(2),
    'peer_third_party_desc': req(2, 300, TP, DESC),
    # §8.2 verdicts
    'drop_1_byte': b'\x02',
    'drop_r_bit': hdr(1, r=0x80) + mapdata(),
    'drop_23_bytes': req(0, 0)[:23],
    'natpmp_2_bytes': b'\x00\x00',
    'version_1': hdr(1, ver=1) + mapdata(),
    'version_3_short': b'\x03\x01',
    'len_1104': req(0, 0, opt(200, b'\0' * 1076)),
    'len_1102': req(0, 0, opt(200, b'\0' * 1076))[:1102],
    'map_56_bytes': req(1)[:56],
    'peer_76_bytes': req(2)[:76],
    'opcode_5': hdr(5) + mapdata(),
    # option errors
    'opt_past_end': req(1, 3600, struct.pack('!BBH', 200, 0, 40)),
    'tp_bad_length': req(1, 3600, opt(1, b'\0' * 12)),
    'tp_twice': req(1, 3600, TP, TP),
    'tp_in_announce': req(0, 0, TP),
    'pf_in_peer': req(2, 3600, PF),
    'pf_lifetime_0': req(1, 0, PF),
    'pf_twice': req(1, 3600, PF, PF),
    'filter_v4_plen_95': req(1, 3600, filt(95, 0, '192.0.2.0')),
    'filter_v6_plen_129': req(1, 3600, filt(129, 0, '2001:db8::')),
    'filter_lifetime_0': req(1, 0, filt(128, 0, '192.0.2.1')),
    'filter_in_peer': req(2, 3600, filt(128, 0, '192.0.2.1')),
    'desc_too_long': req(1, 3600, opt(128, b'd' * 1017)),
    'desc_twice': req(1, 3600, DESC, DESC),
    'port_set_size_0': req(1, 3600, port_set(0, 80)),
    'port_set_with_pf': req(1, 3600, port_set(16, 80), PF),
    'port_set_in_peer': req(2, 3600, port_set(16, 80)),
    'unknown_mandatory': req(1, 3600, opt(4, b'')),
    'first_error_wins': req(1, 3600, opt(5, b''), TP, TP),
    # responses (exercise the response decoder)
    'rsp_map': struct.pack('!BBBBII', 2, 0x81, 0, 0, 7200, 99) + b'\0' * 12 + mapdata()
               + TP + port_set(64, 5000),
    'rsp_error_short': struct.pack('!BBBBII', 2, 0x81, 0, 1, 1800, 99) + b'\0' * 12,
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(OUT, name + '.bin'), 'wb') as f:
            f.write(data)
    print(f'{len(SEEDS)} seeds in {OUT}')


if __name__ == '__main__':
    main()
