#include "rules/connect_decision.h"

namespace mintgate::rules {
namespace {

int Strictness(Action action) {
  switch (action) {
    case Action::kBlock:
      return 2;
    case Action::kDecrypt:
      return 1;
    case Action::kTunnel:
      return 0;
  }
  return 2;
}

bool IsDefaultRule(const Decision& d) { return d.rule == "default"; }

}  // namespace

Decision CombineConnectDecisions(const Decision& by_host, const Decision& by_sni, bool sni_bound) {
  const bool sni_counts = !IsDefaultRule(by_sni) && (by_sni.action != Action::kTunnel || sni_bound);
  if (!sni_counts) return by_host;
  if (IsDefaultRule(by_host)) return by_sni;
  return Strictness(by_sni.action) > Strictness(by_host.action) ? by_sni : by_host;
}

bool SniBindingMatters(const Decision& by_host, const Decision& by_sni) {
  // Only the action changes what happens to the bytes; the same action either way is taken
  // as the unbound decision, which holds without asking DNS.
  return CombineConnectDecisions(by_host, by_sni, true).action !=
         CombineConnectDecisions(by_host, by_sni, false).action;
}

}  // namespace mintgate::rules
