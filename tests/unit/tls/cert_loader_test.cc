// Every load error a CA profile can hit, with real files made at test time.
#include "tls/cert_loader.h"

#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include "tls/cert_info.h"
#include "unit/tls/test_pki.h"

namespace mintgate::tls {
namespace {

using testing::TempDir;

EvpPkeyPtr MakeKey(const std::string& type) {
  EVP_PKEY* key = nullptr;
  if (type == "P-256") key = EVP_EC_gen("P-256");
  if (type == "P-384") key = EVP_EC_gen("P-384");
  if (type == "P-521") key = EVP_EC_gen("P-521");
  if (type == "RSA1024") key = EVP_RSA_gen(1024);
  if (type == "RSA2048") key = EVP_RSA_gen(2048);
  if (type == "Ed25519") key = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  if (key == nullptr) throw std::runtime_error(WithOpenSslErrors("keygen " + type));
  return EvpPkeyPtr(key);
}

struct CertOptions {
  std::string cn = "Test CA";
  std::string basic_constraints = "critical,CA:TRUE";  // "" leaves the extension out
  std::string key_usage = "critical,keyCertSign,cRLSign";
  std::string ski = "hash";      // or colon hex, to impersonate another CA's key identifier
  long not_before = -3600;       // NOLINT(runtime/int): seconds relative to now
  long not_after = 30L * 86400;  // NOLINT(runtime/int)
  X509* issuer = nullptr;        // nullptr: self-signed
  EVP_PKEY* issuer_key = nullptr;
};

// Tests may build extensions from config strings: the inputs are constants, not hostile.
void AddExt(X509* cert, X509* issuer, int nid, const std::string& value) {
  if (value.empty()) return;
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509ExtensionPtr ext(X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value.c_str()));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) {
    throw std::runtime_error(WithOpenSslErrors("extension " + value));
  }
}

X509Ptr MakeCert(EVP_PKEY* key, const CertOptions& o) {
  static long serial = 1000;  // NOLINT(runtime/int)
  X509Ptr cert(X509_new());
  X509_set_version(cert.get(), X509_VERSION_3);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), ++serial);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(o.cn.c_str()), -1, -1, 0);
  X509* issuer = o.issuer != nullptr ? o.issuer : cert.get();
  X509_set_issuer_name(cert.get(), X509_get_subject_name(issuer));
  std::time_t now = std::time(nullptr);
  X509_time_adj_ex(X509_getm_notBefore(cert.get()), 0, o.not_before, &now);
  X509_time_adj_ex(X509_getm_notAfter(cert.get()), 0, o.not_after, &now);
  X509_set_pubkey(cert.get(), key);
  AddExt(cert.get(), issuer, NID_basic_constraints, o.basic_constraints);
  AddExt(cert.get(), issuer, NID_key_usage, o.key_usage);
  AddExt(cert.get(), issuer, NID_subject_key_identifier, o.ski);
  AddExt(cert.get(), issuer, NID_authority_key_identifier, "keyid:always");
  EVP_PKEY* signer = o.issuer_key != nullptr ? o.issuer_key : key;
  if (X509_sign(cert.get(), signer, EVP_sha256()) <= 0) {
    throw std::runtime_error(WithOpenSslErrors("sign"));
  }
  return cert;
}

void WriteFile(const std::string& path, const std::string& data, mode_t mode = 0600) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
  chmod(path.c_str(), mode);
}

std::string BioText(BIO* bio) {
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);  // NOLINT(runtime/int)
  return std::string(data, static_cast<size_t>(len));
}

std::string Encode(const std::function<int(BIO*)>& write) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (write(bio.get()) != 1) throw std::runtime_error(WithOpenSslErrors("encode"));
  return BioText(bio.get());
}

std::string CertPem(const std::vector<X509*>& certs) {
  std::string out;
  for (X509* c : certs) out += Encode([&](BIO* b) { return PEM_write_bio_X509(b, c); });
  return out;
}

std::string CertDer(X509* cert) {
  return Encode([&](BIO* b) { return i2d_X509_bio(b, cert); });
}

enum class KeyFormat {
  kPkcs8Pem,
  kTraditionalPem,
  kPkcs8Der,
  kTraditionalDer,
  kEncryptedPkcs8Pem,
  kEncryptedTraditionalPem,
  kEncryptedPkcs8Der,
};

std::string KeyBytes(EVP_PKEY* key, KeyFormat format, std::string pass = "s3cret pass") {
  auto* kstr = reinterpret_cast<unsigned char*>(pass.data());
  int klen = static_cast<int>(pass.size());
  return Encode([&](BIO* b) {
    switch (format) {
      case KeyFormat::kPkcs8Pem:
        return PEM_write_bio_PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr);
      case KeyFormat::kTraditionalPem:
        return PEM_write_bio_PrivateKey_traditional(b, key, nullptr, nullptr, 0, nullptr, nullptr);
      case KeyFormat::kPkcs8Der:
        return i2d_PKCS8PrivateKey_bio(b, key, nullptr, nullptr, 0, nullptr, nullptr);
      case KeyFormat::kTraditionalDer:
        return i2d_PrivateKey_bio(b, key);
      case KeyFormat::kEncryptedPkcs8Pem:
        return PEM_write_bio_PKCS8PrivateKey(b, key, EVP_aes_256_cbc(), pass.data(), klen, nullptr,
                                             nullptr);
      case KeyFormat::kEncryptedTraditionalPem:
        return PEM_write_bio_PrivateKey_traditional(b, key, EVP_aes_128_cbc(), kstr, klen, nullptr,
                                                    nullptr);
      case KeyFormat::kEncryptedPkcs8Der:
        return i2d_PKCS8PrivateKey_bio(b, key, EVP_aes_256_cbc(), pass.data(), klen, nullptr,
                                       nullptr);
    }
    return 0;
  });
}

// Runs `fn`, expecting a LoadError whose file is `file` and whose message contains every
// fragment of `reasons`.
template <class Fn>
void ExpectLoadError(Fn fn, const std::string& file, const std::vector<std::string>& reasons) {
  try {
    fn();
    ADD_FAILURE() << "expected a LoadError for " << file;
  } catch (const LoadError& e) {
    EXPECT_EQ(e.file(), file) << e.what();
    EXPECT_NE(std::string(e.what()).find(file), std::string::npos) << e.what();
    for (const std::string& reason : reasons) {
      EXPECT_NE(e.reason().find(reason), std::string::npos)
          << "reason '" << e.reason() << "' lacks '" << reason << "'";
    }
  }
}

bool SameCert(X509* a, X509* b) { return X509_cmp(a, b) == 0; }
bool SameKey(EVP_PKEY* a, EVP_PKEY* b) { return EVP_PKEY_eq(a, b) == 1; }

// ---------------------------------------------------------------------------------------
// Certificates

class CertLoaderCertTest : public ::testing::Test {
 protected:
  void SetUp() override {
    key_ = MakeKey("P-256");
    cert_ = MakeCert(key_.get(), {});
    CertOptions second;
    second.cn = "Second CA";
    cert2_ = MakeCert(key_.get(), second);
  }
  TempDir dir_;
  EvpPkeyPtr key_;
  X509Ptr cert_;
  X509Ptr cert2_;
};

TEST_F(CertLoaderCertTest, LoadsPemWithSeveralCertificatesInOrder) {
  std::string path = dir_.File("two.pem");
  WriteFile(path, CertPem({cert_.get(), cert2_.get()}), 0644);
  std::vector<X509Ptr> certs = LoadCertificates(path);
  ASSERT_EQ(certs.size(), 2u);
  EXPECT_TRUE(SameCert(certs[0].get(), cert_.get()));
  EXPECT_TRUE(SameCert(certs[1].get(), cert2_.get()));
  EXPECT_TRUE(SameCert(LoadCertificate(path).get(), cert_.get()));
}

TEST_F(CertLoaderCertTest, LoadsPemWithTextAroundTheBlock) {
  std::string path = dir_.File("annotated.crt");
  WriteFile(path, "Subject: Test CA\n" + CertPem({cert_.get()}) + "trailing notes\n", 0644);
  EXPECT_TRUE(SameCert(LoadCertificate(path).get(), cert_.get()));
}

TEST_F(CertLoaderCertTest, DetectsEncodingByContentNotExtension) {
  const std::pair<std::string, std::string> cases[] = {
      {"der.der", CertDer(cert_.get())},   {"der.cer", CertDer(cert_.get())},
      {"pem.cer", CertPem({cert_.get()})}, {"der.crt", CertDer(cert_.get())},
      {"der.pem", CertDer(cert_.get())},   {"pem.der", CertPem({cert_.get()})},
  };
  for (const auto& [name, bytes] : cases) {
    std::string path = dir_.File(name);
    WriteFile(path, bytes, 0644);
    std::vector<X509Ptr> certs = LoadCertificates(path);
    ASSERT_EQ(certs.size(), 1u) << name;
    EXPECT_TRUE(SameCert(certs[0].get(), cert_.get())) << name;
  }
}

TEST_F(CertLoaderCertTest, MissingFileIsUnreadable) {
  std::string path = dir_.File("missing.pem");
  ExpectLoadError([&] { LoadCertificates(path); }, path,
                  {"cannot read", "No such file or directory"});
}

TEST_F(CertLoaderCertTest, DirectoryIsUnreadable) {
  std::string path = dir_.File("sub");
  std::filesystem::create_directory(path);
  ExpectLoadError([&] { LoadCertificates(path); }, path, {"cannot read", "Is a directory"});
}

TEST_F(CertLoaderCertTest, EmptyFileIsRefused) {
  std::string path = dir_.File("empty.pem");
  WriteFile(path, "", 0644);
  ExpectLoadError([&] { LoadCertificates(path); }, path, {"empty file"});
}

TEST_F(CertLoaderCertTest, KeyFileGivenAsCertificateIsNotACertificate) {
  std::string path = dir_.File("key-as-cert.pem");
  WriteFile(path, KeyBytes(key_.get(), KeyFormat::kPkcs8Pem));
  ExpectLoadError([&] { LoadCertificates(path); }, path,
                  {"not a certificate", "no CERTIFICATE block", "PRIVATE KEY"});
}

TEST_F(CertLoaderCertTest, DerKeyGivenAsCertificateIsNotACertificate) {
  std::string path = dir_.File("key-as-cert.der");
  WriteFile(path, KeyBytes(key_.get(), KeyFormat::kPkcs8Der));
  ExpectLoadError([&] { LoadCertificates(path); }, path, {"not a certificate"});
}

TEST_F(CertLoaderCertTest, GarbageIsNotACertificate) {
  std::string path = dir_.File("garbage.cer");
  WriteFile(path, "this is not a certificate at all\n", 0644);
  ExpectLoadError([&] { LoadCertificates(path); }, path, {"not a certificate"});
}

TEST_F(CertLoaderCertTest, PemWithoutCertificateBlockIsRefused) {
  std::string path = dir_.File("csr.pem");
  WriteFile(path, "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
            0644);
  ExpectLoadError([&] { LoadCertificates(path); }, path,
                  {"not a certificate", "no CERTIFICATE block", "CERTIFICATE REQUEST"});
}

TEST_F(CertLoaderCertTest, CertificateBlockWithBadContentIsRefused) {
  std::string path = dir_.File("bad-block.pem");
  WriteFile(path, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", 0644);
  ExpectLoadError([&] { LoadCertificates(path); }, path, {"not a certificate", "block 1"});
}

TEST_F(CertLoaderCertTest, DerWithTrailingBytesIsRefused) {
  std::string path = dir_.File("trailing.der");
  WriteFile(path, CertDer(cert_.get()) + "xx", 0644);
  ExpectLoadError([&] { LoadCertificates(path); }, path,
                  {"not a certificate", "2 unexpected bytes"});
}

// ---------------------------------------------------------------------------------------
// Private keys

class CertLoaderKeyTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    p256_ = MakeKey("P-256").release();
    rsa2048_ = MakeKey("RSA2048").release();
  }
  static void TearDownTestSuite() {
    EVP_PKEY_free(p256_);
    EVP_PKEY_free(rsa2048_);
  }
  std::string WriteKey(const std::string& name, EVP_PKEY* key, KeyFormat format,
                       mode_t mode = 0600) {
    std::string path = dir_.File(name);
    WriteFile(path, KeyBytes(key, format), mode);
    return path;
  }
  static inline EVP_PKEY* p256_ = nullptr;
  static inline EVP_PKEY* rsa2048_ = nullptr;
  TempDir dir_;
};

TEST_F(CertLoaderKeyTest, LoadsEveryUnencryptedFormat) {
  const std::pair<KeyFormat, const char*> formats[] = {
      {KeyFormat::kPkcs8Pem, "pkcs8.pem"},
      {KeyFormat::kTraditionalPem, "traditional.pem"},
      {KeyFormat::kPkcs8Der, "pkcs8.der"},
      {KeyFormat::kTraditionalDer, "traditional.der"},
  };
  for (EVP_PKEY* key : {p256_, rsa2048_}) {
    for (const auto& [format, name] : formats) {
      std::string path = WriteKey(DescribeKey(key) + "-" + name, key, format);
      EvpPkeyPtr loaded = LoadPrivateKey(path, {});
      ASSERT_TRUE(loaded) << path;
      EXPECT_TRUE(SameKey(loaded.get(), key)) << path;
    }
  }
}

// `openssl ecparam -genkey` writes EC PARAMETERS before the key; combined files put the
// certificate first.
TEST_F(CertLoaderKeyTest, FindsTheKeyAfterOtherPemBlocks) {
  std::string params = Encode([&](BIO* b) { return PEM_write_bio_Parameters(b, p256_); });
  ASSERT_NE(params.find("EC PARAMETERS"), std::string::npos);
  X509Ptr cert = MakeCert(p256_, {});
  const std::string prefixes[] = {params, CertPem({cert.get()})};
  for (const std::string& prefix : prefixes) {
    std::string path = dir_.File("combined.pem");
    WriteFile(path, prefix + KeyBytes(p256_, KeyFormat::kTraditionalPem), 0600);
    EvpPkeyPtr loaded = LoadPrivateKey(path, {});
    ASSERT_TRUE(loaded);
    EXPECT_TRUE(SameKey(loaded.get(), p256_));
  }
}

TEST_F(CertLoaderKeyTest, PublicKeyIsNotAPrivateKey) {
  std::string path = dir_.File("public.pem");
  WriteFile(path, Encode([&](BIO* b) { return PEM_write_bio_PUBKEY(b, p256_); }), 0600);
  ExpectLoadError([&] { LoadPrivateKey(path, {}); }, path, {"not a private key", "public key"});
}

TEST_F(CertLoaderKeyTest, AcceptsModes0600And0400) {
  std::string path = WriteKey("k.pem", p256_, KeyFormat::kPkcs8Pem, 0600);
  EXPECT_TRUE(LoadPrivateKey(path, {}));
  chmod(path.c_str(), 0400);
  EXPECT_TRUE(LoadPrivateKey(path, {}));
}

TEST_F(CertLoaderKeyTest, RefusesKeyReadableByOthers) {
  std::string path = WriteKey("open.key", p256_, KeyFormat::kPkcs8Pem, 0644);
  ExpectLoadError([&] { LoadPrivateKey(path, {}); }, path,
                  {"readable by group or others", "mode 0644", "run: chmod 600 " + path});
}

TEST_F(CertLoaderKeyTest, RefusesKeyReadableByGroup) {
  std::string path = WriteKey("group.key", p256_, KeyFormat::kPkcs8Pem, 0640);
  ExpectLoadError([&] { LoadPrivateKey(path, {}); }, path,
                  {"by group or others", "mode 0640", "chmod 600"});
}

TEST_F(CertLoaderKeyTest, MissingKeyIsUnreadable) {
  std::string path = dir_.File("missing.key");
  ExpectLoadError([&] { LoadPrivateKey(path, {}); }, path,
                  {"cannot read", "No such file or directory"});
}

TEST_F(CertLoaderKeyTest, EmptyKeyIsRefused) {
  std::string path = dir_.File("empty.key");
  WriteFile(path, "", 0600);
  ExpectLoadError([&] { LoadPrivateKey(path, {}); }, path, {"empty file"});
}

TEST_F(CertLoaderKeyTest, CertificateGivenAsKeyIsRefused) {
  X509Ptr cert = MakeCert(p256_, {});
  std::string path = dir_.File("cert-as-key.pem");
  WriteFile(path, CertPem({cert.get()}), 0600);
  ExpectLoadError([&] { LoadPrivateKey(path, {}); }, path, {"not a private key", "certificate"});
}

TEST_F(CertLoaderKeyTest, GarbageIsNotAKey) {
  std::string path = dir_.File("garbage.key");
  WriteFile(path, "not a key\n", 0600);
  ExpectLoadError([&] { LoadPrivateKey(path, {}); }, path, {"not a private key"});
}

TEST_F(CertLoaderKeyTest, EncryptedKeysLoadWithPassphraseFile) {
  // Only the first line counts, and a CRLF line end is not part of the passphrase.
  std::string pass_file = dir_.File("pass.txt");
  WriteFile(pass_file, "s3cret pass\r\nsecond line\n", 0600);
  for (KeyFormat format : {KeyFormat::kEncryptedPkcs8Pem, KeyFormat::kEncryptedTraditionalPem,
                           KeyFormat::kEncryptedPkcs8Der}) {
    std::string path = WriteKey("enc.key", p256_, format);
    EvpPkeyPtr loaded = LoadPrivateKey(path, {pass_file, ""});
    ASSERT_TRUE(loaded);
    EXPECT_TRUE(SameKey(loaded.get(), p256_));
  }
}

TEST_F(CertLoaderKeyTest, EncryptedKeyLoadsWithPassphraseEnv) {
  std::string path = WriteKey("enc.key", rsa2048_, KeyFormat::kEncryptedTraditionalPem);
  setenv("MINTGATE_TEST_CA_PASS", "s3cret pass", 1);
  EvpPkeyPtr loaded = LoadPrivateKey(path, {"", "MINTGATE_TEST_CA_PASS"});
  unsetenv("MINTGATE_TEST_CA_PASS");
  ASSERT_TRUE(loaded);
  EXPECT_TRUE(SameKey(loaded.get(), rsa2048_));
}

TEST_F(CertLoaderKeyTest, EncryptedKeyWithoutPassphraseIsRefused) {
  for (KeyFormat format : {KeyFormat::kEncryptedPkcs8Pem, KeyFormat::kEncryptedTraditionalPem,
                           KeyFormat::kEncryptedPkcs8Der}) {
    std::string path = WriteKey("enc.key", p256_, format);
    ExpectLoadError(
        [&] { LoadPrivateKey(path, {}); }, path,
        {"key is encrypted but no passphrase was given", "set passphrase_file or passphrase_env"});
  }
}

TEST_F(CertLoaderKeyTest, WrongPassphraseIsRefused) {
  std::string pass_file = dir_.File("wrong.txt");
  WriteFile(pass_file, "not the passphrase\n", 0600);
  for (KeyFormat format : {KeyFormat::kEncryptedPkcs8Pem, KeyFormat::kEncryptedTraditionalPem,
                           KeyFormat::kEncryptedPkcs8Der}) {
    std::string path = WriteKey("enc.key", p256_, format);
    ExpectLoadError(
        [&] {
          LoadPrivateKey(path, {pass_file, ""});
        },
        path, {"wrong passphrase", pass_file});
  }
}

TEST_F(CertLoaderKeyTest, RefusesPassphraseFileReadableByOthers) {
  // The passphrase is as secret as the key it unlocks.
  std::string path = WriteKey("enc.key", p256_, KeyFormat::kEncryptedPkcs8Pem);
  std::string pass_file = dir_.File("open-pass.txt");
  WriteFile(pass_file, "s3cret pass\n", 0644);
  ExpectLoadError(
      [&] {
        LoadPrivateKey(path, {pass_file, ""});
      },
      pass_file,
      {"passphrase file is readable by group or others", "mode 0644",
       "run: chmod 600 " + pass_file});
  chmod(pass_file.c_str(), 0604);
  ExpectLoadError(
      [&] {
        LoadPrivateKey(path, {pass_file, ""});
      },
      pass_file, {"by group or others", "mode 0604", "chmod 600"});
  chmod(pass_file.c_str(), 0400);
  EXPECT_TRUE(LoadPrivateKey(path, {pass_file, ""}));
}

TEST_F(CertLoaderKeyTest, UnsetPassphraseEnvIsRefused) {
  std::string path = WriteKey("enc.key", p256_, KeyFormat::kEncryptedPkcs8Pem);
  unsetenv("MINTGATE_TEST_UNSET_PASS");
  ExpectLoadError(
      [&] {
        LoadPrivateKey(path, {"", "MINTGATE_TEST_UNSET_PASS"});
      },
      path, {"MINTGATE_TEST_UNSET_PASS", "is not set"});
}

TEST_F(CertLoaderKeyTest, MissingPassphraseFileIsNamed) {
  std::string path = WriteKey("enc.key", p256_, KeyFormat::kEncryptedPkcs8Pem);
  std::string pass_file = dir_.File("no-such-pass.txt");
  ExpectLoadError(
      [&] {
        LoadPrivateKey(path, {pass_file, ""});
      },
      pass_file, {"cannot read", "No such file or directory"});
}

TEST_F(CertLoaderKeyTest, AcceptsP384) {
  EvpPkeyPtr key = MakeKey("P-384");
  std::string path = WriteKey("p384.key", key.get(), KeyFormat::kPkcs8Pem);
  EvpPkeyPtr loaded = LoadPrivateKey(path, {});
  ASSERT_TRUE(loaded);
  EXPECT_EQ(DescribeKey(loaded.get()), "ECDSA P-384");
  EXPECT_EQ(DescribeKey(p256_), "ECDSA P-256");
  EXPECT_EQ(DescribeKey(rsa2048_), "RSA 2048");
}

TEST_F(CertLoaderKeyTest, RefusesUnsupportedKeyTypes) {
  const std::pair<const char*, const char*> cases[] = {
      {"RSA1024", "RSA 1024"}, {"P-521", "ECDSA P-521"}, {"Ed25519", "Ed25519"}};
  for (const auto& [type, described] : cases) {
    EvpPkeyPtr key = MakeKey(type);
    std::string path = WriteKey(std::string(type) + ".key", key.get(), KeyFormat::kPkcs8Pem);
    ExpectLoadError([&] { LoadPrivateKey(path, {}); }, path,
                    {std::string("unsupported key type ") + described});
    ExpectLoadError([&] { CheckSupportedKey(key.get(), "x.key"); }, "x.key", {described});
  }
}

// ---------------------------------------------------------------------------------------
// Whole profiles

class CertLoaderCaMaterialTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_key_ = MakeKey("P-256").release();
    customer_key_ = MakeKey("P-256").release();
  }
  static void TearDownTestSuite() {
    EVP_PKEY_free(root_key_);
    EVP_PKEY_free(customer_key_);
  }

  std::string WriteCerts(const std::string& name, const std::vector<X509*>& certs) {
    std::string path = dir_.File(name);
    WriteFile(path, CertPem(certs), 0644);
    return path;
  }
  std::string WriteKey(const std::string& name, EVP_PKEY* key) {
    std::string path = dir_.File(name);
    WriteFile(path, KeyBytes(key, KeyFormat::kPkcs8Pem), 0600);
    return path;
  }
  CaProfileSpec Profile(X509* cert, EVP_PKEY* key, std::vector<std::string> chain = {}) {
    CaProfileSpec spec;
    spec.name = "test";
    spec.cert_file = WriteCerts("profile.pem", {cert});
    spec.key_file = WriteKey("profile.key", key);
    spec.chain_files = std::move(chain);
    return spec;
  }

  static inline EVP_PKEY* root_key_ = nullptr;
  static inline EVP_PKEY* customer_key_ = nullptr;
  TempDir dir_;
  std::time_t now_ = std::time(nullptr);
};

TEST_F(CertLoaderCaMaterialTest, SelfSignedRootLoads) {
  X509Ptr root = MakeCert(root_key_, {});
  CaMaterial material = LoadCaMaterial(Profile(root.get(), root_key_), now_);
  ASSERT_TRUE(material.cert);
  EXPECT_TRUE(SameCert(material.cert.get(), root.get()));
  EXPECT_TRUE(SameKey(material.key.get(), root_key_));
  EXPECT_TRUE(material.chain.empty());
}

TEST_F(CertLoaderCaMaterialTest, DerCertificateAndDerKeyLoad) {
  X509Ptr root = MakeCert(root_key_, {});
  CaProfileSpec spec;
  spec.cert_file = dir_.File("root.cer");
  spec.key_file = dir_.File("root.der");
  WriteFile(spec.cert_file, CertDer(root.get()), 0644);
  WriteFile(spec.key_file, KeyBytes(root_key_, KeyFormat::kTraditionalDer), 0600);
  CaMaterial material = LoadCaMaterial(spec, now_);
  EXPECT_TRUE(SameCert(material.cert.get(), root.get()));
}

TEST_F(CertLoaderCaMaterialTest, EncryptedProfileKeyLoadsWithPassphrase) {
  X509Ptr root = MakeCert(root_key_, {});
  CaProfileSpec spec = Profile(root.get(), root_key_);
  WriteFile(spec.key_file, KeyBytes(root_key_, KeyFormat::kEncryptedPkcs8Pem), 0600);
  ExpectLoadError([&] { LoadCaMaterial(spec, now_); }, spec.key_file, {"no passphrase was given"});
  spec.passphrase.file = dir_.File("pass");
  WriteFile(spec.passphrase.file, "s3cret pass\n", 0600);
  EXPECT_TRUE(LoadCaMaterial(spec, now_).key);
}

TEST_F(CertLoaderCaMaterialTest, NonCaCertificateIsRefused) {
  CertOptions no_bc;
  no_bc.basic_constraints = "";
  X509Ptr no_ext = MakeCert(root_key_, no_bc);
  CaProfileSpec spec = Profile(no_ext.get(), root_key_);
  ExpectLoadError([&] { LoadCaMaterial(spec, now_); }, spec.cert_file,
                  {"certificate is not a CA (basicConstraints CA:TRUE missing)"});

  CertOptions ca_false;
  ca_false.basic_constraints = "critical,CA:FALSE";
  ca_false.key_usage = "critical,digitalSignature";
  X509Ptr leaf = MakeCert(root_key_, ca_false);
  spec = Profile(leaf.get(), root_key_);
  ExpectLoadError([&] { LoadCaMaterial(spec, now_); }, spec.cert_file,
                  {"certificate is not a CA (basicConstraints CA:TRUE missing)"});
}

TEST_F(CertLoaderCaMaterialTest, KeyUsageWithoutKeyCertSignIsRefused) {
  CertOptions options;
  options.key_usage = "critical,digitalSignature,cRLSign";
  X509Ptr cert = MakeCert(root_key_, options);
  CaProfileSpec spec = Profile(cert.get(), root_key_);
  ExpectLoadError([&] { LoadCaMaterial(spec, now_); }, spec.cert_file, {"keyCertSign"});
}

TEST_F(CertLoaderCaMaterialTest, CaWithoutKeyUsageLoads) {
  CertOptions options;
  options.key_usage = "";
  X509Ptr cert = MakeCert(root_key_, options);
  EXPECT_TRUE(LoadCaMaterial(Profile(cert.get(), root_key_), now_).cert);
}

TEST_F(CertLoaderCaMaterialTest, ExpiredCaIsRefused) {
  X509Ptr root = MakeCert(root_key_, {});  // valid for 30 days from now
  CaProfileSpec spec = Profile(root.get(), root_key_);
  std::string not_after = FormatTime(Asn1TimeToTimeT(X509_get0_notAfter(root.get())));
  ExpectLoadError([&] { LoadCaMaterial(spec, now_ + 31 * 86400); }, spec.cert_file,
                  {"CA certificate expired on " + not_after});

  CertOptions expired;  // also refused at the real current time
  expired.not_before = -10 * 86400;
  expired.not_after = -86400;
  X509Ptr old = MakeCert(root_key_, expired);
  spec = Profile(old.get(), root_key_);
  ExpectLoadError([&] { LoadCaMaterial(spec, now_); }, spec.cert_file, {"expired on"});
}

TEST_F(CertLoaderCaMaterialTest, NotYetValidCaIsRefused) {
  X509Ptr root = MakeCert(root_key_, {});  // valid from one hour ago
  CaProfileSpec spec = Profile(root.get(), root_key_);
  std::string not_before = FormatTime(Asn1TimeToTimeT(X509_get0_notBefore(root.get())));
  ExpectLoadError([&] { LoadCaMaterial(spec, now_ - 2 * 3600); }, spec.cert_file,
                  {"CA certificate is not yet valid until " + not_before});
  EXPECT_TRUE(LoadCaMaterial(spec, now_ - 1800).cert);
}

TEST_F(CertLoaderCaMaterialTest, MismatchedKeyIsRefused) {
  X509Ptr root = MakeCert(root_key_, {});
  CaProfileSpec spec = Profile(root.get(), customer_key_);
  ExpectLoadError([&] { LoadCaMaterial(spec, now_); }, spec.key_file,
                  {"private key does not match certificate " + spec.cert_file});
}

TEST_F(CertLoaderCaMaterialTest, UnreadableFilesAreNamed) {
  X509Ptr root = MakeCert(root_key_, {});
  CaProfileSpec spec = Profile(root.get(), root_key_);
  spec.chain_files = {dir_.File("no-chain.pem")};
  ExpectLoadError([&] { LoadCaMaterial(spec, now_); }, spec.chain_files[0], {"cannot read"});
  spec.chain_files.clear();
  spec.key_file = dir_.File("no.key");
  ExpectLoadError([&] { LoadCaMaterial(spec, now_); }, spec.key_file, {"cannot read"});
  spec.cert_file = dir_.File("no.pem");
  ExpectLoadError([&] { LoadCaMaterial(spec, now_); }, spec.cert_file, {"cannot read"});
}

// The migration case of SPEC §6: the new root's key and subject, issued by the customer's
// root, which is served as the chain.
TEST_F(CertLoaderCaMaterialTest, CrossSignedProfileWithCustomerRootLoads) {
  CertOptions customer_options;
  customer_options.cn = "Customer Root";
  X509Ptr customer = MakeCert(customer_key_, customer_options);
  CertOptions new_root_options;
  new_root_options.cn = "New Root";
  X509Ptr new_root = MakeCert(root_key_, new_root_options);
  new_root_options.issuer = customer.get();
  new_root_options.issuer_key = customer_key_;
  X509Ptr cross = MakeCert(root_key_, new_root_options);

  std::string chain = WriteCerts("customer.pem", {customer.get()});
  CaMaterial material = LoadCaMaterial(Profile(cross.get(), root_key_, {chain}), now_);
  EXPECT_TRUE(SameCert(material.cert.get(), cross.get()));
  ASSERT_EQ(material.chain.size(), 1u);
  EXPECT_TRUE(SameCert(material.chain[0].get(), customer.get()));

  // The self-signed twin uses the same key file.
  EXPECT_TRUE(LoadCaMaterial(Profile(new_root.get(), root_key_), now_).cert);
}

TEST_F(CertLoaderCaMaterialTest, ChainThatDidNotSignTheCertificateIsRefused) {
  CertOptions customer_options;
  customer_options.cn = "Customer Root";
  X509Ptr customer = MakeCert(customer_key_, customer_options);
  CertOptions cross_options;
  cross_options.cn = "New Root";
  cross_options.issuer = customer.get();
  cross_options.issuer_key = customer_key_;
  X509Ptr cross = MakeCert(root_key_, cross_options);

  EvpPkeyPtr other_key = MakeKey("P-256");
  CertOptions other_options;
  other_options.cn = "Unrelated Root";
  X509Ptr unrelated = MakeCert(other_key.get(), other_options);
  std::string chain = WriteCerts("unrelated.pem", {unrelated.get()});
  CaProfileSpec spec = Profile(cross.get(), root_key_, {chain});
  ExpectLoadError([&] { LoadCaMaterial(spec, now_); }, chain,
                  {"'Unrelated Root' did not sign 'New Root'", spec.cert_file});

  // Same name and key identifier as the real issuer but another key: only the signature
  // tells them apart.
  char* ski_hex = i2s_ASN1_OCTET_STRING(nullptr, X509_get0_subject_key_id(customer.get()));
  customer_options.ski = ski_hex;
  OPENSSL_free(ski_hex);
  X509Ptr impostor = MakeCert(other_key.get(), customer_options);
  ASSERT_EQ(X509_check_issued(impostor.get(), cross.get()), X509_V_OK);
  std::string impostor_chain = WriteCerts("impostor.pem", {impostor.get()});
  spec.chain_files = {impostor_chain};
  ExpectLoadError([&] { LoadCaMaterial(spec, now_); }, impostor_chain,
                  {"'Customer Root' did not sign 'New Root'"});
}

TEST_F(CertLoaderCaMaterialTest, LongerChainMustBeInIssuingOrder) {
  CertOptions root_options;
  root_options.cn = "Top Root";
  X509Ptr top = MakeCert(customer_key_, root_options);
  EvpPkeyPtr mid_key = MakeKey("P-256");
  CertOptions mid_options;
  mid_options.cn = "Middle CA";
  mid_options.issuer = top.get();
  mid_options.issuer_key = customer_key_;
  X509Ptr mid = MakeCert(mid_key.get(), mid_options);
  CertOptions profile_options;
  profile_options.cn = "Profile CA";
  profile_options.issuer = mid.get();
  profile_options.issuer_key = mid_key.get();
  X509Ptr profile = MakeCert(root_key_, profile_options);

  // One file with both, and two files, are the same chain.
  std::string both = WriteCerts("both.pem", {mid.get(), top.get()});
  CaMaterial material = LoadCaMaterial(Profile(profile.get(), root_key_, {both}), now_);
  ASSERT_EQ(material.chain.size(), 2u);
  EXPECT_TRUE(SameCert(material.chain[0].get(), mid.get()));
  EXPECT_TRUE(SameCert(material.chain[1].get(), top.get()));
  std::string mid_file = WriteCerts("mid.pem", {mid.get()});
  std::string top_file = WriteCerts("top.pem", {top.get()});
  EXPECT_EQ(
      LoadCaMaterial(Profile(profile.get(), root_key_, {mid_file, top_file}), now_).chain.size(),
      2u);

  std::string reversed = WriteCerts("reversed.pem", {top.get(), mid.get()});
  ExpectLoadError([&] { LoadCaMaterial(Profile(profile.get(), root_key_, {reversed}), now_); },
                  reversed, {"'Top Root' did not sign 'Profile CA'"});
  ExpectLoadError(
      [&] {
        LoadCaMaterial(Profile(profile.get(), root_key_, {top_file, mid_file}), now_);
      },
      top_file, {"'Top Root' did not sign 'Profile CA'"});
}

TEST_F(CertLoaderCaMaterialTest, ChainCertificateMustBeACa) {
  CertOptions issuer_options;
  issuer_options.cn = "Not A CA";
  issuer_options.basic_constraints = "";
  issuer_options.key_usage = "";
  X509Ptr issuer = MakeCert(customer_key_, issuer_options);
  CertOptions profile_options;
  profile_options.issuer = issuer.get();
  profile_options.issuer_key = customer_key_;
  X509Ptr profile = MakeCert(root_key_, profile_options);
  std::string chain = WriteCerts("chain.pem", {issuer.get()});
  ExpectLoadError([&] { LoadCaMaterial(Profile(profile.get(), root_key_, {chain}), now_); }, chain,
                  {"'Not A CA' is not a CA (basicConstraints CA:TRUE missing)"});
}

TEST_F(CertLoaderCaMaterialTest, ExpiredChainCertificateIsRefused) {
  CertOptions customer_options;
  customer_options.cn = "Customer Root";
  customer_options.not_after = 3600;
  X509Ptr customer = MakeCert(customer_key_, customer_options);
  CertOptions cross_options;
  cross_options.issuer = customer.get();
  cross_options.issuer_key = customer_key_;
  X509Ptr cross = MakeCert(root_key_, cross_options);
  std::string chain = WriteCerts("customer.pem", {customer.get()});
  ExpectLoadError([&] { LoadCaMaterial(Profile(cross.get(), root_key_, {chain}), now_ + 7200); },
                  chain, {"'Customer Root' expired on"});
}

}  // namespace
}  // namespace mintgate::tls
