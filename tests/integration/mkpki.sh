#!/bin/sh
# Generates the test PKI into DIR with certtool: a root CA, an intermediate CA, and leaf
# certificates for each integration case (openssl makes the OCSP responses). Dates are
# relative to now, so every run tests the same situations. Usage: mkpki.sh DIR
set -eu
dir=$1
mkdir -p "$dir"
cd "$dir"
export TZ=UTC
now=$(date -u +%s)

when() { date -u -d "@$((now + $1))" '+%Y-%m-%d %H:%M:%S'; }
day=86400

key() { certtool --generate-privkey --key-type=rsa --bits=2048 --outfile "$1" 2>/dev/null; }

# template NAME CN FROM_OFFSET TO_OFFSET KIND [SAN...]
template() {
    name=$1 cn=$2 from=$3 to=$4 kind=$5
    shift 5
    {
        echo "cn = \"$cn\""
        # Random 64-bit serial with the top bit clear: DER integers are signed, and RFC 5280
        # wants serials positive.
        echo "serial = 0x$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n' | sed 's/^./1/')"
        echo "activation_date = \"$(when "$from")\""
        echo "expiration_date = \"$(when "$to")\""
        for san in "$@"; do
            case $san in
            *:* | *[0-9]) case $san in *[!0-9a-f.:]*) echo "dns_name = \"$san\"" ;;
                          *) echo "ip_address = \"$san\"" ;; esac ;;
            *) echo "dns_name = \"$san\"" ;;
            esac
        done
        if [ "$kind" = ca ]; then
            echo "ca"
            echo "cert_signing_key"
            echo "crl_signing_key"
        else
            echo "tls_www_server"
            echo "signing_key"
            echo "encryption_key"
        fi
    } >"$name.tmpl"
}

key root.key
key inter.key
key leaf.key
key self.key

template root "certmon Test Root CA" $((-10 * day)) $((3650 * day)) ca
certtool --generate-self-signed --load-privkey root.key --template root.tmpl \
    --outfile root.pem 2>/dev/null

template inter "certmon Test Intermediate CA" $((-10 * day)) $((1825 * day)) ca
certtool --generate-certificate --load-privkey inter.key --load-ca-certificate root.pem \
    --load-ca-privkey root.key --template inter.tmpl --outfile inter.pem 2>/dev/null

leaf() {
    template "$@"
    certtool --generate-certificate --load-privkey leaf.key --load-ca-certificate inter.pem \
        --load-ca-privkey inter.key --template "$1.tmpl" --outfile "$1.pem" 2>/dev/null
    cat "$1.pem" inter.pem >"$1.chain.pem"
}

leaf valid localhost $((-1 * day)) $((90 * day)) leaf localhost 127.0.0.1 ::1
leaf expired localhost $((-60 * day)) $((-2 * day)) leaf localhost 127.0.0.1
leaf notyet localhost $((10 * day)) $((100 * day)) leaf localhost 127.0.0.1
# The expiring leaves have lifetimes of 95 and 110 days, so that the fixed day thresholds
# (crit_days 7, warn_days 30) are shorter than the shares of the lifetime (10%, 33%) and fire:
# a leaf issued yesterday for 5 days is fine under the lifetime rule.
leaf expiring5 localhost $((-90 * day)) $((5 * day)) leaf localhost 127.0.0.1
leaf expiring20 localhost $((-90 * day)) $((20 * day)) leaf localhost 127.0.0.1
leaf wrongname wrong.example $((-1 * day)) $((90 * day)) leaf wrong.example

template self localhost $((-1 * day)) $((90 * day)) leaf localhost 127.0.0.1
certtool --generate-self-signed --load-privkey self.key --template self.tmpl \
    --outfile self.pem 2>/dev/null
cp self.pem self.chain.pem

# ---- Cases of tests/integration/test_findings.c ----

# issue NAME KEY CA [CERTTOOL_OPTION...]: signs NAME.tmpl (made by template) for the key KEY
# with CA.pem and CA.key into NAME.pem, and writes NAME.chain.pem (NAME.pem, then CA.pem).
issue() {
    name=$1 k=$2 ca=$3
    shift 3
    certtool --generate-certificate --load-privkey "$k" --load-ca-certificate "$ca.pem" \
        --load-ca-privkey "$ca.key" --template "$name.tmpl" --outfile "$name.pem" "$@" 2>/dev/null
    cat "$name.pem" "$ca.pem" >"$name.chain.pem"
}

certtool --generate-privkey --key-type=rsa --bits=1024 --outfile rsa1024.key 2>/dev/null
certtool --generate-privkey --key-type=ecdsa --curve=secp256r1 --outfile ec.key 2>/dev/null
# No P-224 leaf: certtool makes one and s_server loads it, but certmon's GnuTLS offers no
# secp224r1 group and TLS 1.3 has no P-224 signature scheme, so the handshake fails (40).
key inter_expired.key

template rsa1024 localhost $((-1 * day)) $((90 * day)) leaf localhost 127.0.0.1
issue rsa1024 rsa1024.key inter
template ec localhost $((-1 * day)) $((90 * day)) leaf localhost 127.0.0.1
issue ec ec.key inter
template sha1 localhost $((-1 * day)) $((90 * day)) leaf localhost 127.0.0.1
issue sha1 leaf.key inter --hash SHA1
template nosan localhost $((-1 * day)) $((90 * day)) leaf
issue nosan leaf.key inter
template longlife localhost $((-1 * day)) $((499 * day)) leaf localhost 127.0.0.1
issue longlife leaf.key inter
# Lifetime-scaled expiry thresholds: a 6-day leaf with 4 days left (fine), the same with 12
# hours left (critical: under 10%), and a 90-day leaf backdated so that 25 days are left
# (a warning: under 33% of 90 days, which is less than warn_days).
template short6 localhost $((-2 * day)) $((4 * day)) leaf localhost 127.0.0.1
issue short6 leaf.key inter
template short6end localhost $((-11 * day / 2)) $((day / 2)) leaf localhost 127.0.0.1
issue short6end leaf.key inter
template ninety25 localhost $((-65 * day)) $((25 * day)) leaf localhost 127.0.0.1
issue ninety25 leaf.key inter
template wildcard localhost $((-1 * day)) $((90 * day)) leaf '*.localtest' localhost
issue wildcard leaf.key inter
# RFC 7633 TLS feature status_request (5): OCSP must-staple.
template mustaple localhost $((-1 * day)) $((90 * day)) leaf localhost 127.0.0.1
echo "tls_feature = 5" >>mustaple.tmpl
issue mustaple leaf.key inter
template revoked localhost $((-1 * day)) $((90 * day)) leaf localhost 127.0.0.1
issue revoked leaf.key inter

# A second intermediate under the root that expired 5 days ago, and a valid leaf under it.
template inter_expired "certmon Test Expired Intermediate CA" $((-400 * day)) $((-5 * day)) ca
issue inter_expired inter_expired.key root
template leaf_under_expired localhost $((-1 * day)) $((90 * day)) leaf localhost 127.0.0.1
issue leaf_under_expired leaf.key inter_expired

# Chains to serve after valid.pem: in order with the root at the end, and out of order.
cat inter.pem root.pem >inter_root.pem
cat root.pem inter.pem >root_inter.pem

# OCSP responses signed by the intermediate: good for valid.pem, revoked for revoked.pem.
# index.txt is in the format of openssl ca: status, expiry, revocation, serial, file, DN.
asn1time() { date -u -d "@$((now + $1))" '+%y%m%d%H%M%SZ'; }
serial() { openssl x509 -in "$1" -noout -serial | sed 's/^serial=//'; }
printf 'V\t%s\t\t%s\tunknown\t/CN=localhost\n' "$(asn1time $((90 * day)))" \
    "$(serial valid.pem)" >index.txt
printf 'R\t%s\t%s\t%s\tunknown\t/CN=localhost\n' "$(asn1time $((90 * day)))" \
    "$(asn1time $((-1 * 3600)))" "$(serial revoked.pem)" >>index.txt
for c in valid revoked; do
    openssl ocsp -index index.txt -rsigner inter.pem -rkey inter.key -CA inter.pem \
        -issuer inter.pem -cert "$c.pem" -ndays 7 -respout "$c.ocsp.der" >/dev/null
done

# Client certificates for mTLS (TLS web client usage): a valid one, one that expires in 5
# days (of 95) and one that expired yesterday under our intermediate, and one from a foreign root
# that no test server trusts.
certtool --generate-privkey --key-type=ecdsa --curve=secp256r1 --outfile client.key 2>/dev/null
certtool --generate-privkey --key-type=ecdsa --curve=secp256r1 --outfile foreign_root.key \
    2>/dev/null
client_template() {
    template "$@"
    sed -i 's/^tls_www_server$/tls_www_client/' "$1.tmpl"
}
client_template client "certmon client" $((-1 * day)) $((90 * day)) leaf
issue client client.key inter
client_template client_expiring "certmon client" $((-90 * day)) $((5 * day)) leaf
issue client_expiring client.key inter
client_template client_expired "certmon client" $((-30 * day)) $((-1 * day)) leaf
issue client_expired client.key inter
template foreign_root "certmon Foreign Root" $((-10 * day)) $((3650 * day)) ca
certtool --generate-self-signed --load-privkey foreign_root.key --template foreign_root.tmpl \
    --outfile foreign_root.pem 2>/dev/null
client_template foreign_client "certmon client" $((-1 * day)) $((90 * day)) leaf
issue foreign_client client.key foreign_root

echo "$now" >now
