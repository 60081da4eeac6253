#!/bin/sh
# Test PKI for the DDNS HTTP tests, made with the openssl CLI:
#   ca.pem / ca.key            test CA
#   server.pem / server.key    server certificate for 127.0.0.1, ::1 (IP
#                              SANs) and localhost, signed by the test CA
#   other-ca.pem / other-ca.key  an unrelated CA: trusting it instead must
#                              make verification fail
# Usage: mkca.sh DIR   (DIR is created; existing files are overwritten)
set -eu

dir=${1:?usage: mkca.sh DIR}
mkdir -p "$dir"
cd "$dir"

days=30
umask 077

ca() { # name subject
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$1.key" -out "$1.pem" -days "$days" -subj "$2" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}

ca ca "/CN=pcpd test CA"
ca other-ca "/CN=pcpd unrelated CA"

openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
	-keyout server.key -out server.csr -subj "/CN=localhost" 2>/dev/null
cat > server.ext <<'EXT'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost
EXT
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
	-out server.pem -days "$days" -extfile server.ext 2>/dev/null
rm -f server.csr server.ext ca.srl
chmod 644 ca.pem other-ca.pem server.pem
