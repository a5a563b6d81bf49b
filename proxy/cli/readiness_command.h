// `mintgate ca readiness`: asks the running gateway's admin listener which clients already
// trust which CA profile (GET /readiness) and prints it per profile, or as JSON.
#pragma once

#include <ostream>
#include <string>

#include "proxy/config/config.h"

namespace mintgate::proxy {

struct CaReadinessArgs {
  std::string config;  // "" : no file (then --admin or 127.0.0.1:9090)
  std::string admin;   // "HOST:PORT" or "[V6]:PORT"; "" : the config's admin.listen
  // The admin bearer token's file; "": the config's admin.token_file or state_dir/admin.token
  // (without a config, ./mintgate-state/admin.token as the embedded default makes it).
  std::string token_file;
  bool json = false;
  int timeout_ms = 3000;  // connect, send and receive together
};

// Exit 0 with the report, 2 on a usage or configuration error (the token cannot be read
// included), 3 when the admin listener cannot be reached or does not answer with a readiness
// document (a 401 for a wrong token included).
int RunCaReadiness(const CaReadinessArgs& args, std::ostream& out, std::ostream& err);

// One plain HTTP/1.1 GET over a blocking TCP socket (exposed for tests), with
// "Authorization: Bearer `token`" unless `token` is empty.
struct AdminFetchResult {
  enum class Status {
    kOk,           // a response arrived: http_status and body
    kUnreachable,  // no connection: error says why ("connection refused")
    kBadResponse,  // connected, but no complete HTTP response: error says why
  };
  Status status = Status::kUnreachable;
  int http_status = 0;
  std::string body;
  std::string error;
};
AdminFetchResult FetchAdmin(const HostPort& address, const std::string& path, int timeout_ms,
                            const std::string& token = "");

}  // namespace mintgate::proxy
