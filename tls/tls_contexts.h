// One SSL_CTX per role, shared by every connection of a worker (a per-connection SSL_CTX
// costs ~320 µs): the server side facing clients with minted leaves, and the client side
// facing origins with verification.
#pragma once

#include <string>
#include <vector>

#include "tls/openssl_ptr.h"

namespace mintgate::tls {

struct TlsContextOptions {
  // Extra CA files (PEM or DER) trusted for origins, besides the system store.
  std::vector<std::string> extra_trust;
  bool use_system_trust = true;
};

class TlsContexts {
 public:
  // Throws LoadError (naming the file) when an extra_trust file cannot be loaded.
  explicit TlsContexts(const TlsContextOptions& options);

  // TLS 1.2+, ALPN: selects "http/1.1" when the client offers it (never h2, which the relay
  // does not speak), session tickets on for client resumption. The leaf is set per SSL.
  SSL_CTX* server() const { return server_.get(); }
  // TLS 1.2+, peer verification against the trust store (the result is inspected by the
  // caller, the handshake itself does not abort on a verification failure so that the
  // gateway can answer with a block page naming the reason), ALPN "http/1.1", client session
  // cache for resumption.
  SSL_CTX* client() const { return client_.get(); }

 private:
  SslCtxPtr server_;
  SslCtxPtr client_;
};

}  // namespace mintgate::tls
