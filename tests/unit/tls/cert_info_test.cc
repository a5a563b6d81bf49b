#include "tls/cert_info.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <stdexcept>
#include <string>

#include "tls/ca_generator.h"
#include "tls/cert_loader.h"
#include "tls/openssl_ptr.h"
#include "tls/tls_error.h"

namespace mintgate::tls {
namespace {

// "AB:CD:...": pairs of upper-case hex digits separated by colons. (Not std::regex: GCC 12
// warns inside <regex> under the sanitizer builds.)
bool IsColonHex(const std::string& s) {
  if (s.size() % 3 != 2) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool hex = (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
    if (i % 3 == 2 ? c != ':' : !hex) return false;
  }
  return true;
}

void AddExt(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509ExtensionPtr ext(X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) {
    throw std::runtime_error(WithOpenSslErrors(value));
  }
}

// A certificate for `key` named `cn`, signed by `signer_key` under `issuer`'s name.
X509Ptr MakeCert(EVP_PKEY* key, const char* cn, X509* issuer, EVP_PKEY* signer_key,
                 const std::vector<std::pair<int, const char*>>& extensions) {
  X509Ptr cert(X509_new());
  X509_set_version(cert.get(), X509_VERSION_3);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 0x0102);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>("Example Org"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(cn),
                             -1, -1, 0);
  X509* issuer_cert = issuer != nullptr ? issuer : cert.get();
  X509_set_issuer_name(cert.get(), X509_get_subject_name(issuer_cert));
  ASN1_TIME_set(X509_getm_notBefore(cert.get()), 1700000000);
  ASN1_TIME_set(X509_getm_notAfter(cert.get()), 4102444800);  // 2100: GeneralizedTime
  X509_set_pubkey(cert.get(), key);
  for (const auto& [nid, value] : extensions) AddExt(cert.get(), issuer_cert, nid, value);
  if (X509_sign(cert.get(), signer_key, EVP_sha256()) <= 0) {
    throw std::runtime_error(WithOpenSslErrors("sign"));
  }
  return cert;
}

class CertInfoTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    CaInitOptions options;
    options.common_name = "Info Root";
    ca_ = new GeneratedCa(GenerateRootCa(options));
  }
  static void TearDownTestSuite() { delete ca_; }
  static inline GeneratedCa* ca_ = nullptr;
};

TEST(CertInfoTimeTest, FormatTimeIsRfc3339Utc) {
  EXPECT_EQ(FormatTime(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(FormatTime(1800000000), "2027-01-15T08:00:00Z");
  EXPECT_EQ(FormatTime(4102444800), "2100-01-01T00:00:00Z");
}

TEST(CertInfoTimeTest, Asn1TimeToTimeTHandlesBothEncodings) {
  Asn1TimePtr utc(ASN1_TIME_set(nullptr, 1800000000));
  ASSERT_TRUE(utc);
  EXPECT_EQ(ASN1_STRING_type(utc.get()), V_ASN1_UTCTIME);
  EXPECT_EQ(Asn1TimeToTimeT(utc.get()), 1800000000);
  Asn1TimePtr generalized(ASN1_TIME_set(nullptr, 4102444800));
  ASSERT_TRUE(generalized);
  EXPECT_EQ(ASN1_STRING_type(generalized.get()), V_ASN1_GENERALIZEDTIME);
  EXPECT_EQ(Asn1TimeToTimeT(generalized.get()), 4102444800);
  EXPECT_EQ(Asn1TimeToTimeT(nullptr), 0);
}

TEST_F(CertInfoTest, DescribesAGeneratedRoot) {
  X509* cert = ca_->cert.get();
  CertInfo info = DescribeCertificate(cert);
  EXPECT_EQ(info.subject, "CN=Info Root,O=mintgate");
  EXPECT_EQ(info.subject_cn, "Info Root");
  EXPECT_EQ(info.issuer, info.subject);
  EXPECT_EQ(info.issuer_cn, "Info Root");
  EXPECT_EQ(info.key_type, "ECDSA P-256");
  EXPECT_TRUE(info.is_ca);
  EXPECT_EQ(info.path_len, -1);
  EXPECT_TRUE(info.self_signed);
  EXPECT_EQ(info.key_usage, "keyCertSign, cRLSign");
  EXPECT_TRUE(info.san.empty());
  EXPECT_EQ(info.not_before, Asn1TimeToTimeT(X509_get0_notBefore(cert)));
  EXPECT_EQ(info.not_after, Asn1TimeToTimeT(X509_get0_notAfter(cert)));
  EXPECT_LT(info.not_before, info.not_after);

  // Serial: upper-case colon hex of the same number.
  EXPECT_TRUE(IsColonHex(info.serial_hex)) << info.serial_hex;
  BignumPtr serial(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr));
  char* hex = BN_bn2hex(serial.get());
  std::string expected = hex;
  OPENSSL_free(hex);
  std::string got = info.serial_hex;
  std::erase(got, ':');
  EXPECT_EQ(got, expected);
}

TEST_F(CertInfoTest, FingerprintIsSha256OfTheDer) {
  X509* cert = ca_->cert.get();
  unsigned char* der = nullptr;
  int len = i2d_X509(cert, &der);
  ASSERT_GT(len, 0);
  unsigned char md[32];
  unsigned int md_len = 0;
  ASSERT_EQ(EVP_Digest(der, static_cast<size_t>(len), md, &md_len, EVP_sha256(), nullptr), 1);
  OPENSSL_free(der);
  std::string expected;
  char byte[4];
  for (unsigned int i = 0; i < md_len; ++i) {
    std::snprintf(byte, sizeof byte, i == 0 ? "%02X" : ":%02X", md[i]);
    expected += byte;
  }
  EXPECT_EQ(Sha256Fingerprint(cert), expected);
  EXPECT_EQ(expected.size(), 32u * 3 - 1);
  EXPECT_EQ(DescribeCertificate(cert).sha256, expected);
}

TEST_F(CertInfoTest, DescribesALeafWithSans) {
  EvpPkeyPtr key(EVP_RSA_gen(2048));
  ASSERT_TRUE(key);
  X509Ptr leaf = MakeCert(key.get(), "www.example.com", ca_->cert.get(), ca_->key.get(),
                          {{NID_basic_constraints, "critical,CA:FALSE"},
                           {NID_key_usage, "critical,digitalSignature,keyEncipherment"},
                           {NID_subject_alt_name,
                            "DNS:www.example.com,DNS:*.example.com,IP:192.0.2.7,IP:2001:db8::1,"
                            "email:admin@example.com"}});
  CertInfo info = DescribeCertificate(leaf.get());
  EXPECT_EQ(info.subject, "CN=www.example.com,O=Example Org");
  EXPECT_EQ(info.subject_cn, "www.example.com");
  EXPECT_EQ(info.issuer_cn, "Info Root");
  EXPECT_EQ(info.serial_hex, "01:02");
  EXPECT_EQ(info.not_before, 1700000000);
  EXPECT_EQ(info.not_after, 4102444800);
  EXPECT_EQ(info.key_type, "RSA 2048");
  EXPECT_FALSE(info.is_ca);
  EXPECT_EQ(info.path_len, -1);
  EXPECT_FALSE(info.self_signed);
  EXPECT_EQ(info.key_usage, "digitalSignature, keyEncipherment");
  EXPECT_EQ(info.san,
            (std::vector<std::string>{"DNS:www.example.com", "DNS:*.example.com", "IP:192.0.2.7",
                                      "IP:2001:db8::1", "email:admin@example.com"}));
}

TEST_F(CertInfoTest, PathLenAndP384) {
  EvpPkeyPtr key(EVP_EC_gen("P-384"));
  ASSERT_TRUE(key);
  X509Ptr sub = MakeCert(key.get(), "Issuing CA", ca_->cert.get(), ca_->key.get(),
                         {{NID_basic_constraints, "critical,CA:TRUE,pathlen:0"}});
  CertInfo info = DescribeCertificate(sub.get());
  EXPECT_TRUE(info.is_ca);
  EXPECT_EQ(info.path_len, 0);
  EXPECT_EQ(info.key_type, "ECDSA P-384");
  EXPECT_EQ(info.key_usage, "");
  EXPECT_FALSE(info.self_signed);
}

// Same name for subject and issuer is not enough: the signature must verify with the
// certificate's own key.
TEST_F(CertInfoTest, SelfNamedButForeignSignedIsNotSelfSigned) {
  EvpPkeyPtr key(EVP_EC_gen("P-256"));
  EvpPkeyPtr other(EVP_EC_gen("P-256"));
  X509Ptr genuine = MakeCert(key.get(), "Twin", nullptr, key.get(), {});
  X509Ptr forged = MakeCert(key.get(), "Twin", nullptr, other.get(), {});
  EXPECT_TRUE(DescribeCertificate(genuine.get()).self_signed);
  EXPECT_FALSE(DescribeCertificate(forged.get()).self_signed);
  EXPECT_FALSE(DescribeCertificate(forged.get()).is_ca);
}

TEST(CertInfoKeyTest, DescribesKeys) {
  EvpPkeyPtr ed(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  EXPECT_EQ(DescribeKey(ed.get()), "Ed25519");
  EvpPkeyPtr p384(EVP_EC_gen("P-384"));
  EXPECT_EQ(DescribeKey(p384.get()), "ECDSA P-384");
  EXPECT_EQ(DescribeKey(nullptr), "unknown");
}

}  // namespace
}  // namespace mintgate::tls
