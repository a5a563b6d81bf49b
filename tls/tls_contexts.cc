#include "tls/tls_contexts.h"

#include <cstdint>
#include <cstring>

#include "tls/cert_loader.h"
#include "tls/tls_error.h"

namespace mintgate::tls {
namespace {

constexpr unsigned char kHttp11[] = "http/1.1";
constexpr unsigned int kHttp11Len = sizeof kHttp11 - 1;

// The relay speaks HTTP/1.1 only: offering h2 to a browser would break the connection, and
// answering no ALPN at all (rather than a fatal no_application_protocol alert) lets clients
// that offered only h2 fall back to HTTP/1.1 as they do with pre-ALPN servers.
int SelectAlpn(SSL* /*ssl*/, const unsigned char** out, unsigned char* outlen,
               const unsigned char* in, unsigned int inlen, void* /*arg*/) {
  unsigned int i = 0;
  while (i < inlen) {
    unsigned int len = in[i];
    if (len == 0 || len > inlen - i - 1) break;  // malformed list: stop, do not overread
    if (len == kHttp11Len && std::memcmp(in + i + 1, kHttp11, kHttp11Len) == 0) {
      *out = in + i + 1;
      *outlen = static_cast<unsigned char>(len);
      return SSL_TLSEXT_ERR_OK;
    }
    i += 1 + len;
  }
  return SSL_TLSEXT_ERR_NOACK;
}

// Verification failures must not abort the handshake: the gateway answers the client with a
// block page naming the reason (expired, unknown issuer, wrong name), which needs a finished
// handshake with the origin to know it. The result is still computed in full and kept in
// SSL_get_verify_result, and every caller MUST check it (TlsEngine::verify_result()) before
// trusting the connection or relaying anything over it.
// Continuing past a failure makes OpenSSL overwrite the error with each later one (a lone
// leaf from an unknown issuer ends as "unable to verify the first certificate"), so the first
// error, the root cause a block page should name, is put back after each later failure.
int ContinueKeepingFirstError(int preverify_ok, X509_STORE_CTX* ctx) {
  if (preverify_ok == 0) {
    static const int index = X509_STORE_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    const auto first = reinterpret_cast<std::intptr_t>(X509_STORE_CTX_get_ex_data(ctx, index));
    if (first == 0) {
      const std::intptr_t error = X509_STORE_CTX_get_error(ctx);
      X509_STORE_CTX_set_ex_data(ctx, index, reinterpret_cast<void*>(error));
    } else {
      X509_STORE_CTX_set_error(ctx, static_cast<int>(first));
    }
  }
  return 1;
}

SslCtxPtr NewContext(const SSL_METHOD* method, const char* role) {
  SslCtxPtr ctx(SSL_CTX_new(method));
  if (!ctx)
    throw LoadError("", WithOpenSslErrors(std::string("cannot create TLS ") + role + " context"));
  if (SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION) != 1) {
    throw LoadError("", WithOpenSslErrors("cannot set minimum TLS version"));
  }
  // Renegotiation is an old DoS and injection vector, and nothing the proxy relays needs it.
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_RENEGOTIATION);
  // Idle keep-alive connections are the norm; releasing their 34 KiB record buffers between
  // reads saves most of the per-connection memory.
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS);
  return ctx;
}

}  // namespace

TlsContexts::TlsContexts(const TlsContextOptions& options) {
  server_ = NewContext(TLS_server_method(), "server");
  // Session tickets stay enabled so returning clients resume cheaply, but one per handshake
  // (OpenSSL sends two by default; each costs a session encoding and key derivations).
  SSL_CTX_set_num_tickets(server_.get(), 1);
  SSL_CTX_set_alpn_select_cb(server_.get(), SelectAlpn, nullptr);

  client_ = NewContext(TLS_client_method(), "client");
  SSL_CTX_set_verify(client_.get(), SSL_VERIFY_PEER, ContinueKeepingFirstError);
  if (options.use_system_trust && SSL_CTX_set_default_verify_paths(client_.get()) != 1) {
    throw LoadError("", WithOpenSslErrors("cannot load the system trust store"));
  }
  X509_STORE* store = SSL_CTX_get_cert_store(client_.get());
  for (const std::string& file : options.extra_trust) {
    for (const X509Ptr& cert : LoadCertificates(file)) {  // throws LoadError naming `file`
      if (X509_STORE_add_cert(store, cert.get()) != 1) {
        throw LoadError(file, WithOpenSslErrors("cannot add certificate to the trust store"));
      }
    }
  }
  static constexpr unsigned char kAlpnWire[] = "\x08http/1.1";
  // Unlike most of OpenSSL, set_alpn_protos returns 0 on success.
  if (SSL_CTX_set_alpn_protos(client_.get(), kAlpnWire, sizeof kAlpnWire - 1) != 0) {
    throw LoadError("", WithOpenSslErrors("cannot set client ALPN"));
  }
  // The caller keeps sessions per origin (SSL_get1_session) and hands them back to
  // TlsEngine::Client; OpenSSL never looks up its internal store on the client side, so
  // storing sessions there would only cost memory.
  SSL_CTX_set_session_cache_mode(client_.get(),
                                 SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
}

}  // namespace mintgate::tls
