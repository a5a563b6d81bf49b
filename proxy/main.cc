// mintgate: one binary, subcommands. Exit codes follow SPEC §3.
#include <CLI/CLI.hpp>
#include <iostream>

#include "proxy/ca_commands.h"

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

  std::vector<std::string> show_files;
  bool show_json = false;
  CLI::App* ca_show = ca->add_subcommand(
      "show", "subject, issuer, serial, validity, key, fingerprint and CA flags of PEM/DER files");
  ca_show->add_option("files", show_files, "certificate files (PEM or DER)")->required();
  ca_show->add_flag("--json", show_json, "one JSON object for scripts");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : kUsageError;
  }

  if (ca_init->parsed()) return mintgate::proxy::RunCaInit(init_args, std::cout, std::cerr);
  if (ca_show->parsed()) {
    return mintgate::proxy::RunCaShow(show_files, show_json, std::cout, std::cerr);
  }
  return kUsageError;
}
