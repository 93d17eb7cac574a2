#!/usr/bin/python3
"""Validates JSON documents against a JSON Schema (python3-jsonschema, Debian).

Usage: validate_json.py SCHEMA FILE...
Each FILE holds one JSON document. Prints "ok FILE" or every error of FILE (with the path in
the document) and exits 0 when all are valid, 1 when one is not, 2 on a setup error. Formats
(date-time, uri) are checked.
"""

import datetime
import json
import re
import sys

try:
    import jsonschema
except ImportError:
    print("validate_json: python3-jsonschema is not installed", file=sys.stderr)
    sys.exit(2)


RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def rfc3339(value):
    """RFC 3339 date-time (section 5.6), with a real calendar date and time."""
    if not isinstance(value, str):
        return True
    if not RFC3339.match(value):
        raise ValueError("%r is not an RFC 3339 date-time" % value)
    datetime.datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    return True


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    with open(sys.argv[1], encoding="utf-8") as f:
        schema = json.load(f)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    checker = jsonschema.FormatChecker()
    # jsonschema checks date-time only with rfc3339-validator installed: check it here.
    checker.checks("date-time", raises=ValueError)(rfc3339)
    validator = cls(schema, format_checker=checker)
    bad = False
    for path in sys.argv[2:]:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
        for e in errors:
            where = "/".join(str(p) for p in e.absolute_path) or "(root)"
            print("invalid %s: %s: %s" % (path, where, e.message))
        if errors:
            bad = True
        else:
            print("ok %s" % path)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
