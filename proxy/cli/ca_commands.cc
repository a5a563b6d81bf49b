#include "proxy/cli/ca_commands.h"

#include <exception>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "tls/ca_generator.h"
#include "tls/cert_info.h"
#include "tls/cert_loader.h"
#include "tls/tls_error.h"

namespace mintgate::proxy {
namespace {

constexpr int kOk = 0;
constexpr int kUsageError = 2;
constexpr int kRuntimeFailure = 3;

std::string PathLenText(const tls::CertInfo& info) {
  if (!info.is_ca) return "no";
  if (info.path_len < 0) return "yes (path length unlimited)";
  return "yes (path length " + std::to_string(info.path_len) + ")";
}

std::vector<std::string> SplitKeyUsage(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t comma = text.find(", ", start);
    out.push_back(text.substr(start, comma - start));
    if (comma == std::string::npos) break;
    start = comma + 2;
  }
  return out;
}

void PrintText(const std::string& file, size_t index, size_t count, const tls::CertInfo& info,
               std::ostream& out) {
  out << "file:        " << file;
  if (count > 1) out << " (certificate " << index + 1 << " of " << count << ")";
  out << "\n";
  out << "subject:     " << info.subject << "\n";
  out << "issuer:      " << info.issuer << "\n";
  out << "serial:      " << info.serial_hex << "\n";
  out << "not before:  " << tls::FormatTime(info.not_before) << "\n";
  out << "not after:   " << tls::FormatTime(info.not_after) << "\n";
  out << "key type:    " << info.key_type << "\n";
  out << "SHA-256:     " << info.sha256 << "\n";
  out << "CA:          " << PathLenText(info) << "\n";
  out << "self-signed: " << (info.self_signed ? "yes" : "no") << "\n";
  out << "key usage:   " << (info.key_usage.empty() ? "(none)" : info.key_usage) << "\n";
  out << "SAN:         ";
  if (info.san.empty()) out << "(none)";
  for (size_t i = 0; i < info.san.size(); ++i) out << (i > 0 ? ", " : "") << info.san[i];
  out << "\n";
}

nlohmann::json ToJson(const std::string& file, const tls::CertInfo& info) {
  return {
      {"file", file},
      {"subject", info.subject},
      {"subject_cn", info.subject_cn},
      {"issuer", info.issuer},
      {"issuer_cn", info.issuer_cn},
      {"serial", info.serial_hex},
      {"not_before", tls::FormatTime(info.not_before)},
      {"not_after", tls::FormatTime(info.not_after)},
      {"key_type", info.key_type},
      {"sha256", info.sha256},
      {"ca", info.is_ca},
      {"path_len",
       info.is_ca && info.path_len >= 0 ? nlohmann::json(info.path_len) : nlohmann::json(nullptr)},
      {"self_signed", info.self_signed},
      {"key_usage", SplitKeyUsage(info.key_usage)},
      {"san", info.san},
  };
}

}  // namespace

int RunCaInit(const CaInitArgs& args, std::ostream& out, std::ostream& err) {
  try {
    if (args.out_dir.empty()) {
      err << "mintgate ca init: --out DIR is required\n";
      return kUsageError;
    }
    tls::CaInitOptions options;
    options.common_name = args.name;
    options.key_type = tls::ParseCaKeyType(args.key);
    options.days = args.days;
    tls::GeneratedCa ca = tls::GenerateRootCa(options);
    tls::CaFiles files = tls::WriteCaFiles(args.out_dir, ca);
    tls::CertInfo info = tls::DescribeCertificate(ca.cert.get());

    out << "Created a self-signed root CA:\n";
    out << "  certificate: " << files.cert_path << "\n";
    out << "  private key: " << files.key_path << " (mode 0600; keep it secret)\n";
    out << "  subject:     " << info.subject << "\n";
    out << "  key type:    " << info.key_type << "\n";
    out << "  not after:   " << tls::FormatTime(info.not_after) << "\n";
    out << "  SHA-256:     " << info.sha256 << "\n";
    out << "\n";
    out << "Use it in the configuration:\n";
    out << "  [ca.default]\n";
    out << "  cert = \"" << files.cert_path << "\"\n";
    out << "  key  = \"" << files.key_path << "\"\n";
    out << "Clients must trust " << files.cert_path
        << " as a root CA (the gateway's portal serves it with install steps), e.g.\n";
    out << "  Debian/Ubuntu: cp " << files.cert_path
        << " /usr/local/share/ca-certificates/mintgate.crt && update-ca-certificates\n";
    out << "Check the fingerprint above when installing it.\n";
    return kOk;
  } catch (const tls::LoadError& e) {
    err << "mintgate ca init: " << e.what() << "\n";
    return kUsageError;
  } catch (const std::invalid_argument& e) {
    err << "mintgate ca init: " << e.what() << "\n";
    return kUsageError;
  } catch (const std::exception& e) {
    err << "mintgate ca init: " << e.what() << "\n";
    return kRuntimeFailure;
  }
}

int RunCaShow(const std::vector<std::string>& files, bool json, std::ostream& out,
              std::ostream& err) {
  int rc = kOk;
  nlohmann::json certificates = nlohmann::json::array();
  bool first_block = true;
  for (const std::string& file : files) {
    std::vector<tls::X509Ptr> certs;
    try {
      certs = tls::LoadCertificates(file);
    } catch (const tls::LoadError& e) {
      err << "mintgate ca show: " << e.what() << "\n";
      rc = kUsageError;
      continue;
    }
    for (size_t i = 0; i < certs.size(); ++i) {
      tls::CertInfo info = tls::DescribeCertificate(certs[i].get());
      if (json) {
        certificates.push_back(ToJson(file, info));
        continue;
      }
      if (!first_block) out << "\n";
      first_block = false;
      PrintText(file, i, certs.size(), info, out);
    }
  }
  if (json) out << nlohmann::json{{"certificates", certificates}}.dump(2) << "\n";
  return rc;
}

}  // namespace mintgate::proxy
