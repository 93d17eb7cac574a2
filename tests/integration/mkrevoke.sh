#!/bin/sh
# Generates the revocation test PKI into DIR with openssl: a root, an intermediate whose leaves
# name CRL distribution points and an OCSP responder on 127.0.0.1, CRLs made by `openssl ca`
# (current, stale, and one signed by an impostor key), and a second intermediate that the
# root's CRL revokes. Dates are relative to now.
# Usage: mkrevoke.sh DIR HTTP_PORT OCSP_PORT DOWN_PORT TARPIT_PORT FORGED_OCSP_PORT
set -eu
dir=$1 http=$2 ocsp=$3 down=$4 tarpit=$5 forgedocsp=$6
mkdir -p "$dir/www"
cd "$dir"
export TZ=UTC

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# ca.cnf: one openssl ca section per CA (its own index), CRLs valid 7 days.
cat >ca.cnf <<EOF
[ ca ]
default_ca = root_ca
[ root_ca ]
database = $dir/root.index
crlnumber = $dir/root.crlnumber
default_md = sha256
default_crl_days = 7
crl_extensions = crl_ext
[ inter_ca ]
database = $dir/inter.index
crlnumber = $dir/inter.crlnumber
default_md = sha256
default_crl_days = 7
crl_extensions = crl_ext
[ inter2_ca ]
database = $dir/inter2.index
crlnumber = $dir/inter2.crlnumber
default_md = sha256
default_crl_days = 7
crl_extensions = crl_ext
[ fake_ca ]
database = $dir/fake.index
crlnumber = $dir/fake.crlnumber
default_md = sha256
default_crl_days = 7
[ crl_ext ]
authorityKeyIdentifier = keyid:always
[ v3_ca ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[ v3_inter ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
crlDistributionPoints = URI:http://127.0.0.1:$http/root.crl
[ v3_ocsp ]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = OCSPSigning
EOF
for ca in root inter inter2 fake; do
    : >"$ca.index"
    echo 1000 >"$ca.crlnumber"
done

# A leaf under CA NAME with extensions: leaf NAME CA CRL_URL OCSP_URL (either may be "-").
leaf() {
    name=$1 ca=$2 crl=$3 ocspurl=$4
    {
        echo "[ ext ]"
        echo "basicConstraints = CA:FALSE"
        echo "keyUsage = critical, digitalSignature"
        echo "extendedKeyUsage = serverAuth"
        echo "subjectAltName = DNS:localhost, IP:127.0.0.1"
        echo "subjectKeyIdentifier = hash"
        echo "authorityKeyIdentifier = keyid:always"
        [ "$crl" = - ] || echo "crlDistributionPoints = URI:$crl"
        [ "$ocspurl" = - ] || echo "authorityInfoAccess = OCSP;URI:$ocspurl"
    } >"$name.ext"
    openssl req -new -key leaf.key -subj "/CN=$name.localhost" -out "$name.csr" 2>/dev/null
    openssl x509 -req -in "$name.csr" -CA "$ca.pem" -CAkey "$ca.key" -set_serial "0x$(openssl rand -hex 8 | sed 's/^./1/')" \
        -days 90 -sha256 -extfile "$name.ext" -extensions ext -out "$name.pem" 2>/dev/null
}

key root.key
key inter.key
key inter2.key
key leaf.key
key fake.key
key responder.key

openssl req -new -x509 -key root.key -subj "/CN=certmon Revocation Root" -days 3650 -sha256 \
    -config ca.cnf -extensions v3_ca -out root.pem 2>/dev/null
for i in inter inter2; do
    openssl req -new -key "$i.key" -subj "/CN=certmon Revocation $i" -out "$i.csr" 2>/dev/null
    openssl x509 -req -in "$i.csr" -CA root.pem -CAkey root.key -set_serial "0x$(openssl rand -hex 8 | sed 's/^./1/')" \
        -days 1825 -sha256 -extfile ca.cnf -extensions v3_inter -out "$i.pem" 2>/dev/null
done
# The impostor: the intermediate's name, another key.
openssl req -new -x509 -key fake.key -subj "/CN=certmon Revocation inter" -days 3650 -sha256 \
    -config ca.cnf -extensions v3_ca -out fake.pem 2>/dev/null

base=http://127.0.0.1:$http
leaf good inter "$base/inter.crl" -
leaf revoked inter "$base/inter.crl" -
leaf forged inter "$base/forged.crl" -
leaf stale inter "$base/stale.crl" -
leaf down inter "http://127.0.0.1:$down/inter.crl" -
leaf tarpit inter "http://127.0.0.1:$tarpit/inter.crl" -
leaf under2 inter2 "$base/inter2.crl" -
leaf nothing inter - -
leaf ocspgood inter - "http://127.0.0.1:$ocsp/"
leaf ocsprevoked inter - "http://127.0.0.1:$ocsp/"
leaf ocspdown inter - "http://127.0.0.1:$down/"
leaf ocspforged inter - "http://127.0.0.1:$forgedocsp/"

# The OCSP responder's delegated certificate (OCSP signing EKU), issued by the intermediate.
openssl req -new -key responder.key -subj "/CN=certmon OCSP responder" -out responder.csr 2>/dev/null
openssl x509 -req -in responder.csr -CA inter.pem -CAkey inter.key -set_serial 0x7001 -days 30 \
    -sha256 -extfile ca.cnf -extensions v3_ocsp -out responder.pem 2>/dev/null

gencrl() { # gencrl SECTION CA OUT [extra openssl ca options]
    section=$1 cakey=$2 out=$3
    shift 3
    openssl ca -config ca.cnf -name "$section" -keyfile "$cakey.key" -cert "$cakey.pem" -batch \
        -gencrl "$@" -out "$out.pem" 2>/dev/null
    openssl crl -in "$out.pem" -outform DER -out "www/$out" 2>/dev/null
}
openssl ca -config ca.cnf -name inter_ca -keyfile inter.key -cert inter.pem -batch \
    -revoke revoked.pem -crl_reason keyCompromise 2>/dev/null
openssl ca -config ca.cnf -name inter_ca -keyfile inter.key -cert inter.pem -batch \
    -revoke ocsprevoked.pem -crl_reason superseded 2>/dev/null
openssl ca -config ca.cnf -name root_ca -keyfile root.key -cert root.pem -batch \
    -revoke inter2.pem -crl_reason cACompromise 2>/dev/null
# The responder's index lists the good OCSP leaf as valid (else it answers "unknown").
openssl ca -config ca.cnf -name inter_ca -keyfile inter.key -cert inter.pem -batch \
    -valid ocspgood.pem 2>/dev/null
openssl ca -config ca.cnf -name inter_ca -keyfile inter.key -cert inter.pem -batch \
    -valid ocspforged.pem 2>/dev/null
gencrl inter_ca inter inter.crl
gencrl root_ca root root.crl
gencrl inter2_ca inter2 inter2.crl
# Stale: last updated ten days ago, next update three days ago.
last=$(date -u -d '-10 days' +%Y%m%d%H%M%SZ)
next=$(date -u -d '-3 days' +%Y%m%d%H%M%SZ)
gencrl inter_ca inter stale.crl -crl_lastupdate "$last" -crl_nextupdate "$next"
# Forged: the intermediate's name, the impostor's key.
gencrl fake_ca fake forged.crl
cp inter.index ocsp.index
