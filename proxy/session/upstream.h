// The origin's side of a session: the origin connection while the session holds it (made by
// the pool, given back to it or closed when released), the transport over it (TLS when
// decrypting), and what is known about it.
#pragma once

#include <string>

#include "proxy/net/conn_error.h"
#include "proxy/session/transport.h"
#include "proxy/upstream/upstream_pool.h"

namespace mintgate::proxy {

struct Upstream {
  Upstream(Transport::Cork& cork, Transport::Events& events)
      : transport(net::ErrorSource::kUpstream, cork, events) {}
  Upstream(const Upstream&) = delete;
  Upstream& operator=(const Upstream&) = delete;

  UpstreamConn* conn = nullptr;  // owned while `open` (closed or pooled after)
  bool open = false;
  Transport transport;
  bool reusable = true;     // clean so far: may go back to the pool
  bool was_pooled = false;  // taken from the pool: a stale one is retried once for a request
                            // without a body
  bool retried = false;
  bool idle = false;    // attached between requests (decrypt, or pinned), clean
  bool pinned = false;  // carried NTLM/Negotiate: this client's only, closed with it
  // Decrypting: the origin's certificate was verified for the name, or why not.
  bool verified = false;
  std::string problem;
  net::ErrorKind problem_kind = net::ErrorKind::kVerify;
};

}  // namespace mintgate::proxy
