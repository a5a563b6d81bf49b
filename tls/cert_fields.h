// Certificate fields built from ASN.1 structures, never from formatted configuration strings
// (HAProxy's SAN-injection bug came from feeding names to the v3 config parser).
#pragma once

#include <ctime>
#include <vector>

#include "tls/host_name.h"
#include "tls/openssl_ptr.h"

namespace mintgate::tls {

// Sets a random positive 128-bit serial number (126 bits of entropy, always 16 DER bytes).
// Draws from a per-thread pool filled by RAND_bytes, 64 serials at a time.
bool SetRandomSerial(X509* cert);

using BasicConstraintsPtr =
    std::unique_ptr<BASIC_CONSTRAINTS, OpenSslDeleter<BASIC_CONSTRAINTS_free>>;
using BitStringPtr = std::unique_ptr<ASN1_BIT_STRING, OpenSslDeleter<ASN1_BIT_STRING_free>>;
using ExtendedKeyUsagePtr =
    std::unique_ptr<EXTENDED_KEY_USAGE, OpenSslDeleter<EXTENDED_KEY_USAGE_free>>;

// The structures behind the extensions below, for X509_add1_ext_i2d (which encodes them
// straight into the certificate, where X509_add_ext would copy a finished extension).
BasicConstraintsPtr MakeBasicConstraintsValue(bool is_ca, int path_len = -1);
BitStringPtr MakeKeyUsageValue(unsigned bits);
ExtendedKeyUsagePtr MakeServerAuthEkuValue();
GeneralNamesPtr MakeGeneralNames(const std::vector<const SanName*>& names);

// basicConstraints, critical. `path_len` < 0 means no pathLenConstraint.
X509ExtensionPtr MakeBasicConstraints(bool is_ca, int path_len = -1);

// keyUsage, critical. `bits` are KU_* flags from <openssl/x509v3.h>.
X509ExtensionPtr MakeKeyUsage(unsigned bits);

// extendedKeyUsage serverAuth, not critical.
X509ExtensionPtr MakeServerAuthEku();

// subjectKeyIdentifier: SHA-1 of the certificate's public key BIT STRING (RFC 5280 method 1).
X509ExtensionPtr MakeSubjectKeyId(X509* cert);

// authorityKeyIdentifier carrying `key_id` (the signer's SKI).
X509ExtensionPtr MakeAuthorityKeyId(const ASN1_OCTET_STRING* key_id);

// subjectAltName from validated names; critical when the subject is empty (RFC 5280 4.2.1.6).
X509ExtensionPtr MakeSubjectAltName(const std::vector<const SanName*>& names, bool critical);

// Sets an ASN1_TIME in place (UTCTime before 2050, GeneralizedTime after, as RFC 5280 says).
bool SetTime(ASN1_TIME* field, std::time_t t);

// Seconds since the epoch of a certificate time field; 0 when it cannot be read.
std::time_t ToTimeT(const ASN1_TIME* t);

// The SKI of `cert` if it has one (borrowed), else nullptr.
const ASN1_OCTET_STRING* SubjectKeyIdOf(X509* cert);

}  // namespace mintgate::tls
