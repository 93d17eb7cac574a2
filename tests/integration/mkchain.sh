#!/bin/sh
# Adds the certificates of tests/integration/test_chain.c to a PKI made by mkpki.sh (root.pem,
# inter.pem and their keys must be in DIR): wrong purposes, a CA certificate as the leaf, weak
# intermediates and anchors, and an "interception" root whose SubjectPublicKeyInfo hash goes
# into a list file for --interception-roots. openssl makes them, for exact control of the
# extensions. Usage: mkchain.sh DIR
set -eu
cd "$1"
export TZ=UTC

rsa() { openssl genpkey -algorithm RSA -pkeyopt "rsa_keygen_bits:$2" -out "$1" 2>/dev/null; }
ec() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# cert NAME KEY CA HASH EXTENSIONS...: NAME.pem for KEY, signed by CA.pem/CA.key with HASH,
# CN=NAME, valid from yesterday for 90 days, with the given extension lines.
cert() {
    name=$1 k=$2 ca=$3 hash=$4
    shift 4
    printf '%s\n' "$@" >"$name.ext"
    openssl req -new -key "$k" -subj "/CN=certmon chain test $name" -out "$name.csr" 2>/dev/null
    openssl x509 -req -in "$name.csr" -CA "$ca.pem" -CAkey "$ca.key" -"$hash" -days 90 \
        -set_serial "0x$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n' | sed 's/^./1/')" \
        -extfile "$name.ext" -out "$name.pem" 2>/dev/null
}

# selfroot NAME KEY: a self-signed CA certificate for KEY.
selfroot() {
    openssl req -x509 -new -key "$2" -subj "/CN=certmon chain test $1" -sha256 -days 3650 \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out "$1.pem" 2>/dev/null
}

server_ext="subjectAltName=DNS:localhost,IP:127.0.0.1"
ca_ext="basicConstraints=critical,CA:TRUE"
ca_ku="keyUsage=critical,keyCertSign,cRLSign"

rsa chain_leaf.key 2048
ec chain_ec.key

# Wrong purposes, under inter.pem.
cert purpose_client chain_leaf.key inter sha256 "$server_ext" "extendedKeyUsage=clientAuth" \
    "keyUsage=critical,digitalSignature,keyEncipherment"
cert purpose_ec_nods chain_ec.key inter sha256 "$server_ext" "extendedKeyUsage=serverAuth" \
    "keyUsage=critical,keyAgreement"
# A correct EC leaf with both extensions, the control case.
cert purpose_ec_ok chain_ec.key inter sha256 "$server_ext" "extendedKeyUsage=serverAuth" \
    "keyUsage=critical,digitalSignature"

# A 768-bit RSA leaf: GnuTLS marks its verification INSECURE_ALGORITHM, which key.weak must
# explain (no chain.untrusted beside it). RSA-PSS-SHA256 needs at least 528 bits, so TLS 1.3
# still works with it.
rsa rsa768.key 768
cert rsa768 rsa768.key inter sha256 "$server_ext"

# An intermediate whose extended key usage (emailProtection) excludes serverAuth, and a
# server leaf under it.
rsa interemail.key 2048
cert interemail interemail.key root sha256 "$ca_ext" "$ca_ku" "extendedKeyUsage=emailProtection"
cert leaf_interemail chain_leaf.key interemail sha256 "$server_ext" "extendedKeyUsage=serverAuth"

# Weak intermediates under root.pem, each with a good leaf.
rsa inter1024.key 1024
cert inter1024 inter1024.key root sha256 "$ca_ext" "$ca_ku"
cert leaf_inter1024 chain_leaf.key inter1024 sha256 "$server_ext" "extendedKeyUsage=serverAuth"
rsa intersha1.key 2048
cert intersha1 intersha1.key root sha1 "$ca_ext" "$ca_ku"
cert leaf_intersha1 chain_leaf.key intersha1 sha256 "$server_ext" "extendedKeyUsage=serverAuth"

# A 1024-bit anchor that only the CA file holds, an intermediate and a leaf under it.
rsa weakroot.key 1024
selfroot weakroot weakroot.key
rsa weakinter.key 2048
cert weakinter weakinter.key weakroot sha256 "$ca_ext" "$ca_ku"
cert leaf_weakroot chain_leaf.key weakinter sha256 "$server_ext" "extendedKeyUsage=serverAuth"

# An interception root (a locally installed root that issues leaves for any name, as
# Superfish's did) and a leaf directly under it.
rsa iroot.key 2048
selfroot iroot iroot.key
cert leaf_iroot chain_leaf.key iroot sha256 "$server_ext" "extendedKeyUsage=serverAuth"
cat leaf_iroot.pem iroot.pem >leaf_iroot.chain.pem

# The list entry for iroot: SHA-256 of its DER SubjectPublicKeyInfo, as openssl computes it.
spki=$(openssl x509 -in iroot.pem -noout -pubkey | openssl pkey -pubin -outform DER |
    sha256sum | cut -d' ' -f1)
{
    echo "# test list written by mkchain.sh"
    echo "$spki certmon Test Interception Root"
} >interception-test.txt
echo "$spki" >iroot.spki
