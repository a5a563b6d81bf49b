// Who is behind a request ([auth]): a Proxy-Authorization credential (Negotiate through the
// keytab, Basic against the htpasswd file and then LDAP), else the client address (a static
// user, then a portal login bound to it), with the user's groups (the groups file and LDAP).
// Password hashing, Kerberos and LDAP block, so they run on the authenticator's own threads
// and their results come back to the loop that asked, like minted leaves; a verified Basic
// credential is cached (by a hash of the header value, never the value itself) so a
// keep-alive client does not pay bcrypt per request.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "proxy/config/config.h"
#include "rules/ip_address.h"

namespace mintgate::proxy::auth {

class HtpasswdFile;
class GroupsFile;
class NegotiateAcceptor;
class LdapDirectory;

struct Identity {
  std::string user;  // "" = not identified
  std::vector<std::string> groups;
  std::string source;  // "negotiate" | "basic" | "static" | "login"
};

// Failed portal sign-ins, per client address and per user name: after kFree failures within
// kWindowMs each further one doubles the wait (30 s, 60 s, ... up to kMaxWaitMs); a success
// clears the key. One table for the gateway's life. Thread-safe.
class LoginThrottle {
 public:
  static constexpr int kFree = 5;
  static constexpr std::int64_t kWindowMs = 15 * 60 * 1000;
  static constexpr std::int64_t kFirstWaitMs = 30 * 1000;
  static constexpr std::int64_t kMaxWaitMs = 15 * 60 * 1000;
  // How long `key` must wait before it may try again (0: now).
  std::int64_t WaitMs(const std::string& key, std::int64_t now_ms);
  void Failed(const std::string& key, std::int64_t now_ms);
  void Succeeded(const std::string& key);

 private:
  struct Entry {
    int failures = 0;
    std::int64_t first_ms = 0;
    std::int64_t locked_until_ms = 0;
  };
  std::mutex mu_;
  std::unordered_map<std::string, Entry> entries_;
};

// What the authentication keeps for the gateway's life, across reloads: portal logins bound to
// client addresses (surrogate identity for clients that cannot answer a 407), the sign-in
// throttle and the result counters of /metrics. Thread-safe.
class LoginSessions {
 public:
  explicit LoginSessions(std::size_t max_entries = 100'000) : max_entries_(max_entries) {}
  // `token`: the portal session cookie of the device that signed in ("" = none).
  void Bind(const std::string& client, const std::string& user, std::int64_t until_ms,
            const std::string& token = "");
  // Whether `token` is the session cookie of the sign-in bound to `client` (the device that
  // signed in, not any device sharing its address).
  bool Owns(const std::string& client, const std::string& token, std::int64_t now_ms);
  // The user bound to `client` at `now_ms` (an expired binding is dropped).
  std::optional<std::string> Find(const std::string& client, std::int64_t now_ms);
  // When the binding of `client` ends (epoch ms); nullopt when it has none.
  std::optional<std::int64_t> Until(const std::string& client, std::int64_t now_ms);
  // True when `client` had a binding.
  bool Unbind(const std::string& client);
  std::size_t size() const;
  // Failed sign-ins, kept with the logins (across reloads).
  LoginThrottle& throttle() { return throttle_; }
  // Identifications by scheme and result, for /metrics: {"basic", "ok"} -> count.
  void Count(const std::string& scheme, const std::string& result);
  std::map<std::pair<std::string, std::string>, std::uint64_t> Counts() const;

 private:
  LoginThrottle throttle_;
  mutable std::mutex counts_mu_;
  std::map<std::pair<std::string, std::string>, std::uint64_t> counts_;
  struct Entry {
    std::string user;
    std::int64_t until_ms = 0;
    std::string token;
  };
  const std::size_t max_entries_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Entry> entries_;
};

struct AuthResult {
  enum class Status {
    kOk,
    kNoCredential,  // nothing to identify the request by: the unidentified policy applies
    kFailed,        // a credential that does not verify (or a scheme not offered)
    kUnavailable,   // the source could not be asked (LDAP down, keytab unreadable)
    kBusy,          // too many checks queued
  };
  Status status = Status::kNoCredential;
  Identity identity;
  std::string scheme;  // "negotiate" | "basic" | "static" | "login" | "" (none)
  std::string reply;   // Negotiate's mutual-authentication token, base64 ("" = none)
  std::string error;   // why not, for the log (never a password or token)
  bool ok() const { return status == Status::kOk; }
};
const char* ToString(AuthResult::Status status);

class Authenticator {
 public:
  using Post = std::function<void(std::function<void()>)>;
  using Done = std::function<void(const AuthResult&)>;
  struct Options {
    int threads = 2;                  // 0: jobs only queue (tests)
    std::size_t max_pending = 256;    // checks queued; beyond, kBusy
    std::size_t max_cached = 10'000;  // verified Basic credentials remembered
  };

  Authenticator(AuthConfig config, std::shared_ptr<LoginSessions> logins, Options options);
  Authenticator(AuthConfig config, std::shared_ptr<LoginSessions> logins)
      : Authenticator(std::move(config), std::move(logins), Options{}) {}
  ~Authenticator();  // finishes the check in progress on each thread and joins them
  Authenticator(const Authenticator&) = delete;
  Authenticator& operator=(const Authenticator&) = delete;

  // Reads the htpasswd and groups files, acquires the keytab's key, checks the LDAP settings.
  // Returns the problems that make [auth] unusable; *warnings gets the rest.
  std::vector<std::string> Load(std::vector<std::string>* warnings);
  const AuthConfig& config() const { return config_; }

  // Who sent a request from `client` (textual, and parsed) with `proxy_authorization` (the
  // header's value; nullopt when absent). Answers at once (inside this call) when it can: no
  // credential, a cached Basic credential, a static user or portal login whose groups are
  // known without LDAP; otherwise on a thread, through `post`.
  void Identify(const std::string& client, const rules::IpAddress& ip,
                std::optional<std::string> proxy_authorization, const Post& post, Done done);
  // The portal's login form: `user` and `password` against the Basic sources (htpasswd, then
  // LDAP). Always through `post`.
  void CheckPassword(std::string user, std::string password, const Post& post, Done done);

  // "Proxy-Authenticate: ..." lines for a 407, one per offered scheme in order, each ending
  // in CRLF.
  std::string ChallengeHeaders() const;
  LoginSessions& logins() { return *logins_; }
  const std::shared_ptr<LoginSessions>& logins_ptr() const { return logins_; }
  LoginThrottle& throttle() { return logins_->throttle(); }

  // Results by scheme and status, for /metrics: {"basic", "ok"} -> count.
  std::map<std::pair<std::string, std::string>, std::uint64_t> Counts() const;
  std::size_t pending() const;

 private:
  struct Job {
    std::function<AuthResult()> work;
    Post post;
    Done done;
  };
  struct CachedCredential {
    Identity identity;
    std::int64_t until_ms = 0;
  };
  struct CachedGroups {
    std::vector<std::string> groups;
    std::int64_t until_ms = 0;
  };
  void Enqueue(std::function<AuthResult()> work, const Post& post, Done done);
  void Run();
  void Count(const AuthResult& result) const;
  AuthResult Finish(AuthResult result, const Done& done) const;
  AuthResult CheckBasic(const std::string& header_hash, std::string_view user,
                        std::string_view password, bool cache);
  AuthResult CheckNegotiate(std::string token);
  // Groups of `user` (the groups file, then LDAP with its TTL); `dn` when Bind found it.
  std::vector<std::string> GroupsOf(const std::string& user, const std::string& dn);
  // The groups known without asking LDAP (nullopt: LDAP must be asked).
  std::optional<std::vector<std::string>> CachedGroupsOf(const std::string& user);
  static std::int64_t NowMs();

  const AuthConfig config_;
  const Options options_;
  std::shared_ptr<LoginSessions> logins_;
  std::vector<std::pair<std::vector<rules::Cidr>, std::string>> static_users_;
  std::unique_ptr<HtpasswdFile> htpasswd_;
  std::unique_ptr<GroupsFile> groups_file_;
  std::unique_ptr<NegotiateAcceptor> negotiate_;
  std::unique_ptr<LdapDirectory> ldap_;

  mutable std::mutex mu_;  // the queue and the caches
  std::condition_variable wake_;
  std::deque<Job> queue_;
  bool stopping_ = false;
  std::unordered_map<std::string, CachedCredential> credentials_;  // by SHA-256 of the header
  std::unordered_map<std::string, CachedGroups> ldap_groups_;      // by user
  std::vector<std::thread> threads_;
};

}  // namespace mintgate::proxy::auth
