// The session's CONNECT phases with TLS in memory: the test plays the real client and the real
// origin with tls::TlsEngine byte engines over the fakes' in-memory streams, so decryption,
// tunnels, a block page over TLS, an origin that fails verification, the TLS timeouts (on the
// fake clock, no sleeping) and a client that refuses the leaf all run the session's real code.
// Only Session's public API, the fakes, the access log, the pool and the Runtime's services are
// used. Leaves are minted before each case (the mint threads never post to the test's loop).
#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <uv.h>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "fakes.h"
#include "proxy/control/runtime_builder.h"
#include "proxy/log/access_log.h"
#include "proxy/runtime/mint_service.h"
#include "proxy/runtime/readiness.h"
#include "proxy/session/session.h"
#include "rules/ip_address.h"
#include "tls/ca_generator.h"
#include "tls/cert_authority.h"
#include "tls/leaf_keys.h"
#include "tls/leaf_minter.h"
#include "tls/tls_contexts.h"
#include "tls/tls_engine.h"

namespace mintgate::proxy::testing {
namespace {

using Status = tls::TlsEngine::Status;

constexpr char kConnected[] = "HTTP/1.1 200 Connection established\r\n\r\n";
constexpr std::uint64_t kTlsHandshakeMs = 7'000;  // timeouts.tls_handshake below
constexpr std::uint64_t kLeafWaitMs = 9'000;      // timeouts.leaf_wait below

// One TLS end the test plays (the client, or an origin): what the gateway sent it is fed to
// its engine, and what the engine writes is sent to the gateway while the stream is open.
struct TlsEnd {
  TlsEnd(tls::TlsEngine e, MemoryStream* s) : engine(std::move(e)), stream(s) {
    peer = s->shared_peer();
  }
  // `alive`: whether `stream` may still be used (a closed stream is destroyed later).
  bool Step(bool alive) {
    bool moved = false;
    if (!peer->received.empty()) {
      engine.FeedCiphertext(peer->received.data(), peer->received.size());
      peer->received.clear();
      moved = true;
    }
    if (!engine.handshake_done() && status != Status::kError) status = engine.Handshake();
    if (engine.handshake_done() && !engine.closed()) plaintext += engine.ReadPlaintext();
    std::string out = engine.TakeCiphertext();
    if (!out.empty() && alive && !peer->ended) {
      stream->Send(std::move(out));
      moved = true;
    }
    return moved;
  }
  bool Write(const std::string& data) { return engine.WritePlaintext(data); }

  tls::TlsEngine engine;
  MemoryStream* stream;
  std::shared_ptr<Peer> peer;
  Status status = Status::kWantMore;
  std::string plaintext;  // everything decrypted from the gateway so far
};

std::string Ok(const std::string& body) {
  return "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

std::string NameText(const X509_NAME* name) {
  char buffer[256] = {};
  X509_NAME_oneline(name, buffer, sizeof buffer);
  return buffer;
}

class SessionTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (std::filesystem::temp_directory_path() / "mgtlsXXXXXX").string();
    ASSERT_NE(mkdtemp(dir_.data()), nullptr);
    uv_loop_init(&loop_);
    // The gateway's CA profile, the origin's (trusted by the gateway through
    // inspection.extra_trust) and a rogue one nobody trusts.
    tls::CaInitOptions gateway;
    gateway.common_name = "SessionTls Gateway CA";
    tls::GeneratedCa ca = tls::GenerateRootCa(gateway);
    gateway_ca_ = tls::X509Ptr(X509_dup(ca.cert.get()));
    tls::WriteCaFiles(dir_ + "/gateway", ca);
    tls::CaInitOptions origin;
    origin.common_name = "SessionTls Origin CA";
    tls::WriteCaFiles(dir_ + "/origin", tls::GenerateRootCa(origin));
    tls::CaInitOptions rogue;
    rogue.common_name = "SessionTls Rogue CA";
    tls::WriteCaFiles(dir_ + "/rogue", tls::GenerateRootCa(rogue));
  }
  void TearDown() override {
    context_.reset();
    uv_run(&loop_, UV_RUN_DEFAULT);  // the pool's timer closes
    uv_loop_close(&loop_);
    runtime_.reset();
    std::filesystem::remove_all(dir_);
  }

  // A gateway that decrypts *.lab.test with the profile "default", trusts the origin CA for
  // origins, and has short distinct timeouts (seconds). `rules` go before the decrypt rule.
  void Start(const std::string& rules = "", const std::string& inspection = "") {
    std::ofstream(dir_ + "/m.toml")
        << "[server]\nlisten = [\"127.0.0.1:3128\"]\nstate_dir = \"" << dir_
        << "/state\"\nallow_loopback_upstreams = true\n"
        << "[inspection]\nenabled = true\ndefault_ca = \"default\"\nextra_trust = [\"" << dir_
        << "/origin/ca.pem\"]\n"
        << inspection << "[ca.default]\ncert = \"" << dir_ << "/gateway/ca.pem\"\nkey = \"" << dir_
        << "/gateway/ca.key\"\n"
        << "[log]\naccess = \"" << dir_ << "/access.log\"\n"
        << "[timeouts]\nrequest_head = 10\nclient_idle = 60\nconnect = 11\n"
        << "tls_handshake = 7\nleaf_wait = 9\norigin_first_byte = 120\norigin_idle = 121\n"
        << "tunnel_idle = 600\nlinger = 2\n"
        << rules << "[[rule]]\nname = \"lab\"\naction = \"decrypt\"\nhosts = [\"*.lab.test\"]\n";
    std::ostringstream out;
    RuntimeBuild build = BuildRuntime(dir_ + "/m.toml", {}, out);
    ASSERT_NE(build.runtime, nullptr) << (build.errors.empty() ? out.str() : build.errors[0]);
    runtime_ = build.runtime;
    ASSERT_NE(runtime_->mint, nullptr);
    // As a Worker builds them, minus the system store: only the origin CA is trusted.
    tls::TlsContextOptions trust;
    trust.extra_trust = runtime_->config.inspection.extra_trust;
    trust.use_system_trust = false;
    context_ = std::make_unique<FakeContext>(runtime_, &loop_, trust);
    context_->resolver_.Add("www.lab.test", "127.0.0.2");
    context_->resolver_.Add("blocked.lab.test", "127.0.0.2");
    context_->resolver_.Add("tunnel.lab.test", "127.0.0.4");
    context_->net_.Listen("127.0.0.2:443");
    context_->net_.Listen("127.0.0.4:443");
  }

  // Mints the leaf the session will ask for, so that its request is a cache hit answered on
  // the test's thread (FakeContext::Post is not safe to call from a mint thread).
  void Premint(const std::string& host, tls::TrustMode trust = tls::TrustMode::kTrusted) {
    auto done = std::make_shared<std::promise<std::string>>();
    std::future<std::string> result = done->get_future();
    runtime_->mint->GetLeaf(
        "default", host, trust, [](std::function<void()> fn) { fn(); },
        [done](const MintService::Outcome& outcome) {
          done->set_value(outcome.leaf.ok() ? "" : outcome.leaf.error());
        });
    ASSERT_EQ(result.wait_for(std::chrono::seconds(5)), std::future_status::ready)
        << "no leaf for " << host << " within 5 s";
    ASSERT_EQ(result.get(), "");
  }

  // A certificate for `host` signed by the CA in dir_/NAME, as an origin serves it.
  tls::LeafPtr OriginLeaf(const std::string& ca_dir, const std::string& host) {
    tls::CaProfileSpec spec;
    spec.name = ca_dir;
    spec.cert_file = dir_ + "/" + ca_dir + "/ca.pem";
    spec.key_file = dir_ + "/" + ca_dir + "/ca.key";
    const std::time_t now = std::time(nullptr);
    std::unique_ptr<tls::CertAuthority> ca = tls::CertAuthority::Load(spec, {}, now);
    tls::LeafMinter minter(origin_keys_, 30);
    tls::MintRequest request;
    request.host = host;
    tls::Result<tls::LeafPtr> leaf = minter.Mint(*ca->signer(now), request, now);
    EXPECT_TRUE(leaf.ok()) << leaf.error();
    return leaf.ok() ? *leaf : nullptr;
  }

  // A client context that trusts only `anchor` (none: trusts nothing) and aborts the
  // handshake on a certificate it does not trust, as a browser does; with `abort` false it
  // goes on whatever the verification says (a user clicking through a warning).
  static tls::SslCtxPtr ClientContext(X509* anchor, bool abort = true) {
    tls::SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
    SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
    if (anchor != nullptr) X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx.get()), anchor);
    SSL_CTX_set_verify(ctx.get(), abort ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
    return ctx;
  }

  // CONNECT host:443 from 127.0.0.1, answered "200 Connection established"; the client's TLS
  // end (SNI `sni`) is made but has sent nothing yet.
  std::unique_ptr<TlsEnd> Connect(const std::string& host, const std::string& sni,
                                  SSL_CTX* client_ctx) {
    client_ = context_->Connect();
    client_->Send("CONNECT " + host + ":443 HTTP/1.1\r\nHost: " + host + ":443\r\n\r\n");
    context_->Pump();
    auto end =
        std::make_unique<TlsEnd>(tls::TlsEngine::Client(client_ctx, sni, sni, nullptr), client_);
    EXPECT_EQ(end->peer->received, kConnected);
    end->peer->received.clear();
    return end;
  }

  // After Start(): a client trusting the gateway's CA, its CONNECT to `host` answered, its
  // TLS end for `sni` made (the leaf for `sni` minted ahead, so the session finds it cached).
  std::unique_ptr<TlsEnd> TrustingClient(const std::string& sni,
                                         const std::string& host = "www.lab.test") {
    Premint(sni);
    trusting_ = ClientContext(gateway_ca_.get());
    return Connect(host, sni, trusting_.get());
  }
  // The client's ClientHello sent and handled.
  void SendHello(TlsEnd& client) {
    client.Step(true);
    context_->Pump();
  }

  // The origin's TLS end on the gateway's n-th origin connection.
  std::unique_ptr<TlsEnd> OriginEnd(const tls::LeafPtr& leaf, std::size_t n = 0) {
    EXPECT_LT(n, context_->net_.connections().size());
    MemoryStream* stream = context_->net_.connections().at(n);
    EXPECT_NE(stream, nullptr);
    return std::make_unique<TlsEnd>(tls::TlsEngine::Server(origin_tls_.server(), *leaf), stream);
  }
  bool OriginAlive(const TlsEnd& end) {
    for (MemoryStream* s : context_->net_.connections()) {
      if (s == end.stream) return true;
    }
    return false;
  }

  // Moves bytes between the test's ends and the gateway until nothing moves.
  void Exchange(TlsEnd* client, TlsEnd* origin = nullptr) {
    for (int round = 0; round < 100; ++round) {
      bool moved = false;
      if (client != nullptr) moved = client->Step(true) || moved;
      if (origin != nullptr) moved = origin->Step(OriginAlive(*origin)) || moved;
      context_->Pump();
      if (!moved) return;
    }
    ADD_FAILURE() << "bytes still moving after 100 rounds";
  }

  std::vector<nlohmann::json> Records() {
    AccessLog::FlushAll();
    std::vector<nlohmann::json> records;
    std::ifstream in(dir_ + "/access.log");
    for (std::string line; std::getline(in, line);) records.push_back(nlohmann::json::parse(line));
    return records;
  }
  std::size_t OriginConnections() { return context_->net_.connections().size(); }

  static std::optional<HandshakeOutcome> Readiness(const Runtime& rt, const std::string& profile) {
    return rt.readiness->Latest(*rules::IpAddress::Parse("127.0.0.1"), profile);
  }

  // The leaf the client was served: for `host`, issued by the gateway's CA.
  void ExpectGatewayLeaf(const TlsEnd& client, const std::string& host) {
    X509* leaf = SSL_get0_peer_certificate(client.engine.ssl());
    ASSERT_NE(leaf, nullptr);
    EXPECT_EQ(X509_check_host(leaf, host.data(), host.size(), 0, nullptr), 1)
        << "the leaf does not name " << host;
    EXPECT_EQ(X509_NAME_cmp(X509_get_issuer_name(leaf), X509_get_subject_name(gateway_ca_.get())),
              0)
        << "issuer: " << NameText(X509_get_issuer_name(leaf));
    EXPECT_EQ(client.engine.verify_result(), X509_V_OK) << client.engine.verify_reason();
  }

  // The readiness document's entry of 127.0.0.1 for the profile "default" (null when none).
  nlohmann::json ReadinessEntry() {
    const nlohmann::json doc = runtime_->readiness->ToJson(std::time(nullptr));
    for (const auto& p : doc["profiles"]) {
      if (p["profile"] != "default") continue;
      for (const auto& c : p["clients"]) {
        if (c["client"] == "127.0.0.1") return c;
      }
    }
    return nullptr;
  }

  // A client whose handshake with the gateway finished (the origin verified). `ctx` decides whether
  // it checks the leaf in the handshake (a client that checks afterwards uses SSL_VERIFY_NONE, as
  // wget and Node do).
  struct Decrypted {
    std::unique_ptr<TlsEnd> client;
    std::unique_ptr<TlsEnd> origin;
  };
  Decrypted Handshaken(SSL_CTX* ctx) {
    Decrypted d;
    d.client = Connect("www.lab.test", "www.lab.test", ctx);
    SendHello(*d.client);
    // The CONNECT's own origin connection: the newest (idle ones may have closed since).
    d.origin = OriginEnd(OriginLeaf("origin", "www.lab.test"), OriginConnections() - 1);
    Exchange(d.client.get(), d.origin.get());
    EXPECT_EQ(d.client->status, Status::kDone) << d.client->engine.error();
    return d;
  }

  std::string dir_;
  uv_loop_t loop_{};
  RuntimePtr runtime_;
  std::unique_ptr<FakeContext> context_;
  MemoryStream* client_ = nullptr;  // owned by its session
  tls::X509Ptr gateway_ca_;
  tls::LeafKeys origin_keys_;
  tls::SslCtxPtr trusting_;
  tls::TlsContexts origin_tls_{tls::TlsContextOptions{{}, false}};
};

// CONNECT, the client's TLS, the origin's TLS verified, a leaf from the profile, two requests
// on the same decrypted connection over the same origin connection.
TEST_F(SessionTlsTest, DecryptRelaysRequestsOverOneVerifiedOriginConnection) {
  Start();
  auto client = TrustingClient("www.lab.test");
  ASSERT_EQ(OriginConnections(), 1u) << "the CONNECT host is connected before the 200";
  client->Step(true);  // the ClientHello
  context_->Pump();
  // The gateway's own ClientHello to the origin, with the client's SNI.
  auto origin = OriginEnd(OriginLeaf("origin", "www.lab.test"));
  ASSERT_FALSE(origin->peer->received.empty()) << "no TLS towards the origin";
  Exchange(client.get(), origin.get());
  ASSERT_TRUE(origin->engine.handshake_done()) << origin->engine.error();
  EXPECT_STREQ(SSL_get_servername(origin->engine.ssl(), TLSEXT_NAMETYPE_host_name), "www.lab.test");
  ASSERT_EQ(client->status, Status::kDone) << client->engine.error();
  ExpectGatewayLeaf(*client, "www.lab.test");
  // A finished handshake alone is no evidence of trust (clients may check afterwards).
  EXPECT_EQ(Readiness(*runtime_, "default"), std::nullopt);

  ASSERT_TRUE(client->Write("GET / HTTP/1.1\r\nHost: www.lab.test\r\n\r\n"));
  Exchange(client.get(), origin.get());
  EXPECT_EQ(Readiness(*runtime_, "default"), HandshakeOutcome::kTrusted);
  EXPECT_EQ(origin->plaintext.rfind("GET / HTTP/1.1\r\n", 0), 0u) << origin->plaintext;
  EXPECT_NE(origin->plaintext.find("Host: www.lab.test\r\n"), std::string::npos);
  ASSERT_TRUE(origin->Write(Ok("first")));
  Exchange(client.get(), origin.get());
  EXPECT_EQ(client->plaintext.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << client->plaintext;
  EXPECT_NE(client->plaintext.find("\r\n\r\nfirst"), std::string::npos);

  origin->plaintext.clear();
  client->plaintext.clear();
  ASSERT_TRUE(client->Write("GET /two HTTP/1.1\r\nHost: www.lab.test\r\n\r\n"));
  Exchange(client.get(), origin.get());
  EXPECT_EQ(origin->plaintext.rfind("GET /two HTTP/1.1\r\n", 0), 0u) << origin->plaintext;
  ASSERT_TRUE(origin->Write(Ok("second")));
  Exchange(client.get(), origin.get());
  EXPECT_NE(client->plaintext.find("\r\n\r\nsecond"), std::string::npos) << client->plaintext;
  EXPECT_EQ(OriginConnections(), 1u) << "the kept-alive origin connection was not reused";
  EXPECT_FALSE(client->peer->ended);

  const auto records = Records();
  ASSERT_EQ(records.size(), 3u);  // the CONNECT, then each request
  const nlohmann::json& connect = records[0];
  EXPECT_EQ(connect["method"], "CONNECT");
  EXPECT_EQ(connect["url"], "www.lab.test:443");
  EXPECT_EQ(connect["status"], 200);
  EXPECT_EQ(connect["action"], "decrypt");
  EXPECT_EQ(connect["rule"], "lab");
  EXPECT_EQ(connect["ca"], "default");
  EXPECT_EQ(connect["sni"], "www.lab.test");
  EXPECT_EQ(connect["upstream_verify"], "ok");
  EXPECT_EQ(connect["upstream"], "127.0.0.2");
  EXPECT_EQ(connect["cert_cache"], "hit");
  EXPECT_EQ(connect["readiness"], "trusts");
  EXPECT_EQ(connect["evidence"], "application_data");
  EXPECT_FALSE(connect.contains("error")) << connect;
  for (std::size_t i = 1; i < 3; ++i) {
    EXPECT_EQ(records[i]["method"], "GET");
    EXPECT_EQ(records[i]["status"], 200);
    EXPECT_EQ(records[i]["action"], "decrypt");
    EXPECT_EQ(records[i]["ca"], "default");
    EXPECT_EQ(records[i]["upstream_verify"], "ok");
    EXPECT_FALSE(records[i].contains("error")) << records[i];
  }
  EXPECT_EQ(records[1]["url"], "https://www.lab.test/");
  EXPECT_EQ(records[2]["url"], "https://www.lab.test/two");
}

// A tunnel rule: the ClientHello reaches the origin unchanged, and the origin's bytes the
// client, with no TLS of the gateway's in between.
TEST_F(SessionTlsTest, TunnelSplicesTheClientHelloAndTheOriginsBytes) {
  Start("[[rule]]\nname = \"pass\"\naction = \"tunnel\"\nhosts = [\"tunnel.lab.test\"]\n");
  tls::SslCtxPtr ctx = ClientContext(nullptr);
  auto client = Connect("tunnel.lab.test", "tunnel.lab.test", ctx.get());
  ASSERT_EQ(client->engine.Handshake(), Status::kWantMore);
  const std::string hello = client->engine.TakeCiphertext();
  ASSERT_FALSE(hello.empty());
  // In two pieces: the peek waits for the whole ClientHello.
  client_->Send(hello.substr(0, 20));
  context_->Pump();
  ASSERT_EQ(OriginConnections(), 1u);
  MemoryStream& origin = *context_->net_.connections()[0];
  EXPECT_TRUE(origin.peer().received.empty()) << "bytes went out before the ClientHello ended";
  client_->Send(hello.substr(20));
  context_->Pump();
  EXPECT_EQ(origin.peer().received, hello);
  const std::string answer("\x16\x03\x03\x00\x05hello-from-origin", 22);
  origin.Send(answer);
  context_->Pump();
  EXPECT_EQ(client->peer->received, answer);
  client_->Send("more-from-client");
  context_->Pump();
  EXPECT_EQ(origin.peer().received, hello + "more-from-client");

  origin.SendEnd();
  context_->Pump();
  EXPECT_TRUE(client->peer->ended) << "the origin's end was not passed on";
  context_->Advance(2'000);  // the linger
  EXPECT_EQ(context_->open_sessions(), 0u);
  const auto records = Records();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0]["method"], "CONNECT");
  EXPECT_EQ(records[0]["action"], "tunnel");
  EXPECT_EQ(records[0]["rule"], "pass");
  EXPECT_EQ(records[0]["sni"], "tunnel.lab.test");
  EXPECT_EQ(records[0]["status"], 200);
  EXPECT_TRUE(records[0]["ca"].is_null()) << records[0];
  EXPECT_TRUE(records[0]["upstream_verify"].is_null()) << records[0];
  EXPECT_FALSE(records[0].contains("error")) << records[0];
}

// The CONNECT host is allowed, the SNI is blocked: a 403 page over TLS, under a leaf for the
// SNI from inspection.default_ca; nothing goes to the origin.
TEST_F(SessionTlsTest, BlockedSniGetsA403PageOverTls) {
  Start("[[rule]]\nname = \"no-blocked\"\naction = \"block\"\nhosts = [\"blocked.lab.test\"]\n");
  auto client = TrustingClient("blocked.lab.test");
  Exchange(client.get());
  ASSERT_EQ(client->status, Status::kDone) << client->engine.error();
  ExpectGatewayLeaf(*client, "blocked.lab.test");
  // The page answers the first request (which also shows that the client trusts the leaf).
  EXPECT_TRUE(client->plaintext.empty()) << client->plaintext;
  ASSERT_TRUE(client->Write("GET / HTTP/1.1\r\nHost: blocked.lab.test\r\n\r\n"));
  Exchange(client.get());
  EXPECT_EQ(client->plaintext.rfind("HTTP/1.1 403", 0), 0u) << client->plaintext;
  EXPECT_NE(client->plaintext.find("no-blocked"), std::string::npos) << client->plaintext;
  for (MemoryStream* origin : context_->net_.connections()) {
    if (origin != nullptr) {
      EXPECT_TRUE(origin->peer().received.empty()) << "bytes went to the origin";
    }
  }
  context_->Advance(2'000);
  EXPECT_TRUE(client->peer->ended);
  const auto records = Records();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0]["method"], "CONNECT");
  EXPECT_EQ(records[0]["action"], "block");
  EXPECT_EQ(records[0]["rule"], "no-blocked");
  EXPECT_EQ(records[0]["sni"], "blocked.lab.test");
  EXPECT_EQ(records[0]["status"], 403);
  // The leaf came from the default profile, and the record says so.
  EXPECT_EQ(records[0]["ca"], "default") << records[0];
  EXPECT_EQ(records[0]["error"], "policy/refused") << records[0];
  EXPECT_EQ(records[0]["readiness"], "trusts") << records[0];
}

// An origin whose certificate comes from a CA the gateway does not trust: with
// upstream_cert_errors = "block" (the default) the client gets a 502 page naming the reason
// under a trusted leaf, and nothing is relayed.
TEST_F(SessionTlsTest, UntrustedOriginGetsA502PageNotContent) {
  Start();
  auto client = TrustingClient("www.lab.test");
  SendHello(*client);
  auto origin = OriginEnd(OriginLeaf("rogue", "www.lab.test"));
  Exchange(client.get(), origin.get());
  EXPECT_TRUE(origin->engine.handshake_done()) << origin->engine.error();
  ASSERT_EQ(client->status, Status::kDone) << client->engine.error();
  ExpectGatewayLeaf(*client, "www.lab.test");
  // The client's request is answered with the page, never relayed.
  client->Write("GET / HTTP/1.1\r\nHost: www.lab.test\r\n\r\n");
  Exchange(client.get(), origin.get());
  EXPECT_TRUE(origin->plaintext.empty()) << origin->plaintext;
  EXPECT_EQ(client->plaintext.rfind("HTTP/1.1 502", 0), 0u) << client->plaintext;
  EXPECT_NE(client->plaintext.find("verification"), std::string::npos) << client->plaintext;
  context_->Advance(2'000);
  EXPECT_TRUE(client->peer->ended);
  EXPECT_EQ(context_->open_sessions(), 0u);
  EXPECT_EQ(context_->pool().idle(), 0u) << "an unverified origin connection was pooled";
  const auto records = Records();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0]["method"], "CONNECT");
  EXPECT_EQ(records[0]["status"], 502);
  EXPECT_EQ(records[0]["action"], "decrypt");
  EXPECT_EQ(records[0]["rule"], "lab");
  EXPECT_EQ(records[0]["ca"], "default");
  EXPECT_EQ(records[0]["sni"], "www.lab.test");
  const std::string verify = records[0]["upstream_verify"];
  EXPECT_NE(verify.find("failed verification"), std::string::npos) << verify;
  EXPECT_EQ(records[0]["error"], "origin_tls/verify") << records[0];
}

// upstream_cert_errors = "untrusted": the same origin gets a leaf from the in-memory untrusted
// CA (the browser shows its own warning), never one from the profile; a client that goes on
// anyway is relayed to the origin, and says nothing about its trust in the profile.
TEST_F(SessionTlsTest, UntrustedOriginInUntrustedModeGetsAnUntrustedLeaf) {
  Start("", "upstream_cert_errors = \"untrusted\"\n");
  Premint("www.lab.test", tls::TrustMode::kUntrusted);
  tls::SslCtxPtr clicking_through = ClientContext(gateway_ca_.get(), false);
  auto client = Connect("www.lab.test", "www.lab.test", clicking_through.get());
  client->Step(true);
  context_->Pump();
  auto origin = OriginEnd(OriginLeaf("rogue", "www.lab.test"));
  Exchange(client.get(), origin.get());
  ASSERT_EQ(client->status, Status::kDone) << client->engine.error();
  X509* leaf = SSL_get0_peer_certificate(client->engine.ssl());
  ASSERT_NE(leaf, nullptr);
  EXPECT_EQ(X509_check_host(leaf, "www.lab.test", 0, 0, nullptr), 1);
  EXPECT_NE(X509_NAME_cmp(X509_get_issuer_name(leaf), X509_get_subject_name(gateway_ca_.get())), 0)
      << "an origin that failed verification got a leaf from the trusted profile";
  EXPECT_NE(client->engine.verify_result(), X509_V_OK);
  ASSERT_TRUE(client->Write("GET / HTTP/1.1\r\nHost: www.lab.test\r\n\r\n"));
  Exchange(client.get(), origin.get());
  EXPECT_EQ(origin->plaintext.rfind("GET / HTTP/1.1\r\n", 0), 0u) << origin->plaintext;
  ASSERT_TRUE(origin->Write(Ok("warned")));
  Exchange(client.get(), origin.get());
  EXPECT_NE(client->plaintext.find("\r\n\r\nwarned"), std::string::npos) << client->plaintext;
  EXPECT_EQ(Readiness(*runtime_, "default"), std::nullopt)
      << "a handshake with an untrusted leaf was counted for the profile";
  const auto records = Records();
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0]["method"], "CONNECT");
  EXPECT_EQ(records[0]["ca"], "untrusted");
  EXPECT_EQ(records[0]["action"], "decrypt");
  EXPECT_NE(records[0]["upstream_verify"].get<std::string>().find("failed verification"),
            std::string::npos)
      << records[0];
  EXPECT_EQ(records[1]["url"], "https://www.lab.test/");
  EXPECT_EQ(records[1]["status"], 200);
  EXPECT_EQ(records[1]["ca"], "untrusted");
  EXPECT_NE(records[1]["upstream_verify"], "ok");
}

// No ClientHello after the 200: closed after timeouts.tls_handshake, without an answer.
TEST_F(SessionTlsTest, NoClientHelloIsClosedAfterTlsHandshakeTimeout) {
  Start();
  tls::SslCtxPtr ctx = ClientContext(gateway_ca_.get());
  auto client = Connect("www.lab.test", "www.lab.test", ctx.get());
  context_->Advance(kTlsHandshakeMs - 1);
  EXPECT_FALSE(client->peer->ended) << "closed before timeouts.tls_handshake";
  context_->Advance(1);
  EXPECT_TRUE(client->peer->ended);
  EXPECT_TRUE(client->peer->received.empty()) << client->peer->received;
  EXPECT_EQ(context_->open_sessions(), 0u);
  const auto records = Records();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0]["method"], "CONNECT");
  EXPECT_EQ(records[0]["status"], 200);
  EXPECT_EQ(records[0]["action"], "decrypt");
  EXPECT_EQ(records[0]["rule"], "lab");
  EXPECT_EQ(records[0]["error"], "downstream/timeout");
  const std::string note = records[0]["note"];
  EXPECT_NE(note.find("ClientHello"), std::string::npos) << note;
}

// An origin that never answers the gateway's ClientHello: after timeouts.tls_handshake the
// client still gets a trusted leaf, and over it a 502 page that says the origin timed out.
TEST_F(SessionTlsTest, SilentOriginHandshakeIsA502PageAfterTlsHandshakeTimeout) {
  Start();
  auto client = TrustingClient("www.lab.test");
  Exchange(client.get());
  ASSERT_EQ(OriginConnections(), 1u);
  EXPECT_FALSE(context_->net_.connections()[0]->peer().received.empty())
      << "no ClientHello to the origin";
  EXPECT_TRUE(client->peer->received.empty()) << "the client was answered before the origin";
  context_->Advance(kTlsHandshakeMs - 1);
  Exchange(client.get());
  EXPECT_NE(client->status, Status::kDone);
  context_->Advance(1);
  Exchange(client.get());
  ASSERT_EQ(client->status, Status::kDone) << client->engine.error();
  ExpectGatewayLeaf(*client, "www.lab.test");
  ASSERT_TRUE(client->Write("GET / HTTP/1.1\r\nHost: www.lab.test\r\n\r\n"));
  Exchange(client.get());
  EXPECT_EQ(client->plaintext.rfind("HTTP/1.1 502", 0), 0u) << client->plaintext;
  EXPECT_NE(client->plaintext.find("timed out"), std::string::npos) << client->plaintext;
  context_->Advance(2'000);
  EXPECT_TRUE(client->peer->ended);
  const auto records = Records();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0]["status"], 502);
  EXPECT_EQ(records[0]["action"], "decrypt");
  EXPECT_EQ(records[0]["ca"], "default");
  EXPECT_EQ(records[0]["sni"], "www.lab.test");
  const std::string verify = records[0]["upstream_verify"];
  EXPECT_NE(verify.find("timed out"), std::string::npos) << verify;
  EXPECT_EQ(records[0]["error"], "origin_tls/timeout") << records[0];
}

// The client stops in the middle of its handshake (after the gateway's leaf): closed after
// timeouts.tls_handshake, recorded as client_tls/timeout.
TEST_F(SessionTlsTest, StalledClientHandshakeIsClosedAfterTlsHandshakeTimeout) {
  Start();
  auto client = TrustingClient("www.lab.test");
  SendHello(*client);
  auto origin = OriginEnd(OriginLeaf("origin", "www.lab.test"));
  Exchange(nullptr, origin.get());  // the client does not take part
  ASSERT_TRUE(origin->engine.handshake_done()) << origin->engine.error();
  EXPECT_FALSE(client->peer->received.empty()) << "the gateway's ServerHello never came";
  context_->Advance(kTlsHandshakeMs - 1);
  EXPECT_FALSE(client->peer->ended);
  context_->Advance(1);
  EXPECT_TRUE(client->peer->ended);
  EXPECT_TRUE(origin->plaintext.empty());
  const auto records = Records();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0]["error"], "client_tls/timeout");
  EXPECT_NE(records[0]["note"].get<std::string>().find("timed out"), std::string::npos);
  EXPECT_EQ(records[0]["action"], "decrypt");
  EXPECT_EQ(records[0]["ca"], "default");
  EXPECT_EQ(records[0]["upstream_verify"], "ok");
  EXPECT_EQ(records[0]["sni"], "www.lab.test");
}

// A client that does not trust the gateway's CA aborts with unknown_ca: recorded as
// client_tls/refused, and the readiness tracker learns that this client rejects the profile.
TEST_F(SessionTlsTest, ClientRejectingTheLeafIsRecordedForReadiness) {
  Start();
  Premint("www.lab.test");
  tls::SslCtxPtr distrusting = ClientContext(nullptr);
  auto client = Connect("www.lab.test", "www.lab.test", distrusting.get());
  client->Step(true);
  context_->Pump();
  auto origin = OriginEnd(OriginLeaf("origin", "www.lab.test"));
  Exchange(client.get(), origin.get());
  ASSERT_EQ(client->status, Status::kError);
  EXPECT_NE(client->engine.error().find("unknown CA"), std::string::npos) << client->engine.error();
  context_->Advance(2'000);
  EXPECT_TRUE(client->peer->ended);
  EXPECT_TRUE(origin->plaintext.empty());
  EXPECT_EQ(Readiness(*runtime_, "default"), HandshakeOutcome::kRejected);
  const nlohmann::json readiness = runtime_->readiness->ToJson(std::time(nullptr));
  ASSERT_EQ(readiness["profiles"].size(), 1u) << readiness;
  EXPECT_EQ(readiness["profiles"][0]["profile"], "default");
  EXPECT_EQ(readiness["profiles"][0]["rejecting"], 1);
  EXPECT_EQ(readiness["profiles"][0]["clients"][0]["last_alert"], "unknown_ca");
  EXPECT_EQ(readiness["profiles"][0]["clients"][0]["evidence"], "alert");
  EXPECT_EQ(readiness["profiles"][0]["clients"][0]["last_rejected"]["alert"], "unknown_ca");
  EXPECT_EQ(readiness["profiles"][0]["clients"][0]["last_rejected"]["sni"], "www.lab.test");
  const auto records = Records();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0]["readiness"], "rejects");
  EXPECT_EQ(records[0]["evidence"], "alert:unknown_ca");
  EXPECT_EQ(records[0]["error"], "client_tls/refused");
  EXPECT_NE(records[0]["note"].get<std::string>().find("unknown CA"), std::string::npos)
      << records[0];
  EXPECT_EQ(records[0]["action"], "decrypt");
  EXPECT_EQ(records[0]["ca"], "default");
  EXPECT_EQ(records[0]["sni"], "www.lab.test");
  EXPECT_EQ(records[0]["upstream_verify"], "ok");
}

// The origin closes in the middle of its handshake: the client still gets a trusted leaf
// and then a 502 page naming the reason, recorded as origin_tls/closed.
TEST_F(SessionTlsTest, OriginClosingDuringItsHandshakeIsA502Page) {
  Start();
  auto client = TrustingClient("www.lab.test");
  SendHello(*client);
  ASSERT_EQ(OriginConnections(), 1u);
  EXPECT_FALSE(context_->net_.connections()[0]->peer().received.empty()) << "no ClientHello";
  context_->net_.connections()[0]->SendEnd();
  context_->Pump();
  Exchange(client.get());
  ASSERT_EQ(client->status, Status::kDone) << client->engine.error();
  ASSERT_TRUE(client->Write("GET / HTTP/1.1\r\nHost: www.lab.test\r\n\r\n"));
  Exchange(client.get());
  EXPECT_NE(client->plaintext.find("HTTP/1.1 502"), std::string::npos) << client->plaintext;
  const auto records = Records();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0]["error"], "origin_tls/closed") << records[0];
  EXPECT_NE(records[0]["upstream_verify"].get<std::string>().find("closed the connection"),
            std::string::npos)
      << records[0];
}

// A leaf that never comes (the mint's answer never reaches the loop): closed after
// timeouts.leaf_wait, recorded as internal/timeout.
TEST_F(SessionTlsTest, LeafThatNeverComesIsClosedAfterLeafWait) {
  Start();
  context_->hold_posted = true;  // no Premint: the leaf is minted on a mint thread
  trusting_ = ClientContext(gateway_ca_.get());
  auto client = Connect("www.lab.test", "www.lab.test", trusting_.get());
  SendHello(*client);
  auto origin = OriginEnd(OriginLeaf("origin", "www.lab.test"));
  Exchange(client.get(), origin.get());
  ASSERT_TRUE(origin->engine.handshake_done()) << origin->engine.error();
  EXPECT_FALSE(client->peer->ended);
  context_->Advance(kLeafWaitMs - 1);
  EXPECT_FALSE(client->peer->ended) << "closed before timeouts.leaf_wait";
  context_->Advance(1);
  EXPECT_TRUE(client->peer->ended) << "still open after timeouts.leaf_wait";
  const auto records = Records();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0]["error"], "internal/timeout") << records[0];
  EXPECT_NE(records[0]["note"].get<std::string>().find("no leaf certificate within 9 s"),
            std::string::npos)
      << records[0];
  // The mint thread still answers (to a session that is gone); the context it posts to must
  // outlive that.
  EXPECT_TRUE(context_->WaitForPosted(5));
}

// wget (GnuTLS) and other clients that check the certificate after the handshake: the
// handshake finishes, then the client closes (close_notify, FIN) without a request. That is a
// rejection, "closed_after_handshake", logged with the CONNECT.
TEST_F(SessionTlsTest, ClientClosingAfterItsHandshakeRejectsTheLeaf) {
  Start();
  Premint("www.lab.test");
  tls::SslCtxPtr checks_later = ClientContext(nullptr, false);
  Decrypted d = Handshaken(checks_later.get());
  EXPECT_EQ(Readiness(*runtime_, "default"), std::nullopt) << "no verdict before the client acts";
  EXPECT_TRUE(Records().empty()) << "the CONNECT is logged with its verdict";
  d.client->engine.Shutdown();  // close_notify
  d.client->Step(true);
  d.client->stream->SendEnd();
  context_->Pump();
  context_->Advance(2'000);
  EXPECT_EQ(Readiness(*runtime_, "default"), HandshakeOutcome::kRejected);
  const nlohmann::json entry = ReadinessEntry();
  EXPECT_EQ(entry["status"], "rejects") << entry;
  EXPECT_EQ(entry["evidence"], "closed_after_handshake") << entry;
  EXPECT_EQ(entry["last_rejected"]["evidence"], "closed_after_handshake") << entry;
  EXPECT_EQ(entry["last_rejected"]["sni"], "www.lab.test") << entry;
  EXPECT_TRUE(entry["last_trusted"].is_null()) << entry;
  const auto records = Records();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0]["method"], "CONNECT");
  EXPECT_EQ(records[0]["action"], "decrypt");
  EXPECT_EQ(records[0]["rule"], "lab");
  EXPECT_EQ(records[0]["ca"], "default");
  EXPECT_EQ(records[0]["readiness"], "rejects");
  EXPECT_EQ(records[0]["evidence"], "closed_after_handshake");
  EXPECT_EQ(records[0]["error"], "client_tls/closed");
  EXPECT_NE(records[0]["note"].get<std::string>().find("after the TLS handshake"),
            std::string::npos)
      << records[0];
  EXPECT_TRUE(d.origin->plaintext.empty());
}

// The same with a reset instead of a close.
TEST_F(SessionTlsTest, ClientResettingAfterItsHandshakeRejectsTheLeaf) {
  Start();
  Premint("www.lab.test");
  tls::SslCtxPtr checks_later = ClientContext(nullptr, false);
  Decrypted d = Handshaken(checks_later.get());
  d.client->stream->SendReset();
  context_->Pump();
  const nlohmann::json entry = ReadinessEntry();
  EXPECT_EQ(entry["status"], "rejects") << entry;
  EXPECT_EQ(entry["evidence"], "reset_after_handshake") << entry;
  const auto records = Records();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0]["readiness"], "rejects");
  EXPECT_EQ(records[0]["evidence"], "reset_after_handshake");
}

// Java (JSSE) and Node: our certificate arrives, and the client closes without an alert and
// without finishing its handshake. A rejection, "closed_during_handshake"; a reset there is
// "reset_during_handshake".
TEST_F(SessionTlsTest, ClientClosingDuringItsHandshakeRejectsTheLeaf) {
  Start();
  for (const bool reset : {false, true}) {
    Premint("www.lab.test");
    trusting_ = ClientContext(gateway_ca_.get());
    auto client = Connect("www.lab.test", "www.lab.test", trusting_.get());
    SendHello(*client);
    auto origin = OriginEnd(OriginLeaf("origin", "www.lab.test"), reset ? 1 : 0);
    Exchange(nullptr, origin.get());  // the client does not answer the gateway's flight
    ASSERT_FALSE(client->peer->received.empty()) << "the gateway's certificate never came";
    if (reset) {
      client->stream->SendReset();
    } else {
      client->stream->SendEnd();
    }
    context_->Pump();
    const nlohmann::json entry = ReadinessEntry();
    const char* evidence = reset ? "reset_during_handshake" : "closed_during_handshake";
    EXPECT_EQ(entry["status"], "rejects") << entry;
    EXPECT_EQ(entry["evidence"], evidence) << entry;
    EXPECT_EQ(entry["rejected"], reset ? 2 : 1) << entry;
    const auto records = Records();
    ASSERT_EQ(records.size(), reset ? 2u : 1u);
    EXPECT_EQ(records.back()["readiness"], "rejects");
    EXPECT_EQ(records.back()["evidence"], evidence);
    EXPECT_EQ(records.back()["error"], "client_tls/closed");
  }
}

// A browser's spare connection: its handshake finishes, another connection of the same client
// carries the requests meanwhile (or did within a minute before), and the spare is closed
// unused. Not a rejection ("unused"). A connection that closes unused with no request of
// that client for more than a minute is a rejection again.
TEST_F(SessionTlsTest, SpareConnectionClosedUnusedIsNotARejection) {
  Start();
  Premint("www.lab.test");
  trusting_ = ClientContext(gateway_ca_.get());
  Decrypted spare = Handshaken(trusting_.get());
  Decrypted used = Handshaken(trusting_.get());
  ASSERT_TRUE(used.client->Write("GET / HTTP/1.1\r\nHost: www.lab.test\r\n\r\n"));
  Exchange(used.client.get(), used.origin.get());
  ASSERT_TRUE(used.origin->Write(Ok("page")));
  Exchange(used.client.get(), used.origin.get());
  EXPECT_EQ(Readiness(*runtime_, "default"), HandshakeOutcome::kTrusted);
  spare.client->stream->SendEnd();
  context_->Pump();
  nlohmann::json entry = ReadinessEntry();
  EXPECT_EQ(entry["status"], "trusts") << entry;
  EXPECT_EQ(entry["trusted"], 1) << entry;
  EXPECT_EQ(entry["rejected"], 0) << entry;
  EXPECT_EQ(entry["unused"], 1) << entry;
  EXPECT_EQ(entry["last_trusted"]["evidence"], "application_data") << entry;
  auto records = Records();
  ASSERT_EQ(records.size(), 3u);  // the used CONNECT, its GET, the spare CONNECT
  EXPECT_EQ(records[2]["readiness"], "unused") << records[2];
  EXPECT_EQ(records[2]["evidence"], "closed_after_handshake") << records[2];

  // More than a minute later, the client's trust changed (the root was removed): a connection
  // closes unused.
  context_->Advance(ReadinessTracker::kSpareWindowMs + 1'000);
  Decrypted later = Handshaken(trusting_.get());
  later.client->stream->SendEnd();
  context_->Pump();
  entry = ReadinessEntry();
  EXPECT_EQ(entry["status"], "rejects") << entry;
  EXPECT_EQ(entry["trusted"], 1) << entry;
  EXPECT_EQ(entry["rejected"], 1) << entry;
  EXPECT_FALSE(entry["last_trusted"].is_null()) << "the earlier trust is still shown";
  EXPECT_EQ(entry["last_rejected"]["evidence"], "closed_after_handshake") << entry;
}

// A client that finishes its handshake and then sends nothing: closed after
// timeouts.client_idle, logged, and no verdict either way.
TEST_F(SessionTlsTest, SilentClientAfterItsHandshakeGivesNoVerdict) {
  Start();
  Premint("www.lab.test");
  trusting_ = ClientContext(gateway_ca_.get());
  Decrypted d = Handshaken(trusting_.get());
  context_->Advance(60'000 - 1);
  EXPECT_FALSE(d.client->peer->ended) << "closed before timeouts.client_idle";
  context_->Advance(1);
  Exchange(d.client.get());
  context_->Advance(2'000);
  EXPECT_TRUE(d.client->peer->ended);
  EXPECT_EQ(Readiness(*runtime_, "default"), std::nullopt);
  const auto records = Records();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0]["error"], "downstream/timeout") << records[0];
  EXPECT_FALSE(records[0].contains("readiness")) << records[0];
}

}  // namespace
}  // namespace mintgate::proxy::testing
