// Builds the Runtime the gateway serves with from a configuration file: the validated
// configuration (LoadGatewayConfig), the generated default CA, the access log, the mint
// service and the client networks. Used for the first start and for every reload, which
// passes the running runtime so that what may be kept is kept (the mint service and its
// certificate cache, the readiness tracker) and what needs a restart keeps its old value.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "proxy/config/config.h"
#include "proxy/runtime/mint_service.h"
#include "proxy/runtime/runtime.h"
#include "tls/cert_authority.h"

namespace mintgate::proxy {

struct RuntimeBuildOptions {
  // The running runtime on a reload, null at start.
  RuntimePtr previous;
  // Wraps a new mint service in the pointer runtimes share (the gateway hands released
  // services back to its main loop). Unset: a plain shared_ptr.
  std::function<std::shared_ptr<MintService>(std::unique_ptr<MintService>)> adopt_mint;
};

struct RuntimeBuild {
  RuntimePtr runtime;               // null when the configuration was rejected
  std::vector<std::string> errors;  // "file:line:column: message", as `mintgate check` prints
  int exit_code = 0;                // for `run`: 2 configuration error, 3 runtime failure
  std::vector<std::string> warnings;
  std::string ca_file;     // the certificate of inspection.default_ca, "" when unknown
  bool mint_kept = false;  // the previous runtime's mint service (and cache) is reused
  // Keys that differ from the previous runtime but only apply after a restart: the new
  // runtime keeps their old values.
  std::vector<std::string> restart_needed;
  // What the schedule overlay (state_dir/schedule.toml) changed, one line per entry; empty
  // when it changes nothing. Its skipped entries are in `warnings`.
  std::string schedule_overlay_file;
  std::vector<std::string> schedule_overlay;
  std::size_t rule_count = 0;   // including the default rule
  std::size_t ca_profiles = 0;  // loaded profiles, the generated "default" included
};

// `config_path` "" builds the embedded default (SPEC §2). Progress worth telling the operator
// (a CA generated in state_dir) goes to `out`.
RuntimeBuild BuildRuntime(const std::string& config_path, const RuntimeBuildOptions& options,
                          std::ostream& out);

// Whether a mint service made from (`before`, `running`) would sign exactly as one made from
// (`after`, `loaded`): the same profiles (names, files, chain, passphrase source, retire_at,
// successor), with the same certificates, keys and chains, and the same [mint] settings.
// `loaded` holds every profile of `after`, the generated "default" included.
bool SameMintInputs(const Config& before, const MintService& running, const Config& after,
                    const std::vector<std::unique_ptr<tls::CertAuthority>>& loaded);

}  // namespace mintgate::proxy
