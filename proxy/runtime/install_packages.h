// Install packages for the portal's certificate authorities, one per client platform: an
// Apple configuration profile, a Windows PowerShell script, a Linux shell script (Debian,
// Ubuntu, Alpine, RHEL, Fedora trust stores and Firefox's enterprise policy) and a Firefox
// policies.json. Each holds every CA a client needs now and after the scheduled cutovers, and
// checks what it installs against the SHA-256 the portal shows. Pure functions of their input.
#pragma once

#include <string>
#include <vector>

namespace mintgate::proxy {

struct InstallCa {
  std::string name;        // the portal's download name ("legacy"), a safe file name
  std::string subject_cn;  // shown to the user
  std::string sha256;      // fingerprint of the DER, "AB:CD:..." (tls::Sha256Fingerprint)
  std::string pem;
  std::string der;
};

struct InstallPackage {
  std::string file_name;  // the download name
  std::string content_type;
  std::string body;
};

// `portal_host` names the gateway in descriptions and identifiers ("mintgate.portal").
// .mobileconfig: one com.apple.security.root payload per CA, stable identifiers and UUIDs
// derived from the host and fingerprints (a new download replaces the installed profile).
InstallPackage AppleProfile(const std::vector<InstallCa>& cas, const std::string& portal_host);
// .ps1: imports each CA into LocalMachine\Root after checking its SHA-256; run elevated.
InstallPackage WindowsScript(const std::vector<InstallCa>& cas, const std::string& portal_host);
// .sh: POSIX sh; `--root DIR` installs into a scratch root. Checks each file's SHA-256, puts
// the CAs where update-ca-certificates (Debian, Ubuntu, Alpine) or update-ca-trust (RHEL,
// Fedora) reads them, runs that tool (only for the real root), and writes Firefox's
// policies.json when there is none.
InstallPackage LinuxScript(const std::vector<InstallCa>& cas, const std::string& portal_host);
// policies.json for Firefox: Certificates.Install with the paths the Linux script uses, and
// ImportEnterpriseRoots (Windows and macOS: the CAs the system trusts).
InstallPackage FirefoxPolicies(const std::vector<InstallCa>& cas);

// Where the Linux script puts a CA on Debian-like systems (also named in policies.json).
std::string LinuxCaPath(const InstallCa& ca);

}  // namespace mintgate::proxy
