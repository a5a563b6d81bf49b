// Who may talk to the admin listener. A browser on the gateway's host can be made to send
// requests to it: cross-site (a form POST to /reload) and, through DNS rebinding, with the
// answers readable by a hostile page (/readiness, /audit). The Host check below refuses every
// request that names anything but the listener's own address, which a rebinding page cannot
// avoid (its Host is its own DNS name).
#pragma once

#include <string>
#include <string_view>

#include "proxy/config/config.h"

namespace mintgate::proxy {

// "" when `host`, a Host header's value, names the admin listener bound at `listen`; otherwise
// why not, for the 403 body. Accepted: the listen IP literal (IPv6 in brackets) with or without
// a port, which must then be the listener's; `localhost` when the listener is on loopback; any
// IP literal when it listens on every address (0.0.0.0 or ::), where `localhost` is fine too.
// DNS names are refused, whatever they resolve to.
std::string AdminHostProblem(std::string_view host, const HostPort& listen);

// Whether `address` (an IP literal; "localhost" counts as 127.0.0.1) is a loopback address.
bool IsLoopbackAddress(const std::string& address);

}  // namespace mintgate::proxy
