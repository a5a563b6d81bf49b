#include "tls/cert_fields.h"

#include <openssl/rand.h>

#include <cstring>

namespace mintgate::tls {

bool SetRandomSerial(X509* cert) {
  // RAND_bytes costs about as much for 1 KiB as for 16 bytes (DRBG locking and reseed
  // checks dominate), so draw serials from a per-thread pool.
  thread_local unsigned char pool[1024];
  thread_local std::size_t used = sizeof pool;
  unsigned char bytes[16];
  if (used + sizeof bytes > sizeof pool) {
    if (RAND_bytes(pool, sizeof pool) != 1) return false;
    used = 0;
  }
  std::memcpy(bytes, pool + used, sizeof bytes);
  OPENSSL_cleanse(pool + used, sizeof bytes);
  used += sizeof bytes;
  // Top bit clear keeps it positive; the next bit set keeps the DER length at 16 bytes.
  bytes[0] = static_cast<unsigned char>((bytes[0] & 0x3f) | 0x40);
  return ASN1_STRING_set(X509_get_serialNumber(cert), bytes, sizeof bytes) == 1;
}

BasicConstraintsPtr MakeBasicConstraintsValue(bool is_ca, int path_len) {
  BasicConstraintsPtr bc(BASIC_CONSTRAINTS_new());
  if (!bc) return nullptr;
  bc->ca = is_ca ? 0xff : 0;
  if (is_ca && path_len >= 0) {
    bc->pathlen = ASN1_INTEGER_new();
    if (bc->pathlen == nullptr || ASN1_INTEGER_set(bc->pathlen, path_len) != 1) return nullptr;
  }
  return bc;
}

X509ExtensionPtr MakeBasicConstraints(bool is_ca, int path_len) {
  BasicConstraintsPtr bc = MakeBasicConstraintsValue(is_ca, path_len);
  if (!bc) return nullptr;
  return X509ExtensionPtr(X509V3_EXT_i2d(NID_basic_constraints, 1, bc.get()));
}

BitStringPtr MakeKeyUsageValue(unsigned bits) {
  BitStringPtr ku(ASN1_BIT_STRING_new());
  if (!ku) return nullptr;
  // KU_* flags are the DER bit string's first two octets, bit 0 being the 0x80 of octet 0.
  for (int bit = 0; bit < 9; ++bit) {
    unsigned flag = bit < 8 ? (0x80u >> bit) : 0x8000u;
    if ((bits & flag) != 0 && ASN1_BIT_STRING_set_bit(ku.get(), bit, 1) != 1) return nullptr;
  }
  return ku;
}

X509ExtensionPtr MakeKeyUsage(unsigned bits) {
  BitStringPtr ku = MakeKeyUsageValue(bits);
  if (!ku) return nullptr;
  return X509ExtensionPtr(X509V3_EXT_i2d(NID_key_usage, 1, ku.get()));
}

ExtendedKeyUsagePtr MakeServerAuthEkuValue() {
  ExtendedKeyUsagePtr eku(sk_ASN1_OBJECT_new_null());
  if (!eku) return nullptr;
  ASN1_OBJECT* server_auth = OBJ_nid2obj(NID_server_auth);
  if (server_auth == nullptr || sk_ASN1_OBJECT_push(eku.get(), server_auth) == 0) return nullptr;
  return eku;
}

X509ExtensionPtr MakeServerAuthEku() {
  ExtendedKeyUsagePtr eku = MakeServerAuthEkuValue();
  if (!eku) return nullptr;
  return X509ExtensionPtr(X509V3_EXT_i2d(NID_ext_key_usage, 0, eku.get()));
}

X509ExtensionPtr MakeSubjectKeyId(X509* cert) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (X509_pubkey_digest(cert, EVP_sha1(), md, &len) != 1) return nullptr;
  Asn1OctetStringPtr ski(ASN1_OCTET_STRING_new());
  if (!ski || ASN1_OCTET_STRING_set(ski.get(), md, static_cast<int>(len)) != 1) return nullptr;
  return X509ExtensionPtr(X509V3_EXT_i2d(NID_subject_key_identifier, 0, ski.get()));
}

X509ExtensionPtr MakeAuthorityKeyId(const ASN1_OCTET_STRING* key_id) {
  std::unique_ptr<AUTHORITY_KEYID, OpenSslDeleter<AUTHORITY_KEYID_free>> aki(AUTHORITY_KEYID_new());
  if (!aki) return nullptr;
  aki->keyid = ASN1_OCTET_STRING_dup(key_id);
  if (aki->keyid == nullptr) return nullptr;
  return X509ExtensionPtr(X509V3_EXT_i2d(NID_authority_key_identifier, 0, aki.get()));
}

GeneralNamesPtr MakeGeneralNames(const std::vector<const SanName*>& names) {
  GeneralNamesPtr gens(GENERAL_NAMES_new());
  if (!gens) return nullptr;
  for (const SanName* name : names) {
    std::unique_ptr<GENERAL_NAME, OpenSslDeleter<GENERAL_NAME_free>> gen(GENERAL_NAME_new());
    if (!gen) return nullptr;
    ASN1_STRING* value = nullptr;
    int type = 0;
    if (name->kind == SanName::Kind::kDns) {
      value = ASN1_IA5STRING_new();
      type = GEN_DNS;
      if (value == nullptr ||
          ASN1_STRING_set(value, name->text.data(), static_cast<int>(name->text.size())) != 1) {
        ASN1_STRING_free(value);
        return nullptr;
      }
    } else {
      value = ASN1_OCTET_STRING_new();
      type = GEN_IPADD;
      if (value == nullptr || ASN1_STRING_set(value, name->ip.data(), name->ip_len) != 1) {
        ASN1_STRING_free(value);
        return nullptr;
      }
    }
    GENERAL_NAME_set0_value(gen.get(), type, value);
    if (sk_GENERAL_NAME_push(gens.get(), gen.get()) == 0) return nullptr;
    gen.release();
  }
  return gens;
}

X509ExtensionPtr MakeSubjectAltName(const std::vector<const SanName*>& names, bool critical) {
  GeneralNamesPtr gens = MakeGeneralNames(names);
  if (!gens) return nullptr;
  return X509ExtensionPtr(X509V3_EXT_i2d(NID_subject_alt_name, critical ? 1 : 0, gens.get()));
}

bool SetTime(ASN1_TIME* field, std::time_t t) { return ASN1_TIME_set(field, t) != nullptr; }

std::time_t ToTimeT(const ASN1_TIME* t) {
  struct tm tm;
  std::memset(&tm, 0, sizeof tm);
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return 0;
  return timegm(&tm);
}

const ASN1_OCTET_STRING* SubjectKeyIdOf(X509* cert) { return X509_get0_subject_key_id(cert); }

}  // namespace mintgate::tls
