// Human- and script-readable descriptions of certificates (`mintgate ca show`, audit).
#pragma once

#include <openssl/x509.h>

#include <ctime>
#include <string>
#include <vector>

namespace mintgate::tls {

struct CertInfo {
  std::string subject;     // one-line RFC 2253 form
  std::string subject_cn;  // "" when absent
  std::string issuer;
  std::string issuer_cn;
  std::string serial_hex;  // upper-case hex, colon separated
  std::time_t not_before = 0;
  std::time_t not_after = 0;
  std::string key_type;          // DescribeKey()
  std::string sha256;            // upper-case hex, colon separated, of the DER
  bool is_ca = false;            // basicConstraints CA:TRUE
  int path_len = -1;             // -1 when unlimited / absent
  bool self_signed = false;      // issuer == subject and the signature verifies with own key
  std::string key_usage;         // e.g. "keyCertSign, cRLSign" ("" when absent)
  std::vector<std::string> san;  // "DNS:x", "IP:1.2.3.4"
};

CertInfo DescribeCertificate(X509* cert);

// RFC 3339 in UTC, e.g. "2026-11-28T17:29:32Z".
std::string FormatTime(std::time_t t);

// An ASN1_TIME (UTCTime or GeneralizedTime) as seconds since the epoch; 0 if malformed.
std::time_t Asn1TimeToTimeT(const ASN1_TIME* t);

// SHA-256 fingerprint of the certificate's DER, "AB:CD:...".
std::string Sha256Fingerprint(X509* cert);

}  // namespace mintgate::tls
