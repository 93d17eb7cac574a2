#!/usr/bin/python3
"""A tiny DNS server for tests: answers every A query with the addresses given on the
command line, every AAAA query with no records, on 127.0.0.1. An answer too big for a UDP
datagram (512 bytes) goes out truncated (TC set, no records), and the full answer is served
over TCP on the same port, as a real server does. Stdlib only.

usage: fake_dns.py PORT ADDR [ADDR...]   (exits after 300 seconds)
       an ADDR written N*ADDR stands for N copies of ADDR (500 identical answers).
"""
import select
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


def expand(args):
    addrs = []
    for a in args:
        n, star, addr = a.partition("*")
        addrs += [addr] * int(n) if star else [a]
    return addrs


def truncated(reply):
    """The header and question of reply with TC set and no records."""
    qid, flags, qd = struct.unpack("!HHH", reply[:6])
    i = 12
    while reply[i] != 0:
        i += reply[i] + 1
    return struct.pack("!HHHHHH", qid, flags | 0x0200, qd, 0, 0, 0) + reply[12:i + 5]


def serve_tcp(conn, addrs):
    """One query over TCP (2-byte length prefix), bounded in time."""
    conn.settimeout(2.0)
    try:
        head = conn.recv(2)
        if len(head) < 2:
            return
        size = struct.unpack("!H", head)[0]
        data = b""
        while len(data) < size:
            chunk = conn.recv(size - len(data))
            if not chunk:
                return
            data += chunk
        reply = answer(data, addrs)
        if reply:
            conn.sendall(struct.pack("!H", len(reply)) + reply)
    except OSError:
        pass
    finally:
        conn.close()


def main():
    port = int(sys.argv[1])
    addrs = expand(sys.argv[2:])
    lifetime = 300
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", port))
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    t.bind(("127.0.0.1", port))
    t.listen(16)
    end = time.monotonic() + lifetime
    while time.monotonic() < end:
        ready, _, _ = select.select([s, t], [], [], 1.0)
        if t in ready:
            conn, _ = t.accept()
            serve_tcp(conn, addrs)
        if s in ready:
            data, peer = s.recvfrom(512)
            reply = answer(data, addrs)
            if reply and len(reply) > 512:
                reply = truncated(reply)
            if reply:
                s.sendto(reply, peer)


if __name__ == "__main__":
    main()
