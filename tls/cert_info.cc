#include "tls/cert_info.h"

#include <arpa/inet.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <ctime>
#include <vector>

#include "tls/cert_loader.h"
#include "tls/openssl_ptr.h"

namespace mintgate::tls {
namespace {

std::string ColonHex(const unsigned char* data, size_t len) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(len * 3);
  for (size_t i = 0; i < len; ++i) {
    if (i > 0) out += ':';
    out += kHex[data[i] >> 4];
    out += kHex[data[i] & 0x0f];
  }
  return out;
}

std::string NameToString(const X509_NAME* name) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || name == nullptr) return "";
  // RFC 2253 escaping, but UTF-8 kept readable instead of \XX-escaped.
  X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);  // NOLINT(runtime/int): OpenSSL's type
  return len > 0 ? std::string(data, static_cast<size_t>(len)) : std::string();
}

// The most specific (last) CN, as UTF-8.
std::string CommonName(const X509_NAME* name) {
  if (name == nullptr) return "";
  int index = -1;
  for (int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1); i >= 0;
       i = X509_NAME_get_index_by_NID(name, NID_commonName, i)) {
    index = i;
  }
  if (index < 0) return "";
  const ASN1_STRING* value = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, index));
  unsigned char* utf8 = nullptr;
  int len = ASN1_STRING_to_UTF8(&utf8, value);
  if (len < 0) {
    ERR_clear_error();
    return "";
  }
  std::string out(reinterpret_cast<char*>(utf8), static_cast<size_t>(len));
  OPENSSL_free(utf8);
  return out;
}

std::string SerialHex(const ASN1_INTEGER* serial) {
  BignumPtr bn(ASN1_INTEGER_to_BN(serial, nullptr));
  if (!bn) {
    ERR_clear_error();
    return "";
  }
  bool negative = BN_is_negative(bn.get()) != 0;
  BN_set_negative(bn.get(), 0);
  std::vector<unsigned char> bytes(static_cast<size_t>(BN_num_bytes(bn.get())));
  BN_bn2bin(bn.get(), bytes.data());
  if (bytes.empty()) bytes.push_back(0);
  return (negative ? "-" : "") + ColonHex(bytes.data(), bytes.size());
}

std::string KeyUsageNames(uint32_t usage) {
  static constexpr struct {
    uint32_t bit;
    const char* name;
  } kNames[] = {
      {KU_DIGITAL_SIGNATURE, "digitalSignature"},
      {KU_NON_REPUDIATION, "nonRepudiation"},
      {KU_KEY_ENCIPHERMENT, "keyEncipherment"},
      {KU_DATA_ENCIPHERMENT, "dataEncipherment"},
      {KU_KEY_AGREEMENT, "keyAgreement"},
      {KU_KEY_CERT_SIGN, "keyCertSign"},
      {KU_CRL_SIGN, "cRLSign"},
      {KU_ENCIPHER_ONLY, "encipherOnly"},
      {KU_DECIPHER_ONLY, "decipherOnly"},
  };
  std::string out;
  for (const auto& entry : kNames) {
    if ((usage & entry.bit) == 0) continue;
    if (!out.empty()) out += ", ";
    out += entry.name;
  }
  return out;
}

std::string Asn1ToString(const ASN1_STRING* s) {
  if (s == nullptr) return "";
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                     static_cast<size_t>(ASN1_STRING_length(s)));
}

std::string IpToString(const ASN1_OCTET_STRING* ip) {
  char buf[INET6_ADDRSTRLEN] = {};
  const unsigned char* data = ASN1_STRING_get0_data(ip);
  int len = ASN1_STRING_length(ip);
  if (len == 4 && inet_ntop(AF_INET, data, buf, sizeof buf) != nullptr) return buf;
  if (len == 16 && inet_ntop(AF_INET6, data, buf, sizeof buf) != nullptr) return buf;
  return "<" + std::to_string(len) + "-byte address>";
}

std::vector<std::string> SubjectAltNames(X509* cert) {
  std::vector<std::string> out;
  GeneralNamesPtr names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  if (!names) return out;
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
    switch (name->type) {
      case GEN_DNS:
        out.push_back("DNS:" + Asn1ToString(name->d.dNSName));
        break;
      case GEN_IPADD:
        out.push_back("IP:" + IpToString(name->d.iPAddress));
        break;
      case GEN_EMAIL:
        out.push_back("email:" + Asn1ToString(name->d.rfc822Name));
        break;
      case GEN_URI:
        out.push_back("URI:" + Asn1ToString(name->d.uniformResourceIdentifier));
        break;
      case GEN_DIRNAME:
        out.push_back("DirName:" + NameToString(name->d.directoryName));
        break;
      default:
        out.push_back("othername");
        break;
    }
  }
  return out;
}

}  // namespace

CertInfo DescribeCertificate(X509* cert) {
  CertInfo info;
  if (cert == nullptr) return info;
  info.subject = NameToString(X509_get_subject_name(cert));
  info.subject_cn = CommonName(X509_get_subject_name(cert));
  info.issuer = NameToString(X509_get_issuer_name(cert));
  info.issuer_cn = CommonName(X509_get_issuer_name(cert));
  info.serial_hex = SerialHex(X509_get0_serialNumber(cert));
  info.not_before = Asn1TimeToTimeT(X509_get0_notBefore(cert));
  info.not_after = Asn1TimeToTimeT(X509_get0_notAfter(cert));
  info.key_type = DescribeKey(X509_get0_pubkey(cert));
  info.sha256 = Sha256Fingerprint(cert);
  uint32_t flags = X509_get_extension_flags(cert);
  info.is_ca = (flags & EXFLAG_CA) != 0;
  info.path_len = info.is_ca ? static_cast<int>(X509_get_pathlen(cert)) : -1;
  info.self_signed = X509_self_signed(cert, 1) == 1;
  if ((flags & EXFLAG_KUSAGE) != 0) info.key_usage = KeyUsageNames(X509_get_key_usage(cert));
  info.san = SubjectAltNames(cert);
  ERR_clear_error();
  return info;
}

std::string FormatTime(std::time_t t) {
  std::tm tm{};
  if (gmtime_r(&t, &tm) == nullptr) return "";
  char buf[32];
  size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return std::string(buf, n);
}

std::time_t Asn1TimeToTimeT(const ASN1_TIME* t) {
  std::tm tm{};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) {
    ERR_clear_error();
    return 0;
  }
  return timegm(&tm);
}

std::string Sha256Fingerprint(X509* cert) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (cert == nullptr || X509_digest(cert, EVP_sha256(), md, &len) != 1) {
    ERR_clear_error();
    return "";
  }
  return ColonHex(md, len);
}

}  // namespace mintgate::tls
