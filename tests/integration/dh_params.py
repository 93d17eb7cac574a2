#!/usr/bin/python3
"""Writes a PKCS #3 DH parameters file (PEM, "BEGIN DH PARAMETERS") with the modulus and
generator given, whatever they are: for tests of servers that send a bad group (a composite
"prime", a generator of small order). OpenSSL and certtool only make good groups. Stdlib only.

The modulus is the product of the FACTORs (one factor: that number itself).

usage: dh_params.py OUT GENERATOR FACTOR [FACTOR...]   (decimal or 0x-prefixed hex)
"""
import base64
import sys


def der_len(n):
    if n < 128:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def der_int(v):
    # A leading zero byte keeps the DER INTEGER positive.
    b = v.to_bytes(v.bit_length() // 8 + 1, "big")
    return b"\x02" + der_len(len(b)) + b


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    out, g = sys.argv[1], int(sys.argv[2], 0)
    p = 1
    for f in sys.argv[3:]:
        p *= int(f, 0)
    if p < 3 or g < 0:
        sys.exit("dh_params.py: the modulus must be at least 3 and the generator not negative")
    body = der_int(p) + der_int(g)
    der = b"\x30" + der_len(len(body)) + body
    b64 = base64.b64encode(der).decode()
    with open(out, "w") as fp:
        fp.write("-----BEGIN DH PARAMETERS-----\n")
        for i in range(0, len(b64), 64):
            fp.write(b64[i:i + 64] + "\n")
        fp.write("-----END DH PARAMETERS-----\n")


if __name__ == "__main__":
    main()
