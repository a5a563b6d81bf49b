#include "proxy/runtime/portal.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <set>

#include "proxy/http/error_page.h"
#include "proxy/http/form.h"
#include "proxy/runtime/install_packages.h"
#include "rules/ca_resolver.h"
#include "tls/cert_info.h"

namespace mintgate::proxy {
namespace {

constexpr const char* kHtml = "text/html; charset=utf-8";
// The pages load nothing and run nothing; only their own inline style applies.
constexpr const char* kHtmlPolicy =
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'";

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// A JavaScript string literal, safe for any input: quotes, backslashes, angle brackets,
// control and non-ASCII bytes are escaped.
std::string JsString(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u >= 0x7f || c == '<' || c == '>' || c == '\'') {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", u);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

bool Unreserved(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_' ||
         c == '~';
}

// A file name any browser and shell accepts as is.
std::string SafeFileName(std::string_view name) {
  std::string out;
  for (char c : name) out += (Unreserved(c) && c != '~') ? c : '_';
  if (out.empty() || out.front() == '.') out.insert(out.begin(), '_');
  return out;
}

std::string Der(X509* cert) {
  const int size = i2d_X509(cert, nullptr);
  if (size <= 0) return {};
  std::string out(static_cast<std::size_t>(size), '\0');
  auto* p = reinterpret_cast<unsigned char*>(out.data());
  i2d_X509(cert, &p);
  return out;
}

std::string Pem(X509* cert) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) return {};
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(size));
}

// The same subject and public key: a self-signed root that verifies what a cross-signed
// certificate of that CA issued.
bool SameCa(X509* a, X509* b) {
  return X509_NAME_cmp(X509_get_subject_name(a), X509_get_subject_name(b)) == 0 &&
         EVP_PKEY_eq(X509_get0_pubkey(a), X509_get0_pubkey(b)) == 1;
}

std::string CnOr(const tls::CertInfo& info) {
  return info.subject_cn.empty() ? info.subject : info.subject_cn;
}

// An IP literal, with IPv4-mapped IPv6 ("::ffff:1.2.3.4") read as IPv4.
std::optional<rules::IpAddress> ParseIp(std::string_view text) {
  std::optional<rules::IpAddress> ip = rules::IpAddress::Parse(text);
  if (ip && ip->family() == rules::IpAddress::Family::kV6) {
    const auto& b = ip->bytes();
    const bool mapped = std::all_of(b.begin(), b.begin() + 10, [](auto x) { return x == 0; }) &&
                        b[10] == 0xff && b[11] == 0xff;
    if (mapped) {
      return rules::IpAddress::Parse(std::to_string(b[12]) + "." + std::to_string(b[13]) + "." +
                                     std::to_string(b[14]) + "." + std::to_string(b[15]));
    }
  }
  return ip;
}

bool IsLoopback(const rules::IpAddress& ip) {
  if (ip.family() == rules::IpAddress::Family::kV4) return ip.bytes()[0] == 127;
  return ip == *rules::IpAddress::Parse("::1");
}

bool IsUnspecified(const rules::IpAddress& ip) {
  const auto& b = ip.bytes();
  return std::all_of(b.begin(), b.end(), [](auto x) { return x == 0; });
}

std::string NormalizeHost(std::string host) {
  host = Lower(std::move(host));
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  while (!host.empty() && host.back() == '.') host.pop_back();
  return host;
}

std::string ProxyEntry(const std::string& host, std::uint16_t port) {
  const bool v6 = host.find(':') != std::string::npos;
  return "PROXY " + (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

PortalResponse HtmlResponse(int status, std::string body) {
  PortalResponse r;
  r.status = status;
  r.content_type = kHtml;
  r.headers = {{"Cache-Control", "no-cache"},
               {"X-Content-Type-Options", "nosniff"},
               {"Content-Security-Policy", kHtmlPolicy}};
  r.body = std::move(body);
  return r;
}

PortalResponse ErrorPage(int status, const std::string& message) {
  const std::string title = std::to_string(status) + " " + std::string(StatusText(status));
  return HtmlResponse(status,
                      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                      "<title>" +
                          title + "</title></head>\n<body><h1>" + title + "</h1>\n<p>" +
                          EscapeHtml(message) +
                          "</p>\n<p><a href=\"/\">Certificates for this network</a></p>"
                          "\n<hr><p>mintgate</p></body></html>\n");
}

// ---------------------------------------------------------------------------------------
// Which profiles clients need, and why.

// The profile `configured` resolves to at each instant, as runs of equal profiles:
// "now until T1", "from T1 until T2", "from T2".
struct Run {
  std::string profile;
  std::string when;
};

std::vector<Run> Schedule(const rules::RuleSet& rules, const std::string& configured,
                          const std::vector<rules::Instant>& instants) {
  std::vector<std::string> at;
  for (const rules::Instant& i : instants) {
    at.push_back(rules.ResolveCa(configured, i, nullptr).value_or(configured));
  }
  std::vector<Run> runs;
  for (std::size_t i = 0; i < at.size();) {
    std::size_t j = i + 1;
    while (j < at.size() && at[j] == at[i]) ++j;
    std::string when = i == 0 ? "now" : "from " + rules::FormatInstant(instants[i]);
    if (j < at.size()) when += " until " + rules::FormatInstant(instants[j]);
    runs.push_back({at[i], when});
    i = j;
  }
  return runs;
}

struct Need {
  std::string profile;
  std::vector<std::string> uses;
};

const char* kInstallSteps = R"HTML(<h2 id="install">How to install</h2>
<p>Download the certificates above, compare each SHA-256 fingerprint with the one on this
page, then add them as <strong>trusted root certificate authorities</strong>. In the commands
below, replace <code>NAME</code> with the certificate's download name.</p>
<h3>Windows</h3>
<ol>
<li>Open <code>NAME.crt</code>, choose <em>Install Certificate&hellip;</em>, <em>Local
Machine</em>, <em>Place all certificates in the following store</em>, and pick <em>Trusted Root
Certification Authorities</em>.</li>
<li>Or, in an administrator prompt: <code>certutil -addstore -f Root NAME.cer</code></li>
<li>Domain-joined machines: Group Policy, <em>Computer Configuration &gt; Policies &gt; Windows
Settings &gt; Security Settings &gt; Public Key Policies &gt; Trusted Root Certification
Authorities</em>, <em>Import</em>.</li>
</ol>
<h3>macOS</h3>
<ol>
<li>Open <code>NAME.cer</code> in Keychain Access (add it to the <em>System</em> keychain),
open the certificate, expand <em>Trust</em> and set <em>When using this certificate</em> to
<em>Always Trust</em>.</li>
<li>Or in Terminal: <code>sudo security add-trusted-cert -d -r trustRoot -k
/Library/Keychains/System.keychain NAME.pem</code></li>
</ol>
<h3>iOS and iPadOS</h3>
<ol>
<li>Open this page in Safari and tap <code>NAME.crt</code>; allow the profile download.</li>
<li><em>Settings &gt; General &gt; VPN &amp; Device Management</em>: install the downloaded
profile.</li>
<li><em>Settings &gt; General &gt; About &gt; Certificate Trust Settings</em>: turn on full trust
for the certificate.</li>
</ol>
<h3>Android</h3>
<ol>
<li>Download <code>NAME.crt</code>, then <em>Settings &gt; Security &gt; Encryption &amp;
credentials &gt; Install a certificate &gt; CA certificate</em> (the menu names vary by
vendor) and pick the file.</li>
<li>Since Android 7, apps trust user-installed authorities only if they opt in; browsers such
as Chrome do. Managed devices: deploy the certificate through your device management.</li>
</ol>
<h3>Linux</h3>
<ul>
<li>Debian and Ubuntu (the file must be PEM and end in <code>.crt</code>):<br>
<code>sudo cp NAME.pem /usr/local/share/ca-certificates/NAME.crt &amp;&amp; sudo
update-ca-certificates</code></li>
<li>Fedora, RHEL, CentOS and other p11-kit systems:<br>
<code>sudo cp NAME.pem /etc/pki/ca-trust/source/anchors/ &amp;&amp; sudo update-ca-trust</code>
(or <code>sudo trust anchor --store NAME.pem</code>)</li>
</ul>
<h3>Firefox</h3>
<ul>
<li>Firefox keeps its own store: <em>Settings &gt; Privacy &amp; Security &gt; Certificates &gt;
View Certificates &gt; Authorities &gt; Import</em>, pick <code>NAME.pem</code> and tick
<em>Trust this CA to identify websites</em>.</li>
<li>Or let it trust the roots installed in Windows or macOS: set
<code>security.enterprise_roots.enabled</code> to <code>true</code> in
<code>about:config</code> (enterprise policy: <code>Certificates &gt; ImportEnterpriseRoots</code>).</li>
</ul>
<h3>Other software</h3>
<p>Some programs bring their own trust store: Java (<code>keytool -importcert -cacerts</code>),
Node.js (<code>NODE_EXTRA_CA_CERTS=NAME.pem</code>), Python requests
(<code>REQUESTS_CA_BUNDLE</code>).</p>
)HTML";

}  // namespace

// ---------------------------------------------------------------------------------------

std::shared_ptr<const Portal> Portal::Build(
    const Config& config, const rules::RuleSet& rules,
    const std::map<std::string, const tls::CertAuthority*>& authorities, std::time_t now) {
  std::shared_ptr<Portal> p(new Portal);
  p->enabled_ = config.portal.enabled;
  p->host_ = NormalizeHost(config.portal.host);
  for (const HostPort& hp : config.server.listen) {
    Listen l;
    l.address = hp;
    l.address.host = NormalizeHost(hp.host);
    l.ip = ParseIp(l.address.host);
    l.wildcard = l.ip && IsUnspecified(*l.ip);
    p->listen_.push_back(std::move(l));
  }

  // --- which profiles sign, now and after every scheduled cutover
  const rules::Instant at_now{std::chrono::seconds(now)};
  std::vector<rules::Instant> instants{at_now};
  for (const CaProfileConfig& ca : config.cas) {
    if (ca.retire_at && *ca.retire_at > at_now) instants.push_back(*ca.retire_at);
  }
  std::sort(instants.begin(), instants.end());
  instants.erase(std::unique(instants.begin(), instants.end()), instants.end());

  std::vector<Need> needs;  // in order of first need
  auto need = [&needs](const std::string& profile, std::string use) {
    auto it = std::find_if(needs.begin(), needs.end(),
                           [&](const Need& n) { return n.profile == profile; });
    if (it == needs.end()) it = needs.insert(needs.end(), Need{profile, {}});
    if (std::find(it->uses.begin(), it->uses.end(), use) == it->uses.end()) {
      it->uses.push_back(std::move(use));
    }
  };
  auto schedule = [&](const std::string& configured, const std::string& who) {
    for (const Run& run : Schedule(rules, configured, instants)) {
      std::string use = who + ": " + run.when;
      if (run.profile != configured) use += " (in place of \"" + configured + "\")";
      need(run.profile, std::move(use));
    }
  };
  for (const rules::Rule& rule : rules.rules()) {
    if (rule.action != rules::Action::kDecrypt) continue;
    schedule(rule.ca.empty() ? rules.options().default_ca : rule.ca, "rule \"" + rule.name + "\"");
  }
  if (!rules.options().login_ca.empty()) {
    // Decrypted even where inspection is off: every client the gateway may fail to identify.
    schedule(rules.options().login_ca,
             "the sign-in of users the gateway cannot identify (auth.unidentified = "
             "\"decrypt-to-login\"), on every connection until they sign in");
  }
  for (const CanaryConfig& canary : config.canaries) {
    if (canary.ca.empty()) continue;
    std::string clients;
    for (const std::string& c : canary.clients) clients += (clients.empty() ? "" : ", ") + c;
    std::string who = "canary for " + clients;
    if (canary.percent < 100) who += " (" + std::to_string(canary.percent) + "%)";
    schedule(canary.ca, who);
  }

  // --- the certificates that satisfy them, deduplicated by fingerprint
  std::set<std::string> taken;  // download names: every profile name is reserved for itself
  for (const auto& [name, ca] : authorities) taken.insert(name);
  for (const CaProfileConfig& ca : config.cas) taken.insert(ca.spec.name);
  auto add = [&p, &taken](X509* cert, const std::string& wanted, bool own_name,
                          const std::string& role, const std::vector<std::string>& uses,
                          bool alternative) -> Certificate& {
    const std::string fp = tls::Sha256Fingerprint(cert);
    auto it = std::find_if(p->certificates_.begin(), p->certificates_.end(),
                           [&](const Certificate& c) { return c.sha256 == fp; });
    // A name of our own making must not take a profile's name or another certificate's.
    std::string name = wanted;
    const bool reuse = it != p->certificates_.end() &&
                       (it->name == wanted || std::find(it->aliases.begin(), it->aliases.end(),
                                                        wanted) != it->aliases.end());
    for (int i = 2; !own_name && !reuse && taken.count(name) != 0; ++i) {
      name = wanted + "-" + std::to_string(i);
    }
    if (it == p->certificates_.end()) {
      const tls::CertInfo info = tls::DescribeCertificate(cert);
      Certificate c;
      c.name = name;
      c.subject_cn = CnOr(info);
      c.issuer_cn = info.issuer_cn.empty() ? info.issuer : info.issuer_cn;
      c.sha256 = fp;
      c.not_after = info.not_after;
      c.alternative = alternative;
      c.pem = Pem(cert);
      c.der = Der(cert);
      p->certificates_.push_back(std::move(c));
      it = p->certificates_.end() - 1;
    } else if (name != it->name &&
               std::find(it->aliases.begin(), it->aliases.end(), name) == it->aliases.end()) {
      it->aliases.push_back(name);
    }
    if (!alternative) it->alternative = false;
    taken.insert(name);
    p->downloads_.emplace(name, static_cast<std::size_t>(it - p->certificates_.begin()));
    if (std::find(it->roles.begin(), it->roles.end(), role) == it->roles.end()) {
      it->roles.push_back(role);
    }
    for (const std::string& u : uses) {
      if (std::find(it->needed_by.begin(), it->needed_by.end(), u) == it->needed_by.end()) {
        it->needed_by.push_back(u);
      }
    }
    return *it;
  };

  std::vector<std::pair<std::string, std::string>> unavailable;  // profile, why
  std::vector<std::pair<std::string, std::string>> notes;        // certificate name, note
  struct Alternative {
    X509* cert;
    std::string profile;
    std::string for_profile;
  };
  std::vector<Alternative> alternatives;
  for (const Need& n : needs) {
    auto found = authorities.find(n.profile);
    const tls::CertAuthority* ca = found == authorities.end() ? nullptr : found->second;
    if (ca == nullptr) {
      unavailable.emplace_back(n.profile, "its certificate is not loaded on this gateway");
      continue;
    }
    const tls::CertInfo info = tls::DescribeCertificate(ca->cert());
    if (info.self_signed) {
      add(ca->cert(), n.profile, true, "root of profile \"" + n.profile + "\"", n.uses, false);
      continue;
    }
    // Cross-signed: the root at the top of its chain, which issued it.
    X509* root = nullptr;
    for (auto it = ca->chain().rbegin(); it != ca->chain().rend() && root == nullptr; ++it) {
      if (tls::DescribeCertificate(it->get()).self_signed) root = it->get();
    }
    // A self-signed certificate of the same CA (subject and key), if another profile has it.
    const tls::CertAuthority* direct = nullptr;
    for (const auto& [name, other] : authorities) {
      if (other != nullptr && other != ca && SameCa(other->cert(), ca->cert()) &&
          tls::DescribeCertificate(other->cert()).self_signed) {
        direct = other;
        break;
      }
    }
    const std::string cn = CnOr(info);
    std::string note = "Profile \"" + n.profile + "\" signs with \"" + cn +
                       "\", cross-signed by \"" + info.issuer_cn +
                       "\": clients that trust this root accept its certificates. Clients that "
                       "trust the self-signed \"" +
                       cn + "\" directly accept them too";
    note += direct != nullptr ? " (offered on this page as \"" + direct->name() + "\")."
                              : "; this gateway does not have that certificate to offer.";
    if (root == nullptr) {
      unavailable.emplace_back(
          n.profile, "it is cross-signed by \"" + info.issuer_cn +
                         "\", whose self-signed certificate is not in the profile's chain: "
                         "install that root from your own PKI" +
                         (direct != nullptr ? " or the self-signed \"" + cn + "\" (\"" +
                                                  direct->name() + "\" on this page)"
                                            : std::string()));
    } else {
      Certificate& c = add(root, n.profile + "-root", false,
                           "root that cross-signed profile \"" + n.profile + "\"", n.uses, false);
      notes.emplace_back(c.name, note);
    }
    if (direct != nullptr) {
      alternatives.push_back({direct->cert(), direct->name(), n.profile});
    }
  }
  for (const Alternative& a : alternatives) {
    add(a.cert, a.profile, true,
        "alternative for profile \"" + a.for_profile +
            "\": the same CA, self-signed (trusting either is enough)",
        {}, true);
  }
  // Needed certificates first, alternatives after (stable, so first-need order stays).
  std::vector<Certificate> ordered = p->certificates_;
  std::stable_partition(ordered.begin(), ordered.end(),
                        [](const Certificate& c) { return !c.alternative; });
  p->certificates_ = std::move(ordered);
  p->downloads_.clear();
  for (std::size_t i = 0; i < p->certificates_.size(); ++i) {
    p->downloads_[p->certificates_[i].name] = i;
    for (const std::string& alias : p->certificates_[i].aliases) p->downloads_[alias] = i;
  }

  // --- the install packages: every needed certificate (alternatives are offered to choose
  // from, not to install all).
  std::vector<InstallCa> install;
  for (const Certificate& c : p->certificates_) {
    if (!c.alternative) install.push_back({c.name, c.subject_cn, c.sha256, c.pem, c.der});
  }
  for (InstallPackage package :
       {AppleProfile(install, config.portal.host), WindowsScript(install, config.portal.host),
        LinuxScript(install, config.portal.host), FirefoxPolicies(install)}) {
    PortalResponse r;
    r.content_type = package.content_type;
    r.headers = {{"Content-Disposition", "attachment; filename=\"" + package.file_name + "\""},
                 {"Cache-Control", "no-cache"},
                 {"X-Content-Type-Options", "nosniff"}};
    r.body = std::move(package.body);
    p->packages_[package.file_name] = std::move(r);
  }

  // --- the page
  std::string h;
  h += "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
       "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
       "<title>Certificates for this network - mintgate</title>\n"
       "<style>body{font-family:system-ui,sans-serif;max-width:62em;margin:1em auto;"
       "padding:0 1em;line-height:1.45}code{word-break:break-all}"
       ".ca{border:1px solid #bbb;border-radius:6px;padding:.4em 1em;margin:1em 0}"
       ".alt{border-style:dashed}.note{color:#444}th{text-align:left;vertical-align:top;"
       "padding-right:1em;white-space:nowrap}td{vertical-align:top}ul.uses{margin:0;"
       "padding-left:1.2em}</style>\n</head>\n<body>\n"
       "<h1>Certificates for this network</h1>\n"
       "<p>This network inspects HTTPS traffic through the mintgate gateway. For secure sites "
       "to keep working, your devices must trust the certificate authorities below. Install "
       "each one as a trusted root, after checking its SHA-256 fingerprint "
       "(<a href=\"#install\">how to install</a>).</p>\n";
  if (!config.inspection.enabled) {
    h += "<p class=\"note\">Inspection is currently switched off on this gateway; these are "
         "the authorities it uses when it is on.</p>\n";
  }
  h += "<h2>Certificate authorities to install</h2>\n";
  if (p->certificates_.empty()) h += "<p>None: this gateway signs with no certificate.</p>\n";
  for (const Certificate& c : p->certificates_) {
    const std::string link = "/ca/" + PercentEncode(c.name);
    h += "<section class=\"ca" + std::string(c.alternative ? " alt" : "") + "\" id=\"ca-" +
         EscapeHtml(PercentEncode(c.name)) + "\">\n<h3>" + EscapeHtml(c.subject_cn) +
         (c.alternative ? " <small>(alternative)</small>" : "") + "</h3>\n<table>\n";
    h += "<tr><th>Subject</th><td>" + EscapeHtml(c.subject_cn) + "</td></tr>\n";
    h += "<tr><th>Issuer</th><td>" + EscapeHtml(c.issuer_cn) + "</td></tr>\n";
    h += "<tr><th>SHA-256</th><td><code class=\"fp\">" + EscapeHtml(c.sha256) +
         "</code></td></tr>\n";
    h += "<tr><th>Valid until</th><td>" + EscapeHtml(tls::FormatTime(c.not_after)) + "</td></tr>\n";
    h += "<tr><th>Offered as</th><td><ul class=\"uses\">";
    for (const std::string& r : c.roles) h += "<li>" + EscapeHtml(r) + "</li>";
    h += "</ul></td></tr>\n";
    if (!c.needed_by.empty()) {
      h += "<tr><th>Needed by</th><td><ul class=\"uses\">";
      for (const std::string& u : c.needed_by) h += "<li>" + EscapeHtml(u) + "</li>";
      h += "</ul></td></tr>\n";
    }
    h += "</table>\n<p>Download: ";
    const char* kinds[][2] = {{".pem", "PEM"}, {".cer", "DER"}, {".crt", "DER"}};
    for (std::size_t k = 0; k < 3; ++k) {
      h += std::string(k ? " &middot; " : "") + "<a href=\"" + EscapeHtml(link + kinds[k][0]) +
           "\">" + EscapeHtml(c.name + kinds[k][0]) + "</a> (" + kinds[k][1] + ")";
    }
    h += "</p>\n";
    for (const auto& [name, text] : notes) {
      if (name == c.name) h += "<p class=\"note\">" + EscapeHtml(text) + "</p>\n";
    }
    h += "</section>\n";
  }
  if (!unavailable.empty()) {
    h += "<h2>Not available here</h2>\n<ul>\n";
    for (const auto& [profile, why] : unavailable) {
      h += "<li>Profile \"" + EscapeHtml(profile) + "\": " + EscapeHtml(why) + ".</li>\n";
    }
    h += "</ul>\n";
  }
  if (!install.empty()) {
    h += "<h2 id=\"packages\">Install everything at once</h2>\n<p>Each package installs "
         "every certificate authority above that is not marked as an alternative, and checks "
         "its SHA-256 first:</p>\n<ul>\n"
         "<li>macOS, iOS, iPadOS: <a href=\"/install/mintgate-ca.mobileconfig\">"
         "mintgate-ca.mobileconfig</a> (configuration profile; on iOS also enable full trust "
         "under <em>Settings &gt; General &gt; About &gt; Certificate Trust Settings</em>)</li>\n"
         "<li>Windows: <a href=\"/install/mintgate-ca-install.ps1\">mintgate-ca-install.ps1</a> "
         "(in an administrator PowerShell: <code>powershell -ExecutionPolicy Bypass -File "
         "mintgate-ca-install.ps1</code>)</li>\n"
         "<li>Linux (Debian, Ubuntu, Alpine, RHEL, Fedora, and Firefox): "
         "<a href=\"/install/mintgate-ca-install.sh\">mintgate-ca-install.sh</a> "
         "(<code>sudo sh mintgate-ca-install.sh</code>)</li>\n"
         "<li>Firefox, any system: <a href=\"/install/policies.json\">policies.json</a> "
         "(enterprise policy; on Linux in <code>/etc/firefox/policies/</code>)</li>\n</ul>\n";
  }
  h += "<h2>Automatic proxy configuration</h2>\n<p>Point your browser or system proxy "
       "settings at <a href=\"/proxy.pac\">/proxy.pac</a> (automatic configuration script) "
       "to use this gateway.</p>\n";
  h += kInstallSteps;
  h += "<hr><p>mintgate</p>\n</body></html>\n";
  p->index_html_ = std::move(h);

  // --- /proxy.pac
  std::string names;    // host pattern clauses
  std::string v4_nets;  // IPv4 CIDR clauses, on the resolved address
  std::string v6_nets;  // IPv6 CIDR clauses, on literal hosts only
  for (const std::string& entry : config.portal.pac_bypass) {
    std::string why;
    if (std::optional<rules::Cidr> cidr = rules::Cidr::Parse(entry, &why)) {
      const rules::IpAddress& net = cidr->network();
      if (net.family() == rules::IpAddress::Family::kV4) {
        std::uint32_t mask =
            cidr->prefix_length() == 0 ? 0 : ~std::uint32_t{0} << (32 - cidr->prefix_length());
        const std::string mask_text =
            std::to_string(mask >> 24) + "." + std::to_string((mask >> 16) & 255) + "." +
            std::to_string((mask >> 8) & 255) + "." + std::to_string(mask & 255);
        v4_nets += "      if (isInNet(ip, " + JsString(net.ToString()) + ", " +
                   JsString(mask_text) + ")) return \"DIRECT\";\n";
      } else {
        std::string groups;
        for (int i = 0; i < 8; ++i) {
          groups +=
              (i ? ", " : "") + std::to_string(net.bytes()[2 * i] * 256 + net.bytes()[2 * i + 1]);
        }
        v6_nets += "  if (v6 && mgInV6(v6, [" + groups + "], " +
                   std::to_string(cidr->prefix_length()) + ")) return \"DIRECT\";\n";
      }
      continue;
    }
    std::string pattern = Lower(entry);
    while (!pattern.empty() && pattern.back() == '.') pattern.pop_back();
    if (pattern.empty()) continue;
    const bool star_prefix = pattern.rfind("*.", 0) == 0;
    const std::string rest = star_prefix ? pattern.substr(2) : pattern.substr(1);
    if (star_prefix && rest.find_first_of("*?") == std::string::npos) {
      names += "  if (dnsDomainIs(h, " + JsString("." + rest) + ")) return \"DIRECT\";\n";
    } else if (pattern.front() == '.' && rest.find_first_of("*?") == std::string::npos) {
      names += "  if (h == " + JsString(rest) + " || dnsDomainIs(h, " + JsString(pattern) +
               ")) return \"DIRECT\";\n";
    } else if (pattern.find_first_of("*?") != std::string::npos) {
      names += "  if (shExpMatch(h, " + JsString(pattern) + ")) return \"DIRECT\";\n";
    } else {
      names += "  if (h == " + JsString(pattern) + ") return \"DIRECT\";\n";
    }
  }
  const bool need_v4 = !v4_nets.empty();
  const bool need_v6 = !v6_nets.empty();
  std::string pac =
      "// Proxy auto-configuration for the mintgate gateway.\n"
      "// Bypassed hosts and networks go DIRECT; everything else, including the portal, goes\n"
      "// through the gateway.\n";
  if (need_v6) {
    pac +=
        "\n// An IPv6 literal as eight 16-bit groups, or null.\n"
        "function mgV6(a) {\n"
        "  var pct = a.indexOf(\"%\");\n"
        "  if (pct >= 0) a = a.substring(0, pct);\n"
        "  if (a.indexOf(\":\") < 0) return null;\n"
        "  var halves = a.split(\"::\");\n"
        "  if (halves.length > 2) return null;\n"
        "  function groups(s) {\n"
        "    var out = [];\n"
        "    if (s == \"\") return out;\n"
        "    var parts = s.split(\":\");\n"
        "    for (var i = 0; i < parts.length; i++) {\n"
        "      if (i == parts.length - 1 && parts[i].indexOf(\".\") >= 0) {\n"
        "        var q = parts[i].split(\".\");\n"
        "        if (q.length != 4) return null;\n"
        "        for (var j = 0; j < 4; j++) {\n"
        "          if (!/^[0-9]{1,3}$/.test(q[j]) || parseInt(q[j], 10) > 255) return null;\n"
        "        }\n"
        "        out.push(parseInt(q[0], 10) * 256 + parseInt(q[1], 10));\n"
        "        out.push(parseInt(q[2], 10) * 256 + parseInt(q[3], 10));\n"
        "      } else {\n"
        "        if (!/^[0-9a-f]{1,4}$/.test(parts[i])) return null;\n"
        "        out.push(parseInt(parts[i], 16));\n"
        "      }\n"
        "    }\n"
        "    return out;\n"
        "  }\n"
        "  var head = groups(halves[0]);\n"
        "  var tail = halves.length == 2 ? groups(halves[1]) : [];\n"
        "  if (head == null || tail == null) return null;\n"
        "  var fill = 8 - head.length - tail.length;\n"
        "  if (halves.length == 2 ? fill < 1 : fill != 0) return null;\n"
        "  for (var k = 0; k < fill; k++) head.push(0);\n"
        "  return head.concat(tail);\n"
        "}\n"
        "\n// True when the groups `g` are in the network `net`/`bits`.\n"
        "function mgInV6(g, net, bits) {\n"
        "  for (var i = 0; i < 8 && bits > 0; i++, bits -= 16) {\n"
        "    var m = bits >= 16 ? 0xffff : (0xffff << (16 - bits)) & 0xffff;\n"
        "    if ((g[i] & m) != (net[i] & m)) return false;\n"
        "  }\n"
        "  return true;\n"
        "}\n";
  }
  pac +=
      "\nfunction FindProxyForURL(url, host) {\n"
      "  var h = host.toLowerCase();\n"
      "  if (h.charAt(0) == \"[\" && h.charAt(h.length - 1) == \"]\") {\n"
      "    h = h.substring(1, h.length - 1);\n"
      "  }\n"
      "  if (h.charAt(h.length - 1) == \".\") h = h.substring(0, h.length - 1);\n"
      "  var proxy = ";
  p->pac_head_ = std::move(pac);
  std::string tail =
      ";\n  // The portal is served by the gateway itself.\n"
      "  if (h == " +
      JsString(p->host_) +
      ") return proxy;\n"
      "  if (h.indexOf(\":\") < 0 && isPlainHostName(h)) return \"DIRECT\";\n";
  tail += names;
  if (need_v6) tail += "  var v6 = mgV6(h);\n";
  if (need_v4) {
    tail += std::string("  if (") + (need_v6 ? "!v6" : "h.indexOf(\":\") < 0") +
            ") {\n"
            "    // Only names that no pattern above bypassed are resolved.\n"
            "    var ip = /^[0-9]{1,3}(\\.[0-9]{1,3}){3}$/.test(h) ? h : dnsResolve(h);\n"
            "    if (ip) {\n";
    tail += v4_nets + "    }\n  }\n";
  }
  tail += v6_nets;
  tail += "  return proxy;\n}\n";
  p->pac_tail_ = std::move(tail);
  const bool any_wildcard =
      std::any_of(p->listen_.begin(), p->listen_.end(), [](const Listen& l) { return l.wildcard; });
  if (!any_wildcard) p->pac_fixed_ = p->Pac("");
  return p;
}

std::string Portal::Pac(const std::string& local_ip) const {
  std::vector<std::string> entries;
  for (const Listen& l : listen_) {
    std::string entry;
    if (!l.wildcard) {
      entry = ProxyEntry(l.address.host, l.address.port);
    } else if (std::optional<rules::IpAddress> ip = ParseIp(NormalizeHost(local_ip));
               ip && !IsUnspecified(*ip)) {
      entry = ProxyEntry(ip->ToString(), l.address.port);
    }
    if (!entry.empty() && std::find(entries.begin(), entries.end(), entry) == entries.end()) {
      entries.push_back(entry);
    }
  }
  std::string joined;
  for (const std::string& e : entries) joined += (joined.empty() ? "" : "; ") + e;
  // No nameable address (a wildcard listen and no local address): nothing to send traffic to.
  if (joined.empty()) joined = "DIRECT";
  return pac_head_ + JsString(joined) + pac_tail_;
}

bool Portal::Serves(const std::string& host, std::uint16_t port, const std::string& local_ip,
                    std::uint16_t balancer_port) const {
  if (!enabled_) return false;
  const std::string h = NormalizeHost(host);
  if (h.empty()) return false;
  if (h == host_) return true;
  const std::optional<rules::IpAddress> ip = ParseIp(h);
  const std::optional<rules::IpAddress> local = ParseIp(NormalizeHost(local_ip));
  if (balancer_port != 0 && port == balancer_port && ip && local && *ip == *local) return true;
  for (const Listen& l : listen_) {
    if (l.address.port != port) continue;
    if (!l.ip) {  // a listen host name ("localhost")
      if (h == l.address.host) return true;
      if (l.address.host == "localhost" && ip && IsLoopback(*ip)) return true;
      continue;
    }
    if (h == "localhost" && (IsLoopback(*l.ip) || l.wildcard)) return true;
    if (!ip) continue;
    if (*ip == *l.ip) return true;
    if (l.wildcard && (IsLoopback(*ip) || (local && *ip == *local))) return true;
  }
  return false;
}

PortalResponse Portal::Download(const std::string& file) const {
  const std::size_t dot = file.rfind('.');
  if (dot == std::string::npos) return ErrorPage(404, "No such certificate: " + file);
  const std::string ext = file.substr(dot + 1);
  auto found = downloads_.find(file.substr(0, dot));
  if (found == downloads_.end() || (ext != "pem" && ext != "cer" && ext != "crt")) {
    return ErrorPage(404, "No such certificate: " + file);
  }
  const Certificate& c = certificates_[found->second];
  PortalResponse r;
  if (ext == "pem") {
    r.content_type = "application/x-pem-file";
    r.body = c.pem;
  } else {
    r.content_type = ext == "cer" ? "application/pkix-cert" : "application/x-x509-ca-cert";
    r.body = c.der;
  }
  r.headers = {{"Content-Disposition",
                "attachment; filename=\"" + SafeFileName(found->first) + "." + ext + "\""},
               {"Cache-Control", "no-cache"},
               {"X-Content-Type-Options", "nosniff"}};
  return r;
}

PortalResponse Portal::Handle(const std::string& method, const std::string& path,
                              const std::string& local_ip, std::uint16_t balancer_port) const {
  if (method != "GET" && method != "HEAD") {
    PortalResponse r = ErrorPage(405, "The portal answers GET and HEAD only.");
    r.headers.emplace_back("Allow", "GET, HEAD");
    return r;
  }
  const std::string raw = path.substr(0, path.find_first_of("?#"));
  const std::string decoded = PercentDecode(raw);
  if (decoded == "/" || decoded == "/index.html") return HtmlResponse(200, index_html_);
  if (decoded == "/proxy.pac" || decoded == "/wpad.dat") {
    PortalResponse r;
    r.content_type = "application/x-ns-proxy-autoconfig";
    r.headers = {{"Cache-Control", "no-cache"}, {"X-Content-Type-Options", "nosniff"}};
    if (balancer_port != 0) {
      const std::optional<rules::IpAddress> ip = ParseIp(NormalizeHost(local_ip));
      r.body = pac_head_ + JsString(ip ? ProxyEntry(ip->ToString(), balancer_port) : "DIRECT") +
               pac_tail_;
    } else {
      r.body = pac_fixed_.empty() ? Pac(local_ip) : pac_fixed_;
    }
    return r;
  }
  constexpr std::string_view kInstall = "/install/";
  if (decoded.compare(0, kInstall.size(), kInstall) == 0) {
    const auto found = packages_.find(decoded.substr(kInstall.size()));
    if (found != packages_.end()) return found->second;
    return ErrorPage(404, "No such install package.");
  }
  constexpr std::string_view kCa = "/ca/";
  if (decoded.compare(0, kCa.size(), kCa) == 0) return Download(decoded.substr(kCa.size()));
  // Echoed escaped, and cut short: the path is the client's.
  std::string shown = decoded.size() > 200 ? decoded.substr(0, 200) + "..." : decoded;
  return ErrorPage(404, "Nothing here: " + shown);
}

std::string SerializePortalResponse(const PortalResponse& response, bool head_request, bool close) {
  auto clean = [](std::string s) {
    for (char& c : s) {
      if (c == '\r' || c == '\n') c = ' ';
    }
    return s;
  };
  std::string out = "HTTP/1.1 " + std::to_string(response.status) + " " +
                    std::string(StatusText(response.status)) + "\r\n";
  if (!response.content_type.empty()) {
    out += "Content-Type: " + clean(response.content_type) + "\r\n";
  }
  out += "Content-Length: " + std::to_string(response.body.size()) + "\r\n";
  for (const auto& [name, value] : response.headers) {
    out += clean(name) + ": " + clean(value) + "\r\n";
  }
  if (close) out += "Connection: close\r\n";
  out += "\r\n";
  if (!head_request) out += response.body;
  return out;
}

}  // namespace mintgate::proxy
