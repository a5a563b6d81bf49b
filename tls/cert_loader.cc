#include "tls/cert_loader.h"

#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/decoder.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <utility>

#include "tls/cert_info.h"

namespace mintgate::tls {
namespace {

using OsslDecoderCtxPtr = std::unique_ptr<OSSL_DECODER_CTX, OpenSslDeleter<OSSL_DECODER_CTX_free>>;

// Key files are bounded so a wrong path (a device, a huge log) fails fast instead of
// being read into memory.
constexpr off_t kMaxFileSize = 16 * 1024 * 1024;

std::string Errno(int e) { return std::strerror(e); }

// Reads a whole regular file; errors name `path` and carry strerror.
std::string ReadFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw LoadError(path, "cannot read: " + Errno(errno));
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw LoadError(path, "cannot read: " + Errno(errno));
  if (S_ISDIR(st.st_mode)) throw LoadError(path, "cannot read: " + Errno(EISDIR));
  if (!S_ISREG(st.st_mode)) throw LoadError(path, "cannot read: not a regular file");
  if (st.st_size > kMaxFileSize) throw LoadError(path, "cannot read: file is too large");
  std::string data;
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw LoadError(path, "cannot read: " + Errno(errno));
    }
    if (n == 0) break;
    data.append(buf, static_cast<size_t>(n));
  }
  return data;
}

bool LooksLikePem(std::string_view data) { return data.find("-----BEGIN") != data.npos; }

std::string CommonNameOrSubject(X509* cert) {
  CertInfo info = DescribeCertificate(cert);
  return info.subject_cn.empty() ? info.subject : info.subject_cn;
}

// PEM labels that carry an X.509 certificate (RFC 7468 plus OpenSSL's historical ones).
bool IsCertificateLabel(std::string_view name) {
  return name == PEM_STRING_X509 || name == PEM_STRING_X509_OLD || name == PEM_STRING_X509_TRUSTED;
}

std::vector<X509Ptr> ParsePemCertificates(const std::string& path, const std::string& data) {
  BioPtr bio(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
  if (!bio) throw LoadError(path, WithOpenSslErrors("cannot allocate a BIO"));
  std::vector<X509Ptr> certs;
  std::vector<std::string> other_labels;
  for (int block = 1;; ++block) {
    char* name = nullptr;
    char* header = nullptr;
    unsigned char* der = nullptr;
    long len = 0;  // NOLINT(runtime/int): OpenSSL's type
    if (PEM_read_bio(bio.get(), &name, &header, &der, &len) != 1) {
      unsigned long err = ERR_peek_last_error();  // NOLINT(runtime/int): OpenSSL's type
      if (ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE) {
        ERR_clear_error();  // the normal end of the blocks
        break;
      }
      throw LoadError(path, WithOpenSslErrors("malformed PEM block " + std::to_string(block)));
    }
    std::string label = name;
    OPENSSL_free(name);
    OPENSSL_free(header);
    if (!IsCertificateLabel(label)) {
      OPENSSL_free(der);
      other_labels.push_back(label);
      continue;
    }
    const unsigned char* p = der;
    X509* cert = label == PEM_STRING_X509_TRUSTED ? d2i_X509_AUX(nullptr, &p, len)
                                                  : d2i_X509(nullptr, &p, len);
    OPENSSL_free(der);
    if (cert == nullptr) {
      throw LoadError(
          path, WithOpenSslErrors("not a certificate: PEM block " + std::to_string(block) + " (" +
                                  label + ") does not parse as X.509"));
    }
    certs.emplace_back(cert);
  }
  if (certs.empty()) {
    std::string reason = "not a certificate: the PEM file holds no CERTIFICATE block";
    if (!other_labels.empty()) {
      reason += " (found ";
      for (size_t i = 0; i < other_labels.size(); ++i) {
        if (i > 0) reason += ", ";
        reason += other_labels[i];
      }
      reason += ")";
    }
    throw LoadError(path, reason);
  }
  return certs;
}

X509Ptr ParseDerCertificate(const std::string& path, const std::string& data) {
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  const unsigned char* end = p + data.size();
  X509Ptr cert(d2i_X509(nullptr, &p, static_cast<long>(data.size())));  // NOLINT(runtime/int)
  if (!cert) {
    ERR_clear_error();
    throw LoadError(path, "not a certificate: neither PEM nor DER-encoded X.509");
  }
  // A DER file is exactly one certificate; trailing bytes mean a wrong or damaged file.
  if (p != end) {
    throw LoadError(path, "not a certificate: " + std::to_string(end - p) +
                              " unexpected bytes after the DER certificate");
  }
  return cert;
}

std::string StripLineEnd(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

struct Passphrase {
  bool given = false;
  std::string value;
  std::string origin;  // for messages: "passphrase_file /x" or "passphrase_env NAME"
};

Passphrase ResolvePassphrase(const std::string& key_path, const PassphraseSource& source) {
  Passphrase pass;
  if (!source.file.empty() && !source.env.empty()) {
    throw LoadError(key_path, "set only one of passphrase_file or passphrase_env");
  }
  if (!source.file.empty()) {
    // The passphrase unlocks the key: whoever may read it may as well read a plain key.
    CheckPrivateFileMode(source.file, "passphrase file");
    std::string data = ReadFile(source.file);
    pass.value = StripLineEnd(data.substr(0, data.find('\n')));
    OPENSSL_cleanse(data.data(), data.size());
    if (pass.value.empty()) throw LoadError(source.file, "passphrase file is empty");
    pass.given = true;
    pass.origin = "passphrase_file " + source.file;
  } else if (!source.env.empty()) {
    const char* value = std::getenv(source.env.c_str());
    if (value == nullptr) {
      throw LoadError(key_path,
                      "passphrase_env: environment variable " + source.env + " is not set");
    }
    pass.value = value;
    if (pass.value.empty()) {
      throw LoadError(key_path, "passphrase_env: environment variable " + source.env + " is empty");
    }
    pass.given = true;
    pass.origin = "passphrase_env " + source.env;
  }
  return pass;
}

// Decoding runs inside OpenSSL frames, so the callback only records what happened; the
// caller turns that into the right error afterwards.
struct PassphraseState {
  const Passphrase* pass = nullptr;
  bool asked = false;
};

int PassphraseCallback(char* buf, size_t size, size_t* len, const OSSL_PARAM[], void* arg) {
  auto* state = static_cast<PassphraseState*>(arg);
  state->asked = true;
  if (!state->pass->given || state->pass->value.size() > size) return 0;
  std::memcpy(buf, state->pass->value.data(), state->pass->value.size());
  *len = state->pass->value.size();
  return 1;
}

std::string EcCurveName(EVP_PKEY* key) {
  char group[80] = {};
  size_t len = 0;
  if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &len) !=
      1) {
    ERR_clear_error();
    return "";
  }
  int nid = OBJ_txt2nid(group);
  if (nid != NID_undef) {
    if (const char* nist = EC_curve_nid2nist(nid); nist != nullptr) return nist;
  }
  return group;
}

// The certificate checks every certificate of a profile must pass, with `what` naming it
// ("CA certificate", "chain certificate 'X'").
void CheckIsCa(X509* cert, const std::string& file, const std::string& what) {
  uint32_t flags = X509_get_extension_flags(cert);
  if ((flags & EXFLAG_INVALID) != 0) {
    throw LoadError(file, what + " has malformed extensions");
  }
  if ((flags & EXFLAG_CA) == 0) {
    throw LoadError(file, what + " is not a CA (basicConstraints CA:TRUE missing)");
  }
  if ((flags & EXFLAG_KUSAGE) != 0 && (X509_get_key_usage(cert) & KU_KEY_CERT_SIGN) == 0) {
    throw LoadError(file, what + " may not sign certificates (keyUsage lacks keyCertSign)");
  }
}

void CheckValidAt(X509* cert, std::time_t now, const std::string& file, const std::string& what) {
  const ASN1_TIME* not_before = X509_get0_notBefore(cert);
  const ASN1_TIME* not_after = X509_get0_notAfter(cert);
  int after_cmp = X509_cmp_time(not_after, &now);
  int before_cmp = X509_cmp_time(not_before, &now);
  if (after_cmp == 0 || before_cmp == 0) {
    throw LoadError(file, WithOpenSslErrors(what + " has a malformed validity period"));
  }
  if (after_cmp < 0) {
    throw LoadError(file, what + " expired on " + FormatTime(Asn1TimeToTimeT(not_after)));
  }
  if (before_cmp > 0) {
    throw LoadError(file,
                    what + " is not yet valid until " + FormatTime(Asn1TimeToTimeT(not_before)));
  }
}

}  // namespace

void CheckPrivateFileMode(const std::string& path, const std::string& what) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw LoadError(path, "cannot read: " + Errno(errno));
  mode_t mode = st.st_mode & 07777;
  if ((mode & 077) != 0) {
    char octal[8];
    std::snprintf(octal, sizeof octal, "%04o", static_cast<unsigned>(mode));
    const char* how = (mode & 044) != 0 ? "readable" : "accessible";
    throw LoadError(path, what + " is " + how + " by group or others (mode " + octal +
                              "); run: chmod 600 " + path);
  }
}

std::vector<X509Ptr> LoadCertificates(const std::string& path) {
  return ParseCertificates(ReadFile(path), path);
}

std::vector<X509Ptr> ParseCertificates(const std::string& data, const std::string& name) {
  if (data.empty()) throw LoadError(name, "empty file");
  if (LooksLikePem(data)) return ParsePemCertificates(name, data);
  std::vector<X509Ptr> certs;
  certs.push_back(ParseDerCertificate(name, data));
  return certs;
}

X509Ptr LoadCertificate(const std::string& path) {
  return std::move(LoadCertificates(path).front());
}

EvpPkeyPtr LoadPrivateKey(const std::string& path, const PassphraseSource& passphrase) {
  CheckPrivateFileMode(path, "key file");
  return ParsePrivateKey(ReadFile(path), path, passphrase);
}

EvpPkeyPtr ParsePrivateKey(std::string data, const std::string& path,
                           const PassphraseSource& passphrase) {
  // Key material and the passphrase should not linger in freed heap memory.
  struct Cleanser {
    std::string& a;
    ~Cleanser() { OPENSSL_cleanse(a.data(), a.size()); }
  } data_cleanser{data};
  if (data.empty()) throw LoadError(path, "empty file");
  Passphrase pass = ResolvePassphrase(path, passphrase);
  Cleanser pass_cleanser{pass.value};

  EVP_PKEY* raw = nullptr;
  // Input type and structure are left open so PKCS#8, traditional and encrypted forms, PEM
  // or DER, are all recognised by content.
  OsslDecoderCtxPtr dctx(OSSL_DECODER_CTX_new_for_pkey(&raw, nullptr, nullptr, nullptr,
                                                       EVP_PKEY_KEYPAIR, nullptr, nullptr));
  if (!dctx) throw LoadError(path, WithOpenSslErrors("cannot create a key decoder"));
  PassphraseState state{&pass, false};
  OSSL_DECODER_CTX_set_passphrase_cb(dctx.get(), PassphraseCallback, &state);
  BioPtr bio(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
  if (!bio) throw LoadError(path, WithOpenSslErrors("cannot allocate a BIO"));
  // A PEM key may follow other blocks (`openssl ecparam -genkey` writes EC PARAMETERS
  // first), so objects are decoded one after the other until a private key comes out.
  bool ok = false;
  for (;;) {
    long start = BIO_tell(bio.get());  // NOLINT(runtime/int): OpenSSL's type
    if (OSSL_DECODER_from_bio(dctx.get(), bio.get()) == 1 && raw != nullptr) {
      ok = true;
      break;
    }
    if (BIO_eof(bio.get()) || BIO_tell(bio.get()) <= start) break;
  }
  EvpPkeyPtr key(raw);
  if (!ok) {
    ERR_clear_error();
    if (state.asked && !pass.given) {
      throw LoadError(path,
                      "key is encrypted but no passphrase was given (set passphrase_file or "
                      "passphrase_env)");
    }
    if (state.asked) {
      throw LoadError(path, "cannot decrypt the key: wrong passphrase (from " + pass.origin +
                                ") or damaged file");
    }
    if (data.find("CERTIFICATE-----") != std::string::npos) {
      throw LoadError(path, "not a private key: the file holds a certificate");
    }
    if (data.find("PUBLIC KEY-----") != std::string::npos) {
      throw LoadError(path, "not a private key: the file holds only a public key");
    }
    throw LoadError(path, "not a private key: no PEM or DER private key could be decoded");
  }
  ERR_clear_error();
  CheckSupportedKey(key.get(), path);
  return key;
}

void CheckSupportedKey(EVP_PKEY* key, const std::string& file) {
  constexpr const char* kSupported = "supported: RSA 2048-4096, ECDSA P-256, ECDSA P-384";
  if (key == nullptr) throw LoadError(file, "no key");
  // RSA-PSS keys report "RSA-PSS", which EVP_PKEY_is_a(key, "RSA") rejects on purpose: the
  // leaves are signed with PKCS#1 v1.5.
  if (EVP_PKEY_is_a(key, "RSA")) {
    int bits = EVP_PKEY_get_bits(key);
    if (bits >= 2048 && bits <= 4096) return;
  } else if (EVP_PKEY_is_a(key, "EC")) {
    std::string curve = EcCurveName(key);
    if (curve == "P-256" || curve == "P-384") return;
  }
  throw LoadError(file, "unsupported key type " + DescribeKey(key) + " (" + kSupported + ")");
}

std::string DescribeKey(EVP_PKEY* key) {
  if (key == nullptr) return "unknown";
  std::string bits = std::to_string(EVP_PKEY_get_bits(key));
  if (EVP_PKEY_is_a(key, "RSA")) return "RSA " + bits;
  if (EVP_PKEY_is_a(key, "RSA-PSS")) return "RSA-PSS " + bits;
  if (EVP_PKEY_is_a(key, "EC")) {
    std::string curve = EcCurveName(key);
    return curve.empty() ? "ECDSA" : "ECDSA " + curve;
  }
  if (EVP_PKEY_is_a(key, "ED25519")) return "Ed25519";
  if (EVP_PKEY_is_a(key, "ED448")) return "Ed448";
  if (EVP_PKEY_is_a(key, "DSA")) return "DSA " + bits;
  const char* name = EVP_PKEY_get0_type_name(key);
  return name != nullptr ? name : "unknown";
}

CaMaterial LoadCaMaterial(const CaProfileSpec& spec, std::time_t now) {
  CaMaterial material;
  std::vector<X509Ptr> cert_file_certs = LoadCertificates(spec.cert_file);
  material.cert = std::move(cert_file_certs.front());
  X509* cert = material.cert.get();
  CheckIsCa(cert, spec.cert_file, "certificate");
  CheckValidAt(cert, now, spec.cert_file, "CA certificate");

  material.key = LoadPrivateKey(spec.key_file, spec.passphrase);
  EVP_PKEY* cert_pub = X509_get0_pubkey(cert);
  if (cert_pub == nullptr || EVP_PKEY_eq(cert_pub, material.key.get()) != 1) {
    ERR_clear_error();
    throw LoadError(spec.key_file, "private key does not match certificate " + spec.cert_file);
  }

  // Extra certificates in the cert file itself (a "fullchain" file) are treated as the start
  // of the chain, so they are checked like the configured chain.
  struct Link {
    X509Ptr cert;
    const std::string* file;
  };
  std::vector<Link> links;
  for (size_t i = 1; i < cert_file_certs.size(); ++i) {
    links.push_back({std::move(cert_file_certs[i]), &spec.cert_file});
  }
  for (const std::string& chain_file : spec.chain_files) {
    for (X509Ptr& c : LoadCertificates(chain_file)) links.push_back({std::move(c), &chain_file});
  }

  X509* previous = cert;
  std::string previous_file = spec.cert_file;
  for (Link& link : links) {
    std::string name = CommonNameOrSubject(link.cert.get());
    std::string what = "chain certificate '" + name + "'";
    CheckIsCa(link.cert.get(), *link.file, what);
    CheckValidAt(link.cert.get(), now, *link.file, what);
    EVP_PKEY* signer_key = X509_get0_pubkey(link.cert.get());
    bool issued = X509_check_issued(link.cert.get(), previous) == X509_V_OK;
    bool verifies = signer_key != nullptr && X509_verify(previous, signer_key) == 1;
    ERR_clear_error();
    if (!issued || !verifies) {
      throw LoadError(*link.file, "chain certificate '" + name + "' did not sign '" +
                                      CommonNameOrSubject(previous) + "' (from " + previous_file +
                                      "); the chain must list each issuer after the "
                                      "certificate it signed");
    }
    previous = link.cert.get();
    previous_file = *link.file;
    material.chain.push_back(std::move(link.cert));
  }
  return material;
}

}  // namespace mintgate::tls
