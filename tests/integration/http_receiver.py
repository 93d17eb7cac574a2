#!/usr/bin/python3
"""A scripted HTTP(S) receiver for certmon's tests (stdlib only).

Listens on 127.0.0.1:PORT (HTTPS when --cert and --key are given), records every request as
one JSON line in the log file, and answers according to a script given on the command line.
Each connection is served by its own thread, so a delayed answer never holds up other
clients. A request is recorded before its answer is sent: once a client has its answer, the
log line is there.

Log line (one per request, in the order the requests were read):
  {"index": 0, "time": 1700000000.123, "method": "POST", "path": "/hook?x=1",
   "version": "HTTP/1.1", "tls": false, "peer_port": 51234,
   "headers": {"content-type": "application/json", ...},  # lower-case names; repeats joined
   "header_list": [["Content-Type", "application/json"], ...],  # as sent
   "body": "...", "body_len": 12, "answer": "200"}
The body is decoded as UTF-8 (invalid bytes replaced); chunked request bodies are decoded.

Answers, in request order (--responses): a comma-separated list whose entries are
  CODE     an HTTP status (e.g. 200, 429, 500)
  close    read the request, then close the connection without answering
  hang     read the request and never answer (until the client leaves or the receiver exits)
After the list is used up its last entry repeats. Default: 200.

Options:
  --port PORT            required
  --log FILE             required; appended to, one JSON object per line
  --cert FILE --key FILE serve HTTPS (FILE holds the chain, leaf first)
  --responses LIST       see above
  --retry-after VALUE    add "Retry-After" to 429 and 503 answers: delta seconds ("2") or
                         "date:N" for an HTTP-date N seconds from now
  --delay-ms N           wait N ms before each answer (after recording the request)
  --body TEXT            answer body (default "ok"); --body-bytes N sends N bytes of "x" instead
  --answer-body CODE=TEXT  answer body for status CODE only (repeatable; before --body)
  --content-type TYPE    answer Content-Type (default text/plain)
  --lifetime S           exit after S seconds (default and maximum 600)

Prints "ready" on stdout once listening. Exits 0 on SIGTERM or when the lifetime ends, 2 on a
setup error.

Usage: http_receiver.py --port 8080 --log /tmp/rx.jsonl --responses 500,200
"""

import argparse
import email.utils
import http.server
import json
import signal
import socket
import socketserver
import ssl
import sys
import threading
import time

MAX_LIFETIME = 600
MAX_BODY = 16 * 1024 * 1024


def parse_responses(text):
    out = []
    for item in text.split(","):
        item = item.strip()
        if item in ("close", "hang"):
            out.append(item)
            continue
        try:
            code = int(item)
        except ValueError:
            raise argparse.ArgumentTypeError("bad response %r" % item) from None
        if not 100 <= code <= 999:
            raise argparse.ArgumentTypeError("bad status %d" % code)
        out.append(code)
    if not out:
        raise argparse.ArgumentTypeError("empty response list")
    return out


class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.count = 0
        self.stop = threading.Event()
        self.log = open(args.log, "a", encoding="utf-8")

    def next_answer(self):
        """Takes the next scripted answer and the request's index."""
        with self.lock:
            i = self.count
            self.count += 1
        script = self.args.responses
        return i, script[min(i, len(script) - 1)]

    def record(self, entry):
        line = json.dumps(entry, sort_keys=True)
        with self.lock:
            self.log.write(line + "\n")
            self.log.flush()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "http_receiver/1"

    def setup(self):
        st = self.server.state
        self.tls = st.args.cert is not None
        if self.tls:
            # The handshake runs here, in the connection's thread: a client that connects
            # and says nothing (a port probe) must not block the accept loop.
            self.request.settimeout(10)
            try:
                self.request = self.server.ssl_ctx.wrap_socket(self.request, server_side=True)
            except (ssl.SSLError, OSError) as e:
                print("http_receiver: TLS handshake failed: %s" % e, file=sys.stderr,
                      flush=True)
                self.request.close()
                raise
            self.request.settimeout(None)
        super().setup()

    def log_message(self, fmt, *args):  # noqa: N802 (stdlib name)
        pass

    def _read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            body = bytearray()
            while True:
                size_line = self.rfile.readline(1024)
                if not size_line:
                    break
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    # Trailers end with an empty line.
                    while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                if len(body) + size > MAX_BODY:
                    raise ValueError("body too large")
                body += self.rfile.read(size)
                self.rfile.readline(16)
            return bytes(body)
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            raise ValueError("body too large")
        return self.rfile.read(n) if n > 0 else b""

    def _handle(self):
        st = self.server.state
        args = st.args
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            return
        index, answer = st.next_answer()
        headers = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = headers[key] + ", " + value if key in headers else value
        st.record({
            "index": index,
            "time": time.time(),
            "method": self.command,
            "path": self.path,
            "version": self.request_version,
            "tls": self.tls,
            "peer_port": self.client_address[1],
            "headers": headers,
            "header_list": [[k, v] for k, v in self.headers.items()],
            "body": body.decode("utf-8", "replace"),
            "body_len": len(body),
            "answer": str(answer),
        })
        if args.delay_ms > 0:
            st.stop.wait(args.delay_ms / 1000.0)
        if answer == "close":
            self.close_connection = True
            return
        if answer == "hang":
            while not st.stop.wait(0.1):
                if self.tls:
                    continue  # an SSLSocket cannot peek; hold until the receiver exits
                try:
                    # MSG_PEEK: returns b"" once the client has gone away.
                    self.connection.settimeout(0)
                    if self.connection.recv(1, socket.MSG_PEEK) == b"":
                        break
                except (BlockingIOError, ssl.SSLWantReadError):
                    pass
                except OSError:
                    break
            self.close_connection = True
            return
        if args.body_bytes is not None:
            out = b"x" * args.body_bytes
        elif answer in args.answer_body:
            out = args.answer_body[answer].encode("utf-8")
        else:
            out = args.body.encode("utf-8")
        self.send_response(answer)
        self.send_header("Content-Type", args.content_type)
        self.send_header("Content-Length", str(len(out)))
        if answer in (429, 503) and args.retry_after is not None:
            ra = args.retry_after
            if ra.startswith("date:"):
                ra = email.utils.formatdate(time.time() + int(ra[5:]), usegmt=True)
            self.send_header("Retry-After", ra)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        # A client that goes away mid-request is normal in these tests.
        pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--responses", type=parse_responses, default=[200])
    ap.add_argument("--retry-after")
    ap.add_argument("--delay-ms", type=int, default=0)
    ap.add_argument("--body", default="ok")
    ap.add_argument("--body-bytes", type=int)
    ap.add_argument("--answer-body", action="append", default=[])
    ap.add_argument("--content-type", default="text/plain")
    ap.add_argument("--lifetime", type=float, default=MAX_LIFETIME)
    args = ap.parse_args()
    if (args.cert is None) != (args.key is None):
        ap.error("--cert and --key go together")
    if args.retry_after is not None:
        ra = args.retry_after
        if not (ra.isdigit() or (ra.startswith("date:") and ra[5:].lstrip("-").isdigit())):
            ap.error("--retry-after wants SECONDS or date:N")
    lifetime = min(max(args.lifetime, 0), MAX_LIFETIME)
    bodies = {}
    for item in args.answer_body:
        code, sep, text = item.partition("=")
        if not sep or not code.isdigit():
            ap.error("--answer-body wants CODE=TEXT")
        bodies[int(code)] = text
    args.answer_body = bodies

    try:
        server = Server(("127.0.0.1", args.port), Handler)
        server.state = State(args)
        if args.cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(args.cert, args.key)
            server.ssl_ctx = ctx
    except (OSError, ssl.SSLError) as e:
        print("http_receiver: cannot start: %s" % e, file=sys.stderr, flush=True)
        return 2

    def stop(*_):
        server.state.stop.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    timer = threading.Timer(lifetime, stop)
    timer.daemon = True
    timer.start()
    print("ready", flush=True)
    server.serve_forever(poll_interval=0.1)
    server.state.stop.set()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
