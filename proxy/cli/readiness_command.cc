#include "proxy/cli/readiness_command.h"

#include <netdb.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <vector>

#include "proxy/config/admin_token.h"
#include "proxy/config/config_loader.h"
#include "proxy/control/text_table.h"
#include "tls/tls_error.h"

namespace mintgate::proxy {
namespace {

constexpr int kOk = 0;
constexpr int kUsageError = 2;
constexpr int kRuntimeFailure = 3;

using Clock = std::chrono::steady_clock;

// "HOST:PORT" or "[V6]:PORT".
std::optional<HostPort> ParseAdminAddress(const std::string& text) {
  HostPort hp;
  std::string port;
  if (!text.empty() && text.front() == '[') {
    const std::size_t close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return std::nullopt;
    }
    hp.host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const std::size_t colon = text.rfind(':');
    if (colon == std::string::npos || text.find(':') != colon) return std::nullopt;
    hp.host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  if (hp.host.empty() || port.empty() || port.size() > 5 ||
      !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  const int number = std::stoi(port);
  if (number < 1 || number > 65535) return std::nullopt;
  hp.port = static_cast<std::uint16_t>(number);
  return hp;
}

std::string Lowercased(const char* text) {
  std::string s = text;
  if (!s.empty()) s[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(s[0])));
  return s;
}

int MillisecondsLeft(Clock::time_point deadline) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left <= 0 ? 0 : static_cast<int>(left);
}

// Waits for `events` on `fd` until the deadline: false on timeout.
bool WaitFor(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int rc = ::poll(&p, 1, MillisecondsLeft(deadline));
    if (rc > 0) return true;
    if (rc == 0) return false;
    if (errno != EINTR) return true;  // the following call reports the error
  }
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// Connects to one resolved address; returns the socket or -1 with `error` set.
int ConnectOne(const addrinfo& ai, Clock::time_point deadline, std::string& error) {
  const int fd =
      ::socket(ai.ai_family, ai.ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai.ai_protocol);
  if (fd < 0) {
    error = Lowercased(std::strerror(errno));
    return -1;
  }
  int rc = ::connect(fd, ai.ai_addr, ai.ai_addrlen);
  if (rc != 0 && errno == EINPROGRESS) {
    if (!WaitFor(fd, POLLOUT, deadline)) {
      ::close(fd);
      error = "no connection within the timeout";
      return -1;
    }
    int so_error = 0;
    socklen_t len = sizeof so_error;
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len);
    rc = so_error == 0 ? 0 : -1;
    errno = so_error;
  }
  if (rc != 0) {
    error = Lowercased(std::strerror(errno));
    ::close(fd);
    return -1;
  }
  return fd;
}

std::string Trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

std::string Number(const nlohmann::json& j, const char* key) {
  const auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return "-";
  return it->dump();
}

std::string Text(const nlohmann::json& j, const char* key) {
  const auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return "";
  return it->get<std::string>();
}

// When a verdict of one kind was last reached ("" when never).
std::string SeenAt(const nlohmann::json& client, const char* key) {
  const auto it = client.find(key);
  return it != client.end() && it->is_object() ? Text(*it, "at") : "";
}

// How the latest verdict was reached, as the access log writes it: "application_data",
// "alert:unknown_ca", "closed_after_handshake".
std::string Evidence(const nlohmann::json& client) {
  std::string evidence = Text(client, "evidence");
  const std::string status = Text(client, "status");
  const auto seen = client.find(status == "trusts" ? "last_trusted" : "last_rejected");
  if (!evidence.empty() && seen != client.end() && seen->is_object()) {
    const std::string alert = Text(*seen, "alert");
    if (!alert.empty()) evidence += ":" + alert;
  }
  return evidence;
}

void PrintReport(const nlohmann::json& doc, const std::string& where, std::ostream& out) {
  out << "Client readiness reported by mintgate at " << where << ", "
      << Cell(Text(doc, "generated_at")) << "\n"
      << Number(doc, "clients_tracked") << " clients tracked (at most "
      << Number(doc, "max_clients") << "; " << Number(doc, "evicted")
      << " forgotten as least recently seen)\n";
  const auto profiles = doc.find("profiles");
  if (profiles == doc.end() || !profiles->is_array() || profiles->empty()) {
    out << "\nNo client verdicts recorded yet: clients appear after their first decrypted "
           "connection.\n";
    return;
  }
  for (const nlohmann::json& p : *profiles) {
    if (!p.is_object()) continue;
    const auto trusting = p.value("trusting", std::uint64_t{0});
    const auto rejecting = p.value("rejecting", std::uint64_t{0});
    const auto unknown = p.value("unknown", std::uint64_t{0});
    const std::uint64_t total = trusting + rejecting;
    out << "\nProfile \"" << Text(p, "profile") << "\": " << trusting << " of " << total
        << " clients trust it";
    if (total > 0) out << " (" << (trusting * 100 / total) << "%)";
    out << ", " << rejecting << " reject it";
    if (unknown > 0) out << ", " << unknown << " never used it (unknown)";
    out << "\n";
    std::vector<std::vector<std::string>> table = {{"CLIENT", "USER", "STATUS", "EVIDENCE",
                                                    "TRUSTED", "REJECTED", "UNUSED", "LAST TRUSTED",
                                                    "LAST REJECTED"}};
    std::size_t shown = 0;
    if (const auto clients = p.find("clients"); clients != p.end() && clients->is_array()) {
      for (const nlohmann::json& c : *clients) {
        if (!c.is_object()) continue;
        table.push_back({Cell(Text(c, "client")), Cell(Text(c, "user")), Cell(Text(c, "status")),
                         Cell(Evidence(c)), Number(c, "trusted"), Number(c, "rejected"),
                         Number(c, "unused"), Cell(SeenAt(c, "last_trusted")),
                         Cell(SeenAt(c, "last_rejected"))});
        ++shown;
      }
    }
    PrintTable(out, table, "  ");
    if (p.value("clients_truncated", false)) {
      out << "  ... the first " << shown << " of " << total << " clients (see --json)\n";
    }
  }
}

}  // namespace

AdminFetchResult FetchAdmin(const HostPort& address, const std::string& path, int timeout_ms,
                            const std::string& token) {
  AdminFetchResult result;
  const Clock::time_point deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  // A wildcard listen address is reached on the loopback of its family.
  std::string host = address.host;
  if (host == "0.0.0.0") host = "127.0.0.1";
  if (host == "::") host = "::1";

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(address.port);
  if (const int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    result.error = "cannot resolve " + host + ": " + ::gai_strerror(rc);
    return result;
  }
  int fd = -1;
  for (const addrinfo* ai = found; ai != nullptr && fd < 0; ai = ai->ai_next) {
    std::string error;
    fd = ConnectOne(*ai, deadline, error);
    // "connection refused" from one address is the more useful story than a later timeout.
    if (fd < 0 && (result.error.empty() || error == "connection refused")) result.error = error;
  }
  ::freeaddrinfo(found);
  if (fd < 0) return result;
  Fd socket(fd);
  result.error.clear();

  // The admin listener wants its own address as Host: the one connected to.
  std::string request = "GET " + path +
                        " HTTP/1.1\r\nHost: " + HostPort{host, address.port}.ToString() +
                        "\r\nAccept: application/json\r\nConnection: close\r\n";
  if (!token.empty()) request += "Authorization: Bearer " + token + "\r\n";
  request += "\r\n";
  struct Cleanse {
    std::string& text;
    ~Cleanse() { OPENSSL_cleanse(text.data(), text.size()); }
  } cleanse{request};
  result.status = AdminFetchResult::Status::kBadResponse;
  for (std::size_t sent = 0; sent < request.size();) {
    const ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (!WaitFor(fd, POLLOUT, deadline)) {
        result.error = "the request could not be sent within the timeout";
        return result;
      }
    } else {
      result.error = "sending the request failed: " + Lowercased(std::strerror(errno));
      return result;
    }
  }

  // Read to the end (the admin listener closes after one response), or to Content-Length.
  std::string response;
  std::size_t header_end = std::string::npos;
  std::optional<std::size_t> content_length;
  char buffer[16384];
  for (;;) {
    if (header_end != std::string::npos && content_length &&
        response.size() - header_end >= *content_length) {
      break;
    }
    const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        if (!WaitFor(fd, POLLIN, deadline)) {
          result.error = "no complete answer within the timeout";
          return result;
        }
        continue;
      }
      result.error = "reading the answer failed: " + Lowercased(std::strerror(errno));
      return result;
    }
    response.append(buffer, static_cast<std::size_t>(n));
    if (header_end == std::string::npos) {
      const std::size_t end = response.find("\r\n\r\n");
      if (end == std::string::npos) continue;
      header_end = end + 4;
      // Content-Length, case-insensitively.
      std::string head = response.substr(0, end);
      for (char& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      const std::size_t at = head.find("\r\ncontent-length:");
      if (at != std::string::npos) {
        content_length = std::strtoull(head.c_str() + at + 17, nullptr, 10);
      }
    }
  }

  if (header_end == std::string::npos) {
    result.error = response.empty() ? "the connection closed without an answer"
                                    : "the answer is not an HTTP response";
    return result;
  }
  int major = 0, minor = 0, status = 0;
  if (std::sscanf(response.c_str(), "HTTP/%d.%d %d", &major, &minor, &status) != 3 ||
      status < 100 || status > 999) {
    result.error = "the answer is not an HTTP response";
    return result;
  }
  result.body = response.substr(header_end);
  if (content_length) {
    if (result.body.size() < *content_length) {
      result.error = "the answer ended early";
      return result;
    }
    result.body.resize(*content_length);
  }
  result.http_status = status;
  result.status = AdminFetchResult::Status::kOk;
  return result;
}

int RunCaReadiness(const CaReadinessArgs& args, std::ostream& out, std::ostream& err) {
  // Without a file, the embedded default's: 127.0.0.1:9090 and ./mintgate-state.
  Config config = ConfigLoader::Parse("", "").config;
  if (!args.config.empty()) {
    ConfigLoadResult loaded = ConfigLoader::LoadFile(args.config);
    if (!loaded.ok()) {
      for (const ConfigError& e : loaded.errors) err << "error: " << e.ToString() << "\n";
      return kUsageError;
    }
    config = std::move(loaded.config);
  }
  HostPort address = config.admin.listen;
  if (!args.admin.empty()) {
    const std::optional<HostPort> parsed = ParseAdminAddress(args.admin);
    if (!parsed) {
      err << "error: --admin \"" << args.admin
          << "\" is not HOST:PORT (such as 127.0.0.1:9090 or [::1]:9090)\n";
      return kUsageError;
    }
    address = *parsed;
  }
  const std::string where = address.ToString();

  const std::string token_file = args.token_file.empty() ? AdminTokenPath(config) : args.token_file;
  std::string token;
  try {
    // The gateway refuses a token file others can read; reading one is no new leak.
    token = ReadAdminToken(token_file, /*check_mode=*/false);
  } catch (const tls::LoadError& e) {
    err << "error: cannot read the admin token: " << e.what() << " (the gateway creates "
        << "state_dir/admin.token at first start; give the file with --token-file, or -c the "
           "gateway's configuration)\n";
    return kUsageError;
  }
  struct Cleanse {
    std::string& text;
    ~Cleanse() { OPENSSL_cleanse(text.data(), text.size()); }
  } cleanse{token};

  const AdminFetchResult fetched = FetchAdmin(address, "/readiness", args.timeout_ms, token);
  switch (fetched.status) {
    case AdminFetchResult::Status::kUnreachable:
      err << "error: cannot reach the admin listener at " << where << ": " << fetched.error
          << " — is mintgate running?\n";
      return kRuntimeFailure;
    case AdminFetchResult::Status::kBadResponse:
      err << "error: the admin listener at " << where << ": " << fetched.error << "\n";
      return kRuntimeFailure;
    case AdminFetchResult::Status::kOk:
      break;
  }
  if (fetched.http_status == 401) {
    err << "error: the admin listener at " << where << " refused the token from " << token_file
        << " (401): it is not the token that gateway uses (another state_dir or "
           "admin.token_file, or the file changed and the gateway was not reloaded)\n";
    return kRuntimeFailure;
  }
  if (fetched.http_status != 200) {
    err << "error: the admin listener at " << where << " answered " << fetched.http_status;
    if (fetched.http_status == 404) err << " (a gateway without client readiness tracking?)";
    const std::string detail = Trimmed(fetched.body.substr(0, 200));
    if (!detail.empty()) err << ": " << detail;
    err << "\n";
    return kRuntimeFailure;
  }
  nlohmann::json doc = nlohmann::json::parse(fetched.body, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) {
    err << "error: the admin listener at " << where
        << " did not answer with a readiness document (JSON object)\n";
    return kRuntimeFailure;
  }
  if (args.json) {
    out << doc.dump(2) << "\n";
    return kOk;
  }
  PrintReport(doc, where, out);
  return kOk;
}

}  // namespace mintgate::proxy
