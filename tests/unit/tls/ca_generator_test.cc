#include "tls/ca_generator.h"

#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "tls/cert_info.h"
#include "tls/cert_loader.h"
#include "unit/tls/test_pki.h"

namespace mintgate::tls {
namespace {

using testing::TempDir;

mode_t ModeOf(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return 07777;
  return st.st_mode & 07777;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Restores the process umask even when an assertion returns early.
class ScopedUmask {
 public:
  explicit ScopedUmask(mode_t mask) : old_(umask(mask)) {}
  ~ScopedUmask() { umask(old_); }

 private:
  mode_t old_;
};

// Looks an extension up and reports whether it is critical.
X509_EXTENSION* FindExtension(X509* cert, int nid, bool* critical) {
  int index = X509_get_ext_by_NID(cert, nid, -1);
  if (index < 0) return nullptr;
  X509_EXTENSION* ext = X509_get_ext(cert, index);
  *critical = X509_EXTENSION_get_critical(ext) != 0;
  return ext;
}

class CaGeneratorTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    CaInitOptions options;
    options.common_name = "Test Root";
    options.days = 100;
    before_ = std::time(nullptr);
    ec_ = new GeneratedCa(GenerateRootCa(options));
    after_ = std::time(nullptr);
  }
  static void TearDownTestSuite() { delete ec_; }
  static inline GeneratedCa* ec_ = nullptr;
  static inline std::time_t before_ = 0;
  static inline std::time_t after_ = 0;
};

TEST(CaGeneratorParseTest, ParsesKeyTypes) {
  EXPECT_EQ(ParseCaKeyType("ecdsa-p256"), CaKeyType::kEcdsaP256);
  EXPECT_EQ(ParseCaKeyType("rsa-2048"), CaKeyType::kRsa2048);
  EXPECT_EQ(ParseCaKeyType("rsa-3072"), CaKeyType::kRsa3072);
  EXPECT_EQ(ParseCaKeyType("rsa-4096"), CaKeyType::kRsa4096);
  EXPECT_THROW(ParseCaKeyType("rsa-1024"), std::invalid_argument);
  EXPECT_THROW(ParseCaKeyType("ECDSA-P256"), std::invalid_argument);
  EXPECT_THROW(ParseCaKeyType(""), std::invalid_argument);
}

TEST_F(CaGeneratorTest, SubjectIssuerVersionAndValidity) {
  X509* cert = ec_->cert.get();
  EXPECT_EQ(X509_get_version(cert), X509_VERSION_3);
  CertInfo info = DescribeCertificate(cert);
  EXPECT_EQ(info.subject, "CN=Test Root,O=mintgate");
  EXPECT_EQ(info.issuer, info.subject);
  EXPECT_EQ(info.key_type, "ECDSA P-256");
  EXPECT_GE(info.not_before, before_ - 3600);
  EXPECT_LE(info.not_before, after_ - 3600);
  EXPECT_GE(info.not_after, before_ + 100 * 86400);
  EXPECT_LE(info.not_after, after_ + 100 * 86400);
}

TEST_F(CaGeneratorTest, SerialIsRandomPositiveAndAtMost127Bits) {
  BignumPtr serial(ASN1_INTEGER_to_BN(X509_get0_serialNumber(ec_->cert.get()), nullptr));
  ASSERT_TRUE(serial);
  EXPECT_FALSE(BN_is_negative(serial.get()));
  EXPECT_FALSE(BN_is_zero(serial.get()));
  EXPECT_LE(BN_num_bits(serial.get()), 127);
  // 2^-64 chance of a false failure: a serial this short would mean little randomness.
  EXPECT_GT(BN_num_bits(serial.get()), 64);
  CaInitOptions options;
  GeneratedCa other = GenerateRootCa(options);
  EXPECT_NE(ASN1_INTEGER_cmp(X509_get0_serialNumber(ec_->cert.get()),
                             X509_get0_serialNumber(other.cert.get())),
            0);
}

TEST_F(CaGeneratorTest, BasicConstraintsAndKeyUsageAreCritical) {
  X509* cert = ec_->cert.get();
  bool critical = false;
  ASSERT_NE(FindExtension(cert, NID_basic_constraints, &critical), nullptr);
  EXPECT_TRUE(critical);
  BASIC_CONSTRAINTS* bc = static_cast<BASIC_CONSTRAINTS*>(
      X509_get_ext_d2i(cert, NID_basic_constraints, nullptr, nullptr));
  ASSERT_NE(bc, nullptr);
  EXPECT_NE(bc->ca, 0);
  EXPECT_EQ(bc->pathlen, nullptr);
  BASIC_CONSTRAINTS_free(bc);

  critical = false;
  ASSERT_NE(FindExtension(cert, NID_key_usage, &critical), nullptr);
  EXPECT_TRUE(critical);
  EXPECT_EQ(X509_get_key_usage(cert), static_cast<uint32_t>(KU_KEY_CERT_SIGN | KU_CRL_SIGN));
}

TEST_F(CaGeneratorTest, KeyIdentifiersAreTheKeyHash) {
  X509* cert = ec_->cert.get();
  bool critical = true;
  ASSERT_NE(FindExtension(cert, NID_subject_key_identifier, &critical), nullptr);
  EXPECT_FALSE(critical);
  critical = true;
  ASSERT_NE(FindExtension(cert, NID_authority_key_identifier, &critical), nullptr);
  EXPECT_FALSE(critical);

  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  ASSERT_EQ(X509_pubkey_digest(cert, EVP_sha1(), md, &len), 1);
  const ASN1_OCTET_STRING* ski = X509_get0_subject_key_id(cert);
  ASSERT_NE(ski, nullptr);
  ASSERT_EQ(ASN1_STRING_length(ski), static_cast<int>(len));
  EXPECT_EQ(std::memcmp(ASN1_STRING_get0_data(ski), md, len), 0);
  const ASN1_OCTET_STRING* akid = X509_get0_authority_key_id(cert);
  ASSERT_NE(akid, nullptr);
  EXPECT_EQ(ASN1_OCTET_STRING_cmp(akid, ski), 0);
}

TEST_F(CaGeneratorTest, SelfVerifiesWithSha256) {
  X509* cert = ec_->cert.get();
  EXPECT_EQ(X509_get_signature_nid(cert), NID_ecdsa_with_SHA256);
  EXPECT_EQ(X509_verify(cert, X509_get0_pubkey(cert)), 1);
  EXPECT_EQ(X509_check_private_key(cert, ec_->key.get()), 1);

  X509StorePtr store(X509_STORE_new());
  X509_STORE_add_cert(store.get(), cert);
  X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  ASSERT_EQ(X509_STORE_CTX_init(ctx.get(), store.get(), cert, nullptr), 1);
  EXPECT_EQ(X509_verify_cert(ctx.get()), 1)
      << X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get()));
  EXPECT_TRUE(DescribeCertificate(cert).self_signed);
}

TEST_F(CaGeneratorTest, Rsa2048) {
  CaInitOptions options;
  options.key_type = CaKeyType::kRsa2048;
  GeneratedCa ca = GenerateRootCa(options);
  EXPECT_EQ(DescribeKey(ca.key.get()), "RSA 2048");
  EXPECT_EQ(X509_get_signature_nid(ca.cert.get()), NID_sha256WithRSAEncryption);
  EXPECT_EQ(X509_verify(ca.cert.get(), X509_get0_pubkey(ca.cert.get())), 1);
  EXPECT_EQ(DescribeCertificate(ca.cert.get()).subject, "CN=mintgate Root CA,O=mintgate");
}

TEST_F(CaGeneratorTest, RefusesBadOptions) {
  CaInitOptions options;
  options.days = 0;
  EXPECT_THROW(GenerateRootCa(options), std::invalid_argument);
  options.days = 10;
  options.common_name = "";
  EXPECT_THROW(GenerateRootCa(options), std::invalid_argument);
}

TEST_F(CaGeneratorTest, WritesKey0600AndCert0644WhateverTheUmask) {
  for (mode_t mask : {mode_t{0}, mode_t{077}}) {
    ScopedUmask scoped(mask);
    TempDir dir;
    std::string out = dir.File("nested/ca");
    CaFiles files = WriteCaFiles(out, *ec_);
    EXPECT_EQ(files.cert_path, out + "/ca.pem");
    EXPECT_EQ(files.key_path, out + "/ca.key");
    EXPECT_EQ(ModeOf(files.key_path), 0600u) << "umask " << mask;
    EXPECT_EQ(ModeOf(files.cert_path), 0644u) << "umask " << mask;
    EXPECT_EQ(ModeOf(out), 0700u) << "umask " << mask;
    EXPECT_EQ(ModeOf(dir.File("nested")), 0700u) << "umask " << mask;

    std::string key_pem = ReadAll(files.key_path);
    EXPECT_EQ(key_pem.rfind("-----BEGIN PRIVATE KEY-----", 0), 0u) << "unencrypted PKCS#8";

    // What was written is a profile the loader accepts as is.
    CaProfileSpec spec;
    spec.cert_file = files.cert_path;
    spec.key_file = files.key_path;
    CaMaterial material = LoadCaMaterial(spec, std::time(nullptr));
    EXPECT_EQ(X509_cmp(material.cert.get(), ec_->cert.get()), 0);
    EXPECT_EQ(EVP_PKEY_eq(material.key.get(), ec_->key.get()), 1);
  }
}

TEST_F(CaGeneratorTest, RefusesToOverwrite) {
  TempDir dir;
  std::string out = dir.File("ca");
  CaFiles files = WriteCaFiles(out, *ec_);
  std::string cert_before = ReadAll(files.cert_path);
  std::string key_before = ReadAll(files.key_path);

  CaInitOptions options;
  GeneratedCa other = GenerateRootCa(options);
  try {
    WriteCaFiles(out, other);
    ADD_FAILURE() << "overwrote an existing CA";
  } catch (const LoadError& e) {
    EXPECT_EQ(e.file(), files.cert_path);
    EXPECT_NE(e.reason().find("already exists"), std::string::npos) << e.what();
  }
  EXPECT_EQ(ReadAll(files.cert_path), cert_before);
  EXPECT_EQ(ReadAll(files.key_path), key_before);

  // A lone key is protected too, and nothing is written next to it.
  std::filesystem::remove(files.cert_path);
  try {
    WriteCaFiles(out, other);
    ADD_FAILURE() << "overwrote an existing key";
  } catch (const LoadError& e) {
    EXPECT_EQ(e.file(), files.key_path);
    EXPECT_NE(e.reason().find("already exists"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(files.cert_path));
  EXPECT_EQ(ReadAll(files.key_path), key_before);
}

TEST_F(CaGeneratorTest, OutputPathThatIsAFileIsRefused) {
  TempDir dir;
  std::string path = dir.File("file");
  std::ofstream(path) << "x";
  EXPECT_THROW(WriteCaFiles(path, *ec_), LoadError);
}

}  // namespace
}  // namespace mintgate::tls
