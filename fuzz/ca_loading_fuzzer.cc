// Fuzzes the loading of CA profile files (tls/cert_loader.h): the input is the content of a
// certificate or key file, PEM (one or more blocks, any labels) or DER. It is read as
// certificates (ParseCertificates, then DescribeCertificate as `ca show` prints them) and as a
// private key (ParsePrivateKey, without a passphrase: key derivation would only measure
// OpenSSL's KDF). When it holds both, as a combined PEM file does, the whole profile check runs
// too (LoadCaMaterial: CA flags, validity, key match, the chain after the first certificate),
// from one file in /tmp that this process creates once.
#include <fcntl.h>
#include <openssl/err.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>
#include <vector>

#include "tls/cert_info.h"
#include "tls/cert_loader.h"

namespace {

using mintgate::tls::LoadError;

#define FUZZ_CHECK(cond)                                                                \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      std::fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                     \
    }                                                                                   \
  } while (0)

const std::string& ProfileFile();

void RemoveProfileFile() { ::unlink(ProfileFile().c_str()); }

// Mode 0600, as the key loader demands. Never destroyed, so RemoveProfileFile can use it.
const std::string& ProfileFile() {
  static const std::string* const path = [] {
    char name[] = "/tmp/mintgate-ca-fuzz-XXXXXX";
    const int fd = ::mkstemp(name);
    if (fd < 0) std::abort();
    ::close(fd);
    std::atexit(RemoveProfileFile);
    return new std::string(name);
  }();
  return *path;
}

bool WriteProfileFile(const std::string& data) {
  const int fd = ::open(ProfileFile().c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = ::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size());
  ::close(fd);
  return ok;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  bool has_certificate = false;
  bool has_key = false;
  try {
    std::vector<mintgate::tls::X509Ptr> certs = mintgate::tls::ParseCertificates(bytes, "fuzz");
    FUZZ_CHECK(!certs.empty());
    for (const mintgate::tls::X509Ptr& cert : certs) {
      FUZZ_CHECK(cert != nullptr);
      const mintgate::tls::CertInfo info = mintgate::tls::DescribeCertificate(cert.get());
      FUZZ_CHECK(!info.sha256.empty());
      (void)mintgate::tls::FormatTime(info.not_after);
    }
    has_certificate = true;
  } catch (const LoadError& e) {
    FUZZ_CHECK(!e.reason().empty());
  }
  try {
    mintgate::tls::EvpPkeyPtr key = mintgate::tls::ParsePrivateKey(bytes, "fuzz", {});
    FUZZ_CHECK(key != nullptr);
    (void)mintgate::tls::DescribeKey(key.get());
    has_key = true;
  } catch (const LoadError& e) {
    FUZZ_CHECK(!e.reason().empty());
  }
  if (has_certificate && has_key && WriteProfileFile(bytes)) {
    mintgate::tls::CaProfileSpec spec;
    spec.name = "fuzz";
    spec.cert_file = ProfileFile();
    spec.key_file = ProfileFile();
    try {
      // 2027-06-01, inside the validity of the seed certificates (2026-12 to 2036-12).
      (void)mintgate::tls::LoadCaMaterial(spec, 1'811'808'000);
    } catch (const LoadError& e) {
      FUZZ_CHECK(!e.reason().empty());
    }
  }
  ERR_clear_error();
  return 0;
}
