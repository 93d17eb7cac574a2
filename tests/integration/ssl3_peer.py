#!/usr/bin/python3
"""A TLS server on 127.0.0.1 that also answers SSL 3.0, for the posture tests. Stdlib only.

Each connection's first record is peeked at. An SSL 3.0 ClientHello (client_version 3.0) gets
a scripted SSL 3.0 ServerHello that picks the first offered suite of PICK, then the
connection is held until the client closes it (nothing more of the handshake happens: the
client under test reads only the ServerHello). With --export, a TLS 1.0 ClientHello that
offers export suites gets a TLS 1.0 ServerHello picking one of them; without, it gets a
handshake_failure alert. Every other ClientHello goes to Python's ssl module, a real TLS
1.2/1.3 server with CERT and KEY, so that certmon's main handshake succeeds and the posture
pass runs.

With --ssl3-only, every other ClientHello (TLS 1.0 to 1.3) gets an SSL 3.0 ServerHello
picking the first offered suite of PICK, as a server that speaks nothing newer negotiates
down, or a protocol_version alert when it offers none of them: no real TLS at all.

With --silent-after N, every connection after the first N is accepted and never answered
(the peer reads and discards what the client sends until it closes): a server whose later
connections hang.

Prints "ready" on stdout once listening.

usage: ssl3_peer.py PORT CERT KEY [--export] [--ssl3-only] [--silent-after N]
                   [--lifetime SECONDS]
"""
import os
import socket
import socketserver
import ssl
import struct
import sys
import threading
import time

# SSL 3.0 suites this peer is willing to pick, in its order of preference.
PICK = [0x002F, 0x0035, 0x000A, 0x0005]
EXPORT = [0x0003, 0x0008, 0x0006, 0x0014, 0x0011, 0x0062, 0x0064]


def server_hello(version, suite):
    """The ServerHello record: version, random, empty session id, suite, null compression."""
    body = struct.pack("!H", version) + os.urandom(32) + b"\x00" + struct.pack("!H", suite)
    body += b"\x00"
    hs = b"\x02" + struct.pack("!I", len(body))[1:] + body
    return b"\x16" + struct.pack("!HH", version, len(hs)) + hs


def alert(version, desc):
    return b"\x15" + struct.pack("!HH", version, 2) + bytes([2, desc])


def peek_hello(sock):
    """Peeks at the first record until it is complete (or 2 s pass). Returns (client_version,
    suites) of a ClientHello, or None when the record is something else."""
    sock.settimeout(2.0)
    end = time.monotonic() + 2.0
    data = b""
    while time.monotonic() < end:
        data = sock.recv(16384 + 5, socket.MSG_PEEK)
        if not data:
            return None
        if len(data) >= 5 and len(data) >= 5 + struct.unpack("!H", data[3:5])[0]:
            break
        time.sleep(0.005)
    if len(data) < 5 + 4 + 2 + 32 + 1 or data[0] != 0x16 or data[5] != 0x01:
        return None
    version = struct.unpack("!H", data[9:11])[0]
    i = 11 + 32
    i += 1 + data[i]
    n = struct.unpack("!H", data[i:i + 2])[0]
    suites = [struct.unpack("!H", data[i + 2 + k:i + 4 + k])[0] for k in range(0, n, 2)]
    return version, suites


def hold(sock):
    """Keeps the connection until the client closes it (at most 5 s)."""
    sock.settimeout(5.0)
    try:
        while sock.recv(4096):
            pass
    except OSError:
        pass


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        sock = self.request
        with self.server.lock:
            self.server.conns += 1
            silent = 0 <= self.server.silent_after < self.server.conns
        if silent:
            sock.settimeout(30.0)
            try:
                while sock.recv(4096):
                    pass
            except OSError:
                pass
            return
        try:
            hello = peek_hello(sock)
        except (OSError, ValueError, IndexError, struct.error):
            return
        if hello is None:
            return
        version, suites = hello
        if version == 0x0300:
            sock.recv(16384 + 5)  # consume the hello
            export = [s for s in suites if s in EXPORT] if self.server.export else []
            pick = export + [s for s in PICK if s in suites]
            if pick:
                sock.sendall(server_hello(0x0300, pick[0]))
                hold(sock)
            else:
                sock.sendall(alert(0x0300, 40))
            return
        if version == 0x0301 and any(s in EXPORT for s in suites):
            sock.recv(16384 + 5)
            if self.server.export:
                sock.sendall(server_hello(0x0301, [s for s in suites if s in EXPORT][0]))
                hold(sock)
            else:
                sock.sendall(alert(0x0301, 40))
            return
        if self.server.ssl3_only:
            sock.recv(16384 + 5)
            pick = [s for s in PICK if s in suites]
            sock.sendall(server_hello(0x0300, pick[0]) if pick else alert(0x0300, 70))
            hold(sock)
            return
        try:
            with self.server.ctx.wrap_socket(sock, server_side=True) as tls:
                tls.settimeout(5.0)
                try:
                    while tls.recv(4096):
                        pass
                except (OSError, ssl.SSLError):
                    pass
        except (OSError, ssl.SSLError):
            pass


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # the posture pass connects 11 times at once


def main():
    port, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    lifetime = 300
    if "--lifetime" in sys.argv:
        lifetime = float(sys.argv[sys.argv.index("--lifetime") + 1])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    srv = Server(("127.0.0.1", port), Handler)
    srv.ctx = ctx
    srv.export = "--export" in sys.argv
    srv.ssl3_only = "--ssl3-only" in sys.argv
    srv.silent_after = -1
    if "--silent-after" in sys.argv:
        srv.silent_after = int(sys.argv[sys.argv.index("--silent-after") + 1])
    srv.conns = 0
    srv.lock = threading.Lock()
    # Never outlive the test by much, even if it dies without stopping us.
    threading.Timer(lifetime, srv.shutdown).start()
    print("ready", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
