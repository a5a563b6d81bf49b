// The migration console (the console issue): HTML on the admin listener at /console/, for the
// administrator of a CA migration. Login with the admin token gives a session cookie
// (HttpOnly, SameSite=Strict, 8 hours at most, 1 hour idle); every form carries the session's
// CSRF token and is refused without it, or when the browser says it came from another site.
// Actions (a retire_at moved, a cutover rolled back, a canary started or stopped) are shown
// for confirmation first, then written to the schedule overlay and its audit log in
// state_dir, and applied by reloading the configuration. Runs on the admin listener's loop
// (the main thread): not thread-safe.
#pragma once

#include <ctime>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "proxy/config/config.h"
#include "proxy/control/admin_server.h"
#include "proxy/http/http_codec.h"
#include "proxy/runtime/runtime.h"

namespace mintgate::proxy {

struct ConsoleRequest {
  std::string method;
  std::string target;  // path and query
  const std::vector<HttpHeader>* headers = nullptr;
  std::string body;  // a form, application/x-www-form-urlencoded
  std::string peer;  // the client's address, for the audit log and login throttling
};

class Console {
 public:
  // `config_path` "" for the embedded default (nothing to audit, nothing to schedule).
  // `reload` applies a schedule change (the admin listener's reloader); may be empty.
  Console(std::string config_path, std::string gateway_name);

  void SetReloader(std::function<ReloadOutcome()> reload) { reload_ = std::move(reload); }
  // The clock sessions expire by (tests move it).
  void SetClock(std::function<std::time_t()> now) { now_ = std::move(now); }

  // "/" and everything under /console.
  static bool Handles(const std::string& path);

  // The whole HTTP response for one request; `runtime` is the one in force.
  std::string Respond(const ConsoleRequest& request, const Runtime& runtime);

  static constexpr std::time_t kSessionSeconds = 8 * 3600;
  static constexpr std::time_t kIdleSeconds = 3600;
  static constexpr std::size_t kMaxSessions = 64;
  static constexpr int kMaxLoginFailures = 10;  // per client address, per kFailureWindow
  static constexpr std::time_t kFailureWindow = 300;
  static constexpr const char* kCookie = "mintgate_console";

 private:
  struct Session {
    std::string csrf;
    std::time_t created = 0;
    std::time_t last_used = 0;
    std::string peer;
    std::string flash;  // the outcome of the last action, shown once
    bool flash_error = false;
  };
  struct Failures {
    int count = 0;
    std::time_t since = 0;
  };
  using Form = std::map<std::string, std::string>;
  struct Change;  // what an action form asks for

  std::string Login(const ConsoleRequest& request, const Runtime& runtime, const Form& form);
  Session* SessionOf(const ConsoleRequest& request, std::string* id);
  std::string Page(Session& session, const Runtime& runtime);
  std::string Export(const std::string& file, const Runtime& runtime);
  // Why a form's change cannot even be tried, as the whole answer; "" with the
  // configuration file (without the overlay) read into `file`.
  std::string Refuse(const Change& change, ConfigLoadResult& file) const;
  std::string Confirm(Session& session, const Runtime& runtime, const Form& form);
  std::string Act(Session& session, const ConsoleRequest& request, const Runtime& runtime,
                  const Form& form);
  // The /audit report of the configuration file (with the overlay), or null with why not.
  nlohmann::json Audit(std::string* error) const;
  // The schedule actions of the audit log, newest first.
  nlohmann::json RecentActions(const Runtime& runtime) const;
  std::time_t Now() const { return now_ ? now_() : std::time(nullptr); }
  void Expire();

  std::string config_path_;
  std::string gateway_name_;
  std::function<ReloadOutcome()> reload_;
  std::function<std::time_t()> now_;
  std::map<std::string, Session> sessions_;   // by the cookie's value
  std::map<std::string, Failures> failures_;  // by client address
};

}  // namespace mintgate::proxy
