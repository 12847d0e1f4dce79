#!/usr/bin/env python3
"""Build the seed corpus of the fuzz targets: captured-style frames with valid checksums.

    python3 seeds.py            # (re)write corpus/classify/*.bin and corpus/wire_roundtrip/*.bin
    python3 seeds.py --rust     # print the byte arrays used by lrp-core's wire unit tests

The checksums are computed here independently of lrp-core (plain RFC 1071), so the
frames also cross-check lrp-core's checksum code. Only the standard library is used.
"""
import ipaddress
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def ip4(s):
    return ipaddress.IPv4Address(s).packed


def ip6(s):
    return ipaddress.IPv6Address(s).packed


MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")


def eth(dst, src, et, payload, vlan=None):
    if vlan is not None:
        return dst + src + struct.pack("!HHH", 0x8100, vlan, et) + payload
    return dst + src + struct.pack("!H", et) + payload


def ipv4(src, dst, proto, payload, ident=0x1C46, df=True, mf=False, off=0, ttl=64, tos=0, opts=b""):
    hl = 20 + len(opts)
    fl = (0x4000 if df else 0) | (0x2000 if mf else 0) | (off // 8)
    h = struct.pack("!BBHHHBBH4s4s", 0x40 | (hl // 4), tos, hl + len(payload), ident, fl, ttl,
                    proto, 0, ip4(src), ip4(dst)) + opts
    h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
    return h + payload


def ipv6(src, dst, nh, payload, hl=64, tc=0, fl=0):
    return (struct.pack("!IHBB", (6 << 28) | (tc << 20) | fl, len(payload), nh, hl)
            + ip6(src) + ip6(dst) + payload)


def ph4(src, dst, proto):
    return lambda n: ip4(src) + ip4(dst) + struct.pack("!BBH", 0, proto, n)


def ph6(src, dst, proto):
    return lambda n: ip6(src) + ip6(dst) + struct.pack("!IxxxB", n, proto)


def udp(sp, dp, data, ph):
    u = struct.pack("!HHHH", sp, dp, 8 + len(data), 0) + data
    c = csum(ph(len(u)) + u) or 0xFFFF
    return u[:6] + struct.pack("!H", c) + u[8:]


def tcp(sp, dp, seq, ack, flags, win, data, ph, opts=b""):
    hl = 20 + len(opts)
    t = struct.pack("!HHIIBBHHH", sp, dp, seq, ack, (hl // 4) << 4, flags, win, 0, 0) + opts + data
    return t[:16] + struct.pack("!H", csum(ph(len(t)) + t)) + t[18:]


def icmp(t, code, rest, ph=None):
    m = struct.pack("!BBH", t, code, 0) + rest
    c = csum((ph(len(m)) if ph else b"") + m)
    return m[:2] + struct.pack("!H", c) + m[4:]


A4, B4 = "192.168.1.10", "192.168.1.20"
A6, B6 = "2001:db8::10", "2001:db8::20"
DNS = bytes.fromhex("abcd01000001000000000000076578616d706c6503636f6d0000010001")
# Linux SYN options: MSS 1460, SACK permitted, timestamps, NOP, window scale 7.
SYN_OPTS = (struct.pack("!BBH", 2, 4, 1460) + bytes([4, 2])
            + struct.pack("!BBII", 8, 10, 0x0001E240, 0) + bytes([1, 3, 3, 7]))
TS_OPTS = bytes([1, 1]) + struct.pack("!BBII", 8, 10, 0x0001E241, 0x00ABCDEF)
HTTP = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def frames():
    f = {}
    f["ipv4_udp_dns"] = eth(MAC_B, MAC_A, 0x0800, ipv4(A4, B4, 17, udp(53000, 53, DNS, ph4(A4, B4, 17))))
    f["ipv4_tcp_syn"] = eth(MAC_B, MAC_A, 0x0800, ipv4(
        A4, B4, 6, tcp(40000, 80, 0x12345678, 0, 0x02, 64240, b"", ph4(A4, B4, 6), SYN_OPTS), ident=0))
    f["vlan_ipv4_tcp_psh"] = eth(MAC_B, MAC_A, 0x0800, ipv4(
        A4, B4, 6, tcp(40000, 80, 0x12345679, 0x9ABCDEF1, 0x18, 502, HTTP, ph4(A4, B4, 6), TS_OPTS),
        ident=0x4D2), vlan=(3 << 13) | 100)
    ack = eth(MAC_B, MAC_A, 0x0800, ipv4(
        A4, B4, 6, tcp(40000, 80, 0x12345679, 0x9ABCDEF1, 0x10, 502, b"", ph4(A4, B4, 6)), ident=0x4D3))
    f["ipv4_tcp_ack_padded"] = ack + bytes(60 - len(ack))
    u = udp(5000, 6000, b"hello", ph4(A4, B4, 17))
    f["ipv4_udp_zero_csum"] = eth(MAC_B, MAC_A, 0x0800, ipv4(A4, B4, 17, u[:6] + b"\0\0" + u[8:]))
    record_route = bytes([7, 7, 4, 0, 0, 0, 0, 0])  # 7-byte option, end of list, padding
    f["ipv4_opts_udp"] = eth(MAC_B, MAC_A, 0x0800, ipv4(
        A4, B4, 17, udp(1234, 5678, b"opt", ph4(A4, B4, 17)), opts=record_route, df=False, ident=0x77))
    f["ipv4_icmp_echo"] = eth(MAC_B, MAC_A, 0x0800, ipv4(
        A4, B4, 1, icmp(8, 0, struct.pack("!HH", 0x1234, 1) + bytes(range(56))), ident=0xBEEF))
    # A 1000-byte UDP datagram in fragments: the first carries the header, the next does not.
    dgram = udp(7000, 8000, (bytes(range(256)) * 4)[:992], ph4(A4, B4, 17))
    f["ipv4_udp_first_frag"] = eth(MAC_B, MAC_A, 0x0800, ipv4(A4, B4, 17, dgram[:32], df=False, mf=True, ident=0x99))
    f["ipv4_udp_later_frag"] = eth(MAC_B, MAC_A, 0x0800, ipv4(
        A4, B4, 17, dgram[32:64], df=False, mf=True, off=32, ident=0x99))
    f["ipv4_gre_other"] = eth(MAC_B, MAC_A, 0x0800, ipv4(A4, B4, 47, bytes(8)))
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + MAC_A + ip4(A4) + bytes(6) + ip4(B4)
    f["arp_request"] = eth(b"\xff" * 6, MAC_A, 0x0806, arp + bytes(18))
    f["ipv6_udp"] = eth(MAC_B, MAC_A, 0x86DD, ipv6(A6, B6, 17, udp(53000, 53, DNS, ph6(A6, B6, 17)), fl=0x12345))
    f["ipv6_tcp_syn"] = eth(MAC_B, MAC_A, 0x86DD, ipv6(
        A6, B6, 6, tcp(40001, 443, 1, 0, 0x02, 64800, b"", ph6(A6, B6, 6), SYN_OPTS)))
    f["ipv6_icmp_echo"] = eth(MAC_B, MAC_A, 0x86DD, ipv6(
        A6, B6, 58, icmp(128, 0, struct.pack("!HH", 0x4321, 7) + b"ping-data", ph6(A6, B6, 58))))
    hbh = bytes([60, 0, 5, 2, 0, 0, 1, 0])  # -> dst opts; router alert; PadN
    dst_opts = bytes([17, 0, 1, 4, 0, 0, 0, 0])  # -> UDP; PadN
    f["ipv6_ext_udp"] = eth(MAC_B, MAC_A, 0x86DD, ipv6(
        A6, B6, 0, hbh + dst_opts + udp(1111, 2222, b"ext", ph6(A6, B6, 17))))
    d6 = udp(3333, 4444, bytes(100), ph6(A6, B6, 17))
    first = struct.pack("!BBHI", 17, 0, 0 | 1, 0xDEADBEEF)
    later = struct.pack("!BBHI", 17, 0, 48 | 1, 0xDEADBEEF)
    f["ipv6_frag_first_udp"] = eth(MAC_B, MAC_A, 0x86DD, ipv6(A6, B6, 44, first + d6[:48]))
    f["ipv6_frag_later"] = eth(MAC_B, MAC_A, 0x86DD, ipv6(A6, B6, 44, later + d6[48:96]))
    f["lldp_other"] = eth(bytes.fromhex("0180c200000e"), MAC_A, 0x88CC, bytes(46))
    return f


FLOWS = {"ipv4_udp_dns", "ipv4_tcp_syn", "vlan_ipv4_tcp_psh", "ipv4_tcp_ack_padded",
         "ipv4_udp_zero_csum", "ipv4_opts_udp", "ipv4_udp_first_frag", "ipv6_udp",
         "ipv6_tcp_syn", "ipv6_ext_udp", "ipv6_frag_first_udp"}


def roundtrip_seeds(fs):
    """Inputs of the wire_roundtrip target: a selector byte, then one layer's bytes.

    The selectors are listed in fuzz_targets/roundtrip_checks.rs."""
    out = {}
    knobs = ip4("10.0.0.7") + bytes(12) + struct.pack("!H", 8080) + b"\x01"
    for k, v in fs.items():
        out["eth_" + k] = b"\x00" + v
        if k in FLOWS:
            out["nat_" + k] = b"\x07" + knobs + v
        l3 = 18 if v[12:14] == b"\x81\x00" else 14
        et = v[l3 - 2:l3]
        if et == b"\x08\x00":
            out["ipv4_" + k] = b"\x01" + v[l3:]
            ihl = (v[l3] & 0xF) * 4
            total = struct.unpack("!H", v[l3 + 2:l3 + 4])[0]
            seg, proto = v[l3 + ihl:l3 + total], v[l3 + 9]
            if struct.unpack("!H", v[l3 + 6:l3 + 8])[0] & 0x1FFF == 0:
                if proto == 17:
                    out["udp_" + k] = b"\x04" + seg
                if proto == 6:
                    out["tcp_" + k] = b"\x05" + seg
        elif et == b"\x86\xdd":
            out["ipv6_" + k] = b"\x02" + v[l3:]
            out["ext_" + k] = b"\x03" + v[l3 + 6:l3 + 7] + v[l3 + 40:]
        elif et == b"\x08\x06":
            out["arp_" + k] = b"\x06" + v[l3:]
    return out


def write(directory, files):
    os.makedirs(directory, exist_ok=True)
    for name, data in files.items():
        with open(os.path.join(directory, name + ".bin"), "wb") as fh:
            fh.write(data)


def rust(name, b, per=14):
    rows = ["        " + " ".join("0x%02x," % x for x in b[i:i + per]) for i in range(0, len(b), per)]
    return "    static %s: [u8; %d] = [\n%s\n    ];" % (name, len(b), "\n".join(rows))


def main():
    fs = frames()
    if sys.argv[1:] == ["--rust"]:
        d6 = udp(3333, 4444, bytes(100), ph6(A6, B6, 17))
        vectors = [
            ("ipv6.rs", "UDP_PACKET", fs["ipv6_udp"][14:]),
            ("ipv6.rs", "EXT_PACKET", fs["ipv6_ext_udp"][14:]),
            ("ipv6.rs", "FRAG_PACKET", ipv6(A6, B6, 44, struct.pack("!BBHI", 17, 0, 1, 0xDEADBEEF) + d6[:16])),
            ("icmp.rs", "ECHO_V4", fs["ipv4_icmp_echo"][34:]),
            ("icmp.rs", "ECHO_V6", fs["ipv6_icmp_echo"][54:]),
        ]
        for module, name, data in vectors:
            print("// lrp-core/src/wire/" + module)
            print(rust(name, data))
        return
    write(os.path.join(HERE, "corpus", "classify"), fs)
    write(os.path.join(HERE, "corpus", "wire_roundtrip"), roundtrip_seeds(fs))


if __name__ == "__main__":
    main()
