// `mintgate ca readiness`: asks the running gateway's admin listener which clients already
// trust which CA profile (GET /readiness) and prints it per profile, or as JSON. Given several
// admin listeners (gateways behind one load balancer, each seeing some of the clients), it asks
// each and merges their documents (MergeReadiness).
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "proxy/config/config.h"

namespace mintgate::proxy {

struct CaReadinessArgs {
  std::string config;  // "" : no file (then --admin or 127.0.0.1:9090)
  // The admin listeners asked, each "HOST:PORT" or "[V6]:PORT": `admin` when set, then
  // `admins` (--admin, repeatable); none: the config's admin.listen. Two or more: merged.
  std::string admin;
  std::vector<std::string> admins;
  // The admin bearer token's file, the same for every listener asked (gateways behind one
  // load balancer share admin.token_file); "": the config's admin.token_file or
  // state_dir/admin.token (without a config, ./mintgate-state/admin.token as the embedded
  // default makes it).
  std::string token_file;
  bool json = false;
  int timeout_ms = 3000;  // connect, send and receive together
};

// Exit codes:
//   0  the report (with several listeners: merged from those that answered, a warning on
//      `err` naming each one that did not);
//   2  a usage or configuration error (the token cannot be read, an --admin that is not
//      HOST:PORT or is given twice);
//   3  the admin listener cannot be reached or does not answer with a readiness document (a
//      401 for a wrong token included); with several, none of them did.
// With one listener the output is that gateway's report (or document, --json) as it is. With
// several, the merged one: each client row says which gateways saw it ("seen_by", column SEEN
// BY), and --json adds a top-level "gateways": [{"address", "answered", "error"}] in --admin
// order ("error" only for those that did not answer).
int RunCaReadiness(const CaReadinessArgs& args, std::ostream& out, std::ostream& err);

// One /readiness document (ReadinessTracker::ToJson) merged from several gateways': `docs`
// are (the --admin address given, its document), in --admin order. The result has the shape
// of one gateway's, without "gateways" (RunCaReadiness adds it). Pure; how each field is
// merged is described at its definition.
nlohmann::json MergeReadiness(const std::vector<std::pair<std::string, nlohmann::json>>& docs);

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
