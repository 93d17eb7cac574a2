#!/bin/sh
# Generates the test PKI into DIR with certtool: a root CA, an intermediate CA, and leaf
# certificates for each integration case. Dates are relative to now, so every run tests the
# same situations. Usage: mkpki.sh DIR
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
leaf expiring5 localhost $((-1 * day)) $((5 * day)) leaf localhost 127.0.0.1
leaf expiring20 localhost $((-1 * day)) $((20 * day)) leaf localhost 127.0.0.1
leaf wrongname wrong.example $((-1 * day)) $((90 * day)) leaf wrong.example

template self localhost $((-1 * day)) $((90 * day)) leaf localhost 127.0.0.1
certtool --generate-self-signed --load-privkey self.key --template self.tmpl \
    --outfile self.pem 2>/dev/null
cp self.pem self.chain.pem

echo "$now" >now
