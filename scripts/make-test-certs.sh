#!/usr/bin/env bash
# make-test-certs.sh DIR: a throwaway PKI for the TLS tests, made with openssl in DIR:
#   ca.pem / ca.key            the test CA
#   server.pem / server.key    a server certificate for the name localhost only (no IP address: a client that
#                              connects to 127.0.0.1 must be told the name to verify), signed by the CA
#   client.pem / client.key    a client certificate (CN operyn-client), signed by the CA
#   expired.pem / expired.key  a server certificate for localhost and 127.0.0.1 that expired in 2021
#   other-ca.pem               another CA, which signed none of them (a "wrong CA" for clients)
# Keys are EC P-256; nothing here is meant for use outside the tests.
set -euo pipefail
dir=$1
mkdir -p "$dir"
cd "$dir"
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

key ca.key
openssl req -x509 -new -key ca.key -days 30 -subj "/CN=operyn test CA" -out ca.pem 2>/dev/null
key other-ca.key
openssl req -x509 -new -key other-ca.key -days 30 -subj "/CN=operyn other CA" -out other-ca.pem 2>/dev/null

cat >server.ext <<'EXT'
basicConstraints = CA:FALSE
keyUsage = digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = DNS:localhost
EXT
cat >expired.ext <<'EXT'
basicConstraints = CA:FALSE
keyUsage = digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
EXT
cat >client.ext <<'EXT'
basicConstraints = CA:FALSE
keyUsage = digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
EXT

sign() { # sign NAME SUBJECT EXT [openssl ca dates]
    key "$1.key"
    openssl req -new -key "$1.key" -subj "$2" -out "$1.csr" 2>/dev/null
    openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 -extfile "$3" -out "$1.pem" 2>/dev/null
}
sign server "/CN=localhost" server.ext
sign client "/CN=operyn-client" client.ext

# An expired certificate needs dates in the past: `openssl ca` takes them.
mkdir -p ca-db
: >ca-db/index.txt
echo 1000 >ca-db/serial
cat >ca.cnf <<CNF
[ca]
default_ca = test
[test]
dir = $PWD/ca-db
database = \$dir/index.txt
serial = \$dir/serial
new_certs_dir = \$dir
certificate = $PWD/ca.pem
private_key = $PWD/ca.key
default_md = sha256
policy = any
copy_extensions = none
[any]
commonName = supplied
CNF
key expired.key
openssl req -new -key expired.key -subj "/CN=localhost" -out expired.csr 2>/dev/null
openssl ca -batch -config ca.cnf -startdate 20200101000000Z -enddate 20210101000000Z -extfile expired.ext \
    -in expired.csr -out expired.pem >/dev/null 2>&1
# redis-server and PostgreSQL read the keys as other users: the tests' throwaway keys are world-readable, the
# server key of PostgreSQL gets its own copy owned by it (see start_postgres_tls).
chmod 644 ./*.key ./*.pem
rm -f ./*.csr ./*.srl
