#include "proxy/config/config_loader.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace mintgate::proxy {
namespace {

ConfigLoadResult Parse(const std::string& text) {
  return ConfigLoader::Parse(text, "/etc/mintgate/mintgate.toml");
}

// The single error of `text`, asserted to exist.
ConfigError OnlyError(const std::string& text) {
  ConfigLoadResult r = Parse(text);
  EXPECT_EQ(r.errors.size(), 1u) << (r.errors.empty() ? "no error" : r.errors[0].ToString());
  return r.errors.empty() ? ConfigError{} : r.errors[0];
}

TEST(ConfigLoader, EmptyFileGivesEveryDefault) {
  ConfigLoadResult r = Parse("");
  ASSERT_TRUE(r.ok());
  const Config& c = r.config;
  ASSERT_EQ(c.server.listen.size(), 1u);
  EXPECT_EQ(c.server.listen[0].ToString(), "127.0.0.1:3128");
  EXPECT_EQ(c.server.workers, 0);
  EXPECT_EQ(c.server.allow_clients, (std::vector<std::string>{"127.0.0.0/8", "::1/128"}));
  EXPECT_FALSE(c.server.allow_loopback_upstreams);
  EXPECT_EQ(c.admin.listen.ToString(), "127.0.0.1:9090");
  EXPECT_TRUE(c.inspection.enabled);
  EXPECT_EQ(c.inspection.default_ca, "default");
  EXPECT_EQ(c.inspection.upstream_cert_errors, UpstreamCertErrors::kBlock);
  EXPECT_EQ(c.inspection.connect_ports, (std::vector<std::uint16_t>{443}));
  EXPECT_EQ(c.mint.leaf_key, tls::LeafKeyType::kEcdsaP256);
  EXPECT_EQ(c.mint.leaf_days, 30);
  EXPECT_EQ(c.mint.cache_entries, 100000u);
  EXPECT_FALSE(c.mint.signing_intermediate);
  EXPECT_TRUE(c.mint.mirror_wildcards);
  EXPECT_TRUE(c.rules.empty());
  EXPECT_TRUE(c.cas.empty());
  EXPECT_EQ(c.log.access, "-");
  EXPECT_EQ(c.log.format, LogFormat::kJson);
  EXPECT_TRUE(c.server.deny_destinations.empty());
  EXPECT_EQ(c.server.http_ports, (std::vector<PortRange>{{80, 80}, {443, 443}, {1025, 65535}}));
  EXPECT_EQ(c.server.max_connections, 10000u);
  EXPECT_EQ(c.server.max_connections_per_client, 1000u);
  EXPECT_EQ(c.admin.token_file, "");
  EXPECT_EQ(c.timeouts.request_head_ms, 10000u);
  EXPECT_EQ(c.timeouts.linger_ms, 2000u);
  EXPECT_EQ(c.timeouts.tcp_keepalive_ms, 60000u);
  EXPECT_EQ(c.mint.max_pending, 1000u);
}

TEST(ConfigLoader, ReadsEverySection) {
  ConfigLoadResult r = Parse(R"(
[server]
listen = ["127.0.0.1:3128", "[::1]:3129"]
workers = 2
allow_clients = ["10.0.0.0/8"]
state_dir = "state"
allow_loopback_upstreams = true

[dns]
servers = ["127.0.0.1:5353", "[::1]"]

[admin]
listen = "127.0.0.1:9191"

[inspection]
enabled = false
default_ca = "new"
upstream_cert_errors = "untrusted"
extra_trust = ["lab-ca.pem", "/abs/ca.pem"]
connect_ports = [443, 8443]

[ca.legacy]
cert = "ca/legacy.cer"
key = "ca/legacy.key"
retire_at = 2022-06-30T00:00:00+09:00
successor = "new"

[ca.new]
cert = "ca/new.pem"
key = "ca/new.key"
chain = ["ca/customer-root.pem"]
passphrase_env = "NEW_CA_PASS"

[mint]
leaf_key = "rsa-2048"
leaf_days = 90
cache_entries = 5000
signing_intermediate = true
mirror_wildcards = false

[[rule]]
name = "no-decrypt-finance"
action = "tunnel"
hosts = ["*.bank.example", "pay.example.com"]
ports = [443]
clients = ["10.0.0.0/8"]
users = ["alice"]
groups = ["finance"]
categories = ["finance"]

[[rule]]
name = "legacy-users"
action = "decrypt"
ca = "legacy"

[category.finance]
file = "/dev/null"

[log]
access = "access.log"
format = "squid"
)");
  ASSERT_TRUE(r.ok()) << r.errors[0].ToString();
  const Config& c = r.config;
  ASSERT_EQ(c.server.listen.size(), 2u);
  EXPECT_EQ(c.server.listen[1].host, "::1");
  EXPECT_EQ(c.server.listen[1].ToString(), "[::1]:3129");
  EXPECT_EQ(c.server.workers, 2);
  EXPECT_EQ(c.server.state_dir, "/etc/mintgate/state");
  EXPECT_TRUE(c.server.allow_loopback_upstreams);
  ASSERT_EQ(c.dns.servers.size(), 2u);
  EXPECT_EQ(c.dns.servers[1].port, 53);
  EXPECT_EQ(c.admin.listen.port, 9191);
  EXPECT_FALSE(c.inspection.enabled);
  EXPECT_EQ(c.inspection.upstream_cert_errors, UpstreamCertErrors::kUntrusted);
  EXPECT_EQ(c.inspection.extra_trust,
            (std::vector<std::string>{"/etc/mintgate/lab-ca.pem", "/abs/ca.pem"}));
  EXPECT_EQ(c.inspection.connect_ports, (std::vector<std::uint16_t>{443, 8443}));
  ASSERT_EQ(c.cas.size(), 2u);
  EXPECT_EQ(c.cas[0].spec.name, "legacy");
  EXPECT_EQ(c.cas[0].spec.cert_file, "/etc/mintgate/ca/legacy.cer");
  ASSERT_TRUE(c.cas[0].retire_at.has_value());
  // 2022-06-30T00:00:00+09:00 is 2022-06-29T15:00:00Z.
  EXPECT_EQ(c.cas[0].retire_at->time_since_epoch().count(), 1656514800);
  EXPECT_EQ(c.cas[0].successor, "new");
  EXPECT_EQ(c.cas[1].spec.chain_files,
            (std::vector<std::string>{"/etc/mintgate/ca/customer-root.pem"}));
  EXPECT_EQ(c.cas[1].spec.passphrase.env, "NEW_CA_PASS");
  EXPECT_EQ(c.mint.leaf_key, tls::LeafKeyType::kRsa2048);
  EXPECT_EQ(c.mint.leaf_days, 90);
  EXPECT_TRUE(c.mint.signing_intermediate);
  EXPECT_FALSE(c.mint.mirror_wildcards);
  ASSERT_EQ(c.rules.size(), 2u);
  EXPECT_EQ(c.rules[0].name, "no-decrypt-finance");
  EXPECT_EQ(c.rules[0].action, rules::Action::kTunnel);
  EXPECT_EQ(c.rules[0].hosts.size(), 2u);
  EXPECT_EQ(c.rules[0].line, 41);  // the [[rule]] header
  EXPECT_EQ(c.rules[1].ca, "legacy");
  ASSERT_EQ(c.categories.size(), 1u);
  EXPECT_EQ(c.log.access, "/etc/mintgate/access.log");
  EXPECT_EQ(c.log.format, LogFormat::kSquid);
}

TEST(ConfigLoader, UnknownKeysAreErrorsWithPositionAndSuggestion) {
  ConfigError e = OnlyError("[server]\nlisten = [\"127.0.0.1:1\"]\nworkres = 2\n");
  EXPECT_EQ(e.file, "/etc/mintgate/mintgate.toml");
  EXPECT_EQ(e.line, 3);
  EXPECT_EQ(e.column, 1);
  EXPECT_EQ(e.message, "unknown key 'workres' in [server]; did you mean 'workers'?");

  e = OnlyError("[inspection]\n  enable = true\n");
  EXPECT_EQ(e.line, 2);
  EXPECT_EQ(e.column, 3);
  EXPECT_NE(e.message.find("did you mean 'enabled'?"), std::string::npos);

  e = OnlyError("[sever]\n");
  EXPECT_EQ(e.message, "unknown key 'sever'; did you mean 'server'?");

  e = OnlyError("[[rule]]\nname = \"x\"\naction = \"block\"\nhost = [\"a.example\"]\n");
  EXPECT_EQ(e.line, 4);
  EXPECT_NE(e.message.find("did you mean 'hosts'?"), std::string::npos);

  // Far from every key: no suggestion.
  e = OnlyError("[mint]\nzzzzzzzz = 1\n");
  EXPECT_EQ(e.message, "unknown key 'zzzzzzzz' in [mint]");
}

TEST(ConfigLoader, WrongTypesNameTheKeyAndWhatWasExpected) {
  ConfigError e = OnlyError("[inspection]\nenabled = \"yes\"\n");
  EXPECT_EQ(e.line, 2);
  EXPECT_EQ(e.message, "inspection.enabled: expected true or false, got a string");
  e = OnlyError("[mint]\nleaf_days = \"30\"\n");
  EXPECT_EQ(e.message, "mint.leaf_days: expected an integer, got a string");
  e = OnlyError("[inspection]\nconnect_ports = [443, 70000]\n");
  EXPECT_EQ(e.line, 2);
  EXPECT_EQ(e.column, 23);
  EXPECT_EQ(e.message, "inspection.connect_ports: expected a port number 1-65535");
}

TEST(ConfigLoader, BadValuesAreErrors) {
  EXPECT_EQ(OnlyError("[mint]\nleaf_days = 200\n").message,
            "mint.leaf_days must be between 1 and 199, got 200");
  EXPECT_EQ(OnlyError("[mint]\nleaf_key = \"ed25519\"\n").message,
            "mint.leaf_key must be \"ecdsa-p256\" or \"rsa-2048\", got \"ed25519\"");
  EXPECT_NE(OnlyError("[server]\nlisten = [\"::1:3128\"]\n").message.find("brackets"),
            std::string::npos);
  EXPECT_NE(OnlyError("[server]\nlisten = [\"127.0.0.1:99999\"]\n").message.find("invalid port"),
            std::string::npos);
  EXPECT_NE(OnlyError("[admin]\nlisten = \"127.0.0.1\"\n").message.find("missing port"),
            std::string::npos);
  EXPECT_NE(OnlyError("[[rule]]\nname = \"r\"\naction = \"allow\"\n").message.find("action must"),
            std::string::npos);
  EXPECT_NE(OnlyError("[[rule]]\naction = \"block\"\n").message.find("needs a name"),
            std::string::npos);
  ConfigError e = OnlyError(
      "[ca.old]\ncert = \"a.pem\"\nkey = \"a.key\"\nretire_at = 2022-06-30T00:00:00\n"
      "successor = \"new\"\n");
  EXPECT_EQ(e.line, 4);
  EXPECT_NE(e.message.find("UTC offset"), std::string::npos);
  e = OnlyError("[log]\nformat = \"xml\"\n");
  EXPECT_EQ(e.message, "log.format must be \"json\" or \"squid\", got \"xml\"");
  e = OnlyError("[inspection]\nupstream_cert_errors = \"ignore\"\n");
  EXPECT_NE(e.message.find("\"block\" or \"untrusted\""), std::string::npos);
}

TEST(ConfigLoader, SecurityLimitsAndTimeouts) {
  ConfigLoadResult r = Parse(R"(
[server]
deny_destinations = ["10.0.0.0/8", "fd12::/16"]
http_ports = [80, "8000-8099"]
max_connections = 50
max_connections_per_client = 0
[admin]
token_file = "secret/admin.token"
[timeouts]
request_head = 3
client_idle = 0.5
connect = 4
tls_handshake = 5
origin_first_byte = 6
origin_idle = 7
tunnel_idle = 8
leaf_wait = 9
linger = 1
tcp_keepalive = 0
[mint]
max_pending = 7
)");
  ASSERT_TRUE(r.ok()) << r.errors[0].ToString();
  const Config& c = r.config;
  EXPECT_EQ(c.server.deny_destinations, (std::vector<std::string>{"10.0.0.0/8", "fd12::/16"}));
  EXPECT_EQ(c.server.http_ports, (std::vector<PortRange>{{80, 80}, {8000, 8099}}));
  EXPECT_EQ(c.server.max_connections, 50u);
  EXPECT_EQ(c.server.max_connections_per_client, 0u);
  EXPECT_EQ(c.admin.token_file, "/etc/mintgate/secret/admin.token");
  EXPECT_EQ(c.timeouts.request_head_ms, 3000u);
  EXPECT_EQ(c.timeouts.client_idle_ms, 500u);
  EXPECT_EQ(c.timeouts.connect_ms, 4000u);
  EXPECT_EQ(c.timeouts.tls_handshake_ms, 5000u);
  EXPECT_EQ(c.timeouts.origin_first_byte_ms, 6000u);
  EXPECT_EQ(c.timeouts.origin_idle_ms, 7000u);
  EXPECT_EQ(c.timeouts.tunnel_idle_ms, 8000u);
  EXPECT_EQ(c.timeouts.leaf_wait_ms, 9000u);
  EXPECT_EQ(c.timeouts.linger_ms, 1000u);
  EXPECT_EQ(c.timeouts.tcp_keepalive_ms, 0u);
  EXPECT_EQ(c.mint.max_pending, 7u);

  EXPECT_EQ(OnlyError("[server]\nhttp_ports = [\"90-80\"]\n").message,
            "server.http_ports: expected a port 1-65535 or a range \"low-high\"");
  EXPECT_EQ(OnlyError("[server]\nhttp_ports = [0]\n").message,
            "server.http_ports: expected a port 1-65535 or a range \"low-high\"");
  EXPECT_NE(OnlyError("[server]\ndeny_destinations = [\"10.0.0.1/8\"]\n")
                .message.find("did you mean \"10.0.0.0/8\""),
            std::string::npos);
  EXPECT_EQ(OnlyError("[timeouts]\nconnect = 0\n").message,
            "timeouts.connect must be between 0.1 and 86400 seconds");
  EXPECT_EQ(OnlyError("[timeouts]\nconnect = \"5s\"\n").message,
            "timeouts.connect: expected a number of seconds, got a string");
  EXPECT_EQ(OnlyError("[timeouts]\ntcp_keepalive = 0.5\n").message,
            "timeouts.tcp_keepalive must be 0 (off) or at least 1 second");
  EXPECT_EQ(OnlyError("[timeouts]\nconect = 5\n").message,
            "unknown key 'conect' in [timeouts]; did you mean 'connect'?");
}

TEST(ConfigLoader, ProxyProtocol) {
  ConfigLoadResult defaults = Parse("");
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults.config.server.proxy_protocol, ServerConfig::ProxyProtocol::kOff);
  EXPECT_TRUE(defaults.config.server.proxy_protocol_from.empty());

  ConfigLoadResult r = Parse(
      "[server]\nproxy_protocol = \"v2\"\nproxy_protocol_from = [\"10.0.0.5/32\", \"fd00::/8\", "
      "\"192.0.2.7\"]\n");
  ASSERT_TRUE(r.ok()) << r.errors[0].ToString();
  EXPECT_EQ(r.config.server.proxy_protocol, ServerConfig::ProxyProtocol::kV2);
  EXPECT_EQ(r.config.server.proxy_protocol_from,
            (std::vector<std::string>{"10.0.0.5/32", "fd00::/8", "192.0.2.7"}));
  const std::pair<const char*, ServerConfig::ProxyProtocol> modes[] = {
      {"off", ServerConfig::ProxyProtocol::kOff},
      {"v1", ServerConfig::ProxyProtocol::kV1},
      {"v2", ServerConfig::ProxyProtocol::kV2},
      {"any", ServerConfig::ProxyProtocol::kAny}};
  for (const auto& [text, mode] : modes) {
    r = Parse(std::string("[server]\nproxy_protocol = \"") + text +
              "\"\nproxy_protocol_from = [\"10.0.0.0/24\"]\n");
    ASSERT_TRUE(r.ok()) << text << ": " << r.errors[0].ToString();
    EXPECT_EQ(r.config.server.proxy_protocol, mode) << text;
  }
  // "off" needs no balancer; the list may still be there (ready for turning it on).
  EXPECT_TRUE(Parse("[server]\nproxy_protocol = \"off\"\n").ok());

  ConfigError e =
      OnlyError("[server]\nproxy_protocol = \"v3\"\nproxy_protocol_from = [\"10.0.0.5/32\"]\n");
  EXPECT_EQ(e.line, 2);
  EXPECT_EQ(e.column, 18);
  EXPECT_EQ(e.message,
            "server.proxy_protocol must be \"off\", \"v1\", \"v2\" or \"any\", got \"v3\"");
  e = OnlyError("[server]\nproxy_protocol = 2\n");
  EXPECT_EQ(e.message, "server.proxy_protocol: expected a string, got an integer");

  // A bad balancer network: at the element, as for deny_destinations and allow_clients.
  e = OnlyError(
      "[server]\nproxy_protocol = \"v1\"\n"
      "proxy_protocol_from = [\"10.0.0.5/32\", \"10.0.0.1/8\"]\n");
  EXPECT_EQ(e.line, 3);
  EXPECT_EQ(e.column, 39);
  EXPECT_NE(e.message.find("server.proxy_protocol_from: \"10.0.0.1/8\": "), std::string::npos)
      << e.message;
  EXPECT_NE(e.message.find("did you mean \"10.0.0.0/8\""), std::string::npos) << e.message;
  e = OnlyError("[server]\nproxy_protocol_from = [\"balancer\"]\n");
  EXPECT_EQ(e.column, 24);
  EXPECT_NE(e.message.find("server.proxy_protocol_from: \"balancer\""), std::string::npos);

  // On, but nobody may send it: every connection would be closed.
  for (const char* from : {"", "proxy_protocol_from = []\n"}) {
    e = OnlyError(std::string("[server]\nlisten = [\"0.0.0.0:3128\"]\nproxy_protocol = \"any\"\n") +
                  from);
    EXPECT_EQ(e.line, 3) << from;
    EXPECT_EQ(e.column, 18) << from;
    EXPECT_NE(e.message.find("server.proxy_protocol = \"any\" needs server.proxy_protocol_from"),
              std::string::npos)
        << e.message;
    EXPECT_NE(e.message.find("nobody could send it"), std::string::npos) << e.message;
  }
}

TEST(ConfigLoader, ClientListsPointAtTheBadElement) {
  ConfigError e = OnlyError("[server]\nallow_clients = [\"10.0.0.0/8\", \"10.0.0.1/8\"]\n");
  EXPECT_EQ(e.line, 2);
  EXPECT_EQ(e.column, 32);
  EXPECT_NE(e.message.find("server.allow_clients: \"10.0.0.1/8\""), std::string::npos) << e.message;
  e = OnlyError("[server]\ndeny_destinations = [\n  \"10.0.0.0/8\",\n  \"300.1.1.1\",\n]\n");
  EXPECT_EQ(e.line, 4);
  EXPECT_EQ(e.column, 3);
  e = OnlyError("[portal]\npac_bypass = [\"*.corp.example\", \"a b\"]\n");
  EXPECT_EQ(e.column, 33);
  EXPECT_EQ(e.message, "portal.pac_bypass: \"a b\" is not a host pattern or network");
  e = OnlyError(
      "[auth]\nstatic_users = [{ clients = [\"10.0.0.1\", \"10.0.0.0/33\"], user = \"k\" }]\n");
  EXPECT_EQ(e.line, 2);
  EXPECT_EQ(e.column, 42);
  EXPECT_NE(e.message.find("auth.static_users: \"10.0.0.0/33\""), std::string::npos);
}

TEST(ConfigLoader, RecordsWhereValuesAreWritten) {
  std::string dir = (std::filesystem::temp_directory_path() / "mgsrcXXXXXX").string();
  ASSERT_NE(mkdtemp(dir.data()), nullptr);
  std::ofstream(dir + "/finance.txt") << "# banks\n*.bank.example\n\n  pay.example\n";
  std::ofstream(dir + "/m.toml") << R"([server]
listen = ["127.0.0.1:3128", "[::1]:3128"]
state_dir = "state"
[ca.new]
cert = "new.pem"
key  = "new.key"
chain = ["root.pem"]
[category.finance]
file = "finance.txt"
[[canary]]
ca = "new"
clients = ["10.0.0.0/8", "10.2.0.0/16"]
[[rule]]
name = "r"
action = "decrypt"
hosts = ["a.example", "*.b.example"]
ports = [443, 8443]
clients = ["10.0.0.0/8"]
users = ["alice"]
groups = ["staff"]
categories = ["finance"]
ca = "new"
)";
  ConfigLoadResult r = ConfigLoader::LoadFile(dir + "/m.toml");
  ASSERT_TRUE(r.ok()) << r.errors[0].ToString();
  const Config& c = r.config;
  using P = rules::SourcePos;
  EXPECT_EQ(c.SourceOf("server.listen[1]"), (P{2, 29}));
  EXPECT_EQ(c.SourceOf("server.state_dir"), (P{3, 13}));
  EXPECT_EQ(c.SourceOf("ca.new"), (P{4, 1}));
  EXPECT_EQ(c.SourceOf("ca.new.key"), (P{6, 8}));
  EXPECT_EQ(c.SourceOf("ca.new.chain[0]"), (P{7, 10}));
  EXPECT_FALSE(c.SourceOf("server.workers").known());  // not in the file
  EXPECT_FALSE(c.SourceOf("rule[0].name").known());    // rules carry their own

  ASSERT_EQ(c.category_sources.size(), 1u);
  EXPECT_EQ(c.category_sources[0].table, (P{8, 1}));
  EXPECT_EQ(c.category_sources[0].file, dir + "/finance.txt");
  EXPECT_EQ(c.category_sources[0].patterns, (std::vector<P>{{2, 1}, {4, 3}}));

  ASSERT_EQ(c.canaries.size(), 1u);
  EXPECT_EQ(c.canaries[0].ca_source, (P{11, 6}));
  EXPECT_EQ(c.canaries[0].client_sources, (std::vector<P>{{12, 12}, {12, 26}}));

  ASSERT_EQ(c.rules.size(), 1u);
  const rules::RuleSource& s = c.rules[0].source;
  EXPECT_EQ(s.table, (P{13, 1}));
  EXPECT_EQ(s.name, (P{14, 8}));
  EXPECT_EQ(s.action, (P{15, 10}));
  EXPECT_EQ(s.hosts, (std::vector<P>{{16, 10}, {16, 23}}));
  EXPECT_EQ(s.ports, (std::vector<P>{{17, 10}, {17, 15}}));
  EXPECT_EQ(s.clients, (std::vector<P>{{18, 12}}));
  EXPECT_EQ(s.users, (std::vector<P>{{19, 10}}));
  EXPECT_EQ(s.groups, (std::vector<P>{{20, 11}}));
  EXPECT_EQ(s.categories, (std::vector<P>{{21, 15}}));
  EXPECT_EQ(s.ca, (P{22, 6}));
  std::filesystem::remove_all(dir);
}

TEST(ConfigLoader, ReportsEveryProblemInFileOrder) {
  ConfigLoadResult r = Parse("[server]\nworkers = -1\n[mint]\nleaf_days = 0\nfoo = 1\n");
  ASSERT_EQ(r.errors.size(), 3u);
  EXPECT_EQ(r.errors[0].line, 2);
  EXPECT_EQ(r.errors[1].line, 4);
  EXPECT_EQ(r.errors[2].line, 5);
  EXPECT_EQ(r.errors[2].ToString(), "/etc/mintgate/mintgate.toml:5:1: unknown key 'foo' in [mint]");
}

TEST(ConfigLoader, SyntaxErrorsHaveAPosition) {
  ConfigLoadResult r = Parse("[server]\nworkers = = 2\n");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].line, 2);
  EXPECT_NE(r.errors[0].message.find("TOML syntax"), std::string::npos);
}

TEST(ConfigLoader, CategoryFilesAreReadRelativeToTheConfig) {
  std::string dir = (std::filesystem::temp_directory_path() / "mgcfgXXXXXX").string();
  ASSERT_NE(mkdtemp(dir.data()), nullptr);
  std::filesystem::create_directory(dir + "/categories");
  std::ofstream(dir + "/categories/finance.txt")
      << "# banks\n*.bank.example\n\n  pay.example.com  # payments\n.broker.example\n";
  std::ofstream(dir + "/mintgate.toml") << "[category.finance]\nfile = \"categories/finance.txt\"\n"
                                        << "[category.health]\nfile = \"missing.txt\"\n";
  ConfigLoadResult r = ConfigLoader::LoadFile(dir + "/mintgate.toml");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].line, 4);
  EXPECT_NE(r.errors[0].message.find("category.health: cannot read " + dir + "/missing.txt"),
            std::string::npos)
      << r.errors[0].message;
  ASSERT_EQ(r.config.categories.size(), 1u);
  EXPECT_EQ(r.config.categories[0].patterns,
            (std::vector<std::string>{"*.bank.example", "pay.example.com", ".broker.example"}));
  std::filesystem::remove_all(dir);
}

TEST(ConfigLoader, UnreadableFileIsAnError) {
  ConfigLoadResult r = ConfigLoader::LoadFile("/nonexistent/mintgate.toml");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].ToString(),
            "/nonexistent/mintgate.toml: cannot read: No such file or directory");
}

TEST(ConfigLoader, PortalCanaryReadinessAndExpiredCa) {
  ConfigLoadResult defaults = Parse("");
  ASSERT_TRUE(defaults.ok());
  EXPECT_TRUE(defaults.config.portal.enabled);
  EXPECT_EQ(defaults.config.portal.host, "mintgate.portal");
  EXPECT_TRUE(defaults.config.canaries.empty());
  EXPECT_EQ(defaults.config.inspection.on_ca_expired, OnCaExpired::kBlock);
  EXPECT_EQ(defaults.config.readiness.max_clients, 10000u);

  ConfigLoadResult r = Parse(R"(
[inspection]
on_ca_expired = "tunnel"
[portal]
host = "CA.Corp.Example"
pac_bypass = ["*.corp.example", "10.0.0.0/8"]
[readiness]
max_clients = 50
[[canary]]
ca = "new"
clients = ["10.1.0.0/16"]
percent = 10
fallback = false
)");
  ASSERT_TRUE(r.ok()) << r.errors[0].ToString();
  EXPECT_EQ(r.config.inspection.on_ca_expired, OnCaExpired::kTunnel);
  EXPECT_EQ(r.config.portal.host, "ca.corp.example");
  EXPECT_EQ(r.config.portal.pac_bypass.size(), 2u);
  EXPECT_EQ(r.config.readiness.max_clients, 50u);
  ASSERT_EQ(r.config.canaries.size(), 1u);
  EXPECT_EQ(r.config.canaries[0].ca, "new");
  EXPECT_EQ(r.config.canaries[0].percent, 10);
  EXPECT_FALSE(r.config.canaries[0].fallback);
  EXPECT_EQ(r.config.canaries[0].line, 9);

  EXPECT_EQ(OnlyError("[inspection]\non_ca_expired = \"allow\"\n").line, 2);
  EXPECT_EQ(OnlyError("[[canary]]\nclients = [\"10.0.0.0/8\"]\n").line, 1);
  EXPECT_EQ(OnlyError("[[canary]]\nca = \"x\"\npercent = 101\n").line, 3);
  EXPECT_EQ(OnlyError("[portal]\nhost = \"a b\"\n").line, 2);
}

}  // namespace
}  // namespace mintgate::proxy

namespace mintgate::proxy {
namespace {

TEST(ConfigLoader, ReadsAuth) {
  ConfigLoadResult r = Parse(R"(
[auth]
schemes = ["negotiate", "basic"]
login_ca = "new"
login_ttl = 3600
realm = "Corp"
keytab = "http.keytab"
service_principal = "HTTP/gw.example.com@EXAMPLE.COM"
strip_realm = false
htpasswd = "users.htpasswd"
groups_file = "/srv/groups.txt"
static_users = [{ clients = ["10.9.0.0/24", "10.8.0.1"], user = "kiosk" }]
[auth.ldap]
url = "ldaps://dc1.example.com"
user_dn = "uid={user},ou=people,dc=example,dc=com"
group_base = "ou=groups,dc=example,dc=com"
cache_ttl = 60
)");
  ASSERT_TRUE(r.ok()) << r.errors[0].ToString();
  const AuthConfig& a = r.config.auth;
  EXPECT_EQ(a.schemes, (std::vector<AuthScheme>{AuthScheme::kNegotiate, AuthScheme::kBasic}));
  EXPECT_EQ(a.unidentified, Unidentified::kChallenge);  // the default once schemes are set
  EXPECT_EQ(a.login_ttl_ms, 3'600'000u);
  EXPECT_EQ(a.keytab, "/etc/mintgate/http.keytab");
  EXPECT_EQ(a.htpasswd, "/etc/mintgate/users.htpasswd");
  EXPECT_EQ(a.groups_file, "/srv/groups.txt");
  EXPECT_FALSE(a.strip_realm);
  ASSERT_EQ(a.static_users.size(), 1u);
  EXPECT_EQ(a.static_users[0].user, "kiosk");
  EXPECT_EQ(a.static_users[0].clients.size(), 2u);
  EXPECT_EQ(a.ldap.url, "ldaps://dc1.example.com");
  EXPECT_EQ(a.ldap.cache_ttl_ms, 60'000u);
  EXPECT_EQ(a.ldap.group_filter, "(member={dn})");
  EXPECT_TRUE(a.Enabled());
  EXPECT_FALSE(Parse("").config.auth.Enabled());
}

TEST(ConfigLoader, AuthMistakesPointAtTheKey) {
  EXPECT_NE(OnlyError("[auth]\nschemes = [\"ntlm\"]\n").message.find("\"ntlm\" is not a scheme"),
            std::string::npos);
  ConfigError e = OnlyError("[auth]\nunidentified = \"challenge\"\n");
  EXPECT_NE(e.message.find("needs auth.schemes"), std::string::npos) << e.message;
  EXPECT_EQ(e.line, 2);
  e = OnlyError("[auth]\nschemes = [\"basic\"]\n");
  EXPECT_NE(e.message.find("set auth.htpasswd or [auth.ldap] url"), std::string::npos) << e.message;
  e = OnlyError("[auth]\nschemes = [\"negotiate\"]\n");
  EXPECT_NE(e.message.find("auth.keytab"), std::string::npos) << e.message;
  e = OnlyError(
      "[auth]\nschemes = [\"basic\"]\n[auth.ldap]\nurl = \"ldap://dc\"\nuser_dn = "
      "\"uid={user}\"\n");
  EXPECT_NE(e.message.find("without starttls"), std::string::npos) << e.message;
  EXPECT_EQ(e.line, 4);
  e = OnlyError(
      "[auth]\nschemes = [\"basic\"]\n[auth.ldap]\nurl = \"ldaps://dc\"\nuser_dn = \"uid=x\"\n");
  EXPECT_NE(e.message.find("must contain {user}"), std::string::npos) << e.message;
  e = OnlyError("[auth]\nstatic_users = [{ clients = [\"10.0.0.0/33\"], user = \"k\" }]\n");
  EXPECT_NE(e.message.find("10.0.0.0/33"), std::string::npos) << e.message;
  e = OnlyError("[auth]\nunidentified = \"decrypt-to-login\"\n");
  EXPECT_NE(e.message.find("the portal's login needs"), std::string::npos) << e.message;
  e = OnlyError("[auth]\nschemes = [\"basic\"]\nhtpasswd = \"f\"\nrealm = \"a\\\"b\"\n");
  EXPECT_NE(e.message.find("auth.realm"), std::string::npos) << e.message;
}

}  // namespace
}  // namespace mintgate::proxy
