#!/usr/bin/python3
"""Hostile TLS servers for tests, on 127.0.0.1. Each connection is served by its own thread;
the whole server exits after 300 seconds. Stdlib only.

usage: hostile_peer.py MODE PORT
  drip  reads the ClientHello, then answers with a plausible ServerHello record one byte per
        second, for ever: a client without a deadline of its own waits as long as the server
        likes.
  huge  reads the ClientHello, then sends a handshake message that announces 16 MB (a
        ServerHello of length 0xFFFFFF) and streams those 16 MB in full-size records as fast
        as the client takes them.
"""
import socket
import sys
import threading
import time

LIFETIME = 300


def read_hello(conn):
    conn.settimeout(10.0)
    try:
        return conn.recv(65536)
    except OSError:
        return b""


def drip(conn):
    if not read_hello(conn):
        return
    # Handshake record, TLS 1.2, 122 bytes: ServerHello (2) of 118 bytes, version 3.3, then
    # zeros. The client never gets a whole record.
    data = bytes([0x16, 0x03, 0x03, 0x00, 0x7a, 0x02, 0x00, 0x00, 0x76, 0x03, 0x03])
    i = 0
    end = time.monotonic() + 120
    while time.monotonic() < end:
        b = data[i] if i < len(data) else 0
        i += 1
        conn.sendall(bytes([b]))
        time.sleep(1.0)


def huge(conn):
    if not read_hello(conn):
        return
    total = 16 * 1024 * 1024
    body = bytes([0x02, 0xFF, 0xFF, 0xFF]) + bytes(total)  # header + 16 MB of zeros
    view = memoryview(body)
    conn.settimeout(30.0)
    for off in range(0, len(body), 16384):
        chunk = view[off:off + 16384]
        conn.sendall(bytes([0x16, 0x03, 0x03, len(chunk) >> 8, len(chunk) & 0xFF]) + chunk)


def serve(mode, conn):
    try:
        {"drip": drip, "huge": huge}[mode](conn)
    except OSError:
        pass  # the client gave up: what a hostile server wants to see
    finally:
        conn.close()


def main():
    mode, port = sys.argv[1], int(sys.argv[2])
    if mode not in ("drip", "huge"):
        sys.exit("unknown mode " + mode)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(64)
    s.settimeout(1.0)
    end = time.monotonic() + LIFETIME
    while time.monotonic() < end:
        try:
            conn, _ = s.accept()
        except socket.timeout:
            continue
        threading.Thread(target=serve, args=(mode, conn), daemon=True).start()


if __name__ == "__main__":
    main()
