#!/usr/bin/python3
"""A recording SMTP server for certmon's tests (Debian's python3-aiosmtpd).

Listens on 127.0.0.1:PORT and records every accepted message as one JSON line in the log
file, before the server answers the end of DATA:
  {"index": 0, "time": 1700000000.1, "mail_from": "a@example.org",
   "rcpt_tos": ["b@example.org", "c@example.org"], "data": "Subject: ...\r\n...",
   "tls": true, "auth_login": "user" or null, "peer_port": 51234}
"data" is the message as received after dot-unstuffing, decoded as UTF-8 (invalid bytes
replaced), CRLF line ends kept.

Modes:
  --mode plain      (default) no TLS offered
  --mode starttls   STARTTLS offered (needs --cert/--key); --require-starttls refuses mail
                    before it
  --mode smtps      implicit TLS on connect (needs --cert/--key)
Options:
  --auth USER:PASS  require AUTH (PLAIN or LOGIN) with these credentials before MAIL
  --reject-rcpt A   answer 550 to RCPT TO:<A> (repeatable)
  --lifetime S      exit after S seconds (default and maximum 600)

Prints "ready" on stdout once listening. Exits 0 on SIGTERM or when the lifetime ends, 2 on a
setup error.

Usage: smtp_receiver.py --port 2525 --log /tmp/mail.jsonl --mode starttls --cert c --key k
"""

import argparse
import asyncio
import json
import logging
import signal
import ssl
import sys
import time
import warnings

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

MAX_LIFETIME = 600


class Recorder:
    def __init__(self, args):
        self.args = args
        self.count = 0
        self.log = open(args.log, "a", encoding="utf-8")

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if address in self.args.reject_rcpt:
            return "550 5.1.1 <%s>: recipient rejected" % address
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        data = envelope.content
        if isinstance(data, bytes):
            data = data.decode("utf-8", "replace")
        login = session.login_data
        if isinstance(login, bytes):
            login = login.decode("utf-8", "replace")
        entry = {
            "index": self.count,
            "time": time.time(),
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "data": data,
            "tls": self.args.mode == "smtps" or session.ssl is not None,
            "auth_login": login,
            "peer_port": session.peer[1] if session.peer else None,
        }
        self.count += 1
        self.log.write(json.dumps(entry, sort_keys=True) + "\n")
        self.log.flush()
        return "250 2.0.0 Message accepted"


def make_authenticator(user, password):
    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login == user.encode()
              and auth_data.password == password.encode())
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)
    return authenticator


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--mode", choices=("plain", "starttls", "smtps"), default="plain")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--require-starttls", action="store_true")
    ap.add_argument("--auth")
    ap.add_argument("--reject-rcpt", action="append", default=[])
    ap.add_argument("--lifetime", type=float, default=MAX_LIFETIME)
    args = ap.parse_args()
    if args.mode != "plain" and not (args.cert and args.key):
        ap.error("--mode %s needs --cert and --key" % args.mode)
    if args.auth is not None and ":" not in args.auth:
        ap.error("--auth wants USER:PASS")
    lifetime = min(max(args.lifetime, 0), MAX_LIFETIME)
    logging.basicConfig(level=logging.CRITICAL)
    # aiosmtpd warns about AUTH without required TLS: this test server allows it on purpose.
    warnings.filterwarnings("ignore", category=UserWarning)

    ctx = None
    if args.cert:
        try:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(args.cert, args.key)
        except (OSError, ssl.SSLError) as e:
            print("smtp_receiver: cannot load %s: %s" % (args.cert, e), file=sys.stderr)
            return 2

    recorder = Recorder(args)
    kw = {"hostname": "receiver.test", "auth_require_tls": False}
    if args.auth is not None:
        user, password = args.auth.split(":", 1)
        kw.update(auth_required=True, authenticator=make_authenticator(user, password))
    if args.mode == "starttls":
        kw.update(tls_context=ctx, require_starttls=args.require_starttls)

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        server = loop.run_until_complete(loop.create_server(
            lambda: SMTP(recorder, loop=loop, **kw), "127.0.0.1", args.port,
            ssl=ctx if args.mode == "smtps" else None, reuse_address=True))
    except OSError as e:
        print("smtp_receiver: cannot listen: %s" % e, file=sys.stderr)
        return 2
    loop.add_signal_handler(signal.SIGTERM, loop.stop)
    loop.add_signal_handler(signal.SIGINT, loop.stop)
    loop.call_later(lifetime, loop.stop)
    print("ready", flush=True)
    loop.run_forever()
    server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
