#include "proxy/control/admin_server.h"

#include <algorithm>
#include <cctype>
#include <ctime>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "proxy/config/admin_access.h"
#include "proxy/config/admin_token.h"
#include "proxy/control/audit_command.h"
#include "proxy/control/console.h"
#include "proxy/http/error_page.h"
#include "proxy/http/http_codec.h"
#include "proxy/runtime/readiness.h"

namespace mintgate::proxy {
namespace {

// Admin requests are small (a request line and a few headers, no body): bounds that leave room
// for any real client but stop one from making the gateway buffer or parse megabytes.
constexpr HttpParser::Limits kAdminLimits{16 * 1024, 2 * 1024};  // -> 431, 414
constexpr std::size_t kMaxBodyBytes = 8 * 1024;                  // -> 413

// Every admin answer closes its connection and is never cached (tokens, client addresses).
std::string Response(int status, const char* type, const std::string& body) {
  return "HTTP/1.1 " + std::to_string(status) + " " + std::string(StatusText(status)) +
         "\r\nContent-Type: " + type + "\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n" + body;
}

std::string TextResponse(int status, const std::string& body) {
  return Response(status, "text/plain", body);
}

const HttpHeader* FindHeader(const std::vector<HttpHeader>& headers, std::string_view name) {
  for (const HttpHeader& h : headers) {
    if (h.name.size() == name.size() &&
        std::equal(name.begin(), name.end(), h.name.begin(), [](char a, char b) {
          return std::tolower(static_cast<unsigned char>(a)) ==
                 std::tolower(static_cast<unsigned char>(b));
        })) {
      return &h;
    }
  }
  return nullptr;
}

// RFC 6750 §3: the challenge names the scheme, and says invalid_token when one was sent.
std::string Unauthorized(bool token_sent) {
  std::string r = TextResponse(
      401, token_sent ? "wrong admin token\n"
                      : "this endpoint needs \"Authorization: Bearer <token>\" with the gateway's "
                        "admin token (admin.token_file, by default state_dir/admin.token)\n");
  std::string challenge = "WWW-Authenticate: Bearer realm=\"mintgate admin\"";
  if (token_sent) challenge += ", error=\"invalid_token\"";
  return r.insert(r.find("\r\n") + 2, challenge + "\r\n");
}

std::string Seconds(std::uint64_t ms) {
  std::ostringstream s;
  s << static_cast<double>(ms) / 1000.0;
  return s.str();
}

}  // namespace

// One admin client: read one request, answer, close. A timer bounds each phase, so no client
// holds a connection (or the loop at exit) for ever: the request must be complete within
// timeouts.request_head (a client that trickles bytes or sends nothing gets 408), the answer
// must be taken within as long again, and after it the connection lingers (reading and
// dropping what the client still sends) for at most timeouts.linger until the client closes:
// closing with unread bytes would reset the connection and could destroy the answer (a 413)
// before the client reads it.
struct AdminServer::Connection : HttpParser::Handler {
  enum class Phase { kReading, kWriting, kLingering };
  uv_tcp_t tcp{};
  uv_timer_t timer{};
  uv_shutdown_t shutdown{};
  AdminServer* server = nullptr;
  std::unique_ptr<HttpParser> parser;
  std::string method, target, body, peer;
  std::vector<HttpHeader> headers;
  std::uint64_t request_ms = 0;
  std::uint64_t linger_ms = 0;
  std::size_t body_bytes = 0;
  Phase phase = Phase::kReading;
  bool closing = false;
  int open_handles = 0;
  char buffer[4096];

  void OnHead(HttpHead& head) override {
    method = head.method;
    target = head.target;
    headers = std::move(head.headers);
    if (head.content_length && *head.content_length > kMaxBodyBytes) {
      Answer(TextResponse(413, "admin requests carry no body\n"));
    }
  }
  void OnBody(const char* data, std::size_t size) override {
    body_bytes += size;
    if (body_bytes > kMaxBodyBytes) {
      Answer(TextResponse(413, "admin requests carry no body\n"));
      return;
    }
    body.append(data, size);  // the console's forms
  }
  void OnMessageComplete() override {
    Answer(server->Respond(method, target, headers, body, peer));
  }

  void Start() {
    uv_timer_init(tcp.loop, &timer);
    timer.data = this;
    open_handles = 2;
    Arm(request_ms);
    uv_read_start(
        reinterpret_cast<uv_stream_t*>(&tcp),
        [](uv_handle_t* h, std::size_t, uv_buf_t* buf) {
          auto* conn = static_cast<Connection*>(h->data);
          *buf = uv_buf_init(conn->buffer, sizeof conn->buffer);
        },
        [](uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
          static_cast<Connection*>(s->data)->OnRead(nread, buf);
        });
  }

  void Arm(std::uint64_t ms) {
    uv_timer_start(
        &timer, [](uv_timer_t* t) { static_cast<Connection*>(t->data)->OnTimeout(); }, ms, 0);
  }

  void OnRead(ssize_t nread, const uv_buf_t* buf) {
    if (closing) return;
    if (nread < 0) {
      Close();  // the client closed (or reset): nothing more to read or tell it
      return;
    }
    if (phase != Phase::kReading) return;  // after the request: dropped unread
    HttpParser::FeedResult r = parser->Feed(buf->base, static_cast<std::size_t>(nread));
    if (r.error) Answer(TextResponse(r.error->status, r.error->reason + "\n"));
  }

  void OnTimeout() {
    if (closing) return;
    if (phase == Phase::kReading) {
      Answer(TextResponse(408, "no complete request within " + Seconds(request_ms) + " s\n"));
    } else {
      Close();  // the client does not take its answer, or does not close after it
    }
  }

  void Answer(std::string text) {
    if (phase != Phase::kReading || closing) return;
    phase = Phase::kWriting;
    Arm(request_ms);
    struct Write {
      uv_write_t req;
      std::string data;
    };
    auto* w = new Write{{}, std::move(text)};
    w->req.data = this;
    uv_buf_t buf = uv_buf_init(w->data.data(), static_cast<unsigned>(w->data.size()));
    if (uv_write(&w->req, reinterpret_cast<uv_stream_t*>(&tcp), &buf, 1,
                 [](uv_write_t* req, int status) {
                   auto* c = static_cast<Connection*>(req->data);
                   delete reinterpret_cast<Write*>(req);
                   c->OnWritten(status);
                 }) != 0) {
      delete w;
      Close();
    }
  }

  void OnWritten(int status) {
    if (closing) return;
    if (status != 0) {
      Close();
      return;
    }
    phase = Phase::kLingering;
    Arm(linger_ms);
    // FIN after the answer; the client's own close (or the linger timer) ends the connection.
    auto* stream = reinterpret_cast<uv_stream_t*>(&tcp);
    if (uv_shutdown(&shutdown, stream, [](uv_shutdown_t*, int) {}) != 0) Close();
  }

  // Closing the socket cancels a pending write or shutdown, whose callback then runs (and
  // finds us closing) before the close callbacks: the connection goes after both handles.
  void Close() {
    if (closing) return;
    closing = true;
    server->connections_.erase(this);
    auto closed = [](uv_handle_t* h) {
      auto* c = static_cast<Connection*>(h->data);
      if (--c->open_handles == 0) delete c;
    };
    uv_timer_stop(&timer);
    uv_close(reinterpret_cast<uv_handle_t*>(&timer), closed);
    uv_close(reinterpret_cast<uv_handle_t*>(&tcp), closed);
  }
};

AdminServer::AdminServer(uv_loop_t* loop, RuntimePtr runtime, std::string config_path)
    : loop_(loop),
      runtime_(std::move(runtime)),
      config_path_(std::move(config_path)),
      listen_(runtime_->config.admin.listen),
      console_(std::make_unique<Console>(config_path_, listen_.ToString())) {}

AdminServer::~AdminServer() = default;

void AdminServer::SetReloader(std::function<ReloadOutcome()> reload, const ReloadStats* stats) {
  reload_ = std::move(reload);
  reload_stats_ = stats;
  console_->SetReloader(reload_);
}

std::string AdminServer::Start() {
  const HostPort& hp = runtime_->config.admin.listen;
  sockaddr_storage ss{};
  const std::string host = hp.host == "localhost" ? "127.0.0.1" : hp.host;
  if (uv_ip4_addr(host.c_str(), hp.port, reinterpret_cast<sockaddr_in*>(&ss)) != 0 &&
      uv_ip6_addr(host.c_str(), hp.port, reinterpret_cast<sockaddr_in6*>(&ss)) != 0) {
    return hp.ToString() + ": the admin listen address must be an IP address";
  }
  listener_ = new uv_tcp_t;
  listener_->data = this;
  uv_tcp_init(loop_, listener_);
  int rc = uv_tcp_bind(listener_, reinterpret_cast<sockaddr*>(&ss), 0);
  if (rc == 0) {
    rc = uv_listen(reinterpret_cast<uv_stream_t*>(listener_), 64, [](uv_stream_t* s, int status) {
      if (status == 0) static_cast<AdminServer*>(s->data)->OnConnection();
    });
  }
  if (rc != 0) {
    Close();
    return hp.ToString() + ": " + uv_strerror(rc);
  }
  // The port requests must name is the one bound (the configuration may say 0).
  int len = sizeof ss;
  if (uv_tcp_getsockname(listener_, reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
    listen_.port = ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                                  : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  }
  return "";
}

void AdminServer::Close() {
  if (listener_ == nullptr) return;
  uv_close(reinterpret_cast<uv_handle_t*>(listener_),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_tcp_t*>(h); });
  listener_ = nullptr;
  // Requests still arriving are abandoned; answers being written finish (under their timer).
  std::vector<Connection*> reading;
  for (Connection* c : connections_) {
    if (c->phase == Connection::Phase::kReading) reading.push_back(c);
  }
  for (Connection* c : reading) c->Close();
}

void AdminServer::OnConnection() {
  auto* c = new Connection;
  c->server = this;
  c->tcp.data = c;
  c->request_ms = runtime_->config.timeouts.request_head_ms;
  c->linger_ms = runtime_->config.timeouts.linger_ms;
  uv_tcp_init(loop_, &c->tcp);
  if (uv_accept(reinterpret_cast<uv_stream_t*>(listener_),
                reinterpret_cast<uv_stream_t*>(&c->tcp)) != 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(&c->tcp),
             [](uv_handle_t* h) { delete static_cast<Connection*>(h->data); });
    return;
  }
  sockaddr_storage ss{};
  int len = sizeof ss;
  char text[INET6_ADDRSTRLEN] = "";
  if (uv_tcp_getpeername(&c->tcp, reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
    if (ss.ss_family == AF_INET6) {
      uv_ip6_name(reinterpret_cast<sockaddr_in6*>(&ss), text, sizeof text);
    } else {
      uv_ip4_name(reinterpret_cast<sockaddr_in*>(&ss), text, sizeof text);
    }
  }
  c->peer = text;
  c->parser = std::make_unique<HttpParser>(HttpParser::Kind::kRequest, *c, kAdminLimits);
  connections_.insert(c);
  c->Start();
}

std::string AdminServer::Respond(const std::string& method, const std::string& target,
                                 const std::vector<HttpHeader>& headers, const std::string& body,
                                 const std::string& peer) const {
  // Before anything else, so that a DNS-rebinding page learns nothing, not even /healthz.
  const HttpHeader* host = FindHeader(headers, "Host");
  if (host == nullptr) return TextResponse(400, "a Host header is required\n");
  if (std::string problem = AdminHostProblem(host->value, listen_); !problem.empty()) {
    return TextResponse(403, problem + "\n");
  }
  const std::string path = target.substr(0, target.find('?'));
  if (Console::Handles(path)) {
    return console_->Respond({method, target, &headers, body, peer}, *runtime_);
  }
  // Load balancers and orchestrators probe /healthz and /readyz without credentials; they tell
  // nothing but whether to send traffic here.
  if (path != "/healthz" && path != "/readyz") {
    const HttpHeader* authorization = FindHeader(headers, "Authorization");
    if (authorization == nullptr ||
        !BearerTokenMatches(authorization->value, runtime_->admin_token)) {
      return Unauthorized(authorization != nullptr);
    }
  }
  return Serve(method, path);
}

std::string AdminServer::Serve(const std::string& method, const std::string& path) const {
  if (path == "/healthz") return Response(200, "text/plain", "ok\n");
  // A balancer's health check: 503 from the moment a drain starts, so that new connections go
  // elsewhere while this gateway finishes the ones it has.
  if (path == "/readyz") {
    return draining_ ? Response(503, "text/plain", "draining\n")
                     : Response(200, "text/plain", "ready\n");
  }
  if (path == "/metrics") {
    std::ostringstream m;
    m << "# HELP mintgate_up 1 while the gateway runs.\n# TYPE mintgate_up gauge\nmintgate_up 1\n";
    if (reload_stats_ != nullptr) {
      const ReloadStats& r = *reload_stats_;
      m << "# HELP mintgate_config_reloads_total Configuration reloads (SIGHUP, POST /reload).\n"
        << "# TYPE mintgate_config_reloads_total counter\n"
        << "mintgate_config_reloads_total{result=\"ok\"} " << r.ok << "\n"
        << "mintgate_config_reloads_total{result=\"rejected\"} " << r.rejected << "\n"
        << "# HELP mintgate_config_last_reload_timestamp_seconds When the configuration in use "
           "was loaded (start or last successful reload).\n"
        << "# TYPE mintgate_config_last_reload_timestamp_seconds gauge\n"
        << "mintgate_config_last_reload_timestamp_seconds " << r.last_success << "\n"
        << "# HELP mintgate_config_last_reload_successful 0 when the last reload was rejected.\n"
        << "# TYPE mintgate_config_last_reload_successful gauge\n"
        << "mintgate_config_last_reload_successful " << (r.last_ok ? 1 : 0) << "\n";
    }
    if (runtime_->mint) {
      const tls::CertCacheStats s = runtime_->mint->cache_stats();
      auto counter = [&m](const char* name, const char* help, std::uint64_t v) {
        m << "# HELP " << name << " " << help << "\n# TYPE " << name << " counter\n"
          << name << " " << v << "\n";
      };
      counter("mintgate_cert_cache_hits_total", "Leaf lookups served from the cache.", s.hits);
      counter("mintgate_cert_cache_misses_total", "Leaf lookups that started a mint.", s.misses);
      counter("mintgate_cert_mints_total", "Leaves minted.", s.mints);
      counter("mintgate_cert_coalesced_total", "Lookups that joined a running mint.", s.coalesced);
      counter("mintgate_cert_cache_evictions_total", "Leaves evicted or expired.", s.evictions);
      counter("mintgate_cert_mint_failures_total", "Mints that failed.", s.failures);
      counter("mintgate_cert_mint_refusals_total",
              "New leaves refused because mint.max_pending mints were queued (their "
              "connections closed).",
              runtime_->mint->mint_refusals());
      m << "# HELP mintgate_cert_mints_pending Mints queued for a signing thread.\n"
        << "# TYPE mintgate_cert_mints_pending gauge\nmintgate_cert_mints_pending "
        << runtime_->mint->pending() << "\n";
      m << "# HELP mintgate_cert_cache_entries Leaves in the cache.\n"
        << "# TYPE mintgate_cert_cache_entries gauge\nmintgate_cert_cache_entries " << s.entries
        << "\n";
      const std::time_t now = std::time(nullptr);
      m << "# HELP mintgate_ca_expiry_days Days until a CA profile's certificate expires "
           "(alert below 30).\n# TYPE mintgate_ca_expiry_days gauge\n";
      for (const auto& [name, not_after] : runtime_->mint->ProfileExpiry()) {
        m << "mintgate_ca_expiry_days{profile=\"" << name << "\"} " << (not_after - now) / 86400
          << "\n";
      }
      m << "# HELP mintgate_ca_expiring 1 while a CA profile is within 30 days of its not-after "
           "(0 once expired: see mintgate_ca_expired).\n# TYPE mintgate_ca_expiring gauge\n";
      for (const auto& [name, not_after] : runtime_->mint->ProfileExpiry()) {
        const bool expiring = now < not_after && not_after - now <= MintService::kExpiryWarning;
        m << "mintgate_ca_expiring{profile=\"" << name << "\"} " << (expiring ? 1 : 0) << "\n";
      }
      m << "# HELP mintgate_ca_expired 1 once a CA profile's certificate has expired: it signs "
           "nothing.\n# TYPE mintgate_ca_expired gauge\n";
      for (const auto& [name, not_after] : runtime_->mint->ProfileExpiry()) {
        m << "mintgate_ca_expired{profile=\"" << name << "\"} " << (now >= not_after ? 1 : 0)
          << "\n";
      }
      counter("mintgate_ca_expired_refusals_total",
              "Decrypt decisions blocked or tunnelled because their CA had expired.",
              runtime_->mint->expired_refusals());
    }
    if (const auto& auth = runtime_->auth) {
      m << "# HELP mintgate_auth_results_total Identifications by scheme (negotiate, basic, "
           "static, login) and result (ok, failed, unavailable, busy).\n"
        << "# TYPE mintgate_auth_results_total counter\n";
      for (const auto& [key, count] : auth->Counts()) {
        m << "mintgate_auth_results_total{scheme=\"" << key.first << "\",result=\"" << key.second
          << "\"} " << count << "\n";
      }
      m << "# HELP mintgate_auth_logins Client addresses bound to a user by a portal sign-in.\n"
        << "# TYPE mintgate_auth_logins gauge\nmintgate_auth_logins " << auth->logins().size()
        << "\n"
        << "# HELP mintgate_auth_pending Credential checks queued for the authenticator's "
           "threads.\n# TYPE mintgate_auth_pending gauge\nmintgate_auth_pending "
        << auth->pending() << "\n";
    }
    if (const auto& connections = runtime_->connections) {
      m << "# HELP mintgate_connections_open Client connections open now, over all workers.\n"
        << "# TYPE mintgate_connections_open gauge\nmintgate_connections_open "
        << connections->open() << "\n"
        << "# HELP mintgate_connection_clients Client addresses with a connection open.\n"
        << "# TYPE mintgate_connection_clients gauge\nmintgate_connection_clients "
        << connections->clients() << "\n"
        << "\n";
    }
    WriteWorkerMetrics(m, workers_);
    m << "# HELP mintgate_draining 1 once a stop (SIGTERM) began: /readyz answers 503.\n"
      << "# TYPE mintgate_draining gauge\nmintgate_draining " << (draining_ ? 1 : 0) << "\n";
    return Response(200, "text/plain; version=0.0.4", m.str());
  }
  if (path == "/readiness") {
    const std::time_t now = std::time(nullptr);
    // Every profile a leaf can come from is listed, even before any client used it.
    std::vector<std::string> profiles;
    for (const CaProfileConfig& ca : runtime_->config.cas) profiles.push_back(ca.spec.name);
    if (runtime_->config.inspection.enabled) {
      profiles.push_back(runtime_->config.inspection.default_ca);
    }
    const nlohmann::json doc = runtime_->readiness ? runtime_->readiness->ToJson(now, profiles)
                                                   : ReadinessTracker::EmptyJson(now);
    return Response(200, "application/json", doc.dump(2) + "\n");
  }
  if (path == "/audit") {
    if (config_path_.empty()) {
      return Response(404, "text/plain",
                      "no configuration file: the embedded default has nothing to audit\n");
    }
    std::ostringstream out, err;
    CaAuditArgs args;
    args.config = config_path_;
    args.json = true;
    const int rc = RunCaAudit(args, out, err);
    if (rc == 2 && out.str().empty()) return Response(500, "text/plain", err.str());
    // A profile that cannot be read fails the audit: the report still comes, with "ok": false
    // and its errors, under a status a monitor notices.
    return Response(rc == 2 ? 500 : 200, "application/json", out.str());
  }
  if (path == "/reload") return RespondReload(method);
  return Response(404, "text/plain", "unknown admin endpoint " + path + "\n");
}

std::string AdminServer::RespondReload(const std::string& method) const {
  if (method != "POST") {
    std::string r = Response(405, "text/plain", "use POST /reload\n");
    return r.insert(r.find("\r\n") + 2, "Allow: POST\r\n");
  }
  if (!reload_) {
    return Response(501, "text/plain", "this gateway cannot reload\n");
  }
  const ReloadOutcome outcome = reload_();
  nlohmann::json j = {{"ok", outcome.ok}};
  if (outcome.ok) {
    j["message"] = outcome.message;
    j["file"] = outcome.file;
    j["rules"] = outcome.rules;
    j["ca_profiles"] = outcome.ca_profiles;
    j["certificate_cache"] = outcome.mint_kept ? "kept" : "new";
    j["restart_needed"] = outcome.restart_needed;
  } else {
    j["errors"] = outcome.errors;
  }
  const int status = outcome.ok ? 200 : outcome.http_status;
  return Response(status, "application/json",
                  j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
}

}  // namespace mintgate::proxy
