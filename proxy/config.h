// The gateway's configuration (SPEC §4), as typed structures owned by the modules that use
// them. Every field has the default an empty file gets.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
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

struct ServerConfig {
  std::vector<HostPort> listen{{"127.0.0.1", 3128}};
  int workers = 0;  // 0: one per core
  std::vector<std::string> allow_clients{"127.0.0.0/8", "::1/128"};
  std::string state_dir = "mintgate-state";
  bool allow_loopback_upstreams = false;
};

struct DnsConfig {
  std::vector<HostPort> servers;  // empty: the system's resolv.conf
};

struct AdminConfig {
  HostPort listen{"127.0.0.1", 9090};
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

// [[canary]]: decrypt rules sign with `ca` for these clients before any cutover, so client
// readiness is measured on real traffic.
struct CanaryConfig {
  std::string ca;
  std::vector<std::string> clients{"0.0.0.0/0", "::/0"};  // CIDRs
  int percent = 100;     // share of those clients (by a stable hash of the address)
  bool fallback = true;  // a client seen rejecting `ca` gets the rule's own profile again
  int line = 0;
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
  InspectionConfig inspection;
  std::vector<CaProfileConfig> cas;  // in file order
  PortalConfig portal;
  std::vector<CanaryConfig> canaries;  // in file order; the first that covers a client applies
  ReadinessConfig readiness;
  MintConfig mint;
  std::vector<rules::Rule> rules;           // in file order, without the implicit default
  std::vector<rules::Category> categories;  // patterns loaded from their files
  std::vector<std::string> category_files;  // parallel to categories
  LogConfig log;
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
