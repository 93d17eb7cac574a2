#!/usr/bin/python3
"""A scripted STARTTLS server for certmon's integration tests (stdlib only).

Listens on 127.0.0.1:PORT and, for each connection in turn, plays the server side of a real
STARTTLS transcript (SMTP, IMAP, POP3, FTP, LDAP, PostgreSQL, MySQL or XMPP), then hands the
socket to TLS with the ssl module and reads until the client closes. Everything the client
sends is checked against the protocol: a client that deviates (wrong command, wrong bytes,
pipelining before the go-ahead, a TLS record where plaintext belongs, talking after a
refusal) is reported on stderr as "ERROR" and its connection closed.

Modes: ok (the server agrees), refuse (the protocol's real refusal), nostarttls (SMTP and
XMPP: STARTTLS is not offered at all), garbage (an HTTP 400 at the first step), silent
(accepts and says nothing).

Prints "ready" on stdout once listening. Exits after --max-conns connections or --lifetime
seconds: 0 when every client behaved, 1 when one deviated, 2 on a setup error.

Usage: starttls_peer.py --proto smtp --port 2525 --cert valid.chain.pem --key leaf.key
"""

import argparse
import os
import re
import select
import signal
import socket
import ssl
import sys
import time

PROTOS = ("smtp", "imap", "pop3", "ftp", "ldap", "postgres", "mysql", "xmpp")
MODES = ("ok", "refuse", "nostarttls", "garbage", "silent")

GARBAGE = b"HTTP/1.1 400 Bad Request\r\n\r\n"
MAX_LINE = 4096
MAX_BEFORE = 5  # commands a client may send before STARTTLS (CAPABILITY, CAPA)
QUIET_S = 0.05  # how long the client must stay quiet before the go-ahead

LDAP_STARTTLS_OID = b"1.3.6.1.4.1.1466.20037"
PG_SSLREQUEST = bytes.fromhex("0000000804d2162f")
XMPP_TLS_NS = "urn:ietf:params:xml:ns:xmpp-tls"
XMPP_STREAMS_NS = "http://etherx.jabber.org/streams"

MYSQL_CLIENT_LONG_PASSWORD = 0x00000001
MYSQL_CLIENT_PROTOCOL_41 = 0x00000200
MYSQL_CLIENT_SSL = 0x00000800
MYSQL_CLIENT_TRANSACTIONS = 0x00002000
MYSQL_CLIENT_SECURE_CONNECTION = 0x00008000
MYSQL_CLIENT_PLUGIN_AUTH = 0x00080000

# An EHLO argument (RFC 5321 section 4.1.1.1): a domain or an address literal.
DOMAIN_RE = re.compile(rb"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
                       rb"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$|^\[[0-9A-Fa-f:.IPv]+\]$")
# An IMAP tag (RFC 3501 section 9): ASTRING-CHARs except "+".
IMAP_TAG_RE = re.compile(rb"^[!#$&'),\-./0-9:;<=>?@A-Z\[\]^_`a-z|}~]+$")
XML_ATTR_RE = re.compile(r"\s+([A-Za-z_:][-A-Za-z0-9_:.]*)\s*=\s*(?:'([^'<]*)'|\"([^\"<]*)\")")


class Deviation(Exception):
    """The client broke the protocol."""


class Closed(Exception):
    """The client closed the connection (end of file)."""


def log(msg):
    print("starttls_peer: " + msg, file=sys.stderr, flush=True)


def show(data):
    """Bytes as a short printable quote."""
    text = repr(bytes(data[:120]))[1:]
    return text + ("..." if len(data) > 120 else "")


def looks_like_tls(data):
    return len(data) >= 2 and data[0] in (0x15, 0x16) and data[1] == 0x03


class Conn:
    def __init__(self, sock, args):
        self.sock = sock
        self.args = args
        self.buf = bytearray()
        self.received = 0

    # ---- reading ----

    def _recv(self, what, limit=4096):
        """Receives more bytes into buf; at most limit, so that bytes meant for TLS can stay
        in the kernel where the ssl module will find them."""
        self.sock.settimeout(self.args.step_timeout)
        try:
            data = self.sock.recv(limit)
        except socket.timeout:
            raise Deviation("client sent nothing for %.1f s while the server waited for %s"
                            % (self.args.step_timeout, what)) from None
        except ConnectionResetError:
            raise Closed("client reset the connection while the server waited for %s"
                         % what) from None
        if not data:
            if self.buf:
                raise Deviation("client closed the connection in the middle of %s: %s"
                                % (what, show(self.buf)))
            raise Closed("client closed the connection while the server waited for %s" % what)
        self.received += len(data)
        self.buf += data

    def _check_tls(self, what):
        if looks_like_tls(self.buf):
            raise Deviation("client sent a TLS record where the server expected %s: %s"
                            % (what, show(self.buf)))

    def line(self, what):
        """One CRLF-terminated line of printable ASCII, without its CRLF."""
        while True:
            self._check_tls(what)
            nl = self.buf.find(b"\n")
            end = nl if nl >= 0 else len(self.buf)
            for i, c in enumerate(self.buf[:end]):
                if (c < 0x20 or c > 0x7e) and not (c == 0x0d and i == end - 1 and nl >= 0):
                    raise Deviation("client sent a non-printable byte 0x%02x in %s: %s"
                                    % (c, what, show(self.buf)))
            if nl >= 0:
                break
            if len(self.buf) >= MAX_LINE:
                raise Deviation("client sent a line longer than %d bytes for %s"
                                % (MAX_LINE, what))
            self._recv(what)
        if nl == 0 or self.buf[nl - 1] != 0x0d:
            raise Deviation("client ended %s with a bare LF, not CRLF: %s"
                            % (what, show(self.buf[:nl + 1])))
        text = bytes(self.buf[:nl - 1])
        del self.buf[:nl + 1]
        return text

    def exact(self, n, what):
        """Exactly n bytes, never reading past them."""
        while len(self.buf) < n:
            self._recv(what, n - len(self.buf))
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def until(self, pattern, what, limit=MAX_LINE):
        """Bytes up to and including the first match of pattern (a compiled regex)."""
        while True:
            self._check_tls(what)
            m = pattern.search(self.buf)
            if m:
                data = bytes(self.buf[:m.end()])
                del self.buf[:m.end()]
                return data
            if len(self.buf) >= limit:
                raise Deviation("client sent %d bytes without completing %s: %s"
                                % (len(self.buf), what, show(self.buf)))
            self._recv(what)

    def no_pipelining(self, what):
        """The client must wait for the server's answer to what it just sent."""
        if self.buf:
            raise Deviation("client sent more after %s without waiting for the answer: %s"
                            % (what, show(self.buf)))

    def quiet_before_goahead(self, what):
        """Before the go-ahead, nothing more may have arrived: a ClientHello sent early would
        be a client that does not wait for the server's consent."""
        self.no_pipelining(what)
        ready, _, _ = select.select([self.sock], [], [], QUIET_S)
        if ready:
            try:
                data = self.sock.recv(4096, socket.MSG_PEEK)
            except OSError:
                data = b""
            if data:
                kind = "a TLS record" if looks_like_tls(data) else "data"
                raise Deviation("client sent %s after %s before the server's go-ahead: %s"
                                % (kind, what, show(data)))

    # ---- writing ----

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)


# ---- line protocols ----

def expect_line(c, want, what):
    got = c.line(what)
    if got != want:
        raise Deviation("client sent %s where the server expected %s" % (show(got), show(want)))
    c.no_pipelining(what)


def smtp(c, a):
    if a.mode == "garbage":
        c.send(GARBAGE)
        return False
    c.send("220-localhost ESMTP certmon STARTTLS test peer\r\n220 localhost ready\r\n")
    what = "EHLO"
    got = c.line(what)
    if not got.startswith(b"EHLO "):
        raise Deviation("client sent %s where the server expected EHLO" % show(got))
    name = got[5:]
    if a.ehlo_name is not None and name != a.ehlo_name.encode():
        raise Deviation("client sent EHLO %s; the server expected EHLO %s"
                        % (show(name), a.ehlo_name))
    if not DOMAIN_RE.match(name) or len(name) > 255:
        raise Deviation("client's EHLO argument is not a domain: %s" % show(name))
    c.no_pipelining(what)
    caps = ["localhost greets %s" % name.decode(), "PIPELINING", "SIZE 10240000", "8BITMIME"]
    if a.mode != "nostarttls":
        caps.append("STARTTLS")
    caps.append("ENHANCEDSTATUSCODES")
    c.send("".join("250%s%s\r\n" % ("-" if i < len(caps) - 1 else " ", cap)
                   for i, cap in enumerate(caps)))
    if a.mode == "nostarttls":
        return False
    expect_line(c, b"STARTTLS", "STARTTLS")
    if a.mode == "refuse":
        c.send("454 4.7.0 TLS not available\r\n")
        return False
    c.quiet_before_goahead("STARTTLS")
    c.send("220 2.0.0 Ready to start TLS\r\n")
    return True


def imap(c, a):
    if a.mode == "garbage":
        c.send(GARBAGE)
        return False
    caps = "IMAP4rev1 STARTTLS LOGINDISABLED" if a.mode == "ok" else "IMAP4rev1 AUTH=PLAIN"
    c.send("* OK [CAPABILITY %s] certmon STARTTLS test peer ready\r\n" % caps)
    for _ in range(MAX_BEFORE + 1):
        got = c.line("a tagged command")
        parts = got.split(b" ")
        if len(parts) != 2 or not IMAP_TAG_RE.match(parts[0]):
            raise Deviation("client sent %s where the server expected \"TAG STARTTLS\""
                            % show(got))
        tag, cmd = parts
        c.no_pipelining(cmd.decode())
        if cmd == b"CAPABILITY":
            c.send(b"* CAPABILITY " + caps.encode() + b"\r\n" + tag
                   + b" OK CAPABILITY completed\r\n")
            continue
        if cmd != b"STARTTLS":
            raise Deviation("client sent %s where the server expected \"TAG STARTTLS\""
                            % show(got))
        if a.mode != "ok":
            c.send(tag + b" NO [UNAVAILABLE] TLS not available\r\n")
            return False
        c.quiet_before_goahead("STARTTLS")
        c.send(tag + b" OK Begin TLS negotiation now\r\n")
        return True
    raise Deviation("client sent %d commands without STARTTLS" % (MAX_BEFORE + 1))


def pop3(c, a):
    if a.mode == "garbage":
        c.send(GARBAGE)
        return False
    c.send("+OK certmon STARTTLS test peer ready\r\n")
    for _ in range(MAX_BEFORE + 1):
        got = c.line("STLS")
        c.no_pipelining(got.decode())
        if got == b"CAPA":
            c.send("+OK Capability list follows\r\nUSER\r\n%s.\r\n"
                   % ("STLS\r\n" if a.mode == "ok" else ""))
            continue
        if got != b"STLS":
            raise Deviation("client sent %s where the server expected \"STLS\"" % show(got))
        if a.mode != "ok":
            c.send("-ERR TLS not available\r\n")
            return False
        c.quiet_before_goahead("STLS")
        c.send("+OK Begin TLS negotiation\r\n")
        return True
    raise Deviation("client sent %d commands without STLS" % (MAX_BEFORE + 1))


def ftp(c, a):
    if a.mode == "garbage":
        c.send(GARBAGE)
        return False
    # A multi-line greeting with a free-text line inside (RFC 959 section 4.2).
    c.send("220-certmon STARTTLS test peer\r\n  (FTP over TLS: AUTH TLS)\r\n220 Ready\r\n")
    expect_line(c, b"AUTH TLS", "AUTH TLS")
    if a.mode != "ok":
        c.send("534 Request denied for policy reasons\r\n")
        return False
    c.quiet_before_goahead("AUTH TLS")
    c.send("234 AUTH TLS successful\r\n")
    return True


# ---- LDAP ----

def ber_length(c, what):
    first = c.exact(1, what)[0]
    if first < 0x80:
        return first
    n = first & 0x7f
    if n == 0 or n > 4:
        raise Deviation("client sent a BER length of form 0x%02x in %s" % (first, what))
    v = 0
    for b in c.exact(n, what):
        v = v << 8 | b
    return v


def ber_tlv(data, pos, what):
    """(tag, content, next position) of the element at data[pos:]."""
    if pos + 2 > len(data):
        raise Deviation("truncated %s: %s" % (what, show(data)))
    tag, ln = data[pos], data[pos + 1]
    pos += 2
    if ln & 0x80:
        n = ln & 0x7f
        if n == 0 or n > 4 or pos + n > len(data):
            raise Deviation("bad BER length in %s: %s" % (what, show(data)))
        ln = int.from_bytes(data[pos:pos + n], "big")
        pos += n
    if pos + ln > len(data):
        raise Deviation("truncated %s: %s" % (what, show(data)))
    return tag, data[pos:pos + ln], pos + ln


def ber_len_bytes(n):
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def ber(tag, content):
    return bytes([tag]) + ber_len_bytes(len(content)) + content


def ldap(c, a):
    what = "the StartTLS ExtendedRequest"
    head = c.exact(1, what)
    if head[0] != 0x30:
        head += c.exact(1, what)
        if looks_like_tls(head):
            raise Deviation("client sent a TLS record where the server expected %s" % what)
        raise Deviation("client sent %s where the server expected an LDAPMessage SEQUENCE"
                        % show(head))
    length = ber_length(c, what)
    if length > 1024:
        raise Deviation("client announced a %d-byte LDAP message" % length)
    body = c.exact(length, what)
    tag, msgid_b, pos = ber_tlv(body, 0, "messageID")
    if tag != 0x02 or not 1 <= len(msgid_b) <= 4 or msgid_b[0] & 0x80:
        raise Deviation("bad messageID in %s: %s" % (what, show(body)))
    msgid = int.from_bytes(msgid_b, "big")
    if msgid == 0:
        raise Deviation("client used messageID 0, which is reserved (RFC 4511 section 4.1.1)")
    tag, op, pos = ber_tlv(body, pos, "protocolOp")
    if tag != 0x77:
        raise Deviation("client sent LDAP operation 0x%02x, not an ExtendedRequest (0x77)" % tag)
    if pos != len(body):
        tag, _, end = ber_tlv(body, pos, "controls")
        if tag != 0xa0 or end != len(body):
            raise Deviation("unexpected bytes after the ExtendedRequest: %s" % show(body[pos:]))
    tag, oid, opos = ber_tlv(op, 0, "requestName")
    if tag != 0x80 or oid != LDAP_STARTTLS_OID:
        raise Deviation("client's requestName is %s (tag 0x%02x), not the StartTLS OID %s"
                        % (show(oid), tag, LDAP_STARTTLS_OID.decode()))
    if opos != len(op):
        raise Deviation("client sent a requestValue with StartTLS (RFC 4511 section 4.14.1 "
                        "says it is absent): %s" % show(op[opos:]))
    c.no_pipelining(what)
    if a.mode == "garbage":
        c.send(GARBAGE)
        return False
    if a.mode == "ok":
        result = ber(0x0a, b"\x00") + ber(0x04, b"") + ber(0x04, b"")
        result += ber(0x8a, LDAP_STARTTLS_OID)  # responseName
    else:
        result = (ber(0x0a, b"\x02") + ber(0x04, b"")
                  + ber(0x04, b"StartTLS is not supported by this server"))
    msg = ber(0x30, ber(0x02, msgid_b) + ber(0x78, result))
    if a.mode != "ok":
        c.send(msg)
        return False
    c.quiet_before_goahead("StartTLS")
    c.send(msg)
    return True


# ---- PostgreSQL ----

def postgres(c, a):
    what = "the 8-byte SSLRequest"
    got = c.exact(8, what)
    if got != PG_SSLREQUEST:
        kind = "a TLS record" if looks_like_tls(got) else show(got)
        raise Deviation("client sent %s where the server expected %s (%s)"
                        % (kind, what, PG_SSLREQUEST.hex()))
    c.no_pipelining("SSLRequest")
    if a.mode == "garbage":
        c.send(GARBAGE)
        return False
    if a.mode != "ok":
        c.send(b"N")
        return False
    c.quiet_before_goahead("SSLRequest")
    c.send(b"S")
    return True


# ---- MySQL ----

def mysql_handshake(ssl_ok):
    caps = (MYSQL_CLIENT_LONG_PASSWORD | MYSQL_CLIENT_PROTOCOL_41 | MYSQL_CLIENT_TRANSACTIONS
            | MYSQL_CLIENT_SECURE_CONNECTION | MYSQL_CLIENT_PLUGIN_AUTH)
    if ssl_ok:
        caps |= MYSQL_CLIENT_SSL
    scramble = b"certmon-scramble-20b"[:20]
    plugin = b"mysql_native_password"
    payload = (bytes([10]) + b"8.0.36-certmon-test\x00"
               + (4242).to_bytes(4, "little")            # connection id
               + scramble[:8] + b"\x00"                  # auth-plugin-data-part-1, filler
               + (caps & 0xffff).to_bytes(2, "little")   # capability flags, lower
               + bytes([0x21])                           # character set utf8_general_ci
               + (0x0002).to_bytes(2, "little")          # status: SERVER_STATUS_AUTOCOMMIT
               + (caps >> 16).to_bytes(2, "little")      # capability flags, upper
               + bytes([len(scramble) + 1])              # auth-plugin-data length
               + bytes(10)                               # reserved
               + scramble[8:] + b"\x00"                  # auth-plugin-data-part-2
               + plugin + b"\x00")
    return len(payload).to_bytes(3, "little") + b"\x00" + payload


def mysql(c, a):
    if a.mode == "garbage":
        c.send(GARBAGE)
        return False
    c.send(mysql_handshake(a.mode == "ok"))
    if a.mode != "ok":
        # Without CLIENT_SSL a client that wants TLS must give up, not log in in plaintext.
        return False
    what = "the 36-byte SSLRequest"
    head = c.exact(4, what)
    if looks_like_tls(head):
        raise Deviation("client sent a TLS record where the server expected %s" % what)
    length = int.from_bytes(head[:3], "little")
    if length != 32 or head[3] != 1:
        raise Deviation("SSLRequest header is %s: want payload length 32, sequence id 1"
                        % head.hex())
    body = c.exact(32, what)
    caps = int.from_bytes(body[0:4], "little")
    max_packet = int.from_bytes(body[4:8], "little")
    missing = [n for n, f in (("CLIENT_SSL", MYSQL_CLIENT_SSL),
                              ("CLIENT_PROTOCOL_41", MYSQL_CLIENT_PROTOCOL_41)) if not caps & f]
    if missing:
        raise Deviation("SSLRequest capability flags 0x%08x lack %s" % (caps, ", ".join(missing)))
    if max_packet == 0:
        raise Deviation("SSLRequest max packet size is 0")
    if body[8] == 0:
        raise Deviation("SSLRequest character set is 0")
    if body[9:] != bytes(23):
        raise Deviation("SSLRequest reserved bytes are not zero: %s" % body[9:].hex())
    log("MySQL SSLRequest: capabilities 0x%08x, max packet %d, charset %d"
        % (caps, max_packet, body[8]))
    # No answer: TLS starts right after the SSLRequest; the ClientHello may already be here.
    return True


# ---- XMPP ----

XML_DECL_RE = re.compile(rb"^\s*<\?xml\s[^<>]*\?>")
STREAM_RE = re.compile(rb"<stream:stream(?=[\s>])[^<>]*>")


def xml_attrs(tag):
    attrs = {}
    for m in XML_ATTR_RE.finditer(tag):
        attrs[m.group(1)] = m.group(2) if m.group(2) is not None else m.group(3)
    return attrs


def xmpp(c, a):
    what = "the initial stream header"
    header = c.until(STREAM_RE, what).decode("utf-8", "replace")
    decl = XML_DECL_RE.match(header.encode())
    rest = header[len(decl.group(0).decode()) if decl else 0:].lstrip()
    if decl and "version=" not in decl.group(0).decode():
        raise Deviation("XML declaration without a version: %s" % decl.group(0))
    if not rest.startswith("<stream:stream"):
        raise Deviation("client sent %s before its stream header" % show(header.encode()))
    attrs = xml_attrs(rest[len("<stream:stream"):-1])
    want = {"xmlns": "jabber:client", "xmlns:stream": XMPP_STREAMS_NS, "version": "1.0",
            "to": a.xmpp_host}
    for k, v in want.items():
        if attrs.get(k) != v:
            raise Deviation("stream header attribute %s is %r, want %r (header: %s)"
                            % (k, attrs.get(k), v, show(header.encode())))
    c.no_pipelining("the stream header")
    if a.mode == "garbage":
        c.send(GARBAGE)
        return False
    features = "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism>" \
               "</mechanisms>"
    if a.mode != "nostarttls":
        features = "<starttls xmlns='%s'><required/></starttls>" % XMPP_TLS_NS
    c.send("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='%s' "
           "id='certmon-test-1' from='%s' version='1.0' xml:lang='en'>"
           "<stream:features>%s</stream:features>" % (XMPP_STREAMS_NS, a.xmpp_host, features))
    if a.mode == "nostarttls":
        return False
    variants = ["<starttls xmlns='%s'/>" % XMPP_TLS_NS, "<starttls xmlns=\"%s\"/>" % XMPP_TLS_NS]
    got = c.until(re.compile(rb">"), "<starttls/>").decode("utf-8", "replace")
    if got.strip() not in variants:
        raise Deviation("client sent %s where the server expected %s"
                        % (show(got.encode()), variants[0]))
    if a.mode != "ok":
        c.no_pipelining("<starttls/>")
        c.send("<failure xmlns='%s'/></stream:stream>" % XMPP_TLS_NS)
        return False
    c.quiet_before_goahead("<starttls/>")
    c.send("<proceed xmlns='%s'/>" % XMPP_TLS_NS)
    return True


HANDLERS = {"smtp": smtp, "imap": imap, "pop3": pop3, "ftp": ftp, "ldap": ldap,
            "postgres": postgres, "mysql": mysql, "xmpp": xmpp}

# What a polite client may say after a refusal before closing.
GOODBYES = {"smtp": re.compile(rb"^QUIT\r\n$"), "pop3": re.compile(rb"^QUIT\r\n$"),
            "ftp": re.compile(rb"^QUIT\r\n$"), "imap": re.compile(rb"^\S+ LOGOUT\r\n$"),
            "xmpp": re.compile(rb"^\s*</stream:stream>\s*$")}


def linger(c, a, after):
    """After a refusal (or garbage, or in silent mode): the client should close, perhaps
    after a polite goodbye; anything else is a deviation."""
    hold = a.silent_hold if a.mode == "silent" else a.step_timeout
    start = time.monotonic()
    deadline = start + hold
    data = bytearray(c.buf)
    bye = GOODBYES.get(a.proto)
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            if a.mode == "silent":
                log("note: silent: client still connected after %.1f s, having sent %s"
                    % (hold, show(data) if data else "nothing"))
                return
            raise Deviation("client kept the connection open %.1f s after %s" % (hold, after))
        c.sock.settimeout(left)
        try:
            chunk = c.sock.recv(4096)
        except socket.timeout:
            continue
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            break
        data += chunk
        if a.mode == "silent":
            continue
        if looks_like_tls(data):
            raise Deviation("client started TLS after %s: %s" % (after, show(data)))
        if bye and bye.match(bytes(data)):
            log("client said goodbye after %s: %s" % (after, show(data)))
            return
        if bye is None or len(data) > 64 or b"\n" in data:
            raise Deviation("client kept talking after %s: %s" % (after, show(data)))
    if a.mode == "silent":
        log("silent: client closed after %.2f s, having sent %s"
            % (time.monotonic() - start, show(data) if data else "nothing"))
    elif data:
        raise Deviation("client sent %s after %s, then closed" % (show(data), after))
    else:
        log("client closed after %s" % after)


def do_tls(c, a, ctx):
    c.sock.settimeout(a.step_timeout)
    tls = ctx.wrap_socket(c.sock, server_side=True, do_handshake_on_connect=False)
    try:
        tls.do_handshake()
    except (ssl.SSLError, OSError) as e:
        raise Deviation("TLS handshake failed: %s" % e) from None
    log("TLS handshake done: %s %s" % (tls.version(), tls.cipher()[0]))
    # Read until the client closes: a short, bounded wait.
    deadline = time.monotonic() + a.step_timeout
    while time.monotonic() < deadline:
        tls.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = tls.recv(4096)
        except socket.timeout:
            log("note: client kept the TLS connection open for %.1f s" % a.step_timeout)
            break
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError, ConnectionResetError):
            log("client closed the TLS connection (without close_notify)")
            break
        except ssl.SSLError as e:
            log("note: TLS read after the handshake: %s" % e)
            break
        if not data:
            log("client closed the TLS connection")
            break
        log("note: client sent %d bytes over TLS" % len(data))
    try:
        tls.close()
    except OSError:
        pass


def serve_one(sock, n, a, ctx):
    """Returns False when the client deviated."""
    c = Conn(sock, a)
    try:
        if a.mode == "silent":
            linger(c, a, "accepting in silence")
            return True
        if HANDLERS[a.proto](c, a):
            log("conn %d: %s preamble done, starting TLS" % (n, a.proto))
            do_tls(c, a, ctx)
        else:
            linger(c, a, "the server's %s answer" % a.mode)
        return True
    except Closed as e:
        if c.received == 0:
            log("conn %d: %s, before sending anything" % (n, e))
            return True
        log("conn %d: ERROR: %s" % (n, e))
        return False
    except Deviation as e:
        log("conn %d: ERROR: %s" % (n, e))
        return False
    except OSError as e:
        log("conn %d: ERROR: socket error: %s" % (n, e))
        return False
    finally:
        try:
            sock.close()
        except OSError:
            pass


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--proto", required=True, choices=PROTOS)
    p.add_argument("--port", required=True, type=int)
    p.add_argument("--cert", required=True, help="certificate chain file (PEM), leaf first")
    p.add_argument("--key", required=True, help="private key file (PEM)")
    p.add_argument("--mode", default="ok", choices=MODES)
    p.add_argument("--max-conns", type=int, default=50)
    p.add_argument("--lifetime", type=float, default=300.0)
    p.add_argument("--step-timeout", type=float, default=10.0,
                   help="longest wait for each client message")
    p.add_argument("--silent-hold", type=float, default=30.0,
                   help="silent mode: longest time to keep a connection")
    p.add_argument("--ehlo-name", help="SMTP: the exact EHLO argument the client must send")
    p.add_argument("--xmpp-host", default="localhost",
                   help="XMPP: the 'to' the client's stream header must carry")
    a = p.parse_args()
    if a.mode == "nostarttls" and a.proto not in ("smtp", "xmpp"):
        p.error("--mode nostarttls is for smtp and xmpp")
    if a.max_conns < 1 or a.lifetime <= 0 or a.step_timeout <= 0:
        p.error("--max-conns, --lifetime and --step-timeout must be positive")

    def out_of_time(signum, frame):
        log("lifetime of %.0f s is over" % a.lifetime)
        os._exit(3)

    signal.signal(signal.SIGALRM, out_of_time)
    signal.setitimer(signal.ITIMER_REAL, a.lifetime)

    try:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.cert, a.key)
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", a.port))
        srv.listen(16)
    except (OSError, ssl.SSLError) as e:
        log("cannot start: %s" % e)
        return 2
    print("ready", flush=True)
    log("%s peer (mode %s) listening on 127.0.0.1:%d" % (a.proto, a.mode, a.port))

    ok = True
    for n in range(1, a.max_conns + 1):
        try:
            sock, peer = srv.accept()
        except OSError as e:
            log("accept failed: %s" % e)
            return 2
        log("conn %d: from %s:%d" % (n, peer[0], peer[1]))
        good = serve_one(sock, n, a, ctx)
        ok = ok and good
        log("conn %d: end (%s)" % (n, "ok" if good else "client deviated"))
    srv.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
