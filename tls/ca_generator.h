// Creation of self-signed root CAs (`mintgate ca init`, and the default CA generated in the
// state directory on first start).
#pragma once

#include <sys/types.h>

#include <string>

#include "tls/openssl_ptr.h"
#include "tls/tls_error.h"

namespace mintgate::tls {

enum class CaKeyType { kEcdsaP256, kRsa2048, kRsa3072, kRsa4096 };

// "ecdsa-p256", "rsa-2048", "rsa-3072", "rsa-4096"; throws std::invalid_argument otherwise.
CaKeyType ParseCaKeyType(const std::string& text);

struct CaInitOptions {
  std::string common_name = "mintgate Root CA";
  CaKeyType key_type = CaKeyType::kEcdsaP256;
  int days = 3650;
};

struct GeneratedCa {
  X509Ptr cert;
  EvpPkeyPtr key;
};

// A self-signed root: v3, random 128-bit positive serial, subject = issuer = CN (+ O=mintgate),
// valid from one hour ago for `days`, basicConstraints CA:TRUE (critical), keyUsage
// keyCertSign+cRLSign (critical), SKI, AKI, SHA-256 signature.
GeneratedCa GenerateRootCa(const CaInitOptions& options);

struct CaFiles {
  std::string cert_path;  // DIR/ca.pem
  std::string key_path;   // DIR/ca.key, mode 0600
};

// Writes ca.pem (0644) and ca.key (0600, created with that mode, never wider) into `dir`,
// creating `dir` (0700) if needed. Refuses to overwrite existing files. Throws LoadError.
CaFiles WriteCaFiles(const std::string& dir, const GeneratedCa& ca);

// Like `mkdir -p`, but every directory it creates is 0700: secrets (a CA key) will live
// there. Throws LoadError.
void MakeDirectories(const std::string& dir);

// Creates `path` with `mode` (O_EXCL: never overwrites, even against a racing writer; never
// visible with a wider mode), writes `data` and syncs it. Throws LoadError ("already exists;
// refusing to overwrite it" when it does).
void WriteNewFile(const std::string& path, const std::string& data, mode_t mode);

}  // namespace mintgate::tls
