#include "proxy/session/worker_metrics.h"

#include <openssl/x509_vfy.h>

#include <algorithm>
#include <cstdio>

namespace mintgate::proxy {

void LocalHistogram::ObserveUs(std::uint64_t us) {
  const auto* it = std::lower_bound(kBoundsUs.begin(), kBoundsUs.end(), us);
  buckets_[static_cast<std::size_t>(it - kBoundsUs.begin())].Add();
  sum_us_.Add(us);
}

void LabelledCounters::Add(std::string_view label) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = counts_.find(label);
  if (it == counts_.end()) {
    if (counts_.size() >= kMaxLabels) {
      ++counts_["other"];
      return;
    }
    it = counts_.emplace(std::string(label), 0).first;
  }
  ++it->second;
}

std::map<std::string, std::uint64_t> LabelledCounters::Snapshot() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return {counts_.begin(), counts_.end()};
}

namespace {

constexpr std::array<std::string_view, kActionCount> kActionNames = {
    "decrypt", "tunnel", "block", "http", "portal", "auth", "other"};
constexpr std::array<std::string_view, kRefusalCount> kRefusalNames = {
    "allow_clients", "max_connections", "max_connections_per_client", "proxy_header"};
constexpr std::array<std::string_view, kOriginFailureCount> kOriginFailureNames = {
    "expired", "not_yet_valid", "hostname_mismatch", "self_signed", "unknown_issuer",
    "revoked", "other_verify",  "handshake",         "closed",      "timeout"};
constexpr std::array<std::string_view, 6> kStatusClasses = {"none", "1xx", "2xx",
                                                            "3xx",  "4xx", "5xx"};
constexpr std::array<std::string_view, 3> kVerdictNames = {"trusts", "rejects", "unused"};

// Prometheus label values: backslash, double quote and line feed escaped.
std::string LabelValue(std::string_view text) {
  std::string out;
  for (const char c : text) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

void Header(std::ostream& out, const char* name, const char* type, const char* help) {
  out << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n';
}

template <typename Get>
std::uint64_t Sum(const std::vector<const WorkerMetrics*>& workers, Get get) {
  std::uint64_t total = 0;
  for (const WorkerMetrics* w : workers) total += get(*w);
  return total;
}

std::string Seconds(std::uint64_t us) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6f", static_cast<double>(us) / 1e6);
  return buf;
}

void Histogram(std::ostream& out, const std::vector<const WorkerMetrics*>& workers,
               const char* name, const char* help,
               const LocalHistogram& (*pick)(const WorkerMetrics&)) {
  Header(out, name, "histogram", help);
  constexpr std::size_t n = LocalHistogram::kBoundsUs.size();
  std::array<std::uint64_t, n + 1> counts{};
  std::uint64_t sum_us = 0;
  for (const WorkerMetrics* w : workers) {
    const LocalHistogram& h = pick(*w);
    for (std::size_t i = 0; i <= n; ++i) counts[i] += h.buckets()[i].value();
    sum_us += h.sum_us();
  }
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < n; ++i) {
    cumulative += counts[i];
    char le[32];
    std::snprintf(le, sizeof le, "%g", static_cast<double>(LocalHistogram::kBoundsUs[i]) / 1e6);
    out << name << "_bucket{le=\"" << le << "\"} " << cumulative << '\n';
  }
  cumulative += counts[n];
  out << name << "_bucket{le=\"+Inf\"} " << cumulative << '\n'
      << name << "_sum " << Seconds(sum_us) << '\n'
      << name << "_count " << cumulative << '\n';
}

void Labelled(std::ostream& out, const std::vector<const WorkerMetrics*>& workers, const char* name,
              const char* label, const char* help,
              const LabelledCounters& (*pick)(const WorkerMetrics&)) {
  Header(out, name, "counter", help);
  std::map<std::string, std::uint64_t> total;
  for (const WorkerMetrics* w : workers) {
    for (const auto& [key, count] : pick(*w).Snapshot()) total[key] += count;
  }
  for (const auto& [key, count] : total) {
    out << name << '{' << label << "=\"" << LabelValue(key) << "\"} " << count << '\n';
  }
}

}  // namespace

ActionIndex ActionIndexOf(std::string_view action) {
  for (std::size_t i = 0; i + 1 < kActionCount; ++i) {
    if (kActionNames[i] == action) return static_cast<ActionIndex>(i);
  }
  return ActionIndex::kOther;
}

std::string_view ActionName(ActionIndex action) {
  return kActionNames[static_cast<std::size_t>(action)];
}

OriginFailure OriginFailureOf(long verify_result) {
  switch (verify_result) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
    case X509_V_ERR_CRL_HAS_EXPIRED:
      return OriginFailure::kExpired;
    case X509_V_ERR_CERT_NOT_YET_VALID:
      return OriginFailure::kNotYetValid;
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
      return OriginFailure::kHostnameMismatch;
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
      return OriginFailure::kSelfSigned;
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
      return OriginFailure::kUnknownIssuer;
    case X509_V_ERR_CERT_REVOKED:
      return OriginFailure::kRevoked;
    default:
      return OriginFailure::kOtherVerify;
  }
}

void WriteWorkerMetrics(std::ostream& out, const std::vector<const WorkerMetrics*>& workers) {
  Header(out, "mintgate_connections_accepted_total", "counter",
         "Client connections accepted by the workers.");
  out << "mintgate_connections_accepted_total "
      << Sum(workers, [](const WorkerMetrics& w) { return w.accepted.value(); }) << '\n';
  Header(out, "mintgate_connections_active", "gauge",
         "Client connections open now, by worker (SO_REUSEPORT spreads them).");
  for (std::size_t i = 0; i < workers.size(); ++i) {
    const std::uint64_t accepted = workers[i]->accepted.value();
    const std::uint64_t closed = workers[i]->closed.value();
    out << "mintgate_connections_active{worker=\"" << i << "\"} "
        << (accepted > closed ? accepted - closed : 0) << '\n';
  }
  Header(out, "mintgate_connections_refused_total", "counter",
         "Client connections closed before their first request, by reason: allow_clients, "
         "max_connections, max_connections_per_client, proxy_header.");
  for (std::size_t r = 0; r < kRefusalCount; ++r) {
    out << "mintgate_connections_refused_total{reason=\"" << kRefusalNames[r] << "\"} "
        << Sum(workers, [r](const WorkerMetrics& w) { return w.refused[r].value(); }) << '\n';
  }
  Header(out, "mintgate_requests_total", "counter",
         "Access-log records (each request, and each CONNECT or tunnel once) by action and "
         "status class (none: closed without a status).");
  for (std::size_t a = 0; a < kActionCount; ++a) {
    for (std::size_t c = 0; c < kStatusClasses.size(); ++c) {
      out << "mintgate_requests_total{action=\"" << kActionNames[a] << "\",code=\""
          << kStatusClasses[c] << "\"} "
          << Sum(workers, [a, c](const WorkerMetrics& w) { return w.requests[a][c].value(); })
          << '\n';
    }
  }
  Header(out, "mintgate_client_handshakes_total", "counter",
         "TLS handshakes with clients on decrypted connections, by result.");
  out << "mintgate_client_handshakes_total{result=\"ok\"} "
      << Sum(workers, [](const WorkerMetrics& w) { return w.client_handshakes_ok.value(); })
      << "\nmintgate_client_handshakes_total{result=\"failed\"} "
      << Sum(workers, [](const WorkerMetrics& w) { return w.client_handshakes_failed.value(); })
      << '\n';
  Header(out, "mintgate_client_verdicts_total", "counter",
         "Clients' verdicts on their leaf (readiness): trusts, rejects, unused (a spare "
         "connection).");
  for (std::size_t v = 0; v < kVerdictNames.size(); ++v) {
    out << "mintgate_client_verdicts_total{verdict=\"" << kVerdictNames[v] << "\"} "
        << Sum(workers, [v](const WorkerMetrics& w) { return w.verdicts[v].value(); }) << '\n';
  }
  Labelled(out, workers, "mintgate_client_alerts_total", "alert",
           "TLS alerts received from clients on decrypted connections, by name (unknown_ca: "
           "the client does not trust the CA).",
           [](const WorkerMetrics& w) -> const LabelledCounters& { return w.client_alerts; });
  Header(out, "mintgate_origin_verify_failures_total", "counter",
         "Origins not accepted on decrypted connections, by reason.");
  for (std::size_t r = 0; r < kOriginFailureCount; ++r) {
    out << "mintgate_origin_verify_failures_total{reason=\"" << kOriginFailureNames[r] << "\"} "
        << Sum(workers, [r](const WorkerMetrics& w) { return w.origin_failures[r].value(); })
        << '\n';
  }
  Labelled(out, workers, "mintgate_dns_failures_total", "reason",
           "Origin names that did not resolve, by reason.",
           [](const WorkerMetrics& w) -> const LabelledCounters& { return w.dns_failures; });
  Header(out, "mintgate_received_bytes_total", "counter",
         "Bytes read from clients and from origins (TLS records included).");
  out << "mintgate_received_bytes_total{peer=\"client\"} "
      << Sum(workers, [](const WorkerMetrics& w) { return w.client_bytes.read.value(); })
      << "\nmintgate_received_bytes_total{peer=\"origin\"} "
      << Sum(workers, [](const WorkerMetrics& w) { return w.origin_bytes.read.value(); }) << '\n';
  Header(out, "mintgate_sent_bytes_total", "counter",
         "Bytes written to clients and to origins (TLS records included).");
  out << "mintgate_sent_bytes_total{peer=\"client\"} "
      << Sum(workers, [](const WorkerMetrics& w) { return w.client_bytes.written.value(); })
      << "\nmintgate_sent_bytes_total{peer=\"origin\"} "
      << Sum(workers, [](const WorkerMetrics& w) { return w.origin_bytes.written.value(); })
      << '\n';
  Header(out, "mintgate_upstream_connections_total", "counter",
         "Connections to origins by how they were had: new (connected) or reused (from the "
         "idle pool).");
  out << "mintgate_upstream_connections_total{kind=\"new\"} "
      << Sum(workers, [](const WorkerMetrics& w) { return w.upstream_connects.value(); })
      << "\nmintgate_upstream_connections_total{kind=\"reused\"} "
      << Sum(workers, [](const WorkerMetrics& w) { return w.upstream_reused.value(); }) << '\n';
  Header(out, "mintgate_upstream_pool_idle", "gauge",
         "Idle origin connections kept for reuse, over all workers.");
  out << "mintgate_upstream_pool_idle "
      << Sum(workers, [](const WorkerMetrics& w) { return w.pool_idle.value(); }) << '\n';
  Histogram(out, workers, "mintgate_request_duration_seconds",
            "From a request's head to the end of its exchange (requests, not tunnels).",
            [](const WorkerMetrics& w) -> const LocalHistogram& { return w.request_duration; });
  Histogram(out, workers, "mintgate_time_to_first_byte_seconds",
            "From a request's head to the first byte of the origin's response.",
            [](const WorkerMetrics& w) -> const LocalHistogram& { return w.time_to_first_byte; });
  Histogram(out, workers, "mintgate_leaf_mint_seconds",
            "From a leaf's request to its arrival, for leaves minted (cache misses; waiting for "
            "a signing thread included).",
            [](const WorkerMetrics& w) -> const LocalHistogram& { return w.leaf_mint; });
  Histogram(out, workers, "mintgate_origin_handshake_seconds",
            "TLS handshakes with origins that were verified.",
            [](const WorkerMetrics& w) -> const LocalHistogram& { return w.origin_handshake; });
}

}  // namespace mintgate::proxy
