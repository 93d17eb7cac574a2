#!/usr/bin/python3
"""Fills a certmon state database with N targets t000001..tN for the scale benchmark: the
report of the first row that has one (from a short real run) is copied to every target with
its "target" member renamed, packed as certmon packs it (raw DEFLATE with the preset
dictionary of src/base/pack_dict.inc) when the copied row was packed; the first history row
is copied to every target too (seen now), as a fleet that has run for a while has them. With
LEAVES "distinct", every target gets a leaf of its own (fingerprint, serial, subject, SANs;
the intermediate and root stay shared), in its report and its history row.

usage: fill_state.py DB N [shared|distinct]"""
import ast
import hashlib
import json
import os
import sqlite3
import struct
import sys
import zlib

here = os.path.dirname(os.path.abspath(__file__))


def dictionary():
    with open(os.path.join(here, "..", "..", "src", "base", "pack_dict.inc")) as f:
        parts = [ast.literal_eval(line.strip().rstrip(";")) for line in f if line.strip()]
    return "".join(parts).encode()


DICT = dictionary()


def unpack(b):
    n = struct.unpack("<I", b[1:5])[0]
    d = zlib.decompressobj(-15, zdict=DICT)
    t = d.decompress(b[5:]) + d.flush()
    assert len(t) == n
    return t


def pack(t):
    c = zlib.compressobj(6, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY, DICT)
    return b"\x01" + struct.pack("<I", len(t)) + c.compress(t) + c.flush()


def main():
    db, n = sys.argv[1], int(sys.argv[2])
    own = len(sys.argv) > 3 and sys.argv[3] == "distinct"
    con = sqlite3.connect(db)
    row = con.execute("SELECT status, last_probe, last_success, status_since, seen, report"
                      " FROM targets WHERE report IS NOT NULL LIMIT 1").fetchone()
    status, lp, ls, since, seen, rep = row
    packed = isinstance(rep, bytes)
    report = json.loads(unpack(rep) if packed else rep)
    sql = ("INSERT INTO targets (name, owner, status, last_probe, last_success, status_since,"
           " failures, seen, report) VALUES (?1, ?1, ?2, ?3, ?4, ?5, 0, ?6, ?7)"
           " ON CONFLICT (name) DO UPDATE SET status = excluded.status, last_probe ="
           " excluded.last_probe, last_success = excluded.last_success, status_since ="
           " excluded.status_since, seen = excluded.seen, report = excluded.report")

    leaf = report["chain"][0] if report.get("chain") else None

    def distinct(name):
        """A leaf of the target's own (fingerprint, serial, subject, SANs), as a fleet has: the
        intermediate and the root stay shared."""
        fp = hashlib.sha256(name.encode()).hexdigest()
        return fp, fp[:32], "CN=%s.example.test" % name, name + ".example.test"

    def rows():
        for i in range(1, n + 1):
            name = "t%06d" % i
            report["target"] = name
            if leaf is not None and own:
                fp, serial, subject, san = distinct(name)
                leaf["sha256"], leaf["serial"], leaf["subject"], leaf["sans"] = fp, serial, subject, [san]
            t = json.dumps(report, separators=(",", ":")).encode()
            yield (name, status, lp, ls, since, seen, pack(t) if packed else t.decode())

    with con:
        con.executemany(sql, rows())
        h = con.execute("SELECT sha256, first_seen, subject, sans, issuer, key_type, key_bits,"
                        " not_before, not_after, chain FROM history LIMIT 1").fetchone()
        def history_row(name):
            if not own:
                return (name,) + h
            fp, _, subject, san = distinct(name)
            return (name, fp) + h[1:2] + (subject, san) + h[4:]

        if h:
            con.executemany("INSERT OR IGNORE INTO history (target, sha256, first_seen,"
                            " last_seen, subject, sans, issuer, key_type, key_bits, not_before,"
                            " not_after, chain) VALUES (?, ?, ?, strftime('%s'), ?, ?, ?, ?, ?,"
                            " ?, ?, ?)",
                            (history_row("t%06d" % i) for i in range(1, n + 1)))
    con.close()


main()
