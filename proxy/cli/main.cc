// mintgate: one binary, subcommands. Exit codes follow SPEC §3.
#include <CLI/CLI.hpp>
#include <iostream>

#include "proxy/cli/ca_commands.h"
#include "proxy/cli/config_commands.h"
#include "proxy/cli/readiness_command.h"
#include "proxy/cli/run_command.h"
#include "proxy/cli/schedule_command.h"
#include "proxy/control/audit_command.h"

namespace {

constexpr int kUsageError = 2;

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"mintgate: an HTTPS-inspection gateway"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "mintgate 0.1.0");

  CLI::App* ca = app.add_subcommand("ca", "create and inspect CA certificates");
  ca->require_subcommand(1);

  mintgate::proxy::CaInitArgs init_args;
  CLI::App* ca_init = ca->add_subcommand("init", "create a self-signed root CA (key mode 0600)");
  ca_init->add_option("--out", init_args.out_dir, "directory for ca.pem and ca.key")->required();
  ca_init->add_option("--name", init_args.name, "subject common name")->capture_default_str();
  ca_init->add_option("--key", init_args.key, "key type")
      ->check(CLI::IsMember({"ecdsa-p256", "rsa-2048", "rsa-3072", "rsa-4096"}))
      ->capture_default_str();
  ca_init->add_option("--days", init_args.days, "validity in days")
      ->check(CLI::Range(1, 36500))
      ->capture_default_str();

  mintgate::proxy::CaAuditArgs audit_args;
  CLI::App* ca_audit = ca->add_subcommand(
      "audit", "per rule: the CA that signs, its subject and issuer, and migration status");
  ca_audit->add_option("-c,--config", audit_args.config, "configuration file")->required();
  ca_audit->add_option("--at", audit_args.at, "RFC 3339 instant (default: now)");
  ca_audit->add_flag("--json", audit_args.json, "one JSON object for scripts");

  mintgate::proxy::CaReadinessArgs readiness_args;
  CLI::App* ca_readiness = ca->add_subcommand(
      "readiness", "per CA profile: which clients of the running gateway already trust it");
  ca_readiness->add_option("-c,--config", readiness_args.config,
                           "configuration file (its admin.listen is asked, with its admin token)");
  ca_readiness
      ->add_option("--admin", readiness_args.admins,
                   "admin listener HOST:PORT (default: admin.listen, or 127.0.0.1:9090); "
                   "repeat it to merge what several gateways saw")
      ->allow_extra_args(false);
  ca_readiness->add_option("--token-file", readiness_args.token_file,
                           "the admin token's file, for every --admin (default: "
                           "admin.token_file, or state_dir/admin.token)");
  ca_readiness->add_flag("--json", readiness_args.json, "the JSON document for scripts");
  ca_readiness->footer(
      "Exit codes: 0 the report (with several --admin: merged from those that answered, a "
      "warning naming each that did not); 2 usage or configuration error (the token cannot be "
      "read, a bad or repeated --admin); 3 the admin listener cannot be reached or does not "
      "answer with a readiness document (401 included); with several --admin, none of them "
      "did.");

  mintgate::proxy::CaScheduleArgs schedule_args;
  int schedule_percent = 0;
  CLI::App* ca_schedule = ca->add_subcommand(
      "schedule",
      "change a profile's retire_at or a canary without rewriting the configuration file (the "
      "schedule overlay in state_dir); alone, print the overlay");
  ca_schedule->add_option("-c,--config", schedule_args.config, "configuration file")->required();
  ca_schedule->add_flag("--show", schedule_args.show, "print the overlay and its recent changes");
  ca_schedule->add_option("--profile", schedule_args.profile,
                          "the CA profile whose retire_at changes");
  ca_schedule->add_option("--retire-at", schedule_args.retire_at,
                          "new retire_at (RFC 3339); the successor takes over then");
  ca_schedule->add_flag("--clear", schedule_args.clear, "no retirement (roll a cutover back)");
  ca_schedule->add_flag("--reset", schedule_args.reset,
                        "drop the overlay's change: the file's value applies again");
  ca_schedule->add_option(
      "--canary", schedule_args.canary,
      "the CA profile whose canary changes (replacing the file's [[canary]] of it)");
  CLI::Option* percent_option =
      ca_schedule->add_option("--percent", schedule_percent, "start the canary: share of clients");
  ca_schedule->add_option("--clients", schedule_args.clients,
                          "CIDRs the canary covers (default: every client)");
  ca_schedule->add_flag("--no-fallback", schedule_args.no_fallback,
                        "clients that reject the canary's CA do not get the rule's own again");
  ca_schedule->add_flag("--stop", schedule_args.stop, "stop the canary");

  std::vector<std::string> show_files;
  bool show_json = false;
  CLI::App* ca_show = ca->add_subcommand(
      "show", "subject, issuer, serial, validity, key, fingerprint and CA flags of PEM/DER files");
  ca_show->add_option("files", show_files, "certificate files (PEM or DER)")->required();
  ca_show->add_flag("--json", show_json, "one JSON object for scripts");

  std::string run_config;
  CLI::App* run = app.add_subcommand("run", "run the gateway in the foreground");
  run->add_option("-c,--config", run_config,
                  "configuration file (default: the embedded default configuration)");

  std::string check_config;
  CLI::App* check = app.add_subcommand(
      "check", "validate a configuration completely (files, keys, CAs, rules) without listening");
  check->add_option("-c,--config", check_config, "configuration file")->required();

  CLI::App* rules = app.add_subcommand("rules", "work with decryption rules");
  rules->require_subcommand(1);
  mintgate::proxy::RulesTestArgs test_args;
  CLI::App* rules_test = rules->add_subcommand(
      "test", "print the decision for a connection: rule, action, signing CA and why");
  rules_test->add_option("-c,--config", test_args.config, "configuration file")->required();
  rules_test->add_option("--host", test_args.host, "host name or IP the client asks for")
      ->required();
  rules_test->add_option("--port", test_args.port, "destination port")->capture_default_str();
  rules_test->add_option("--client", test_args.client, "client IP address");
  rules_test->add_option("--user", test_args.user, "authenticated user name");
  rules_test->add_option("--group", test_args.groups, "a group of the user (repeatable)");
  rules_test->add_flag("--unidentified", test_args.unidentified,
                       "the gateway could not identify the user (auth.unidentified applies)");
  rules_test->add_option("--sni", test_args.sni, "TLS SNI, which decides instead of --host");
  rules_test->add_option("--at", test_args.at, "RFC 3339 instant (default: now)");
  rules_test->add_flag("--json", test_args.json, "one JSON object for scripts");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : kUsageError;
  }

  if (run->parsed()) return mintgate::proxy::RunGateway(run_config, std::cout, std::cerr);
  if (check->parsed()) return mintgate::proxy::RunCheck(check_config, std::cout, std::cerr);
  if (rules_test->parsed()) return mintgate::proxy::RunRulesTest(test_args, std::cout, std::cerr);
  if (ca_audit->parsed()) return mintgate::proxy::RunCaAudit(audit_args, std::cout, std::cerr);
  if (ca_readiness->parsed()) {
    return mintgate::proxy::RunCaReadiness(readiness_args, std::cout, std::cerr);
  }
  if (ca_schedule->parsed()) {
    if (percent_option->count() > 0) schedule_args.percent = schedule_percent;
    return mintgate::proxy::RunCaSchedule(schedule_args, std::cout, std::cerr);
  }
  if (ca_init->parsed()) return mintgate::proxy::RunCaInit(init_args, std::cout, std::cerr);
  if (ca_show->parsed()) {
    return mintgate::proxy::RunCaShow(show_files, show_json, std::cout, std::cerr);
  }
  return kUsageError;
}
