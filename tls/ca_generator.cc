#include "tls/ca_generator.h"

#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <stdexcept>

namespace mintgate::tls {
namespace {

using BasicConstraintsPtr =
    std::unique_ptr<BASIC_CONSTRAINTS, OpenSslDeleter<BASIC_CONSTRAINTS_free>>;
using AuthorityKeyIdPtr = std::unique_ptr<AUTHORITY_KEYID, OpenSslDeleter<AUTHORITY_KEYID_free>>;
using Asn1BitStringPtr = std::unique_ptr<ASN1_BIT_STRING, OpenSslDeleter<ASN1_BIT_STRING_free>>;

constexpr int kSerialBytes = 16;
constexpr long kBackdateSeconds = 3600;  // NOLINT(runtime/int): OpenSSL's type

[[noreturn]] void Fail(const std::string& what) {
  throw std::runtime_error(WithOpenSslErrors("generating the CA: " + what));
}

EvpPkeyPtr GenerateKey(CaKeyType type) {
  EVP_PKEY* key = nullptr;
  switch (type) {
    case CaKeyType::kEcdsaP256:
      key = EVP_EC_gen("P-256");
      break;
    case CaKeyType::kRsa2048:
      key = EVP_RSA_gen(2048);
      break;
    case CaKeyType::kRsa3072:
      key = EVP_RSA_gen(3072);
      break;
    case CaKeyType::kRsa4096:
      key = EVP_RSA_gen(4096);
      break;
  }
  if (key == nullptr) Fail("key generation failed");
  return EvpPkeyPtr(key);
}

// Positive (top bit clear, so DER needs no sign byte) and non-zero, as RFC 5280 requires.
void SetRandomSerial(X509* cert) {
  unsigned char bytes[kSerialBytes];
  BignumPtr bn;
  do {
    if (RAND_bytes(bytes, sizeof bytes) != 1) Fail("RAND_bytes failed");
    bytes[0] &= 0x7f;
    bn.reset(BN_bin2bn(bytes, sizeof bytes, nullptr));
    if (!bn) Fail("BN_bin2bn failed");
  } while (BN_is_zero(bn.get()));
  if (BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert)) == nullptr) {
    Fail("cannot set the serial number");
  }
}

void SetName(X509* cert, const std::string& common_name) {
  X509NamePtr name(X509_NAME_new());
  if (!name) Fail("X509_NAME_new failed");
  auto add = [&](const char* field, const std::string& value) {
    if (X509_NAME_add_entry_by_txt(name.get(), field, MBSTRING_UTF8,
                                   reinterpret_cast<const unsigned char*>(value.data()),
                                   static_cast<int>(value.size()), -1, 0) != 1) {
      Fail(std::string("cannot set subject ") + field);
    }
  };
  add("O", "mintgate");
  add("CN", common_name);
  if (X509_set_subject_name(cert, name.get()) != 1 || X509_set_issuer_name(cert, name.get()) != 1) {
    Fail("cannot set the subject");
  }
}

void AddExtensions(X509* cert) {
  BasicConstraintsPtr bc(BASIC_CONSTRAINTS_new());
  if (!bc) Fail("BASIC_CONSTRAINTS_new failed");
  bc->ca = 0xFF;  // DER TRUE
  if (X509_add1_ext_i2d(cert, NID_basic_constraints, bc.get(), 1, X509V3_ADD_DEFAULT) != 1) {
    Fail("cannot add basicConstraints");
  }

  Asn1BitStringPtr usage(ASN1_BIT_STRING_new());
  // Bit numbers from RFC 5280 §4.2.1.3: keyCertSign(5), cRLSign(6).
  if (!usage || ASN1_BIT_STRING_set_bit(usage.get(), 5, 1) != 1 ||
      ASN1_BIT_STRING_set_bit(usage.get(), 6, 1) != 1 ||
      X509_add1_ext_i2d(cert, NID_key_usage, usage.get(), 1, X509V3_ADD_DEFAULT) != 1) {
    Fail("cannot add keyUsage");
  }

  // RFC 5280 §4.2.1.2 method (1): SHA-1 of the subjectPublicKey BIT STRING.
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  if (X509_pubkey_digest(cert, EVP_sha1(), md, &md_len) != 1) Fail("cannot hash the key");
  Asn1OctetStringPtr ski(ASN1_OCTET_STRING_new());
  if (!ski || ASN1_OCTET_STRING_set(ski.get(), md, static_cast<int>(md_len)) != 1 ||
      X509_add1_ext_i2d(cert, NID_subject_key_identifier, ski.get(), 0, X509V3_ADD_DEFAULT) != 1) {
    Fail("cannot add subjectKeyIdentifier");
  }

  AuthorityKeyIdPtr akid(AUTHORITY_KEYID_new());
  if (!akid) Fail("AUTHORITY_KEYID_new failed");
  akid->keyid = ASN1_OCTET_STRING_dup(ski.get());
  if (akid->keyid == nullptr || X509_add1_ext_i2d(cert, NID_authority_key_identifier, akid.get(), 0,
                                                  X509V3_ADD_DEFAULT) != 1) {
    Fail("cannot add authorityKeyIdentifier");
  }
}

std::string JoinPath(const std::string& dir, const char* name) {
  if (!dir.empty() && dir.back() == '/') return dir + name;
  return dir + "/" + name;
}

}  // namespace

void MakeDirectories(const std::string& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) throw LoadError(dir, "exists and is not a directory");
    return;
  }
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = dir.find('/', pos + 1);
    std::string prefix = dir.substr(0, pos);
    if (prefix.empty()) continue;
    if (::mkdir(prefix.c_str(), 0700) != 0 && errno != EEXIST) {
      throw LoadError(prefix, std::string("cannot create directory: ") + std::strerror(errno));
    }
  }
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    throw LoadError(dir, "cannot create directory");
  }
}

namespace {

std::string PemOf(const std::string& path, bool (*write)(BIO*, const GeneratedCa&),
                  const GeneratedCa& ca) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || !write(bio.get(), ca)) {
    throw LoadError(path, WithOpenSslErrors("cannot encode PEM"));
  }
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);  // NOLINT(runtime/int): OpenSSL's type
  return std::string(data, static_cast<size_t>(len));
}

}  // namespace

// O_EXCL makes the "never overwrite" rule hold even against a racing writer, and the key
// is never visible with a wider mode than `mode`.
void WriteNewFile(const std::string& path, const std::string& data, mode_t mode) {
  int fd = ::open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, mode);
  if (fd < 0) {
    if (errno == EEXIST) throw LoadError(path, "already exists; refusing to overwrite it");
    throw LoadError(path, std::string("cannot create: ") + std::strerror(errno));
  }
  auto fail = [&](const char* what) {
    int e = errno;
    ::close(fd);
    ::unlink(path.c_str());
    throw LoadError(path, std::string(what) + std::strerror(e));
  };
  // The umask may have narrowed the mode; the certificate is public and should stay readable.
  if (::fchmod(fd, mode) != 0) fail("cannot set mode: ");
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("cannot write: ");
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) fail("cannot sync: ");
  if (::close(fd) != 0) {
    int e = errno;
    ::unlink(path.c_str());
    throw LoadError(path, std::string("cannot write: ") + std::strerror(e));
  }
}

CaKeyType ParseCaKeyType(const std::string& text) {
  if (text == "ecdsa-p256") return CaKeyType::kEcdsaP256;
  if (text == "rsa-2048") return CaKeyType::kRsa2048;
  if (text == "rsa-3072") return CaKeyType::kRsa3072;
  if (text == "rsa-4096") return CaKeyType::kRsa4096;
  throw std::invalid_argument("unknown CA key type '" + text +
                              "' (expected ecdsa-p256, rsa-2048, rsa-3072 or rsa-4096)");
}

GeneratedCa GenerateRootCa(const CaInitOptions& options) {
  if (options.common_name.empty()) throw std::invalid_argument("the CA name must not be empty");
  if (options.days <= 0) throw std::invalid_argument("the CA validity must be at least one day");

  GeneratedCa ca;
  ca.key = GenerateKey(options.key_type);
  ca.cert.reset(X509_new());
  X509* cert = ca.cert.get();
  if (cert == nullptr) Fail("X509_new failed");
  if (X509_set_version(cert, X509_VERSION_3) != 1) Fail("cannot set the version");
  SetRandomSerial(cert);
  SetName(cert, options.common_name);

  std::time_t now = std::time(nullptr);
  if (X509_time_adj_ex(X509_getm_notBefore(cert), 0, -kBackdateSeconds, &now) == nullptr ||
      X509_time_adj_ex(X509_getm_notAfter(cert), options.days, 0, &now) == nullptr) {
    Fail("cannot set the validity");
  }
  if (X509_set_pubkey(cert, ca.key.get()) != 1) Fail("cannot set the public key");
  AddExtensions(cert);
  if (X509_sign(cert, ca.key.get(), EVP_sha256()) <= 0) Fail("signing failed");
  return ca;
}

CaFiles WriteCaFiles(const std::string& dir, const GeneratedCa& ca) {
  if (dir.empty()) throw LoadError("", "no output directory given");
  MakeDirectories(dir);
  CaFiles files{JoinPath(dir, "ca.pem"), JoinPath(dir, "ca.key")};
  // Both are checked before anything is written so a refusal leaves the directory as it was.
  for (const std::string* path : {&files.cert_path, &files.key_path}) {
    struct stat st {};
    if (::lstat(path->c_str(), &st) == 0) {
      throw LoadError(*path, "already exists; refusing to overwrite it");
    }
  }
  std::string key_pem = PemOf(
      files.key_path,
      [](BIO* bio, const GeneratedCa& c) {
        return PEM_write_bio_PrivateKey(bio, c.key.get(), nullptr, nullptr, 0, nullptr, nullptr) ==
               1;
      },
      ca);
  std::string cert_pem = PemOf(
      files.cert_path,
      [](BIO* bio, const GeneratedCa& c) { return PEM_write_bio_X509(bio, c.cert.get()) == 1; },
      ca);
  try {
    WriteNewFile(files.key_path, key_pem, 0600);
    OPENSSL_cleanse(key_pem.data(), key_pem.size());
  } catch (...) {
    OPENSSL_cleanse(key_pem.data(), key_pem.size());
    throw;
  }
  try {
    WriteNewFile(files.cert_path, cert_pem, 0644);
  } catch (...) {
    ::unlink(files.key_path.c_str());  // a key without its certificate is useless
    throw;
  }
  return files;
}

}  // namespace mintgate::tls
