// The floor under the lab's scenario B: one full TLS 1.3 handshake as the gateway serves it
// to a client (its server SSL_CTX, a cached ECDSA P-256 leaf from an RSA-2048 root through the
// in-memory intermediate, X25519, one session ticket), in memory, with no sockets, no event
// loop and no HTTP. The client is plain OpenSSL like mintgate_loadgen (no tickets kept, no
// verification here). Counters: server_us and client_us, the CPU time (CLOCK_THREAD_CPUTIME_ID)
// each side spent per handshake; the benchmark's own time is both together.
#include <benchmark/benchmark.h>
#include <openssl/ssl.h>

#include <ctime>
#include <memory>
#include <optional>
#include <string>

#include "bench/bench_ca.h"
#include "tls/leaf_keys.h"
#include "tls/leaf_minter.h"
#include "tls/tls_contexts.h"
#include "tls/tls_engine.h"

namespace mintgate::tls {
namespace {

double ThreadCpuNs() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

struct HandshakeFixture {
  HandshakeFixture() {
    TlsContextOptions options;
    options.use_system_trust = false;
    contexts = std::make_unique<TlsContexts>(options);
    const std::time_t now = std::time(nullptr);
    MintRequest request;
    request.host = "www.lab.test";
    Result<LeafPtr> minted = minter.Mint(*authority->signer(now), request, now);
    if (minted.ok()) leaf = minted.value();
    client = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_options(client, SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(client, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_verify(client, SSL_VERIFY_NONE, nullptr);
  }
  std::unique_ptr<CertAuthority> authority = MakeAuthority("rsa", true);
  LeafKeys keys{LeafKeyType::kEcdsaP256};
  LeafMinter minter{keys, 30};
  std::unique_ptr<TlsContexts> contexts;
  LeafPtr leaf;
  SSL_CTX* client = nullptr;
};

HandshakeFixture& H() {
  static HandshakeFixture* f = new HandshakeFixture();
  return *f;
}

void BM_TlsServerHandshake(benchmark::State& state) {
  HandshakeFixture& f = H();
  if (!f.leaf) {
    state.SkipWithError("no leaf");
    return;
  }
  double server_ns = 0;
  double client_ns = 0;
  for (auto _ : state) {
    double t = ThreadCpuNs();
    SSL* c = SSL_new(f.client);
    BIO* c_in = BIO_new(BIO_s_mem());
    BIO* c_out = BIO_new(BIO_s_mem());
    SSL_set_bio(c, c_in, c_out);
    SSL_set_tlsext_host_name(c, "www.lab.test");
    SSL_set_connect_state(c);
    double u = ThreadCpuNs();
    client_ns += u - t;
    std::optional<TlsEngine> engine(TlsEngine::Server(f.contexts->server(), *f.leaf));
    TlsEngine& server = *engine;
    t = ThreadCpuNs();
    server_ns += t - u;
    bool client_done = false;
    bool server_done = false;
    for (int step = 0; step < 10 && !(client_done && server_done); ++step) {
      t = ThreadCpuNs();
      client_done = SSL_do_handshake(c) == 1;
      std::string to_server(static_cast<std::size_t>(BIO_ctrl_pending(c_out)), '\0');
      if (!to_server.empty()) BIO_read(c_out, to_server.data(), static_cast<int>(to_server.size()));
      u = ThreadCpuNs();
      client_ns += u - t;
      server.FeedCiphertext(to_server.data(), to_server.size());
      const TlsEngine::Status status = server.Handshake();
      std::string to_client = server.TakeCiphertext();
      t = ThreadCpuNs();
      server_ns += t - u;
      if (status == TlsEngine::Status::kError) {
        state.SkipWithError(server.error().c_str());
        SSL_free(c);
        return;
      }
      server_done = status == TlsEngine::Status::kDone;
      if (!to_client.empty()) BIO_write(c_in, to_client.data(), static_cast<int>(to_client.size()));
      client_ns += ThreadCpuNs() - t;
    }
    if (!client_done || !server_done) {
      state.SkipWithError("handshake did not finish");
      SSL_free(c);
      return;
    }
    t = ThreadCpuNs();
    SSL_free(c);
    u = ThreadCpuNs();
    client_ns += u - t;
    engine.reset();
    server_ns += ThreadCpuNs() - u;
  }
  state.counters["server_us"] =
      benchmark::Counter(server_ns / 1e3, benchmark::Counter::kAvgIterations);
  state.counters["client_us"] =
      benchmark::Counter(client_ns / 1e3, benchmark::Counter::kAvgIterations);
}
BENCHMARK(BM_TlsServerHandshake);

}  // namespace
}  // namespace mintgate::tls
