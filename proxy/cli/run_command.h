// `mintgate run [-c FILE]`: validates the configuration, creates the generated CA on first
// start, prints how to use the gateway, and runs it until SIGTERM/SIGINT (SIGHUP and
// POST /reload on the admin listener load the file again).
#pragma once

#include <ostream>
#include <string>

namespace mintgate::proxy {

// `config` "" runs the embedded default (SPEC §2): 127.0.0.1:3128, CA in ./mintgate-state.
int RunGateway(const std::string& config, std::ostream& out, std::ostream& err);

}  // namespace mintgate::proxy
