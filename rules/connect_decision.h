// One CONNECT, two names: the CONNECT host (where the bytes go) and the ClientHello's SNI
// (which site the client says it wants). A decision made on a name is honoured only where that
// name is bound to the destination:
// - decrypt binds itself (the origin at the destination is verified for the SNI, or the client
//   gets no content), and block needs no binding;
// - a tunnel chosen by the SNI needs the destination to be one of the SNI's own addresses,
//   else the CONNECT host alone decides (CONNECT 203.0.113.9 with the SNI of a "do not decrypt"
//   bank was an uninspected channel to any address).
// The rules that matched either name take part (the default rule matches nothing in
// particular); of two, the stricter action wins: block > decrypt > tunnel.
#pragma once

#include "rules/rule.h"

namespace mintgate::rules {

// `sni_bound`: the destination is one of the SNI's addresses (only asked for when it matters:
// see SniBindingMatters).
Decision CombineConnectDecisions(const Decision& by_host, const Decision& by_sni, bool sni_bound);

// Whether the action of CombineConnectDecisions depends on `sni_bound`: only then must the SNI
// be resolved (otherwise use the unbound decision).
bool SniBindingMatters(const Decision& by_host, const Decision& by_sni);

}  // namespace mintgate::rules
