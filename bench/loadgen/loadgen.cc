// mintgate_loadgen: the lab's load generator.
//
// Drives an HTTP forward proxy with CONNECT + TLS + HTTP/1.1 requests (or connects TLS straight
// to an origin for the "direct" baseline), verifies every presented chain against a CA file and
// reports throughput, latency percentiles and errors by kind. Standalone on purpose: it links
// only OpenSSL and threads, so it can measure any proxy, not only ours.
//
// Each thread runs one edge-triggered epoll loop over its share of the connections; OpenSSL
// works directly on the non-blocking socket fd. Every connection does a full handshake (no
// session resumption, no tickets), like a browser visiting a new site.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "proxy/log/json_text.h"

namespace {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;

double MsBetween(TimePoint from, TimePoint to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

Clock::duration Seconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

// ---------------------------------------------------------------------------------------------
// Command line

struct Options {
  bool proxy_mode = false;
  std::string target;  // as given, for the report
  std::string target_host;
  uint16_t target_port = 0;
  std::string host = "lab.test";
  bool host_given = false;
  uint64_t hosts = 0;
  std::string host_suffix = "lab.test";
  bool unique_hosts = false;
  std::string run_id;  // the <run-hex> of --unique-hosts names; random when empty
  uint16_t port = 443;
  std::string cafile;
  std::string path = "/";
  uint64_t requests_per_conn = 1;
  uint64_t concurrency = 8;
  double duration_s = 10;
  uint64_t max_connections = 0;
  uint64_t threads = 1;
  double timeout_s = 10;
  double warmup_s = 0;
  bool json = false;
};

constexpr const char* kUsage =
    "usage: mintgate_loadgen (--proxy HOST:PORT | --direct HOST:PORT)\n"
    "    [--host NAME]             one host name for every connection (default lab.test)\n"
    "    [--hosts N]               connection i uses host h<i mod N>.<suffix>\n"
    "    [--host-suffix S]         suffix for --hosts and --unique-hosts (default lab.test)\n"
    "    [--unique-hosts]          every connection a never-seen host u<run-hex>-<i>.<suffix>\n"
    "                              (i counts from 0, warm-up connections included, so\n"
    "                              --max-connections M without --warmup keeps i below M;\n"
    "                              <run-hex> is random per run)\n"
    "    [--run-id HEX]            <run-hex> for --unique-hosts (1-16 of 0-9a-f), so that the\n"
    "                              names are known beforehand (an origin with a certificate\n"
    "                              per name); a fresh id per run keeps the hosts never-seen\n"
    "    [--port P]                port in CONNECT (default 443)\n"
    "    --cafile FILE             verify every chain against this CA (required)\n"
    "    [--path /PATH]            request path (default /)\n"
    "    [--requests-per-conn K]   keep-alive requests per connection (default 1)\n"
    "    [--concurrency C]         connections in flight at once (default 8)\n"
    "    [--duration SECONDS]      stop starting connections after this (default 10)\n"
    "    [--max-connections M]     stop after M connections (0 = unlimited, default)\n"
    "    [--threads T]             event-loop threads (default 1)\n"
    "    [--timeout SECONDS]       per-operation timeout (default 10)\n"
    "    [--warmup SECONDS]        run this long first without recording (default 0)\n"
    "    [--json]                  print the summary as one JSON object\n";

[[noreturn]] void UsageError(const std::string& message) {
  std::fprintf(stderr, "mintgate_loadgen: %s\n%s", message.c_str(), kUsage);
  std::exit(2);
}

uint64_t ParseCount(const std::string& name, const std::string& value, uint64_t min, uint64_t max) {
  if (value.empty() || value.find_first_not_of("0123456789") != std::string::npos) {
    UsageError(name + " wants a whole number, got '" + value + "'");
  }
  errno = 0;
  const unsigned long long v = std::strtoull(value.c_str(), nullptr, 10);
  if (errno != 0 || v < min || v > max) {
    UsageError(name + " must be between " + std::to_string(min) + " and " + std::to_string(max) +
               ", got '" + value + "'");
  }
  return v;
}

double ParseSeconds(const std::string& name, const std::string& value, bool allow_zero) {
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(value.c_str(), &end);
  if (value.empty() || end == nullptr || *end != '\0' || errno != 0 || !std::isfinite(v) || v < 0 ||
      (!allow_zero && v == 0) || v > 1e7) {
    UsageError(name + " wants a number of seconds" + (allow_zero ? "" : " above 0") + ", got '" +
               value + "'");
  }
  return v;
}

// "HOST:PORT" or "[V6]:PORT".
void ParseHostPort(const std::string& name, const std::string& value, Options& o) {
  std::string host;
  std::string port;
  if (!value.empty() && value[0] == '[') {
    const size_t close = value.find(']');
    if (close == std::string::npos || close + 1 >= value.size() || value[close + 1] != ':') {
      UsageError(name + " wants HOST:PORT or [IPV6]:PORT, got '" + value + "'");
    }
    host = value.substr(1, close - 1);
    port = value.substr(close + 2);
  } else {
    const size_t colon = value.rfind(':');
    if (colon == std::string::npos || colon == 0) {
      UsageError(name + " wants HOST:PORT, got '" + value + "'");
    }
    host = value.substr(0, colon);
    port = value.substr(colon + 1);
  }
  if (host.empty()) UsageError(name + " has an empty host in '" + value + "'");
  o.target = value;
  o.target_host = host;
  o.target_port = static_cast<uint16_t>(ParseCount(name + " port", port, 1, 65535));
}

bool ValidHostName(std::string_view h) {
  if (h.empty() || h.size() > 253) return false;
  for (const char c : h) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.' || c == '_';
    if (!ok) return false;
  }
  return true;
}

Options ParseOptions(int argc, char** argv) {
  Options o;
  bool have_target = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::optional<std::string> inline_value;
    if (arg.rfind("--", 0) == 0) {
      const size_t eq = arg.find('=');
      if (eq != std::string::npos) {
        inline_value = arg.substr(eq + 1);
        arg.resize(eq);
      }
    }
    auto value = [&]() -> std::string {
      if (inline_value) return *inline_value;
      if (i + 1 >= argc) UsageError(arg + " needs a value");
      return argv[++i];
    };
    auto flag = [&]() {
      if (inline_value) UsageError(arg + " takes no value");
    };
    if (arg == "-h" || arg == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else if (arg == "--proxy" || arg == "--direct") {
      if (have_target) UsageError("give exactly one of --proxy and --direct");
      have_target = true;
      o.proxy_mode = arg == "--proxy";
      ParseHostPort(arg, value(), o);
    } else if (arg == "--host") {
      o.host = value();
      o.host_given = true;
    } else if (arg == "--hosts") {
      o.hosts = ParseCount(arg, value(), 1, UINT32_MAX);
    } else if (arg == "--host-suffix") {
      o.host_suffix = value();
    } else if (arg == "--unique-hosts") {
      flag();
      o.unique_hosts = true;
    } else if (arg == "--run-id") {
      o.run_id = value();
      if (o.run_id.empty() || o.run_id.size() > 16 ||
          o.run_id.find_first_not_of("0123456789abcdef") != std::string::npos) {
        UsageError("--run-id wants 1 to 16 lowercase hex digits, got '" + o.run_id + "'");
      }
    } else if (arg == "--port") {
      o.port = static_cast<uint16_t>(ParseCount(arg, value(), 1, 65535));
    } else if (arg == "--cafile") {
      o.cafile = value();
    } else if (arg == "--path") {
      o.path = value();
    } else if (arg == "--requests-per-conn") {
      o.requests_per_conn = ParseCount(arg, value(), 1, 1000000);
    } else if (arg == "--concurrency") {
      o.concurrency = ParseCount(arg, value(), 1, 100000);
    } else if (arg == "--duration") {
      o.duration_s = ParseSeconds(arg, value(), false);
    } else if (arg == "--max-connections") {
      o.max_connections = ParseCount(arg, value(), 0, UINT64_MAX);
    } else if (arg == "--threads") {
      o.threads = ParseCount(arg, value(), 1, 256);
    } else if (arg == "--timeout") {
      o.timeout_s = ParseSeconds(arg, value(), false);
    } else if (arg == "--warmup") {
      o.warmup_s = ParseSeconds(arg, value(), true);
    } else if (arg == "--json") {
      flag();
      o.json = true;
    } else {
      UsageError("unknown argument '" + arg + "'");
    }
  }
  if (!have_target) UsageError("give one of --proxy HOST:PORT or --direct HOST:PORT");
  if (o.cafile.empty()) UsageError("--cafile FILE is required: every chain is verified");
  if (o.hosts > 0 && o.unique_hosts) UsageError("--hosts and --unique-hosts exclude each other");
  if (!o.run_id.empty() && !o.unique_hosts) UsageError("--run-id needs --unique-hosts");
  if (o.host_given && (o.hosts > 0 || o.unique_hosts)) {
    UsageError("--host excludes --hosts and --unique-hosts (use --host-suffix)");
  }
  if (!ValidHostName(o.host)) UsageError("--host '" + o.host + "' is not a valid host name");
  if (!ValidHostName(o.host_suffix)) {
    UsageError("--host-suffix '" + o.host_suffix + "' is not a valid host name");
  }
  if (o.path.empty() || o.path[0] != '/' || o.path.find_first_of(" \r\n\t") != std::string::npos) {
    UsageError("--path must start with '/' and contain no spaces or line breaks");
  }
  if (o.threads > o.concurrency) o.threads = o.concurrency;
  return o;
}

// ---------------------------------------------------------------------------------------------
// Results

enum class ErrorKind { kConnect, kProxyStatus, kTlsVerify, kTls, kHttp, kHttpStatus, kTimeout };
constexpr size_t kErrorKinds = 7;
constexpr std::array<const char*, kErrorKinds> kErrorNames = {
    "connect", "proxy_status", "tls_verify", "tls", "http", "http_status", "timeout"};

struct Stats {
  uint64_t conns_ok = 0;
  uint64_t conns_failed = 0;
  uint64_t requests = 0;
  uint64_t bytes = 0;
  uint64_t closed_by_server = 0;
  std::array<uint64_t, kErrorKinds> errors{};
  std::vector<double> connect_ms;
  std::vector<double> handshake_ms;
  std::vector<double> request_ms;
  std::vector<double> first_request_ms;
  std::string first_verify_error;
  std::string first_error;

  void Merge(Stats&& other) {
    conns_ok += other.conns_ok;
    conns_failed += other.conns_failed;
    requests += other.requests;
    bytes += other.bytes;
    closed_by_server += other.closed_by_server;
    for (size_t i = 0; i < kErrorKinds; ++i) errors[i] += other.errors[i];
    auto append = [](std::vector<double>& to, std::vector<double>& from) {
      to.insert(to.end(), from.begin(), from.end());
    };
    append(connect_ms, other.connect_ms);
    append(handshake_ms, other.handshake_ms);
    append(request_ms, other.request_ms);
    append(first_request_ms, other.first_request_ms);
    if (first_verify_error.empty()) first_verify_error = std::move(other.first_verify_error);
    if (first_error.empty()) first_error = std::move(other.first_error);
  }
};

// ---------------------------------------------------------------------------------------------
// HTTP/1.1 response parsing: enough to find where each response ends (Content-Length, chunked,
// or close-delimited) and whether the connection stays open.

class ResponseParser {
 public:
  enum class Result { kNeedMore, kComplete, kError };

  void Reset() {
    state_ = State::kHead;
    head_.clear();
    line_.clear();
    status_ = 0;
    keep_alive_ = true;
    remaining_ = 0;
    body_bytes_ = 0;
    started_ = false;
    error_.clear();
  }

  // Consumes a prefix of data; *used says how much. Stops right after a complete response.
  Result Feed(const char* data, size_t len, size_t* used) {
    size_t pos = 0;
    if (len > 0) started_ = true;
    while (pos < len && state_ != State::kDone) {
      Result r = Result::kNeedMore;
      switch (state_) {
        case State::kHead:
          r = FeedHead(data, len, &pos);
          break;
        case State::kBodyLength:
        case State::kChunkData: {
          const size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, len - pos));
          pos += n;
          remaining_ -= n;
          body_bytes_ += n;
          if (remaining_ == 0) {
            state_ = state_ == State::kBodyLength ? State::kDone : State::kChunkDataEnd;
          }
          break;
        }
        case State::kUntilClose:
          body_bytes_ += len - pos;
          pos = len;
          break;
        case State::kChunkSize:
        case State::kChunkDataEnd:
        case State::kTrailers: {
          std::string_view line;
          if (!TakeLine(data, len, &pos, &line)) break;
          r = OnLine(line);
          break;
        }
        case State::kDone:
          break;
      }
      if (r == Result::kError) {
        *used = pos;
        return r;
      }
    }
    *used = pos;
    return state_ == State::kDone ? Result::kComplete : Result::kNeedMore;
  }

  // The peer closed: that ends a close-delimited body and nothing else.
  Result OnEof() {
    if (state_ == State::kUntilClose) {
      state_ = State::kDone;
      return Result::kComplete;
    }
    return Fail(started_ ? "connection closed in the middle of a response"
                         : "connection closed before a response");
  }

  int status() const { return status_; }
  bool keep_alive() const { return keep_alive_; }
  uint64_t body_bytes() const { return body_bytes_; }
  const std::string& error() const { return error_; }

 private:
  enum class State {
    kHead,
    kBodyLength,
    kChunkSize,
    kChunkData,
    kChunkDataEnd,
    kTrailers,
    kUntilClose,
    kDone
  };
  static constexpr size_t kMaxHead = 64 * 1024;
  static constexpr size_t kMaxLine = 4096;

  Result Fail(std::string message) {
    error_ = std::move(message);
    return Result::kError;
  }

  Result FeedHead(const char* data, size_t len, size_t* pos) {
    const size_t old = head_.size();
    const size_t take = std::min(len - *pos, kMaxHead + 4 - old);
    head_.append(data + *pos, take);
    const size_t search_from = old >= 3 ? old - 3 : 0;
    const size_t end = head_.find("\r\n\r\n", search_from);
    if (end == std::string::npos) {
      *pos += take;
      if (head_.size() > kMaxHead) return Fail("response header larger than 64 KiB");
      return Result::kNeedMore;
    }
    const size_t head_len = end + 4;
    *pos += head_len - old;  // bytes after the blank line stay for the body
    head_.resize(head_len);
    return ParseHead();
  }

  static bool IEquals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
      const auto lower = [](char c) { return (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c; };
      if (lower(a[i]) != lower(b[i])) return false;
    }
    return true;
  }

  static std::string_view Trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
  }

  // Calls f on each comma-separated token of a header value.
  template <typename F>
  static void ForEachToken(std::string_view value, F f) {
    while (!value.empty()) {
      const size_t comma = value.find(',');
      f(Trim(value.substr(0, comma)));
      if (comma == std::string_view::npos) break;
      value.remove_prefix(comma + 1);
    }
  }

  Result ParseHead() {
    std::string_view head(head_);
    size_t eol = head.find("\r\n");
    const std::string_view status_line = head.substr(0, eol);
    if (status_line.size() < 12 || status_line.substr(0, 7) != "HTTP/1." ||
        (status_line[7] != '0' && status_line[7] != '1') || status_line[8] != ' ') {
      return Fail("malformed status line");
    }
    int status = 0;
    for (size_t i = 9; i < 12; ++i) {
      if (status_line[i] < '0' || status_line[i] > '9') return Fail("malformed status code");
      status = status * 10 + (status_line[i] - '0');
    }
    if (status_line.size() > 12 && status_line[12] != ' ') return Fail("malformed status line");
    const bool http10 = status_line[7] == '0';
    bool close = http10;
    bool chunked = false;
    bool has_te = false;
    std::optional<uint64_t> content_length;
    head.remove_prefix(eol + 2);
    while (!head.empty()) {
      eol = head.find("\r\n");
      const std::string_view line = head.substr(0, eol);
      head.remove_prefix(eol + 2);
      if (line.empty()) break;
      const size_t colon = line.find(':');
      if (colon == std::string_view::npos || colon == 0) return Fail("malformed header line");
      const std::string_view name = line.substr(0, colon);
      const std::string_view value = Trim(line.substr(colon + 1));
      if (IEquals(name, "content-length")) {
        if (value.empty() || value.size() > 18 ||
            value.find_first_not_of("0123456789") != std::string_view::npos) {
          return Fail("malformed Content-Length");
        }
        const uint64_t n = std::strtoull(std::string(value).c_str(), nullptr, 10);
        if (content_length && *content_length != n) return Fail("conflicting Content-Length");
        content_length = n;
      } else if (IEquals(name, "transfer-encoding")) {
        has_te = true;
        ForEachToken(value, [&](std::string_view t) {
          if (!t.empty()) chunked = IEquals(t, "chunked");
        });
      } else if (IEquals(name, "connection")) {
        ForEachToken(value, [&](std::string_view t) {
          if (IEquals(t, "close")) close = true;
          if (http10 && IEquals(t, "keep-alive")) close = false;
        });
      }
    }
    head_.clear();
    if (status >= 100 && status < 200) {
      // Interim responses (100 Continue, 103 Early Hints): the real one follows.
      if (status == 101) return Fail("unexpected 101 Switching Protocols");
      return Result::kNeedMore;
    }
    status_ = status;
    keep_alive_ = !close;
    if (status == 204 || status == 304) {
      state_ = State::kDone;
    } else if (has_te) {
      if (chunked) {
        state_ = State::kChunkSize;
      } else {
        state_ = State::kUntilClose;
        keep_alive_ = false;
      }
    } else if (content_length) {
      remaining_ = *content_length;
      state_ = remaining_ == 0 ? State::kDone : State::kBodyLength;
    } else {
      state_ = State::kUntilClose;
      keep_alive_ = false;
    }
    return Result::kNeedMore;
  }

  // Collects one CRLF- (or LF-) terminated line across feeds; false while incomplete.
  bool TakeLine(const char* data, size_t len, size_t* pos, std::string_view* line) {
    const char* start = data + *pos;
    const void* nl = std::memchr(start, '\n', len - *pos);
    if (nl == nullptr) {
      line_.append(start, len - *pos);
      *pos = len;
      if (line_.size() > kMaxLine) line_.resize(kMaxLine + 1);  // reported by OnLine
      return false;
    }
    const size_t n = static_cast<size_t>(static_cast<const char*>(nl) - start);
    line_.append(start, n);
    *pos += n + 1;
    if (!line_.empty() && line_.back() == '\r') line_.pop_back();
    *line = line_;
    return true;
  }

  Result OnLine(std::string_view line) {
    if (line.size() > kMaxLine) return Fail("chunk framing line too long");
    Result r = Result::kNeedMore;
    switch (state_) {
      case State::kChunkSize: {
        const std::string_view size = Trim(line.substr(0, line.find(';')));
        if (size.empty() || size.size() > 15) {
          r = Fail("malformed chunk size");
          break;
        }
        uint64_t n = 0;
        for (const char c : size) {
          int d;
          if (c >= '0' && c <= '9') {
            d = c - '0';
          } else if (c >= 'a' && c <= 'f') {
            d = c - 'a' + 10;
          } else if (c >= 'A' && c <= 'F') {
            d = c - 'A' + 10;
          } else {
            d = -1;
          }
          if (d < 0) return Fail("malformed chunk size");
          n = n * 16 + static_cast<uint64_t>(d);
        }
        remaining_ = n;
        state_ = n == 0 ? State::kTrailers : State::kChunkData;
        break;
      }
      case State::kChunkDataEnd:
        if (!line.empty()) {
          r = Fail("chunk data longer than its size");
          break;
        }
        state_ = State::kChunkSize;
        break;
      case State::kTrailers:
        if (line.empty()) state_ = State::kDone;
        break;
      default:
        break;
    }
    line_.clear();
    return r;
  }

  State state_ = State::kHead;
  std::string head_;
  std::string line_;
  int status_ = 0;
  bool keep_alive_ = true;
  uint64_t remaining_ = 0;
  uint64_t body_bytes_ = 0;
  bool started_ = false;
  std::string error_;
};

// ---------------------------------------------------------------------------------------------
// What every thread shares: options, the TLS context, the target address and the timeline.

std::atomic<bool> g_interrupted{false};

extern "C" void OnSignal(int) { g_interrupted.store(true, std::memory_order_relaxed); }

struct SslCtxDeleter {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
struct SslDeleter {
  void operator()(SSL* s) const { SSL_free(s); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxDeleter>;
using SslPtr = std::unique_ptr<SSL, SslDeleter>;

struct RunState {
  Options opt;
  SslCtxPtr ctx;
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
  std::string run_hex;
  TimePoint t0;
  TimePoint record_start;  // t0 + warmup
  TimePoint stop;          // no connection starts after this
  TimePoint hard_stop;     // stop + timeout: whatever is still open is abandoned
  Clock::duration timeout{};
  std::atomic<uint64_t> next_index{0};
  std::atomic<uint64_t> recorded_started{0};
  std::atomic<bool> budget_exhausted{false};

  std::string HostFor(uint64_t i) const {
    if (opt.unique_hosts) {
      return "u" + run_hex + "-" + std::to_string(i) + "." + opt.host_suffix;
    }
    if (opt.hosts > 0) return "h" + std::to_string(i % opt.hosts) + "." + opt.host_suffix;
    return opt.host;
  }
};

std::string DrainSslErrors() {
  std::string out;
  unsigned long e;
  while ((e = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// One client connection: an explicit state machine driven by readiness events.

class Connection {
 public:
  enum class Phase { kConnecting, kProxyWrite, kProxyRead, kHandshake, kRequest, kResponse, kEnd };

  Connection(const RunState& run, Stats& stats, char* buf, size_t buf_size)
      : run_(run), stats_(stats), buf_(buf), buf_size_(buf_size) {}
  ~Connection() { Close(); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Opens the socket and starts connecting; registers with epoll under tag.
  void Start(int epfd, uint64_t tag, uint64_t index, bool recorded) {
    epfd_ = epfd;
    recorded_ = recorded;
    host_ = run_.HostFor(index);
    start_ = Clock::now();
    SetDeadline(start_);
    fd_ = ::socket(run_.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return Fail(ErrorKind::kConnect, std::string("socket: ") + std::strerror(errno));
    const int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (::connect(fd_, reinterpret_cast<const sockaddr*>(&run_.addr), run_.addr_len) != 0 &&
        errno != EINPROGRESS) {
      return Fail(ErrorKind::kConnect, std::strerror(errno));
    }
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.u64 = tag;
    if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd_, &ev) != 0) {
      return Fail(ErrorKind::kConnect, std::string("epoll_ctl: ") + std::strerror(errno));
    }
    // Edge-triggered: the first EPOLLOUT (connected) or EPOLLERR arrives as an event.
  }

  // Runs the state machine until it would block or ends.
  void OnEvent(uint32_t events) {
    if (phase_ == Phase::kConnecting) {
      if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) == 0) return;
      int err = 0;
      socklen_t len = sizeof err;
      if (::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
      if (err != 0) return Fail(ErrorKind::kConnect, std::strerror(err));
      const TimePoint now = Clock::now();
      if (run_.opt.proxy_mode) {
        connect_request_ = "CONNECT " + host_ + ":" + std::to_string(run_.opt.port) +
                           " HTTP/1.1\r\nHost: " + host_ + ":" + std::to_string(run_.opt.port) +
                           "\r\nUser-Agent: mintgate-loadgen\r\n\r\n";
        Enter(Phase::kProxyWrite, now);
      } else {
        TcpReady(now);
      }
    }
    while (phase_ != Phase::kEnd) {
      bool progressed = false;
      switch (phase_) {
        case Phase::kProxyWrite:
          progressed = ProxyWrite();
          break;
        case Phase::kProxyRead:
          progressed = ProxyRead();
          break;
        case Phase::kHandshake:
          progressed = Handshake();
          break;
        case Phase::kRequest:
          progressed = WriteRequest();
          break;
        case Phase::kResponse:
          progressed = ReadResponse();
          break;
        case Phase::kConnecting:
        case Phase::kEnd:
          break;
      }
      if (!progressed) break;
    }
  }

  // Called by the worker's timer scan.
  void CheckDeadline(TimePoint now) {
    if (phase_ != Phase::kEnd && now >= deadline_) {
      Fail(ErrorKind::kTimeout, std::string("timed out while ") + PhaseName(phase_));
    }
  }

  bool ended() const { return phase_ == Phase::kEnd; }
  TimePoint deadline() const { return deadline_; }

 private:
  static const char* PhaseName(Phase p) {
    switch (p) {
      case Phase::kConnecting:
        return "connecting";
      case Phase::kProxyWrite:
        return "sending CONNECT";
      case Phase::kProxyRead:
        return "waiting for the CONNECT answer";
      case Phase::kHandshake:
        return "in the TLS handshake";
      case Phase::kRequest:
        return "sending a request";
      case Phase::kResponse:
        return "waiting for a response";
      case Phase::kEnd:
        break;
    }
    return "ending";
  }

  void SetDeadline(TimePoint now) { deadline_ = std::min(now + run_.timeout, run_.hard_stop); }

  void Enter(Phase p, TimePoint now) {
    phase_ = p;
    SetDeadline(now);
  }

  // TCP (and CONNECT, through a proxy) done: start TLS.
  void TcpReady(TimePoint now) {
    if (recorded_) stats_.connect_ms.push_back(MsBetween(start_, now));
    ssl_.reset(SSL_new(run_.ctx.get()));
    if (!ssl_ || SSL_set_fd(ssl_.get(), fd_) != 1 ||
        SSL_set_tlsext_host_name(ssl_.get(), host_.c_str()) != 1 ||
        SSL_set1_host(ssl_.get(), host_.c_str()) != 1) {
      return Fail(ErrorKind::kTls, "cannot set up SSL: " + DrainSslErrors());
    }
    SSL_set_hostflags(ssl_.get(), X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    SSL_set_connect_state(ssl_.get());
    request_ = "GET " + run_.opt.path + " HTTP/1.1\r\nHost: " + host_ +
               "\r\nUser-Agent: mintgate-loadgen\r\nAccept: */*\r\n\r\n";
    // The ClientHello goes out on the first SSL_connect, right after this.
    handshake_start_ = Clock::now();
    Enter(Phase::kHandshake, handshake_start_);
  }

  bool ProxyWrite() {
    while (sent_ < connect_request_.size()) {
      const ssize_t n = ::send(fd_, connect_request_.data() + sent_,
                               connect_request_.size() - sent_, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) return errno == EINTR;
        Fail(ErrorKind::kConnect, std::string("sending CONNECT: ") + std::strerror(errno));
        return false;
      }
      sent_ += static_cast<size_t>(n);
    }
    Enter(Phase::kProxyRead, Clock::now());
    return true;
  }

  bool ProxyRead() {
    for (;;) {
      const ssize_t n = ::recv(fd_, buf_, buf_size_, 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) return false;
        Fail(ErrorKind::kHttp, std::string("reading the CONNECT answer: ") + std::strerror(errno));
        return false;
      }
      if (n == 0) {
        Fail(ErrorKind::kHttp, "proxy closed the connection before answering CONNECT");
        return false;
      }
      const size_t old = proxy_answer_.size();
      proxy_answer_.append(buf_, static_cast<size_t>(n));
      const size_t end = proxy_answer_.find("\r\n\r\n", old >= 3 ? old - 3 : 0);
      if (end == std::string::npos) {
        if (proxy_answer_.size() > 16384) {
          Fail(ErrorKind::kHttp, "CONNECT answer header larger than 16 KiB");
          return false;
        }
        continue;
      }
      const std::string_view a(proxy_answer_);
      if (a.size() < 12 || a.substr(0, 7) != "HTTP/1." || a[8] != ' ') {
        Fail(ErrorKind::kHttp, "malformed CONNECT answer");
        return false;
      }
      if (a[9] != '2') {
        Fail(ErrorKind::kProxyStatus, "CONNECT answered " + std::string(a.substr(0, a.find('\r'))));
        return false;
      }
      if (end + 4 != proxy_answer_.size()) {
        Fail(ErrorKind::kHttp, "proxy sent bytes after its CONNECT answer");
        return false;
      }
      TcpReady(Clock::now());
      return phase_ != Phase::kEnd;
    }
  }

  // Classifies a failed SSL call; returns true when it only has to wait.
  bool SslWouldBlock(int ret, const char* what, bool in_handshake) {
    const int err = SSL_get_error(ssl_.get(), ret);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return true;
    const std::string queue = DrainSslErrors();
    if (in_handshake) {
      const long verify = SSL_get_verify_result(ssl_.get());
      if (verify != X509_V_OK) {
        Fail(ErrorKind::kTlsVerify,
             std::string(X509_verify_cert_error_string(verify)) + " (host " + host_ + ")");
        return false;
      }
    }
    std::string reason;
    if (err == SSL_ERROR_ZERO_RETURN) {
      reason = "peer closed the connection";
    } else if (err == SSL_ERROR_SYSCALL) {
      reason = errno != 0 ? std::string("socket error: ") + std::strerror(errno)
                          : "peer closed the connection";
    } else {
      reason = queue.empty() ? "SSL error " + std::to_string(err) : queue;
    }
    Fail(ErrorKind::kTls, std::string(what) + ": " + reason);
    return false;
  }

  bool Handshake() {
    ERR_clear_error();
    errno = 0;
    const int ret = SSL_connect(ssl_.get());
    if (ret != 1) {
      SslWouldBlock(ret, "TLS handshake", true);
      return false;
    }
    const TimePoint now = Clock::now();
    // SSL_VERIFY_PEER already fails the handshake; this keeps the check explicit.
    const long verify = SSL_get_verify_result(ssl_.get());
    if (verify != X509_V_OK) {
      Fail(ErrorKind::kTlsVerify, X509_verify_cert_error_string(verify));
      return false;
    }
    handshake_done_ = true;
    if (recorded_) stats_.handshake_ms.push_back(MsBetween(handshake_start_, now));
    BeginRequest(now);
    return true;
  }

  void BeginRequest(TimePoint now) {
    request_start_ = now;
    sent_ = 0;
    parser_.Reset();
    Enter(Phase::kRequest, now);
  }

  bool WriteRequest() {
    ERR_clear_error();
    errno = 0;
    const int ret = SSL_write(ssl_.get(), request_.data(), static_cast<int>(request_.size()));
    if (ret <= 0) {
      SslWouldBlock(ret, "sending a request", false);
      return false;
    }
    phase_ = Phase::kResponse;  // the request's deadline keeps running
    return true;
  }

  bool ReadResponse() {
    for (;;) {
      ERR_clear_error();
      errno = 0;
      const int ret = SSL_read(ssl_.get(), buf_, static_cast<int>(buf_size_));
      if (ret <= 0) {
        const int err = SSL_get_error(ssl_.get(), ret);
        const bool eof = err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL && errno == 0);
        if (!eof) {
          SslWouldBlock(ret, "reading a response", false);
          return false;
        }
        ERR_clear_error();
        if (parser_.OnEof() != ResponseParser::Result::kComplete) {
          Fail(ErrorKind::kHttp, parser_.error());
          return false;
        }
        peer_closed_ = true;
        return ResponseDone(0);
      }
      size_t used = 0;
      const auto r = parser_.Feed(buf_, static_cast<size_t>(ret), &used);
      if (r == ResponseParser::Result::kError) {
        Fail(ErrorKind::kHttp, parser_.error());
        return false;
      }
      if (r == ResponseParser::Result::kComplete) {
        return ResponseDone(static_cast<size_t>(ret) - used);
      }
    }
  }

  bool ResponseDone(size_t leftover) {
    const TimePoint now = Clock::now();
    ++requests_done_;
    if (recorded_) {
      ++stats_.requests;
      stats_.bytes += parser_.body_bytes();
      stats_.request_ms.push_back(MsBetween(request_start_, now));
      if (requests_done_ == 1) stats_.first_request_ms.push_back(MsBetween(start_, now));
      if (parser_.status() != 200) {
        Count(ErrorKind::kHttpStatus, "response status " + std::to_string(parser_.status()));
      }
    }
    if (leftover > 0) {
      Fail(ErrorKind::kHttp, "bytes after the end of a response");
      return false;
    }
    const bool want_more = requests_done_ < run_.opt.requests_per_conn && now < run_.stop &&
                           !g_interrupted.load(std::memory_order_relaxed);
    if (want_more && (peer_closed_ || !parser_.keep_alive())) {
      if (recorded_) ++stats_.closed_by_server;
      Finish();
      return false;
    }
    if (!want_more) {
      Finish();
      return false;
    }
    BeginRequest(now);
    return true;
  }

  void Count(ErrorKind kind, const std::string& message) {
    ++stats_.errors[static_cast<size_t>(kind)];
    if (kind == ErrorKind::kTlsVerify) {
      if (stats_.first_verify_error.empty()) stats_.first_verify_error = message;
    } else if (stats_.first_error.empty()) {
      stats_.first_error = std::string(kErrorNames[static_cast<size_t>(kind)]) + ": " + message;
    }
  }

  void Fail(ErrorKind kind, const std::string& message) {
    if (phase_ == Phase::kEnd) return;
    if (recorded_) {
      ++stats_.conns_failed;
      Count(kind, message);
    }
    handshake_done_ = false;  // no close_notify on a broken connection
    phase_ = Phase::kEnd;
    Close();
  }

  void Finish() {
    if (recorded_) ++stats_.conns_ok;
    phase_ = Phase::kEnd;
    Close();
  }

  void Close() {
    if (ssl_) {
      if (handshake_done_ && !peer_closed_) {
        ERR_clear_error();
        SSL_shutdown(ssl_.get());  // one non-blocking close_notify, not awaited
      }
      ssl_.reset();
      ERR_clear_error();
    }
    if (fd_ >= 0) {
      ::epoll_ctl(epfd_, EPOLL_CTL_DEL, fd_, nullptr);
      ::close(fd_);
      fd_ = -1;
    }
  }

  const RunState& run_;
  Stats& stats_;
  char* buf_;
  size_t buf_size_;
  int epfd_ = -1;
  int fd_ = -1;
  bool recorded_ = false;
  Phase phase_ = Phase::kConnecting;
  std::string host_;
  std::string connect_request_;
  std::string proxy_answer_;
  std::string request_;
  size_t sent_ = 0;
  SslPtr ssl_;
  ResponseParser parser_;
  bool handshake_done_ = false;
  bool peer_closed_ = false;
  uint64_t requests_done_ = 0;
  TimePoint start_;
  TimePoint handshake_start_;
  TimePoint request_start_;
  TimePoint deadline_;
};

// ---------------------------------------------------------------------------------------------
// One thread: an epoll loop over a fixed number of connection slots.

class Worker {
 public:
  Worker(RunState& run, size_t slots) : run_(run), slots_(slots), generation_(slots, 0) {}

  void Loop() {
    epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epfd_ < 0) {
      std::fprintf(stderr, "mintgate_loadgen: epoll_create1: %s\n", std::strerror(errno));
      std::exit(1);
    }
    std::vector<char> buf(64 * 1024);
    std::array<epoll_event, 256> events{};
    TimePoint next_scan = Clock::now();
    for (;;) {
      TimePoint now = Clock::now();
      if (now >= run_.hard_stop || g_interrupted.load(std::memory_order_relaxed)) break;
      // Fill free slots.
      for (size_t s = 0; s < slots_.size(); ++s) {
        bool recorded = false;
        if (slots_[s] || !MayStart(now, &recorded)) continue;
        const uint64_t index = run_.next_index.fetch_add(1, std::memory_order_relaxed);
        slots_[s] = std::make_unique<Connection>(run_, stats_, buf.data(), buf.size());
        ++active_;
        ++generation_[s];
        slots_[s]->Start(epfd_, Tag(s), index, recorded);
        if (slots_[s]->ended()) Release(s);
      }
      if (active_ == 0 && !MayStartAgain(now)) break;
      const int n = ::epoll_wait(epfd_, events.data(), static_cast<int>(events.size()), 10);
      if (n < 0 && errno != EINTR) {
        std::fprintf(stderr, "mintgate_loadgen: epoll_wait: %s\n", std::strerror(errno));
        std::exit(1);
      }
      for (int i = 0; i < n; ++i) {
        const size_t s = static_cast<size_t>(events[i].data.u64 & 0xffffffffu);
        const uint32_t gen = static_cast<uint32_t>(events[i].data.u64 >> 32);
        if (s >= slots_.size() || !slots_[s] || generation_[s] != gen) continue;
        slots_[s]->OnEvent(events[i].events);
        if (slots_[s]->ended()) Release(s);
      }
      now = Clock::now();
      if (now >= next_scan) {
        next_scan = now + std::chrono::milliseconds(10);
        for (size_t s = 0; s < slots_.size(); ++s) {
          if (!slots_[s]) continue;
          slots_[s]->CheckDeadline(now);
          if (slots_[s]->ended()) Release(s);
        }
      }
    }
    // Hard stop: whatever is still open timed out. Interrupted: dropped without counting.
    const bool interrupted = g_interrupted.load(std::memory_order_relaxed);
    for (size_t s = 0; s < slots_.size(); ++s) {
      if (!slots_[s]) continue;
      if (!interrupted) slots_[s]->CheckDeadline(run_.hard_stop);
      Release(s);
    }
    ::close(epfd_);
    end_ = Clock::now();
  }

  Stats& stats() { return stats_; }
  TimePoint end() const { return end_; }

 private:
  uint64_t Tag(size_t s) const { return (uint64_t{generation_[s]} << 32) | s; }

  void Release(size_t s) {
    slots_[s].reset();
    --active_;
  }

  // May a connection start now? Takes one unit of the shared budget when it is recorded.
  bool MayStart(TimePoint now, bool* recorded) {
    if (!MayStartAgain(now)) return false;
    *recorded = now >= run_.record_start;
    if (*recorded && run_.opt.max_connections > 0) {
      const uint64_t n = run_.recorded_started.fetch_add(1, std::memory_order_relaxed);
      if (n >= run_.opt.max_connections) {
        run_.budget_exhausted.store(true, std::memory_order_relaxed);
        return false;
      }
    }
    return true;
  }

  // False once starting is over for good (stop time, budget, Ctrl-C).
  bool MayStartAgain(TimePoint now) const {
    return now < run_.stop && !run_.budget_exhausted.load(std::memory_order_relaxed) &&
           !g_interrupted.load(std::memory_order_relaxed);
  }

  RunState& run_;
  std::vector<std::unique_ptr<Connection>> slots_;
  std::vector<uint32_t> generation_;
  size_t active_ = 0;
  int epfd_ = -1;
  Stats stats_;
  TimePoint end_;
};

// ---------------------------------------------------------------------------------------------
// Report

struct Percentiles {
  double p50 = 0;
  double p99 = 0;
  double max = 0;
};

Percentiles Summarize(std::vector<double>& v) {
  Percentiles p;
  if (v.empty()) return p;
  std::sort(v.begin(), v.end());
  auto rank = [&](double q) {
    size_t r = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size())));
    return v[std::clamp<size_t>(r, 1, v.size()) - 1];
  };
  p.p50 = rank(0.50);
  p.p99 = rank(0.99);
  p.max = v.back();
  return p;
}

std::string JsonString(std::string_view s) {
  std::string out;
  mintgate::proxy::AppendJsonString(out, s);
  return out;
}

std::string Num(double v) {
  char b[64];
  std::snprintf(b, sizeof b, "%.3f", v);
  return b;
}

std::string JsonPercentiles(const Percentiles& p) {
  return "{\"p50\":" + Num(p.p50) + ",\"p99\":" + Num(p.p99) + ",\"max\":" + Num(p.max) + "}";
}

void Report(const Options& o, Stats& s, double seconds, double cpu_s) {
  const double secs = seconds > 0 ? seconds : 1e-9;
  const Percentiles connect = Summarize(s.connect_ms);
  const Percentiles handshake = Summarize(s.handshake_ms);
  const Percentiles request = Summarize(s.request_ms);
  const Percentiles first = Summarize(s.first_request_ms);
  const double cps = static_cast<double>(s.conns_ok) / secs;
  const double rps = static_cast<double>(s.requests) / secs;
  const double mbps = static_cast<double>(s.bytes) / 1e6 / secs;
  if (o.json) {
    std::string j = "{\"mode\":";
    j += o.proxy_mode ? "\"proxy\"" : "\"direct\"";
    j += ",\"target\":" + JsonString(o.target);
    j += ",\"duration_s\":" + Num(seconds);
    j += ",\"connections\":" + std::to_string(s.conns_ok);
    j += ",\"connections_failed\":" + std::to_string(s.conns_failed);
    j += ",\"conns_per_s\":" + Num(cps);
    j += ",\"requests\":" + std::to_string(s.requests);
    j += ",\"requests_per_s\":" + Num(rps);
    j += ",\"bytes\":" + std::to_string(s.bytes);
    j += ",\"mb_per_s\":" + Num(mbps);
    j += ",\"handshake_ms\":" + JsonPercentiles(handshake);
    j += ",\"request_ms\":" + JsonPercentiles(request);
    j += ",\"first_request_ms\":" + JsonPercentiles(first);
    j += ",\"connect_ms\":" + JsonPercentiles(connect);
    j += ",\"errors\":{";
    for (size_t i = 0; i < kErrorKinds; ++i) {
      if (i > 0) j += ",";
      j += "\"" + std::string(kErrorNames[i]) + "\":" + std::to_string(s.errors[i]);
    }
    j += "}";
    if (!s.first_verify_error.empty()) {
      j += ",\"first_verify_error\":" + JsonString(s.first_verify_error);
    }
    if (!s.first_error.empty()) j += ",\"first_error\":" + JsonString(s.first_error);
    j += ",\"closed_by_server\":" + std::to_string(s.closed_by_server);
    j += ",\"concurrency\":" + std::to_string(o.concurrency);
    j += ",\"threads\":" + std::to_string(o.threads);
    j += ",\"requests_per_conn\":" + std::to_string(o.requests_per_conn);
    j += ",\"loadgen_cpu_s\":" + Num(cpu_s);
    j += ",\"interrupted\":";
    j += g_interrupted.load() ? "true" : "false";
    j += "}\n";
    std::fputs(j.c_str(), stdout);
    return;
  }
  auto line = [](const char* name, const Percentiles& p) {
    std::printf("  %-17s p50 %9.3f ms   p99 %9.3f ms   max %9.3f ms\n", name, p.p50, p.p99, p.max);
  };
  std::printf("%s %s, %llu connections x %llu requests, concurrency %llu, %llu thread(s)\n",
              o.proxy_mode ? "proxy" : "direct", o.target.c_str(),
              static_cast<unsigned long long>(s.conns_ok + s.conns_failed),
              static_cast<unsigned long long>(o.requests_per_conn),
              static_cast<unsigned long long>(o.concurrency),
              static_cast<unsigned long long>(o.threads));
  std::printf("  duration          %.3f s (load generator CPU %.3f s)\n", seconds, cpu_s);
  std::printf("  connections       %llu ok, %llu failed, %.1f/s\n",
              static_cast<unsigned long long>(s.conns_ok),
              static_cast<unsigned long long>(s.conns_failed), cps);
  std::printf("  requests          %llu, %.1f/s\n", static_cast<unsigned long long>(s.requests),
              rps);
  std::printf("  body bytes        %llu, %.3f MB/s\n", static_cast<unsigned long long>(s.bytes),
              mbps);
  line("connect", connect);
  line("handshake", handshake);
  line("request", request);
  line("first request", first);
  std::printf("  errors           ");
  for (size_t i = 0; i < kErrorKinds; ++i) {
    std::printf(" %s %llu", kErrorNames[i], static_cast<unsigned long long>(s.errors[i]));
  }
  std::printf("\n");
  if (s.closed_by_server > 0) {
    std::printf("  closed by server  %llu connections before their last request\n",
                static_cast<unsigned long long>(s.closed_by_server));
  }
  if (!s.first_verify_error.empty()) {
    std::printf("  first verify error: %s\n", s.first_verify_error.c_str());
  }
  if (!s.first_error.empty()) std::printf("  first error: %s\n", s.first_error.c_str());
}

// ---------------------------------------------------------------------------------------------
// Setup

SslCtxPtr MakeContext(const Options& o) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) UsageError("cannot create an SSL_CTX: " + DrainSslErrors());
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  // A full handshake every time: no tickets, no session cache, no resumption.
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_TICKET | SSL_OP_IGNORE_UNEXPECTED_EOF);
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS);
  static const unsigned char kAlpn[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  SSL_CTX_set_alpn_protos(ctx.get(), kAlpn, sizeof kAlpn);
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  if (SSL_CTX_load_verify_locations(ctx.get(), o.cafile.c_str(), nullptr) != 1) {
    UsageError("cannot load --cafile '" + o.cafile + "': " + DrainSslErrors());
  }
  return ctx;
}

void Resolve(RunState& run) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const std::string port = std::to_string(run.opt.target_port);
  const int rc = ::getaddrinfo(run.opt.target_host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0 || res == nullptr) {
    UsageError("cannot resolve '" + run.opt.target_host + "': " + ::gai_strerror(rc));
  }
  std::memcpy(&run.addr, res->ai_addr, res->ai_addrlen);
  run.addr_len = res->ai_addrlen;
  ::freeaddrinfo(res);
}

void RaiseFileLimit(uint64_t needed) {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
  if (rl.rlim_cur != RLIM_INFINITY && needed + 64 > rl.rlim_cur) {
    std::fprintf(
        stderr, "mintgate_loadgen: warning: --concurrency %llu is near the open-file limit %llu\n",
        static_cast<unsigned long long>(needed), static_cast<unsigned long long>(rl.rlim_cur));
  }
}

double CpuSeconds() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

}  // namespace

int main(int argc, char** argv) {
  RunState run;
  run.opt = ParseOptions(argc, argv);
  const Options& o = run.opt;
  run.ctx = MakeContext(o);
  Resolve(run);
  RaiseFileLimit(o.concurrency);

  if (o.run_id.empty()) {
    std::random_device rd;
    char hex[16];
    std::snprintf(hex, sizeof hex, "%08x", static_cast<unsigned>(rd()));
    run.run_hex = hex;
  } else {
    run.run_hex = o.run_id;
  }

  struct sigaction sa {};
  sa.sa_handler = SIG_IGN;
  ::sigaction(SIGPIPE, &sa, nullptr);
  sa.sa_handler = OnSignal;
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);

  run.timeout = Seconds(o.timeout_s);
  run.t0 = Clock::now();
  run.record_start = run.t0 + Seconds(o.warmup_s);
  run.stop = run.record_start + Seconds(o.duration_s);
  run.hard_stop = run.stop + run.timeout;

  const double cpu_before = CpuSeconds();
  std::vector<std::unique_ptr<Worker>> workers;
  for (uint64_t t = 0; t < o.threads; ++t) {
    const uint64_t share = o.concurrency / o.threads + (t < o.concurrency % o.threads ? 1 : 0);
    workers.push_back(std::make_unique<Worker>(run, static_cast<size_t>(share)));
  }
  std::vector<std::thread> threads;
  for (auto& w : workers) threads.emplace_back([&w] { w->Loop(); });
  for (auto& t : threads) t.join();

  Stats total;
  TimePoint end = run.record_start;
  for (auto& w : workers) {
    total.Merge(std::move(w->stats()));
    end = std::max(end, w->end());
  }
  Report(o, total, std::chrono::duration<double>(end - run.record_start).count(),
         CpuSeconds() - cpu_before);
  return 0;
}
