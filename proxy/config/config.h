// The gateway's configuration (SPEC §4), as typed structures owned by the modules that use
// them. Every field has the default an empty file gets.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rules/rule.h"
#include "tls/cert_loader.h"
#include "tls/leaf.h"

namespace mintgate::proxy {

struct HostPort {
  std::string host;  // without brackets for IPv6
  std::uint16_t port = 0;
  std::string ToString() const;  // "[::1]:3128" for IPv6
};

// An inclusive range of TCP ports ("1025-65535" in the file, or a single port).
struct PortRange {
  std::uint16_t low = 0;
  std::uint16_t high = 0;
  bool Contains(std::uint16_t port) const { return port >= low && port <= high; }
  friend bool operator==(const PortRange&, const PortRange&) = default;
};

struct ServerConfig {
  std::vector<HostPort> listen{{"127.0.0.1", 3128}};
  int workers = 0;  // 0: one per core
  std::vector<std::string> allow_clients{"127.0.0.0/8", "::1/128"};
  std::string state_dir = "mintgate-state";
  bool allow_loopback_upstreams = false;
  // CIDRs the gateway never connects to, on top of the built-in list (DestinationPolicy).
  std::vector<std::string> deny_destinations;
  // Ports absolute-form http:// requests may go to (Squid's Safe_ports idea); others get 403.
  std::vector<PortRange> http_ports{{80, 80}, {443, 443}, {1025, 65535}};
  // Client connections open at once, over all workers, and per client address (0: no limit).
  // Beyond them a new connection gets a 503 and is closed.
  std::size_t max_connections = 10000;
  std::size_t max_connections_per_client = 1000;
  // PROXY protocol header (HAProxy's v1/v2) expected first on every client connection, so a
  // load balancer in front can pass the real client address.
  enum class ProxyProtocol { kOff, kV1, kV2, kAny };
  ProxyProtocol proxy_protocol = ProxyProtocol::kOff;
  // Peers (CIDRs) allowed to send it: the balancers. A connection from anyone else, or without
  // a valid header, is closed. Required (non-empty) when proxy_protocol is not "off".
  std::vector<std::string> proxy_protocol_from;
};

// How long each state of a connection may last without progress, in milliseconds (the file
// says seconds). Every state that holds a socket has one (SPEC §5 and the security issue).
struct TimeoutsConfig {
  std::uint64_t request_head_ms = 10'000;        // first byte of a head to its end -> 408
  std::uint64_t client_idle_ms = 60'000;         // a kept-alive client between requests
  std::uint64_t connect_ms = 10'000;             // TCP connect to the origin -> 504
  std::uint64_t tls_handshake_ms = 10'000;       // either TLS handshake, and the ClientHello
  std::uint64_t origin_first_byte_ms = 120'000;  // request sent, no response yet -> 504
  std::uint64_t origin_idle_ms = 120'000;        // mid-response, no byte either way -> close
  std::uint64_t tunnel_idle_ms = 600'000;        // tunnels and upgraded (101) connections
  std::uint64_t leaf_wait_ms = 10'000;           // waiting for a minted leaf
  std::uint64_t auth_ms = 10'000;                // checking a credential (LDAP, Kerberos) -> 503
  std::uint64_t linger_ms = 2'000;               // closing: flushing the answer, then FIN
  std::uint64_t tcp_keepalive_ms = 60'000;       // idle time before keepalive probes; 0: off
};

struct DnsConfig {
  std::vector<HostPort> servers;  // empty: the system's resolv.conf
};

struct AdminConfig {
  HostPort listen{"127.0.0.1", 9090};
  // The bearer token every endpoint but /healthz requires. "": state_dir/admin.token,
  // generated (mode 0600) at first start.
  std::string token_file;
};

enum class UpstreamCertErrors { kBlock, kUntrusted };
// What a decrypt decision does when the CA that would sign has expired (it never signs).
enum class OnCaExpired { kBlock, kTunnel };

struct InspectionConfig {
  bool enabled = true;
  std::string default_ca = "default";
  UpstreamCertErrors upstream_cert_errors = UpstreamCertErrors::kBlock;
  std::vector<std::string> extra_trust;
  std::vector<std::uint16_t> connect_ports{443};
  OnCaExpired on_ca_expired = OnCaExpired::kBlock;
};

// The client portal (SPEC §6): CA downloads and /proxy.pac, plain HTTP, on a reserved host
// name and on the proxy's own listen addresses.
struct PortalConfig {
  bool enabled = true;
  std::string host = "mintgate.portal";
  // Hosts and networks /proxy.pac sends DIRECT: host patterns ("*.corp.example", "intranet")
  // and CIDRs ("10.0.0.0/8").
  std::vector<std::string> pac_bypass{"localhost", "127.0.0.0/8", "::1/128"};
};

// [auth]: who is behind a connection (proxy authentication, groups, decrypt-to-login).
enum class AuthScheme { kNegotiate, kBasic };
// What happens to a request whose user is not known (no credential, no static or portal
// binding for its address).
enum class Unidentified {
  kChallenge,       // 407 with one Proxy-Authenticate per offered scheme
  kDeny,            // 403
  kAllow,           // the rules decide without a user
  kDecryptToLogin,  // HTTPS decrypted (whatever the rules say) to send it to the portal's login
};

// static_users: requests from these clients are this user, without a credential (kiosks).
struct StaticUser {
  std::vector<std::string> clients;  // CIDRs or single addresses
  std::string user;
  int line = 0;
};

// [auth.ldap]: Basic credentials checked by a simple bind as the user, and group membership.
struct LdapConfig {
  std::string url;        // "ldap://host:389" (with starttls) or "ldaps://host:636"; "" = no LDAP
  bool starttls = false;  // ldap:// only: StartTLS before binding (a plain bind is refused)
  // The user's DN from a template ("uid={user},ou=people,dc=example,dc=com"), or found by a
  // search under search_base with search_filter ("(uid={user})"), bound as bind_dn with the
  // password read from bind_password_file (0600) when the directory refuses anonymous search.
  std::string user_dn;
  std::string search_base;
  std::string search_filter = "(uid={user})";
  std::string bind_dn;
  std::string bind_password_file;
  // Groups: entries under group_base matching group_filter ({dn}: the user's DN, {user}: the
  // name), named by group_attribute.
  std::string group_base;
  std::string group_filter = "(member={dn})";
  std::string group_attribute = "cn";
  std::string ca_file;                   // "" = the system store
  std::uint64_t cache_ttl_ms = 300'000;  // group lists and verified binds
  std::uint64_t timeout_ms = 5'000;      // connect and each operation
};

struct AuthConfig {
  std::vector<AuthScheme> schemes;  // offered in this order in a 407; empty = no proxy auth
  Unidentified unidentified = Unidentified::kAllow;  // "challenge" once schemes are set
  std::string login_ca;  // decrypt-to-login's profile; "" = inspection.default_ca
  std::uint64_t login_ttl_ms = 28'800'000;  // a portal login binds its client address this long
  std::string realm = "mintgate";           // Basic's realm in the 407
  std::string keytab;                       // Negotiate: the keytab with the service's key
  std::string service_principal;            // "" = any HTTP/ key in the keytab
  bool strip_realm = true;                  // Negotiate: "alice@EXAMPLE.COM" -> "alice"
  std::string htpasswd;                     // Basic against a local file
  bool allow_weak_hashes = false;           // accept MD5-crypt ($apr1$, $1$) and {SHA} entries
  std::string groups_file;                  // "group: user, user" lines
  std::vector<StaticUser> static_users;
  LdapConfig ldap;
  std::uint64_t credential_cache_ms = 300'000;  // a verified Basic credential is reused this long
  int line = 0;                                 // where [auth] starts (0: absent)
  bool Enabled() const {
    return !schemes.empty() || !static_users.empty() ||
           unidentified == Unidentified::kDecryptToLogin;
  }
  bool Offers(AuthScheme scheme) const {
    for (AuthScheme s : schemes) {
      if (s == scheme) return true;
    }
    return false;
  }
};

// [[canary]]: decrypt rules sign with `ca` for these clients before any cutover, so client
// readiness is measured on real traffic.
struct CanaryConfig {
  std::string ca;
  std::vector<std::string> clients{"0.0.0.0/0", "::/0"};  // CIDRs
  int percent = 100;     // share of those clients (by a stable hash of the address)
  bool fallback = true;  // a client seen rejecting `ca` gets the rule's own profile again
  int line = 0;
  // Where `ca` and each of `clients` were written (0: not in the file, e.g. the default or a
  // canary from the schedule overlay); client_sources is parallel to clients.
  rules::SourcePos ca_source;
  std::vector<rules::SourcePos> client_sources;
};

struct ReadinessConfig {
  std::size_t max_clients = 10000;  // client addresses remembered (least recently seen go)
};

struct CaProfileConfig {
  tls::CaProfileSpec spec;  // paths already resolved against the config file's folder
  std::optional<rules::Instant> retire_at;
  std::string successor;
  int line = 0;
};

struct MintConfig {
  tls::LeafKeyType leaf_key = tls::LeafKeyType::kEcdsaP256;
  int leaf_days = 30;
  std::size_t cache_entries = 100000;
  bool signing_intermediate = false;
  // When the origin's verified certificate covers a host only through "*.parent", mint the
  // leaf for "*.parent" too: the client sees the server's names and one leaf serves them all.
  bool mirror_wildcards = true;
  // Mints queued and not yet started, over all workers; beyond it a connection that needs a
  // new leaf is refused (and counted) instead of growing the queue without bound.
  std::size_t max_pending = 1000;
};

enum class LogFormat { kJson, kSquid };

struct LogConfig {
  std::string access = "-";
  LogFormat format = LogFormat::kJson;
};

struct Config {
  std::string file;  // "" for the embedded default
  ServerConfig server;
  DnsConfig dns;
  AdminConfig admin;
  TimeoutsConfig timeouts;
  InspectionConfig inspection;
  std::vector<CaProfileConfig> cas;  // in file order
  PortalConfig portal;
  std::vector<CanaryConfig> canaries;  // in file order; the first that covers a client applies
  ReadinessConfig readiness;
  MintConfig mint;
  AuthConfig auth;
  std::vector<rules::Rule> rules;           // in file order, without the implicit default
  std::vector<rules::Category> categories;  // patterns loaded from their files
  std::vector<std::string> category_files;  // parallel to categories
  // Parallel to categories: where each was defined and each pattern's line in its file.
  std::vector<rules::CategorySource> category_sources;
  LogConfig log;
  // Where the file writes each value outside [[rule]] and [[canary]] (whose entries carry
  // their own positions), by its key: "server.state_dir", "ca.new.cert", "server.listen[1]"
  // for an array's element, "ca.new" for a table. What is not in the file is not here.
  std::map<std::string, rules::SourcePos, std::less<>> sources;
  // sources' entry for `key`, or an unknown position.
  rules::SourcePos SourceOf(std::string_view key) const;
};

// A problem with a configuration, at a position when it has one.
struct ConfigError {
  std::string file;
  int line = 0;    // 0: no position
  int column = 0;  // 0: no column
  std::string message;
  std::string ToString() const;  // "file:line:column: message"
};

struct ConfigLoadResult {
  Config config;
  std::vector<ConfigError> errors;  // every problem found, in file order; empty when valid
  bool ok() const { return errors.empty(); }
};

}  // namespace mintgate::proxy
