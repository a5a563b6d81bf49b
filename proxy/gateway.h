// The running gateway: its workers and the main thread's signal handling (SIGTERM/SIGINT:
// stop accepting, drain for up to 10 s, exit 0).
#pragma once

#include <chrono>
#include <ostream>
#include <string>

#include "proxy/runtime.h"

namespace mintgate::proxy {

class Gateway {
 public:
  Gateway(RuntimePtr runtime, std::string config_path)
      : runtime_(std::move(runtime)), config_path_(std::move(config_path)) {}
  // Blocks until a stop signal has been handled. Returns the process exit code: 0 after a
  // clean stop, 3 when the listeners could not be set up.
  int Run(std::ostream& out, std::ostream& err);

  static constexpr std::chrono::seconds kDrain{10};

 private:
  RuntimePtr runtime_;
  std::string config_path_;
};

}  // namespace mintgate::proxy
