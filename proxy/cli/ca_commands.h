// `mintgate ca ...` subcommands. Each returns the process exit code (SPEC §3:
// 0 ok, 1 check found problems, 2 usage or configuration error, 3 runtime failure).
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace mintgate::proxy {

struct CaInitArgs {
  std::string out_dir;
  std::string name = "mintgate Root CA";
  std::string key = "ecdsa-p256";  // ecdsa-p256 | rsa-2048 | rsa-3072 | rsa-4096
  int days = 3650;
};

// Creates DIR/ca.pem and DIR/ca.key (0600) and prints what it wrote with the fingerprint.
int RunCaInit(const CaInitArgs& args, std::ostream& out, std::ostream& err);

// Prints subject, issuer, serial, validity, key type, SHA-256 fingerprint and CA flags of
// every certificate in each PEM or DER file; `json` prints {"certificates": [...]}.
int RunCaShow(const std::vector<std::string>& files, bool json, std::ostream& out,
              std::ostream& err);

}  // namespace mintgate::proxy
