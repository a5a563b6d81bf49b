// `mintgate ca schedule`: changes the CA migration schedule (a profile's retire_at, the
// canaries) from the shell without rewriting the configuration file: the change goes into the
// schedule overlay in state_dir (proxy/config/schedule_overlay.h) and its audit log, and a
// running gateway applies it on its next reload.
#pragma once

#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace mintgate::proxy {

struct CaScheduleArgs {
  std::string config;
  bool show = false;  // print the overlay (also what no change option means)
  // --profile P with one of --retire-at, --clear, --reset.
  std::string profile;
  std::string retire_at;  // RFC 3339
  bool clear = false;
  bool reset = false;
  // --canary CA with one of --percent (starts it, with --clients and --no-fallback), --stop,
  // --reset.
  std::string canary;
  std::optional<int> percent;
  std::vector<std::string> clients;
  bool no_fallback = false;
  bool stop = false;
};

// Exit 0 done (or nothing to reset), 2 bad options, a configuration error or a change the
// configuration refuses, 3 when the overlay or its audit log cannot be written.
int RunCaSchedule(const CaScheduleArgs& args, std::ostream& out, std::ostream& err);

}  // namespace mintgate::proxy
