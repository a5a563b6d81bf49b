#include "proxy/auth/authenticator.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <strings.h>

#include <algorithm>
#include <chrono>

#include "proxy/auth/base64.h"
#include "proxy/auth/groups_file.h"
#include "proxy/auth/htpasswd.h"
#include "proxy/auth/ldap_directory.h"
#include "proxy/auth/negotiate.h"

namespace mintgate::proxy::auth {
namespace {

constexpr std::size_t kMaxCredential = 64 << 10;  // Kerberos tokens with a large PAC

std::string Sha256Hex(std::string_view text) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(sizeof digest * 2);
  for (unsigned char b : digest) {
    out += kHex[b >> 4];
    out += kHex[b & 15];
  }
  return out;
}

// "Basic xyz" -> {"basic", "xyz"}; the scheme lower-cased.
std::pair<std::string, std::string_view> SplitCredential(std::string_view value) {
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  const std::size_t space = value.find(' ');
  std::string scheme(value.substr(0, space));
  for (char& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::string_view rest =
      space == std::string_view::npos ? std::string_view() : value.substr(space);
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  while (!rest.empty() && rest.back() == ' ') rest.remove_suffix(1);
  return {scheme, rest};
}

void SortUnique(std::vector<std::string>& v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
}

}  // namespace

const char* ToString(AuthResult::Status status) {
  switch (status) {
    case AuthResult::Status::kOk:
      return "ok";
    case AuthResult::Status::kNoCredential:
      return "none";
    case AuthResult::Status::kFailed:
      return "failed";
    case AuthResult::Status::kUnavailable:
      return "unavailable";
    case AuthResult::Status::kBusy:
      return "busy";
  }
  return "?";
}

// LoginSessions

void LoginSessions::Bind(const std::string& client, const std::string& user, std::int64_t until_ms,
                         const std::string& token) {
  std::lock_guard lock(mu_);
  if (entries_.size() >= max_entries_ && entries_.find(client) == entries_.end()) {
    // Full: drop whatever has expired; if nothing has, the oldest binding goes.
    std::int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
    std::erase_if(entries_, [&](const auto& e) { return e.second.until_ms <= now; });
    if (entries_.size() >= max_entries_) {
      auto oldest = std::min_element(entries_.begin(), entries_.end(), [](auto& a, auto& b) {
        return a.second.until_ms < b.second.until_ms;
      });
      entries_.erase(oldest);
    }
  }
  entries_[client] = Entry{user, until_ms, token};
}

std::optional<std::string> LoginSessions::Find(const std::string& client, std::int64_t now_ms) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(client);
  if (it == entries_.end()) return std::nullopt;
  if (it->second.until_ms <= now_ms) {
    entries_.erase(it);
    return std::nullopt;
  }
  return it->second.user;
}

bool LoginSessions::Owns(const std::string& client, const std::string& token, std::int64_t now_ms) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(client);
  if (it == entries_.end() || it->second.until_ms <= now_ms || token.empty()) return false;
  const std::string& mine = it->second.token;
  return mine.size() == token.size() && CRYPTO_memcmp(mine.data(), token.data(), mine.size()) == 0;
}

std::optional<std::int64_t> LoginSessions::Until(const std::string& client, std::int64_t now_ms) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(client);
  if (it == entries_.end() || it->second.until_ms <= now_ms) return std::nullopt;
  return it->second.until_ms;
}

bool LoginSessions::Unbind(const std::string& client) {
  std::lock_guard lock(mu_);
  return entries_.erase(client) > 0;
}

void LoginSessions::Count(const std::string& scheme, const std::string& result) {
  std::lock_guard lock(counts_mu_);
  ++counts_[{scheme, result}];
}

std::map<std::pair<std::string, std::string>, std::uint64_t> LoginSessions::Counts() const {
  std::lock_guard lock(counts_mu_);
  return counts_;
}

std::size_t LoginSessions::size() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

// LoginThrottle

std::int64_t LoginThrottle::WaitMs(const std::string& key, std::int64_t now_ms) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return 0;
  return std::max<std::int64_t>(0, it->second.locked_until_ms - now_ms);
}

void LoginThrottle::Failed(const std::string& key, std::int64_t now_ms) {
  std::lock_guard lock(mu_);
  if (entries_.size() >= 100'000 && entries_.find(key) == entries_.end()) {
    std::erase_if(entries_, [&](const auto& e) {
      return e.second.locked_until_ms <= now_ms && now_ms - e.second.first_ms > kWindowMs;
    });
    if (entries_.size() >= 100'000) entries_.clear();
  }
  Entry& e = entries_[key];
  if (e.failures == 0 || now_ms - e.first_ms > kWindowMs) {
    if (e.locked_until_ms <= now_ms) e = Entry{0, now_ms, 0};
  }
  ++e.failures;
  if (e.failures >= kFree) {
    const int doublings = std::min(e.failures - kFree, 10);
    const std::int64_t wait = std::min(kMaxWaitMs, kFirstWaitMs << doublings);
    e.locked_until_ms = now_ms + wait;
  }
}

void LoginThrottle::Succeeded(const std::string& key) {
  std::lock_guard lock(mu_);
  entries_.erase(key);
}

// Authenticator

Authenticator::Authenticator(AuthConfig config, std::shared_ptr<LoginSessions> logins,
                             Options options)
    : config_(std::move(config)), options_(options), logins_(std::move(logins)) {
  if (!logins_) logins_ = std::make_shared<LoginSessions>();
  for (const StaticUser& s : config_.static_users) {
    std::vector<rules::Cidr> cidrs;
    for (const std::string& client : s.clients) {
      if (auto cidr = rules::Cidr::Parse(client, nullptr)) cidrs.push_back(*cidr);
    }
    static_users_.emplace_back(std::move(cidrs), s.user);
  }
  if (!config_.htpasswd.empty()) {
    htpasswd_ = std::make_unique<HtpasswdFile>(config_.htpasswd, config_.allow_weak_hashes);
  }
  if (!config_.groups_file.empty())
    groups_file_ = std::make_unique<GroupsFile>(config_.groups_file);
  if (config_.Offers(AuthScheme::kNegotiate)) {
    negotiate_ = std::make_unique<NegotiateAcceptor>(config_.keytab, config_.service_principal,
                                                     config_.strip_realm);
  }
  if (!config_.ldap.url.empty()) ldap_ = std::make_unique<LdapDirectory>(config_.ldap);
  for (int i = 0; i < options_.threads; ++i) threads_.emplace_back([this] { Run(); });
}

Authenticator::~Authenticator() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (std::thread& t : threads_) t.join();
}

std::vector<std::string> Authenticator::Load(std::vector<std::string>* warnings) {
  std::vector<std::string> errors;
  if (htpasswd_) {
    if (std::string why = htpasswd_->Load(warnings); !why.empty()) errors.push_back(why);
  }
  if (groups_file_) {
    if (std::string why = groups_file_->Load(warnings); !why.empty()) errors.push_back(why);
  }
  if (negotiate_) {
    if (std::string why = negotiate_->Load(); !why.empty()) errors.push_back(why);
  }
  if (ldap_) {
    if (std::string why = ldap_->Check(); !why.empty()) errors.push_back(why);
  }
  return errors;
}

std::string Authenticator::ChallengeHeaders() const {
  std::string out;
  for (AuthScheme scheme : config_.schemes) {
    if (scheme == AuthScheme::kNegotiate) {
      out += "Proxy-Authenticate: Negotiate\r\n";
    } else {
      out += "Proxy-Authenticate: Basic realm=\"" + config_.realm + "\", charset=\"UTF-8\"\r\n";
    }
  }
  return out;
}

std::int64_t Authenticator::NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void Authenticator::Count(const AuthResult& result) const {
  if (result.status == AuthResult::Status::kNoCredential) return;
  logins_->Count(result.scheme.empty() ? "unknown" : result.scheme, ToString(result.status));
}

std::map<std::pair<std::string, std::string>, std::uint64_t> Authenticator::Counts() const {
  return logins_->Counts();
}

std::size_t Authenticator::pending() const {
  std::lock_guard lock(mu_);
  return queue_.size();
}

AuthResult Authenticator::Finish(AuthResult result, const Done& done) const {
  Count(result);
  done(result);
  return result;
}

void Authenticator::Enqueue(std::function<AuthResult()> work, const Post& post, Done done) {
  {
    std::lock_guard lock(mu_);
    if (queue_.size() < options_.max_pending && !stopping_) {
      queue_.push_back(Job{std::move(work), post, std::move(done)});
      wake_.notify_one();
      return;
    }
  }
  AuthResult busy;
  busy.status = AuthResult::Status::kBusy;
  busy.error = "too many authentications in progress";
  Count(busy);
  post([done = std::move(done), busy] { done(busy); });
}

void Authenticator::Run() {
  while (true) {
    Job job;
    {
      std::unique_lock lock(mu_);
      wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, nothing left
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    AuthResult result = job.work();
    Count(result);
    job.post([done = std::move(job.done), result = std::move(result)] { done(result); });
  }
}

std::optional<std::vector<std::string>> Authenticator::CachedGroupsOf(const std::string& user) {
  std::vector<std::string> groups;
  if (groups_file_) groups = groups_file_->GroupsOf(user);
  if (ldap_ && !config_.ldap.group_base.empty()) {
    std::lock_guard lock(mu_);
    auto it = ldap_groups_.find(user);
    if (it == ldap_groups_.end() || it->second.until_ms <= NowMs()) return std::nullopt;
    groups.insert(groups.end(), it->second.groups.begin(), it->second.groups.end());
  }
  SortUnique(groups);
  return groups;
}

std::vector<std::string> Authenticator::GroupsOf(const std::string& user, const std::string& dn) {
  if (auto cached = CachedGroupsOf(user)) return *cached;
  std::vector<std::string> groups;
  if (groups_file_) groups = groups_file_->GroupsOf(user);
  std::string error;
  if (auto from_ldap = ldap_->Groups(user, dn, &error)) {
    std::lock_guard lock(mu_);
    if (ldap_groups_.size() >= options_.max_cached) ldap_groups_.clear();
    ldap_groups_[user] =
        CachedGroups{*from_ldap, NowMs() + std::int64_t(config_.ldap.cache_ttl_ms)};
    groups.insert(groups.end(), from_ldap->begin(), from_ldap->end());
  }
  // A directory that cannot be asked leaves the user with the groups file's groups only: the
  // rules on LDAP groups then do not match (not cached, so the next request asks again).
  SortUnique(groups);
  return groups;
}

AuthResult Authenticator::CheckBasic(const std::string& header_hash, std::string_view user,
                                     std::string_view password, bool cache) {
  AuthResult result;
  result.scheme = "basic";
  result.status = AuthResult::Status::kFailed;
  CheckResult check = CheckResult::kUnknownUser;
  std::string dn;
  std::string ldap_user;  // the directory's spelling of the name
  if (htpasswd_) check = htpasswd_->Verify(user, password);
  if (check == CheckResult::kUnknownUser && ldap_) {
    LdapBind bind = ldap_->Bind(user, password);
    check = bind.result;
    dn = bind.dn;
    if (!bind.user.empty()) ldap_user = bind.user;
    if (check == CheckResult::kUnavailable) result.error = "LDAP: " + bind.error;
  }
  switch (check) {
    case CheckResult::kOk:
      break;
    case CheckResult::kUnavailable:
      result.status = AuthResult::Status::kUnavailable;
      if (result.error.empty()) result.error = "the password file could not be read";
      return result;
    case CheckResult::kRefusedScheme:
      result.error = "the stored hash uses a weak scheme that auth.allow_weak_hashes refuses";
      return result;
    case CheckResult::kUnknownUser:
    case CheckResult::kWrongPassword:
      // One answer for both: a 407 must not tell which user names exist.
      result.error = "wrong user name or password";
      return result;
  }
  result.status = AuthResult::Status::kOk;
  result.identity.user = ldap_user.empty() ? std::string(user) : ldap_user;
  result.identity.source = "basic";
  result.identity.groups = GroupsOf(result.identity.user, dn);
  if (cache && config_.credential_cache_ms > 0) {
    std::lock_guard lock(mu_);
    if (credentials_.size() >= options_.max_cached) {
      const std::int64_t now = NowMs();
      std::erase_if(credentials_, [&](const auto& e) { return e.second.until_ms <= now; });
      if (credentials_.size() >= options_.max_cached) credentials_.clear();
    }
    credentials_[header_hash] =
        CachedCredential{result.identity, NowMs() + std::int64_t(config_.credential_cache_ms)};
  }
  return result;
}

AuthResult Authenticator::CheckNegotiate(std::string token) {
  NegotiateResult n = negotiate_->Accept(token);
  AuthResult result;
  result.scheme = "negotiate";
  if (!n.ok) {
    result.status = AuthResult::Status::kFailed;
    result.error = n.error;
    return result;
  }
  result.status = AuthResult::Status::kOk;
  result.reply = n.reply;
  result.identity.user = n.user;
  result.identity.source = "negotiate";
  result.identity.groups = GroupsOf(n.user, "");
  return result;
}

void Authenticator::Identify(const std::string& client, const rules::IpAddress& ip,
                             std::optional<std::string> proxy_authorization, const Post& post,
                             Done done) {
  if (proxy_authorization) {
    auto [scheme, rest] = SplitCredential(*proxy_authorization);
    AuthResult failed;
    failed.status = AuthResult::Status::kFailed;
    failed.scheme = scheme == "basic" || scheme == "negotiate" ? scheme : "unknown";
    if (scheme == "basic" && config_.Offers(AuthScheme::kBasic)) {
      const std::string hash = Sha256Hex(*proxy_authorization);
      {
        std::lock_guard lock(mu_);
        auto it = credentials_.find(hash);
        if (it != credentials_.end() && it->second.until_ms > NowMs()) {
          AuthResult hit;
          hit.status = AuthResult::Status::kOk;
          hit.scheme = "basic";
          hit.identity = it->second.identity;
          Finish(std::move(hit), done);
          return;
        }
      }
      std::optional<std::string> decoded = DecodeBase64(rest, kMaxCredential);
      const std::size_t colon = decoded ? decoded->find(':') : std::string::npos;
      if (colon == std::string::npos || colon == 0) {
        failed.error = "malformed Basic credential";
        Finish(std::move(failed), done);
        return;
      }
      std::string user = decoded->substr(0, colon);
      std::string password = decoded->substr(colon + 1);
      Enqueue([this, hash, user = std::move(user),
               password = std::move(password)] { return CheckBasic(hash, user, password, true); },
              post, std::move(done));
      return;
    }
    if (scheme == "negotiate" && config_.Offers(AuthScheme::kNegotiate) && negotiate_) {
      if (rest.empty() || rest.size() > kMaxCredential) {
        failed.error = "empty or oversized Negotiate token";
        Finish(std::move(failed), done);
        return;
      }
      Enqueue([this, token = std::string(rest)] { return CheckNegotiate(token); }, post,
              std::move(done));
      return;
    }
    failed.error = "the credential's scheme \"" + scheme + "\" is not offered (auth.schemes)";
    Finish(std::move(failed), done);
    return;
  }
  // No credential: the address.
  std::string user;
  std::string source;
  for (const auto& [cidrs, name] : static_users_) {
    if (std::any_of(cidrs.begin(), cidrs.end(),
                    [&](const rules::Cidr& c) { return c.Contains(ip); })) {
      user = name;
      source = "static";
      break;
    }
  }
  if (user.empty()) {
    if (auto bound = logins_->Find(client, NowMs())) {
      user = *bound;
      source = "login";
    }
  }
  if (user.empty()) {
    AuthResult none;
    Finish(std::move(none), done);
    return;
  }
  AuthResult found;
  found.status = AuthResult::Status::kOk;
  found.scheme = source;
  found.identity.user = user;
  found.identity.source = source;
  if (std::optional<std::vector<std::string>> groups = CachedGroupsOf(user)) {
    found.identity.groups = std::move(*groups);
    Finish(std::move(found), done);
    return;
  }
  Enqueue(
      [this, found]() mutable {
        found.identity.groups = GroupsOf(found.identity.user, "");
        return found;
      },
      post, std::move(done));
}

void Authenticator::CheckPassword(std::string user, std::string password, const Post& post,
                                  Done done) {
  Enqueue(
      [this, user = std::move(user), password = std::move(password)] {
        AuthResult r = CheckBasic("", user, password, false);
        r.scheme = "login";
        if (r.ok()) r.identity.source = "login";
        return r;
      },
      post, std::move(done));
}

}  // namespace mintgate::proxy::auth
