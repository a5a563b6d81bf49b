#include "proxy/runtime/install_packages.h"

#include <openssl/evp.h>

#include <cstdio>
#include <string_view>

#include "proxy/http/error_page.h"  // EscapeHtml: also right for XML text

namespace mintgate::proxy {
namespace {

std::string Base64(std::string_view data) {
  std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(data.data()),
                                static_cast<int>(data.size()));
  out.resize(n < 0 ? 0 : static_cast<std::size_t>(n));
  return out;
}

// Lines of at most 64 characters, each indented by `indent`.
std::string Wrapped(const std::string& text, const std::string& indent) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); i += 64) out += indent + text.substr(i, 64) + "\n";
  return out;
}

std::string Sha256Hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(data.data(), data.size(), digest, &size, EVP_sha256(), nullptr);
  std::string hex;
  char byte[3];
  for (unsigned int i = 0; i < size; ++i) {
    std::snprintf(byte, sizeof byte, "%02x", digest[i]);
    hex += byte;
  }
  return hex;
}

// "AB:CD:..." -> "ABCD..." (PowerShell's BitConverter spelling without dashes).
std::string HexOnly(const std::string& fingerprint) {
  std::string out;
  for (char c : fingerprint) {
    if (c != ':') out += c;
  }
  return out;
}

// A stable UUID for `seed` (the layout of a version 5 UUID, from SHA-256): the same CAs from
// the same gateway always give the same identifiers, so a newer profile replaces the old one.
std::string StableUuid(const std::string& seed) {
  std::string hex = Sha256Hex(seed).substr(0, 32);
  hex[12] = '5';
  hex[16] = "89ab"[(hex[16] >= 'a' ? hex[16] - 'a' + 10 : hex[16] - '0') & 3];
  for (char& c : hex) c = static_cast<char>(c >= 'a' ? c - 'a' + 'A' : c);
  return hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) + "-" +
         hex.substr(16, 4) + "-" + hex.substr(20, 12);
}

// A PowerShell single-quoted string.
std::string PsQuoted(std::string_view text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') out += '\'';
    if (c != '\r' && c != '\n') out += c;
  }
  return out + "'";
}

// A comment line's text: no line breaks.
std::string OneLine(std::string text) {
  for (char& c : text) {
    if (c == '\r' || c == '\n') c = ' ';
  }
  return text;
}

// A reverse-DNS identifier part from a host name: letters, digits, '-' and '.'.
std::string IdentifierPart(const std::string& host) {
  std::string out;
  for (char c : host) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.';
    out += ok ? c : '-';
  }
  return out.empty() ? "gateway" : out;
}

std::string JsonString(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) continue;
    out += c;
  }
  return out + "\"";
}

}  // namespace

std::string LinuxCaPath(const InstallCa& ca) {
  return "/usr/local/share/ca-certificates/mintgate-" + ca.name + ".crt";
}

InstallPackage AppleProfile(const std::vector<InstallCa>& cas, const std::string& portal_host) {
  const std::string base = "mintgate." + IdentifierPart(portal_host);
  std::string seed = base;
  std::string payloads;
  for (const InstallCa& ca : cas) {
    seed += "/" + ca.sha256;
    const std::string id = base + ".ca." + HexOnly(ca.sha256).substr(0, 16);
    payloads +=
        "    <dict>\n"
        "      <key>PayloadType</key>\n      <string>com.apple.security.root</string>\n"
        "      <key>PayloadVersion</key>\n      <integer>1</integer>\n"
        "      <key>PayloadIdentifier</key>\n      <string>" +
        EscapeHtml(id) + "</string>\n      <key>PayloadUUID</key>\n      <string>" +
        StableUuid(id) + "</string>\n      <key>PayloadDisplayName</key>\n      <string>" +
        EscapeHtml(ca.subject_cn) +
        "</string>\n      <key>PayloadDescription</key>\n      <string>SHA-256 " +
        EscapeHtml(ca.sha256) +
        "</string>\n      <key>PayloadCertificateFileName</key>\n      <string>" +
        EscapeHtml(ca.name) + ".cer</string>\n      <key>PayloadContent</key>\n      <data>\n" +
        Wrapped(Base64(ca.der), "      ") + "      </data>\n    </dict>\n";
  }
  std::string body =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" "
      "\"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n"
      "<plist version=\"1.0\">\n<dict>\n"
      "  <key>PayloadType</key>\n  <string>Configuration</string>\n"
      "  <key>PayloadVersion</key>\n  <integer>1</integer>\n"
      "  <key>PayloadIdentifier</key>\n  <string>" +
      EscapeHtml(base) + "</string>\n  <key>PayloadUUID</key>\n  <string>" + StableUuid(seed) +
      "</string>\n  <key>PayloadDisplayName</key>\n  <string>Web gateway certificate "
      "authorities (" +
      EscapeHtml(portal_host) +
      ")</string>\n  <key>PayloadDescription</key>\n  <string>The certificate authorities of "
      "the web gateway at " +
      EscapeHtml(portal_host) +
      ", as trusted roots. On iOS, enable each under Settings &gt; General &gt; About &gt; "
      "Certificate Trust Settings after installing.</string>\n"
      "  <key>PayloadOrganization</key>\n  <string>mintgate</string>\n"
      "  <key>PayloadContent</key>\n  <array>\n" +
      payloads + "  </array>\n</dict>\n</plist>\n";
  return {"mintgate-ca.mobileconfig", "application/x-apple-aspen-config", std::move(body)};
}

InstallPackage WindowsScript(const std::vector<InstallCa>& cas, const std::string& portal_host) {
  std::string list;
  for (const InstallCa& ca : cas) {
    list += "  @{ Name = " + PsQuoted(ca.name) + "; Subject = " + PsQuoted(ca.subject_cn) +
            "; Sha256 = " + PsQuoted(HexOnly(ca.sha256)) +
            ";\n     Der = " + PsQuoted(Base64(ca.der)) + " }\n";
  }
  std::string body =
      "# mintgate: installs the certificate authorities of the web gateway at " +
      OneLine(portal_host) +
      "\n# as trusted roots of this computer (Cert:\\LocalMachine\\Root).\n"
      "# Run it in an elevated PowerShell:\n"
      "#   powershell -ExecutionPolicy Bypass -File mintgate-ca-install.ps1\n"
      "# Each certificate is checked against the SHA-256 fingerprint the portal shows before\n"
      "# anything is imported; when one does not match, nothing is.\n"
      "$ErrorActionPreference = 'Stop'\n"
      "$cas = @(\n" +
      list +
      ")\n"
      "$sha = [System.Security.Cryptography.SHA256]::Create()\n"
      "$certs = foreach ($ca in $cas) {\n"
      "  $bytes = [Convert]::FromBase64String($ca.Der)\n"
      "  $actual = [BitConverter]::ToString($sha.ComputeHash($bytes)) -replace '-', ''\n"
      "  if ($actual -ne $ca.Sha256) {\n"
      "    throw \"mintgate: $($ca.Name): SHA-256 $actual is not $($ca.Sha256); nothing was "
      "imported\"\n"
      "  }\n"
      "  New-Object System.Security.Cryptography.X509Certificates.X509Certificate2 "
      "-ArgumentList (,$bytes)\n"
      "}\n"
      "$store = New-Object System.Security.Cryptography.X509Certificates.X509Store('Root', "
      "'LocalMachine')\n"
      "$store.Open('ReadWrite')\n"
      "try {\n"
      "  foreach ($cert in $certs) {\n"
      "    $store.Add($cert)\n"
      "    Write-Host \"mintgate: trusted $($cert.Subject) ($($cert.Thumbprint))\"\n"
      "  }\n"
      "} finally {\n"
      "  $store.Close()\n"
      "}\n";
  return {"mintgate-ca-install.ps1", "text/plain; charset=utf-8", std::move(body)};
}

InstallPackage LinuxScript(const std::vector<InstallCa>& cas, const std::string& portal_host) {
  std::string files;
  std::string policy_paths;
  for (const InstallCa& ca : cas) {
    files += "ca " + ca.name + " " + Sha256Hex(ca.pem) + " <<'MINTGATE_PEM'\n" + ca.pem;
    if (!ca.pem.empty() && ca.pem.back() != '\n') files += "\n";
    files += "MINTGATE_PEM\n";
    policy_paths += std::string(policy_paths.empty() ? "" : ", ") + JsonString(LinuxCaPath(ca));
  }
  std::string body =
      "#!/bin/sh\n"
      "# mintgate: installs the certificate authorities of the web gateway at " +
      OneLine(portal_host) +
      "\n# as trusted roots: Debian, Ubuntu and Alpine (update-ca-certificates), RHEL and Fedora\n"
      "# (update-ca-trust), and Firefox (enterprise policy Certificates.Install, when\n"
      "# /etc/firefox/policies/policies.json does not exist yet). Run it as root:\n"
      "#   sudo sh mintgate-ca-install.sh\n"
      "# --root DIR installs into DIR instead of / (an image being built, a test) and runs no\n"
      "# update tool. Each file is checked against its SHA-256 before anything is installed.\n"
      "set -eu\n"
      "root=\n"
      "case \"${1:-}\" in\n"
      "  --root) root=\"${2:?--root needs a directory}\"; root=\"${root%/}\" ;;\n"
      "  \"\") ;;\n"
      "  *) echo \"usage: $0 [--root DIR]\" >&2; exit 2 ;;\n"
      "esac\n"
      "tmp=$(mktemp -d)\n"
      "trap 'rm -rf \"$tmp\"' EXIT\n"
      "names=\n"
      "ca() { # name sha256 (the PEM on standard input)\n"
      "  cat >\"$tmp/$1.crt\"\n"
      "  sum=$(sha256sum \"$tmp/$1.crt\" | cut -d ' ' -f 1)\n"
      "  if [ \"$sum\" != \"$2\" ]; then\n"
      "    echo \"mintgate: $1: SHA-256 $sum is not $2; nothing was installed\" >&2\n"
      "    exit 1\n"
      "  fi\n"
      "  names=\"$names $1\"\n"
      "}\n" +
      files +
      "if [ -d \"$root/etc/pki/ca-trust/source/anchors\" ]; then\n"
      "  dir=/etc/pki/ca-trust/source/anchors update=update-ca-trust\n"
      "else\n"
      "  dir=/usr/local/share/ca-certificates update=update-ca-certificates\n"
      "fi\n"
      "mkdir -p \"$root$dir\"\n"
      "for name in $names; do\n"
      "  install -m 0644 \"$tmp/$name.crt\" \"$root$dir/mintgate-$name.crt\"\n"
      "  echo \"mintgate: installed $dir/mintgate-$name.crt\"\n"
      "done\n"
      "if [ -z \"$root\" ]; then\n"
      "  \"$update\"\n"
      "else\n"
      "  echo \"mintgate: run $update inside $root to rebuild its trust store\"\n"
      "fi\n"
      "# Firefox keeps its own store: the policy installs the same files into it.\n"
      "policy=\"$root/etc/firefox/policies/policies.json\"\n"
      "if [ \"$dir\" = /usr/local/share/ca-certificates ] && [ ! -e \"$policy\" ]; then\n"
      "  mkdir -p \"$(dirname \"$policy\")\"\n"
      "  cat >\"$policy\" <<'MINTGATE_POLICY'\n"
      "{\"policies\": {\"Certificates\": {\"Install\": [" +
      policy_paths +
      "]}}}\n"
      "MINTGATE_POLICY\n"
      "  echo \"mintgate: wrote /etc/firefox/policies/policies.json (Firefox)\"\n"
      "elif [ -e \"$policy\" ]; then\n"
      "  echo \"mintgate: /etc/firefox/policies/policies.json exists: add the files above to \"\\\n"
      "    \"its Certificates.Install for Firefox\"\n"
      "fi\n";
  return {"mintgate-ca-install.sh", "application/x-sh", std::move(body)};
}

InstallPackage FirefoxPolicies(const std::vector<InstallCa>& cas) {
  std::string paths;
  for (const InstallCa& ca : cas) {
    paths += std::string(paths.empty() ? "\n" : ",\n") + "        " + JsonString(LinuxCaPath(ca));
  }
  std::string body =
      "{\n  \"policies\": {\n    \"Certificates\": {\n      \"ImportEnterpriseRoots\": true,\n"
      "      \"Install\": [" +
      paths + "\n      ]\n    }\n  }\n}\n";
  return {"policies.json", "application/json", std::move(body)};
}

}  // namespace mintgate::proxy
