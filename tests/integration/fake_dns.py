#!/usr/bin/python3
"""A tiny DNS server for tests: answers every A query with the addresses given on the
command line, every AAAA query with no records, on 127.0.0.1 (UDP). Stdlib only.

usage: fake_dns.py PORT ADDR [ADDR...]   (exits after --lifetime seconds, default 300)
"""
import socket
import struct
import sys
import time


def answer(query, addrs):
    if len(query) < 12:
        return None
    qid, flags, qdcount = struct.unpack("!HHH", query[:6])
    if qdcount != 1:
        return None
    # Walk the question name.
    i = 12
    while i < len(query) and query[i] != 0:
        i += query[i] + 1
    if i + 5 > len(query):
        return None
    qtype, qclass = struct.unpack("!HH", query[i + 1:i + 5])
    question = query[12:i + 5]
    records = b""
    count = 0
    if qtype == 1:  # A
        for a in addrs:
            records += b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton(a)
            count += 1
    header = struct.pack("!HHHHHH", qid, 0x8180, 1, count, 0, 0)
    return header + question + records


def main():
    port = int(sys.argv[1])
    addrs = sys.argv[2:]
    lifetime = 300
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", port))
    s.settimeout(1.0)
    end = time.monotonic() + lifetime
    while time.monotonic() < end:
        try:
            data, peer = s.recvfrom(512)
        except socket.timeout:
            continue
        reply = answer(data, addrs)
        if reply:
            s.sendto(reply, peer)


if __name__ == "__main__":
    main()
