#!/usr/bin/python3
"""A small ACME Renewal Information server (RFC 9773) for certmon's tests (stdlib only).

Listens on 127.0.0.1:PORT. The first path segment chooses how it answers, so that one server
covers every case of a test:

  GET /MODE/directory           an ACME directory whose "renewalInfo" is
                                http://127.0.0.1:PORT/MODE/renewal-info
  GET /noari/directory          a directory without "renewalInfo" (a CA without ARI)
  GET /MODE/renewal-info/ID     the renewal information of certificate ID:
     past      window from 10 days ago to 2 days ago, explanationURL with a control byte
     open      window from 1 day ago to 1 day from now
     future    window from 20 days to 25 days from now
     badjson   a body that is not JSON
     backwards start after end
     500       HTTP 500
     tarpit    read the request and never answer
  Every answer with a window carries "Retry-After: 3600".

Every request is logged to --log as one JSON line {"mode", "kind", "id", "path"} before the
answer is sent (kind is "directory" or "renewal-info"), so a test can check the id it was
asked for and how often it was asked.

Prints "ready" once listening; exits on SIGTERM or after --lifetime seconds (max 600).
Usage: ari_server.py --port 8080 --log /tmp/ari.jsonl
"""

import argparse
import datetime
import http.server
import json
import signal
import socketserver
import sys
import threading
import time


def rfc3339(delta_days):
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=delta_days)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


WINDOWS = {
    "past": (-10, -2, "https://ca.example/incident?x=1\u0007<b>"),
    "open": (-1, 1, None),
    "future": (20, 25, None),
    "backwards": (5, 1, None),
}


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def make_handler(args, lock):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *a):
            pass

        def record(self, mode, kind, ident):
            with lock, open(args.log, "a") as f:
                f.write(json.dumps({"mode": mode, "kind": kind, "id": ident,
                                    "path": self.path}) + "\n")

        def send(self, code, body, headers=()):
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in headers:
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            parts = self.path.split("/")
            if len(parts) == 3 and parts[2] == "directory":
                mode = parts[1]
                self.record(mode, "directory", None)
                d = {"newNonce": "http://127.0.0.1:%d/nonce" % args.port}
                if mode != "noari":
                    d["renewalInfo"] = "http://127.0.0.1:%d/%s/renewal-info" % (args.port, mode)
                self.send(200, json.dumps(d))
                return
            if len(parts) != 4 or parts[2] != "renewal-info":
                self.send(404, '{"type": "urn:ietf:params:acme:error:malformed"}')
                return
            mode, ident = parts[1], parts[3]
            self.record(mode, "renewal-info", ident)
            if mode == "tarpit":
                time.sleep(args.lifetime)
                return
            if mode == "500":
                self.send(500, '{"type": "urn:ietf:params:acme:error:serverInternal"}')
                return
            if mode == "badjson":
                self.send(200, '{"suggestedWindow": {"start": ')
                return
            if mode not in WINDOWS:
                self.send(404, '{"type": "urn:ietf:params:acme:error:malformed"}')
                return
            start, end, expl = WINDOWS[mode]
            body = {"suggestedWindow": {"start": rfc3339(start), "end": rfc3339(end)}}
            if expl:
                body["explanationURL"] = expl
            self.send(200, json.dumps(body), [("Retry-After", "3600")])

    return Handler


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--lifetime", type=float, default=600)
    args = p.parse_args()
    args.lifetime = min(args.lifetime, 600)
    try:
        srv = Server(("127.0.0.1", args.port), make_handler(args, threading.Lock()))
    except OSError as e:
        print("cannot listen: %s" % e, file=sys.stderr)
        sys.exit(2)
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    threading.Timer(args.lifetime, lambda: srv.shutdown()).start()
    print("ready", flush=True)
    try:
        srv.serve_forever()
    finally:
        srv.server_close()


if __name__ == "__main__":
    main()
