// Reading CA profile material from files: certificates and keys in PEM or DER whatever the
// file extension (.pem .crt .cer .der), encrypted keys, and every check a profile must pass
// before it may sign. All failures throw LoadError naming the file and the precise problem.
#pragma once

#include <ctime>
#include <string>
#include <vector>

#include "tls/openssl_ptr.h"
#include "tls/tls_error.h"

namespace mintgate::tls {

// Where the passphrase of an encrypted key comes from (at most one should be set).
struct PassphraseSource {
  std::string file;  // first line of this file, trailing newline stripped
  std::string env;   // name of an environment variable
};

// One [ca.NAME] table, already resolved to absolute or working-directory-relative paths.
struct CaProfileSpec {
  std::string name;
  std::string cert_file;
  std::string key_file;
  std::vector<std::string> chain_files;  // each may hold one or more certificates
  PassphraseSource passphrase;
};

// A profile's validated material.
struct CaMaterial {
  X509Ptr cert;                // the signing certificate (self-signed or cross-signed)
  EvpPkeyPtr key;              // its private key
  std::vector<X509Ptr> chain;  // extra certificates served after `cert`, in order
};

// All certificates in a PEM file (one or more blocks) or the single certificate of a DER
// file. Throws: unreadable, empty, not a certificate.
std::vector<X509Ptr> LoadCertificates(const std::string& path);

// The same from the bytes of a file; `name` only names it in errors.
std::vector<X509Ptr> ParseCertificates(const std::string& data, const std::string& name);

// The first certificate of LoadCertificates(path).
X509Ptr LoadCertificate(const std::string& path);

// A private key from PEM (PKCS#8, traditional, or encrypted) or DER. Refuses key and
// passphrase files that group or others can read (the message gives the chmod to run),
// encrypted keys without a passphrase, wrong passphrases, and unsupported key types (RSA
// 2048-4096, ECDSA P-256 and P-384 are supported).
EvpPkeyPtr LoadPrivateKey(const std::string& path, const PassphraseSource& passphrase);

// The same from the bytes of a key file, without the key file's mode check; `path` only names it in
// errors. `data` is cleansed before it is freed.
EvpPkeyPtr ParsePrivateKey(std::string data, const std::string& path,
                           const PassphraseSource& passphrase);

// Throws LoadError unless only the owner may access `path` (no group or other bits): a secret
// others can read is refused, and the message gives the chmod to run. `what` names the
// secret ("key file", "passphrase file").
void CheckPrivateFileMode(const std::string& path, const std::string& what);

// Throws unless `key` is RSA 2048..4096 bits or ECDSA on P-256 or P-384.
void CheckSupportedKey(EVP_PKEY* key, const std::string& file);

// "ECDSA P-256", "ECDSA P-384", "RSA 2048", ...
std::string DescribeKey(EVP_PKEY* key);

// Loads and validates a whole profile at instant `now`: the certificate is a CA
// (basicConstraints CA:TRUE, keyCertSign if keyUsage is present), is valid at `now`, its key
// matches, the key is supported, and each chain certificate signed the one before it (the
// first chain certificate signed `cert`). Throws LoadError naming the offending file.
CaMaterial LoadCaMaterial(const CaProfileSpec& spec, std::time_t now);

}  // namespace mintgate::tls
