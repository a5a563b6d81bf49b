#!/usr/bin/python3
"""Certificates for the lab origin's per-host mode (bench/lab/run --origin-certs per-host).

  lab_certs.py CA_CERT CA_KEY LEAF_KEY OUTDIR [--unique RUN_ID COUNT SUFFIX] [NAME...]

writes OUTDIR/<name>.pem for every NAME and, with --unique, for u<RUN_ID>-<i>.<SUFFIX>,
i = 0 .. COUNT-1 (the names of `mintgate_loadgen --unique-hosts --run-id RUN_ID`): a
certificate whose subjectAltName is exactly that name (and CN=name), for the public key of
LEAF_KEY (one key shared by every leaf: it is a lab), signed with SHA-256 by the lab CA
(ECDSA P-256, CA_KEY), valid as long as the CA; its other extensions are those `openssl x509
-req` gives the wildcard certificate (serverAuth, CA:FALSE, subject and authority key
identifiers). Prints how many it wrote and how long that took.

Speed: the TBSCertificate is assembled here from DER parts (only the serial and the name
differ between two leaves) and signed with the CA key: ~60 µs per certificate on the lab VM,
mostly the ECDSA signature, where cryptography's CertificateBuilder takes ~210 µs and the
openssl CLI milliseconds (a process per certificate). Creating the files costs more than
making them: 0.1-0.4 ms each on the VM's ext4, depending on its load. Needs
python3-cryptography (scripts/deps.sh --lab) for the keys and the signature.
"""
import base64
import os
import sys
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec


def tlv(tag, body):
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    ln = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(ln)]) + ln + body


def seq(*parts):
    return tlv(0x30, b"".join(parts))


def integer(v):
    return tlv(0x02, v.to_bytes(v.bit_length() // 8 + 1, "big"))  # positive, minimal


def der_time(t):
    if 1950 <= t.year < 2050:
        return tlv(0x17, t.strftime("%y%m%d%H%M%SZ").encode())
    return tlv(0x18, t.strftime("%Y%m%d%H%M%SZ").encode())


OID_CN = bytes.fromhex("0603550403")
OID_SAN = bytes.fromhex("0603551d11")
OID_EKU = bytes.fromhex("0603551d25")
OID_BC = bytes.fromhex("0603551d13")
OID_SKI = bytes.fromhex("0603551d0e")
OID_AKI = bytes.fromhex("0603551d23")
OID_SERVER_AUTH = bytes.fromhex("06082b06010505070301")
ECDSA_SHA256 = seq(bytes.fromhex("06082a8648ce3d040302"))  # no parameters


def main(argv):
    if len(argv) < 5:
        print(__doc__, file=sys.stderr)
        return 2
    ca_cert_path, ca_key_path, leaf_key_path, outdir = argv[1:5]
    rest = argv[5:]
    names = []
    if rest[:1] == ["--unique"]:
        if len(rest) < 4:
            print("lab_certs.py: --unique wants RUN_ID COUNT SUFFIX", file=sys.stderr)
            return 2
        run_id, count, suffix = rest[1], int(rest[2]), rest[3]
        names = [f"u{run_id}-{i}.{suffix}" for i in range(count)] + rest[4:]
    else:
        names = rest
    for n in names:
        if not n or "/" in n or n.startswith("."):
            print(f"lab_certs.py: '{n}' is not a host name", file=sys.stderr)
            return 2

    with open(ca_cert_path, "rb") as fh:
        ca = x509.load_pem_x509_certificate(fh.read())
    with open(ca_key_path, "rb") as fh:
        ca_key = serialization.load_pem_private_key(fh.read(), password=None)
    with open(leaf_key_path, "rb") as fh:
        leaf_key = serialization.load_pem_private_key(fh.read(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        print("lab_certs.py: the CA key must be an EC key", file=sys.stderr)
        return 2

    # What every leaf shares, in TBSCertificate order.
    version = tlv(0xA0, integer(2))  # v3
    issuer = ca.subject.public_bytes()
    validity = seq(der_time(ca.not_valid_before), der_time(ca.not_valid_after))
    spki = leaf_key.public_key().public_bytes(serialization.Encoding.DER,
                                              serialization.PublicFormat.SubjectPublicKeyInfo)
    eku = seq(OID_EKU, tlv(0x04, seq(OID_SERVER_AUTH)))
    bc = seq(OID_BC, tlv(0x04, seq()))  # CA:FALSE
    # Key identifiers as `openssl x509 -req` adds them (SHA-1 of the public key).
    ski = seq(OID_SKI, tlv(0x04, tlv(0x04, x509.SubjectKeyIdentifier.from_public_key(
        leaf_key.public_key()).digest)))
    aki = seq(OID_AKI, tlv(0x04, seq(tlv(0x80, x509.SubjectKeyIdentifier.from_public_key(
        ca.public_key()).digest))))
    serial_base = int.from_bytes(os.urandom(7), "big") << 32  # unique per call, positive
    sig_alg = ec.ECDSA(hashes.SHA256())

    os.makedirs(outdir, exist_ok=True)
    t0 = time.monotonic()
    for i, name in enumerate(names):
        nb = name.encode()
        subject = seq(tlv(0x31, seq(OID_CN, tlv(0x0C, nb))))  # CN, UTF8String
        san = seq(OID_SAN, tlv(0x04, seq(tlv(0x82, nb))))  # dNSName
        tbs = seq(version, integer(serial_base + i), ECDSA_SHA256, issuer, validity, subject, spki,
                  tlv(0xA3, seq(san, eku, bc, ski, aki)))
        sig = ca_key.sign(tbs, sig_alg)
        der = seq(tbs, ECDSA_SHA256, tlv(0x03, b"\x00" + sig))
        b64 = base64.b64encode(der)
        pem = (b"-----BEGIN CERTIFICATE-----\n" +
               b"\n".join(b64[j:j + 64] for j in range(0, len(b64), 64)) +
               b"\n-----END CERTIFICATE-----\n")
        with open(os.path.join(outdir, name + ".pem"), "wb") as fh:
            fh.write(pem)
    dt = time.monotonic() - t0
    print(f"{len(names)} certificates in {dt:.2f} s"
          f"{f' ({dt / len(names) * 1e6:.0f} µs each)' if names else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
