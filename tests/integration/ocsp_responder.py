#!/usr/bin/python3
"""An OCSP responder on 127.0.0.1 for the tests: each POSTed request is answered by
`openssl ocsp` itself (-index, -CA, -rsigner), run once per request. openssl's own -port
server binds every interface (OpenSSL 3.0 takes a port number only), hence this front.
Usage: ocsp_responder.py PORT INDEX CA RSIGNER RKEY"""
import http.server
import os
import subprocess
import sys
import tempfile

port, index, ca, rsigner, rkey = int(sys.argv[1]), *sys.argv[2:6]


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        with tempfile.TemporaryDirectory() as d:
            req, resp = os.path.join(d, "req.der"), os.path.join(d, "resp.der")
            with open(req, "wb") as f:
                f.write(body)
            r = subprocess.run(["openssl", "ocsp", "-index", index, "-CA", ca, "-rsigner", rsigner,
                                "-rkey", rkey, "-reqin", req, "-respout", resp, "-ndays", "1"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            data = open(resp, "rb").read() if r.returncode == 0 and os.path.exists(resp) else b""
        if not data:
            self.send_response(500)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/ocsp-response")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        sys.stderr.write("%s\n" % (fmt % args))
        sys.stderr.flush()


http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
