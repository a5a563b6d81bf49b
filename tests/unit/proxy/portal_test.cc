#include "proxy/runtime/portal.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <variant>

#include "rules/ca_resolver.h"
#include "tls/ca_generator.h"
#include "tls/cert_info.h"

namespace mintgate::proxy {
namespace {

using namespace std::chrono_literals;

std::string Fingerprint(X509* cert) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  X509_digest(cert, EVP_sha256(), md, &len);
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    char buf[4];
    std::snprintf(buf, sizeof buf, "%s%02X", i ? ":" : "", md[i]);
    out += buf;
  }
  return out;
}

std::string Header(const PortalResponse& r, const std::string& name) {
  for (const auto& [n, v] : r.headers) {
    if (n == name) return v;
  }
  return "";
}

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

tls::GeneratedCa Root(const std::string& cn) {
  tls::CaInitOptions options;
  options.common_name = cn;
  return tls::GenerateRootCa(options);
}

// The subject and key of `subject`, issued by `issuer`: how a customer cross-signs a new root.
tls::X509Ptr CrossSign(const tls::GeneratedCa& subject, const tls::GeneratedCa& issuer) {
  tls::X509Ptr x(X509_dup(subject.cert.get()));
  X509_set_issuer_name(x.get(), X509_get_subject_name(issuer.cert.get()));
  const int aki = X509_get_ext_by_NID(x.get(), NID_authority_key_identifier, -1);
  if (aki >= 0) X509_EXTENSION_free(X509_delete_ext(x.get(), aki));
  ASN1_INTEGER_set(X509_get_serialNumber(x.get()), 0x1234);
  X509_sign(x.get(), issuer.key.get(), EVP_sha256());
  return x;
}

std::unique_ptr<tls::CertAuthority> Authority(const std::string& name, X509* cert, EVP_PKEY* key,
                                              std::vector<X509*> chain = {}) {
  tls::CaMaterial m;
  m.cert = tls::UpRef(cert);
  m.key = tls::UpRef(key);
  for (X509* c : chain) m.chain.push_back(tls::UpRef(c));
  tls::CaProfileSpec spec;
  spec.name = name;
  spec.cert_file = name + ".pem";
  spec.key_file = name + ".key";
  return tls::CertAuthority::Create(spec, std::move(m), {}, std::time(nullptr));
}

rules::RuleSet Compile(const Config& config) {
  rules::RuleSetOptions options;
  options.inspection_enabled = config.inspection.enabled;
  options.default_ca = config.inspection.default_ca;
  for (const CaProfileConfig& ca : config.cas) {
    options.cas.push_back({ca.spec.name, ca.retire_at, ca.successor});
  }
  auto compiled = rules::RuleSet::Compile(config.rules, {}, options);
  if (auto* errors = std::get_if<std::vector<rules::RuleError>>(&compiled)) {
    ADD_FAILURE() << errors->front().message;
    std::abort();
  }
  return std::get<rules::RuleSet>(std::move(compiled));
}

CaProfileConfig Profile(const std::string& name, std::optional<rules::Instant> retire_at = {},
                        const std::string& successor = "") {
  CaProfileConfig c;
  c.spec.name = name;
  c.retire_at = retire_at;
  c.successor = successor;
  return c;
}

rules::Rule Rule(const std::string& name, rules::Action action, const std::string& ca,
                 std::vector<std::string> hosts) {
  rules::Rule r;
  r.name = name;
  r.action = action;
  r.ca = ca;
  r.hosts = std::move(hosts);
  return r;
}

// A migration in progress: the default rule signs with "legacy" until tomorrow, then with
// "new"; a finance rule signs with "cross" (the new root cross-signed by the customer root);
// a canary tries "canary"; "old" retired long ago (its successor is "legacy"); "unused" is
// configured but nothing signs with it.
class PortalTest : public ::testing::Test {
 protected:
  PortalTest()
      : legacy_(Root("TREND.IWS.2")),
        fresh_(Root("Web Security Cloud Root CA")),
        customer_(Root("Customer Enterprise Root")),
        canary_(Root("Canary Root")),
        old_(Root("Old <Root> & Co")),
        unused_(Root("Unused Root")),
        cross_(CrossSign(fresh_, customer_)) {
    now_ = std::time(nullptr);
    const rules::Instant at{std::chrono::seconds(now_)};
    cutover_ = at + 24h;
    config_.server.listen = {{"127.0.0.1", 3128}, {"::1", 3130}};
    config_.inspection.default_ca = "legacy";
    config_.cas = {Profile("old", at - 24h, "legacy"),
                   Profile("legacy", cutover_, "new"),
                   Profile("new"),
                   Profile("cross"),
                   Profile("canary"),
                   Profile("unused")};
    config_.rules = {Rule("finance", rules::Action::kDecrypt, "cross", {"*.bank.example"}),
                     Rule("archive", rules::Action::kDecrypt, "old", {"archive.example"}),
                     Rule("health", rules::Action::kTunnel, "", {"*.health.example"})};
    CanaryConfig canary;
    canary.ca = "canary";
    canary.clients = {"10.1.0.0/16"};
    canary.percent = 25;
    config_.canaries = {canary};
    config_.portal.pac_bypass = {"localhost",   "*.corp.example", ".intranet.example", "10.0.0.0/8",
                                 "192.168.1.7", "fd00::/8",       "::1/128",           "x\"y'<z>"};
    owned_.push_back(Authority("old", old_.cert.get(), old_.key.get()));
    owned_.push_back(Authority("legacy", legacy_.cert.get(), legacy_.key.get()));
    owned_.push_back(Authority("new", fresh_.cert.get(), fresh_.key.get()));
    owned_.push_back(Authority("cross", cross_.get(), fresh_.key.get(), {customer_.cert.get()}));
    owned_.push_back(Authority("canary", canary_.cert.get(), canary_.key.get()));
    owned_.push_back(Authority("unused", unused_.cert.get(), unused_.key.get()));
    for (const auto& a : owned_) authorities_[a->name()] = a.get();
  }

  std::shared_ptr<const Portal> Build() {
    rules_.emplace(Compile(config_));
    return Portal::Build(config_, *rules_, authorities_, now_);
  }

  const Portal::Certificate* Find(const Portal& portal, X509* cert) {
    for (const Portal::Certificate& c : portal.certificates()) {
      if (c.sha256 == Fingerprint(cert)) return &c;
    }
    return nullptr;
  }

  tls::GeneratedCa legacy_, fresh_, customer_, canary_, old_, unused_;
  tls::X509Ptr cross_;
  std::time_t now_ = 0;
  rules::Instant cutover_;
  Config config_;
  std::optional<rules::RuleSet> rules_;
  std::vector<std::unique_ptr<tls::CertAuthority>> owned_;
  std::map<std::string, const tls::CertAuthority*> authorities_;
};

TEST_F(PortalTest, ListsEveryRootClientsNeedNowAndAfterTheCutover) {
  auto portal = Build();
  const std::string page = portal->Handle("GET", "/").body;
  ASSERT_EQ(portal->Handle("GET", "/").status, 200);
  EXPECT_EQ(portal->Handle("GET", "/").content_type, "text/html; charset=utf-8");

  const Portal::Certificate* legacy = Find(*portal, legacy_.cert.get());
  const Portal::Certificate* fresh = Find(*portal, fresh_.cert.get());
  const Portal::Certificate* canary = Find(*portal, canary_.cert.get());
  const Portal::Certificate* customer = Find(*portal, customer_.cert.get());
  ASSERT_NE(legacy, nullptr);
  ASSERT_NE(fresh, nullptr) << "the successor after the scheduled cutover is missing";
  ASSERT_NE(canary, nullptr) << "the canary profile is missing";
  ASSERT_NE(customer, nullptr) << "the customer root of the cross-signed profile is missing";
  EXPECT_EQ(legacy->name, "legacy");
  EXPECT_EQ(fresh->name, "new");
  EXPECT_EQ(canary->name, "canary");
  EXPECT_EQ(customer->name, "cross-root");
  EXPECT_EQ(portal->certificates().size(), 4u);

  // Retired long ago, or used by nothing: not offered. The cross-signed certificate itself is
  // no trust anchor.
  EXPECT_EQ(Find(*portal, old_.cert.get()), nullptr);
  EXPECT_EQ(Find(*portal, unused_.cert.get()), nullptr);
  EXPECT_EQ(Find(*portal, cross_.get()), nullptr);
  EXPECT_FALSE(Contains(page, Fingerprint(unused_.cert.get())));
  EXPECT_FALSE(Contains(page, Fingerprint(cross_.get())));
  EXPECT_FALSE(Contains(page, "PRIVATE KEY"));

  for (const Portal::Certificate* c : {legacy, fresh, canary, customer}) {
    EXPECT_TRUE(Contains(page, "<code class=\"fp\">" + c->sha256 + "</code>")) << c->name;
    EXPECT_TRUE(Contains(page, "href=\"/ca/" + c->name + ".pem\"")) << c->name;
    EXPECT_TRUE(Contains(page, "href=\"/ca/" + c->name + ".cer\"")) << c->name;
    EXPECT_TRUE(Contains(page, "href=\"/ca/" + c->name + ".crt\"")) << c->name;
    EXPECT_TRUE(Contains(page, tls::FormatTime(c->not_after))) << c->name;
  }
  EXPECT_TRUE(Contains(page, "Customer Enterprise Root"));
  EXPECT_TRUE(Contains(page, "Web Security Cloud Root CA"));

  // Who needs what, and when.
  const std::string at = rules::FormatInstant(cutover_);
  auto has = [](const Portal::Certificate* c, const std::string& use) {
    return std::find(c->needed_by.begin(), c->needed_by.end(), use) != c->needed_by.end();
  };
  EXPECT_TRUE(has(legacy, "rule \"default\": now until " + at))
      << ::testing::PrintToString(legacy->needed_by);
  EXPECT_TRUE(has(legacy, "rule \"archive\": now until " + at + " (in place of \"old\")"));
  EXPECT_TRUE(has(fresh, "rule \"default\": from " + at + " (in place of \"legacy\")"))
      << ::testing::PrintToString(fresh->needed_by);
  EXPECT_TRUE(has(customer, "rule \"finance\": now"));
  EXPECT_TRUE(has(canary, "canary for 10.1.0.0/16 (25%): now"));

  // The cross-signed profile's note: clients trusting the self-signed new root work too.
  EXPECT_TRUE(Contains(page, "directly accept them too (offered on this page as &quot;new&quot;)"));
  // Install steps for every platform.
  for (const char* s : {"Windows", "macOS", "iOS", "Android", "update-ca-certificates",
                        "update-ca-trust", "Firefox", "security.enterprise_roots.enabled"}) {
    EXPECT_TRUE(Contains(page, s)) << s;
  }
  // Self-contained: nothing loaded from elsewhere.
  EXPECT_FALSE(Contains(page, "<script"));
  EXPECT_FALSE(Contains(page, "src="));
  EXPECT_FALSE(Contains(page, "http://"));
  EXPECT_FALSE(Contains(page, "https://"));
  EXPECT_FALSE(Header(portal->Handle("GET", "/"), "Content-Security-Policy").empty());
}

TEST_F(PortalTest, DownloadsParseAndMatchThePage) {
  auto portal = Build();
  const std::string page = portal->Handle("GET", "/").body;
  for (const Portal::Certificate& c : portal->certificates()) {
    PortalResponse pem = portal->Handle("GET", "/ca/" + c.name + ".pem");
    ASSERT_EQ(pem.status, 200) << c.name;
    EXPECT_EQ(pem.content_type, "application/x-pem-file");
    EXPECT_EQ(Header(pem, "Content-Disposition"), "attachment; filename=\"" + c.name + ".pem\"");
    EXPECT_FALSE(Contains(pem.body, "PRIVATE"));
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(
        BIO_new_mem_buf(pem.body.data(), static_cast<int>(pem.body.size())), &BIO_free);
    tls::X509Ptr from_pem(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    ASSERT_NE(from_pem, nullptr) << c.name;
    const std::string fp = Fingerprint(from_pem.get());
    EXPECT_EQ(fp, c.sha256);
    EXPECT_TRUE(Contains(page, "<code class=\"fp\">" + fp + "</code>"));

    for (const auto& [ext, mime] : {std::pair{"cer", "application/pkix-cert"},
                                    std::pair{"crt", "application/x-x509-ca-cert"}}) {
      PortalResponse der = portal->Handle("GET", "/ca/" + c.name + "." + ext);
      ASSERT_EQ(der.status, 200);
      EXPECT_EQ(der.content_type, mime);
      EXPECT_EQ(Header(der, "Content-Disposition"),
                "attachment; filename=\"" + c.name + "." + ext + "\"");
      const auto* p = reinterpret_cast<const unsigned char*>(der.body.data());
      tls::X509Ptr from_der(d2i_X509(nullptr, &p, static_cast<long>(der.body.size())));
      ASSERT_NE(from_der, nullptr) << c.name << "." << ext;
      EXPECT_EQ(p, reinterpret_cast<const unsigned char*>(der.body.data() + der.body.size()));
      EXPECT_EQ(Fingerprint(from_der.get()), fp);
    }
  }
  // The customer root is what the cross-signed profile's chain ends in.
  PortalResponse root = portal->Handle("GET", "/ca/cross-root.cer");
  const auto* p = reinterpret_cast<const unsigned char*>(root.body.data());
  tls::X509Ptr customer(d2i_X509(nullptr, &p, static_cast<long>(root.body.size())));
  ASSERT_NE(customer, nullptr);
  EXPECT_EQ(X509_cmp(customer.get(), customer_.cert.get()), 0);
  // A query string does not matter; percent-encoding is decoded.
  EXPECT_EQ(portal->Handle("GET", "/ca/%6Eew.pem?x=1").status, 200);
}

TEST_F(PortalTest, UnknownPathsAreNotFoundAndEchoedEscaped) {
  auto portal = Build();
  for (const char* path : {"/ca/unused.pem", "/ca/old.pem", "/ca/cross.pem", "/ca/nope.pem",
                           "/ca/legacy.txt", "/ca/legacy", "/ca/", "/healthz", "/favicon.ico"}) {
    PortalResponse r = portal->Handle("GET", path);
    EXPECT_EQ(r.status, 404) << path;
    EXPECT_EQ(r.content_type, "text/html; charset=utf-8") << path;
  }
  PortalResponse r = portal->Handle("GET", "/%3Cscript%3Ealert(1)%3C/script%3E<img src=x>\"'");
  EXPECT_EQ(r.status, 404);
  EXPECT_FALSE(Contains(r.body, "<script>"));
  EXPECT_FALSE(Contains(r.body, "<img"));
  EXPECT_TRUE(
      Contains(r.body, "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x&gt;&quot;&#39;"));
  // Names from the configuration are escaped on the page too.
  config_.rules.push_back(Rule("<b>x</b>", rules::Action::kDecrypt, "legacy", {"b.example"}));
  auto again = Build();
  const std::string page = again->Handle("GET", "/").body;
  EXPECT_FALSE(Contains(page, "<b>x</b>"));
  EXPECT_TRUE(Contains(page, "&lt;b&gt;x&lt;/b&gt;"));
}

TEST_F(PortalTest, OnlyGetAndHead) {
  auto portal = Build();
  EXPECT_EQ(portal->Handle("HEAD", "/").status, 200);
  EXPECT_EQ(portal->Handle("HEAD", "/ca/new.pem").status, 200);
  for (const char* method : {"POST", "PUT", "DELETE", "OPTIONS", "get", "TRACE"}) {
    PortalResponse r = portal->Handle(method, "/");
    EXPECT_EQ(r.status, 405) << method;
    EXPECT_EQ(Header(r, "Allow"), "GET, HEAD") << method;
  }
}

TEST_F(PortalTest, SerializedHeadHasNoBody) {
  auto portal = Build();
  PortalResponse r = portal->Handle("HEAD", "/ca/new.cer");
  const std::string head = SerializePortalResponse(r, true, true);
  EXPECT_EQ(head.rfind("HTTP/1.1 200 OK\r\n", 0), 0u);
  EXPECT_TRUE(Contains(head, "\r\nContent-Type: application/pkix-cert\r\n"));
  EXPECT_TRUE(Contains(head, "\r\nContent-Length: " + std::to_string(r.body.size()) + "\r\n"));
  EXPECT_TRUE(Contains(head, "\r\nConnection: close\r\n"));
  EXPECT_EQ(head.substr(head.size() - 4), "\r\n\r\n");
  const std::string full = SerializePortalResponse(r, false, false);
  EXPECT_EQ(full.substr(full.size() - r.body.size()), r.body);
  EXPECT_FALSE(Contains(full, "Connection:"));
  EXPECT_EQ(SerializePortalResponse(portal->Handle("PUT", "/"), false, true)
                .rfind("HTTP/1.1 405 Method Not Allowed\r\n", 0),
            0u);
}

TEST_F(PortalTest, ServesThePortalHostAndTheListenAddresses) {
  auto portal = Build();
  EXPECT_TRUE(portal->Serves("mintgate.portal", 80));
  EXPECT_TRUE(portal->Serves("mintgate.portal", 8080));
  EXPECT_TRUE(portal->Serves("MintGate.Portal.", 80));
  EXPECT_TRUE(portal->Serves("127.0.0.1", 3128));
  EXPECT_TRUE(portal->Serves("::1", 3130));
  EXPECT_TRUE(portal->Serves("[::1]", 3130));
  EXPECT_TRUE(portal->Serves("0:0:0:0:0:0:0:1", 3130));
  EXPECT_TRUE(portal->Serves("localhost", 3128));
  EXPECT_FALSE(portal->Serves("127.0.0.1", 80));
  EXPECT_FALSE(portal->Serves("127.0.0.1", 3130));
  EXPECT_FALSE(portal->Serves("::1", 3128));
  EXPECT_FALSE(portal->Serves("127.0.0.2", 3128));
  EXPECT_FALSE(portal->Serves("www.example.com", 3128));
  EXPECT_FALSE(portal->Serves("portal", 80));
  EXPECT_FALSE(portal->Serves("x.mintgate.portal", 80));
  EXPECT_FALSE(portal->Serves("", 3128));

  // A wildcard listen address: loopback, and the address the connection arrived on.
  config_.server.listen = {{"0.0.0.0", 3128}};
  config_.portal.host = "Portal.Corp.Example";
  auto wildcard = Build();
  EXPECT_TRUE(wildcard->Serves("portal.corp.example", 80));
  EXPECT_FALSE(wildcard->Serves("mintgate.portal", 80));
  EXPECT_TRUE(wildcard->Serves("127.0.0.1", 3128));
  EXPECT_TRUE(wildcard->Serves("192.0.2.10", 3128, "192.0.2.10"));
  EXPECT_TRUE(wildcard->Serves("192.0.2.10", 3128, "::ffff:192.0.2.10"));
  EXPECT_FALSE(wildcard->Serves("192.0.2.10", 3128, "192.0.2.11"));
  EXPECT_FALSE(wildcard->Serves("192.0.2.10", 3128));
  EXPECT_FALSE(wildcard->Serves("192.0.2.10", 3129, "192.0.2.10"));

  config_.portal.enabled = false;
  auto disabled = Build();
  EXPECT_FALSE(disabled->Serves("portal.corp.example", 80));
  EXPECT_FALSE(disabled->Serves("127.0.0.1", 3128));
}

TEST_F(PortalTest, PacProxiesEverythingButTheBypassList) {
  auto portal = Build();
  PortalResponse r = portal->Handle("GET", "/proxy.pac");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "application/x-ns-proxy-autoconfig");
  const std::string& pac = r.body;
  EXPECT_TRUE(Contains(pac, "function FindProxyForURL(url, host)"));
  EXPECT_TRUE(Contains(pac, "var proxy = \"PROXY 127.0.0.1:3128; PROXY [::1]:3130\";"));
  EXPECT_TRUE(Contains(pac, "if (h == \"mintgate.portal\") return proxy;"));
  EXPECT_TRUE(Contains(pac, "if (dnsDomainIs(h, \".corp.example\")) return \"DIRECT\";"));
  EXPECT_TRUE(Contains(
      pac, "if (h == \"intranet.example\" || dnsDomainIs(h, \".intranet.example\")) return"));
  EXPECT_TRUE(Contains(pac, "isInNet(ip, \"10.0.0.0\", \"255.0.0.0\")"));
  EXPECT_TRUE(Contains(pac, "isInNet(ip, \"192.168.1.7\", \"255.255.255.255\")"));
  EXPECT_TRUE(Contains(pac, "mgInV6(v6, [64768, 0, 0, 0, 0, 0, 0, 0], 8)"));
  EXPECT_TRUE(Contains(pac, "isPlainHostName(h)"));
  // Configuration text is a JavaScript string, never code.
  EXPECT_TRUE(Contains(pac, "\"x\\\"y\\x27\\x3cz\\x3e\""));
  EXPECT_EQ(portal->Handle("GET", "/wpad.dat").body, pac);

  // A wildcard listen address is named by the address the client reached.
  config_.server.listen = {{"0.0.0.0", 3128}, {"::", 3128}};
  auto wildcard = Build();
  EXPECT_TRUE(Contains(wildcard->Handle("GET", "/proxy.pac", "192.0.2.10").body,
                       "var proxy = \"PROXY 192.0.2.10:3128\";"));
  EXPECT_TRUE(Contains(wildcard->Handle("GET", "/proxy.pac", "2001:db8::5").body,
                       "var proxy = \"PROXY [2001:db8::5]:3128\";"));
  // Behind a load balancer (a PROXY header): the balancer's address and port, nothing else.
  EXPECT_TRUE(Contains(portal->Handle("GET", "/proxy.pac", "192.0.2.10", 8080).body,
                       "var proxy = \"PROXY 192.0.2.10:8080\";"));
  EXPECT_TRUE(portal->Serves("192.0.2.10", 8080, "192.0.2.10", 8080));
  EXPECT_FALSE(portal->Serves("192.0.2.10", 8081, "192.0.2.10", 8080));
  EXPECT_FALSE(portal->Serves("192.0.2.11", 8080, "192.0.2.10", 8080));
}

// The PAC file, run by a JavaScript engine with the standard helper functions.
TEST_F(PortalTest, PacRunsInNode) {
  if (std::system("node --version >/dev/null 2>&1") != 0) GTEST_SKIP() << "no node";
  auto portal = Build();
  const std::string pac = portal->Handle("GET", "/proxy.pac").body;
  const char* dir = std::getenv("TMPDIR");
  const std::string file = std::string(dir ? dir : "/tmp") + "/mintgate-portal-test-" +
                           std::to_string(::getpid()) + ".js";
  {
    std::ofstream out(file);
    out << R"JS(
function isPlainHostName(h) { return h.indexOf(".") < 0; }
function dnsDomainIs(h, d) { return h.length >= d.length && h.substring(h.length - d.length) == d; }
function shExpMatch(s, p) {
  var re = "^" + p.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".") + "$";
  return new RegExp(re).test(s);
}
var resolved = [];
function dnsResolve(h) { resolved.push(h); return h == "files.lan.example" ? "10.9.8.7" : "198.51.100.1"; }
function toNum(a) { var p = a.split("."); return ((+p[0] << 24) | (+p[1] << 16) | (+p[2] << 8) | +p[3]) >>> 0; }
function isInNet(ip, net, mask) { return ((toNum(ip) & toNum(mask)) >>> 0) == ((toNum(net) & toNum(mask)) >>> 0); }
function myIpAddress() { return "127.0.0.1"; }
)JS" << pac
        << R"JS(
var cases = [
  ["mintgate.portal", "PROXY 127.0.0.1:3128; PROXY [::1]:3130"],
  ["www.example.com", "PROXY 127.0.0.1:3128; PROXY [::1]:3130"],
  ["intranet", "DIRECT"],
  ["localhost", "DIRECT"],
  ["a.corp.example", "DIRECT"],
  ["A.B.Corp.Example", "DIRECT"],
  ["corp.example", "PROXY 127.0.0.1:3128; PROXY [::1]:3130"],
  ["intranet.example", "DIRECT"],
  ["wiki.intranet.example", "DIRECT"],
  ["10.2.3.4", "DIRECT"],
  ["11.2.3.4", "PROXY 127.0.0.1:3128; PROXY [::1]:3130"],
  ["192.168.1.7", "DIRECT"],
  ["192.168.1.8", "PROXY 127.0.0.1:3128; PROXY [::1]:3130"],
  ["files.lan.example", "DIRECT"],
  ["fd12::1", "DIRECT"],
  ["[::1]", "DIRECT"],
  ["::1", "DIRECT"],
  ["2001:db8::1", "PROXY 127.0.0.1:3128; PROXY [::1]:3130"],
];
var bad = 0;
for (var i = 0; i < cases.length; i++) {
  var got = FindProxyForURL("http://" + cases[i][0] + "/", cases[i][0]);
  if (got != cases[i][1]) { console.log("FindProxyForURL(" + cases[i][0] + ") = " + got); bad++; }
}
if (resolved.indexOf("a.corp.example") >= 0) { console.log("resolved a bypassed name"); bad++; }
process.exit(bad ? 1 : 0);
)JS";
  }
  const std::string command = "node " + file + " 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  std::array<char, 256> buf{};
  while (std::fgets(buf.data(), buf.size(), pipe) != nullptr) output += buf.data();
  const int status = ::pclose(pipe);
  std::remove(file.c_str());
  EXPECT_EQ(status, 0) << output << "\n" << pac;
}

TEST_F(PortalTest, CrossSignedWithoutItsSelfSignedRootConfiguredOffersTheCustomerRoot) {
  // Only the cross-signed profile: the customer root is what clients need; the new root's
  // self-signed certificate is not available here, and the page says so.
  config_.cas = {Profile("cross")};
  config_.inspection.default_ca = "cross";
  config_.rules.clear();
  config_.canaries.clear();
  authorities_ = {{"cross", authorities_["cross"]}};
  auto portal = Build();
  ASSERT_EQ(portal->certificates().size(), 1u);
  EXPECT_EQ(portal->certificates()[0].sha256, Fingerprint(customer_.cert.get()));
  EXPECT_EQ(portal->certificates()[0].name, "cross-root");
  EXPECT_TRUE(Contains(portal->Handle("GET", "/").body,
                       "this gateway does not have that certificate to offer"));
}

TEST_F(PortalTest, SelfSignedTwinOfACrossSignedProfileIsOfferedAsAnAlternative) {
  // "new" is configured but no rule signs with it: it is offered as an alternative to the
  // customer root, not as a certificate clients must install.
  config_.cas = {Profile("cross"), Profile("new"), Profile("cross-root")};
  config_.inspection.default_ca = "cross";
  config_.rules.clear();
  config_.canaries.clear();
  // A profile already named like the customer root's download name keeps its name.
  auto other = Authority("cross-root", unused_.cert.get(), unused_.key.get());
  authorities_ = {
      {"cross", authorities_["cross"]}, {"new", authorities_["new"]}, {"cross-root", other.get()}};
  auto portal = Build();
  ASSERT_EQ(portal->certificates().size(), 2u);
  EXPECT_EQ(portal->certificates()[0].sha256, Fingerprint(customer_.cert.get()));
  EXPECT_EQ(portal->certificates()[0].name, "cross-root-2");
  EXPECT_FALSE(portal->certificates()[0].alternative);
  EXPECT_EQ(portal->certificates()[1].sha256, Fingerprint(fresh_.cert.get()));
  EXPECT_EQ(portal->certificates()[1].name, "new");
  EXPECT_TRUE(portal->certificates()[1].alternative);
  EXPECT_EQ(portal->Handle("GET", "/ca/cross-root.pem").status, 404);
  EXPECT_EQ(portal->Handle("GET", "/ca/cross-root-2.pem").status, 200);
  EXPECT_TRUE(Contains(portal->Handle("GET", "/").body, "(alternative)"));
}

TEST_F(PortalTest, SameCertificateUnderTwoProfilesIsListedOnce) {
  auto twin = Authority("legacy-copy", legacy_.cert.get(), legacy_.key.get());
  config_.cas.push_back(Profile("legacy-copy"));
  config_.rules.push_back(Rule("copy", rules::Action::kDecrypt, "legacy-copy", {"c.example"}));
  authorities_["legacy-copy"] = twin.get();
  auto portal = Build();
  const Portal::Certificate* legacy = Find(*portal, legacy_.cert.get());
  ASSERT_NE(legacy, nullptr);
  EXPECT_EQ(legacy->name, "legacy");
  EXPECT_EQ(legacy->aliases, std::vector<std::string>{"legacy-copy"});
  EXPECT_EQ(portal->Handle("GET", "/ca/legacy-copy.crt").status, 200);
  EXPECT_EQ(portal->certificates().size(), 4u);
}

TEST_F(PortalTest, MissingProfilesAreNamedNotInvented) {
  authorities_.erase("canary");
  auto portal = Build();
  EXPECT_EQ(Find(*portal, canary_.cert.get()), nullptr);
  EXPECT_TRUE(Contains(portal->Handle("GET", "/").body,
                       "Profile \"canary\": its certificate is not loaded"));
}

}  // namespace
}  // namespace mintgate::proxy
