// Test-time PKI: roots, cross-signed certificates and an independent verifier, all made with
// OpenSSL's API in memory (no fixture files are checked in).
#pragma once

#include <ctime>
#include <string>
#include <vector>

#include "tls/cert_loader.h"
#include "tls/leaf.h"
#include "tls/openssl_ptr.h"

namespace mintgate::tls::testing {

// "ec" (P-256), "p384", "rsa2048", "rsa1024"
EvpPkeyPtr MakeKey(const std::string& type);

struct TestCa {
  X509Ptr cert;
  EvpPkeyPtr key;
};

struct CaOptions {
  int path_len = -1;           // -1: no constraint
  std::time_t not_before = 0;  // 0: now - 1 h
  std::time_t not_after = 0;   // 0: now + 10 years
  bool is_ca = true;
  bool with_ski = true;
};

// A self-signed root with `key`.
TestCa MakeRoot(const std::string& cn, EvpPkeyPtr key, const CaOptions& options = {});

// A certificate with the subject and key of `subject`, issued by `issuer` (cross-signing).
X509Ptr CrossSign(const TestCa& subject, const TestCa& issuer, const CaOptions& options = {});

CaProfileSpec Spec(const std::string& name);
CaMaterial Material(const TestCa& ca, std::vector<X509*> chain = {});
CaMaterial Material(X509* cert, EVP_PKEY* key, std::vector<X509*> chain = {});

// Verifies `leaf` as a TLS server certificate for `host` at `at` (0 = now), with `untrusted`
// as the chain the server sent and only `anchors` trusted. Returns "" on success, otherwise
// OpenSSL's reason.
std::string Verify(X509* leaf, const std::vector<X509*>& untrusted,
                   const std::vector<X509*>& anchors, const std::string& host, std::time_t at = 0);
std::string VerifyLeaf(const Leaf& leaf, const std::vector<X509*>& anchors, const std::string& host,
                       std::time_t at = 0);

// A fresh directory under the system's temporary directory, removed with its contents when
// the object goes away.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "mintgate-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};
void WritePem(const std::string& path, const std::vector<X509*>& certs);

}  // namespace mintgate::tls::testing
