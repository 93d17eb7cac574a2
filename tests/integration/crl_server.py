#!/usr/bin/python3
"""A CRL server on 127.0.0.1 for the tests: serves the files of DIR with an ETag (from their
content) and a Last-Modified (their mtime), answers 304 Not Modified to an If-None-Match that
names the current ETag, and writes one JSON line per request to LOG (path, the conditional
headers it carried, the status sent), so that a test can count fetches and check what a
re-fetch asked.
Usage: crl_server.py PORT DIR LOG"""
import email.utils
import hashlib
import http.server
import json
import os
import sys

port, root, log = int(sys.argv[1]), sys.argv[2], sys.argv[3]


def record(entry):
    with open(log, "a") as f:
        f.write(json.dumps(entry) + "\n")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        name = os.path.basename(self.path.split("?")[0])
        path = os.path.join(root, name)
        inm = self.headers.get("If-None-Match")
        ims = self.headers.get("If-Modified-Since")
        entry = {"path": self.path, "if_none_match": inm, "if_modified_since": ims}
        try:
            with open(path, "rb") as f:
                data = f.read()
            mtime = os.stat(path).st_mtime
        except OSError:
            entry["status"] = 404
            record(entry)
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        etag = '"%s"' % hashlib.sha256(data).hexdigest()[:32]
        status = 304 if inm is not None and inm == etag else 200
        entry["status"] = status
        entry["etag"] = etag
        record(entry)
        self.send_response(status)
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", email.utils.formatdate(mtime, usegmt=True))
        if status == 304:
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_header("Content-Type", "application/pkix-crl")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
