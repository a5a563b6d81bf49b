#include "tls/tls_engine.h"

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "tls/cert_authority.h"
#include "tls/cert_cache.h"
#include "tls/leaf_keys.h"
#include "tls/leaf_minter.h"
#include "tls/tls_contexts.h"
#include "tls/tls_error.h"
#include "unit/tls/test_pki.h"

namespace mintgate::tls {
namespace {

using testing::MakeKey;
using testing::MakeRoot;
using testing::Material;
using testing::Spec;
using testing::TempDir;
using testing::TestCa;
using testing::WritePem;

constexpr std::time_t kDay = 86400;

// Roots shared by the tests of this file; "expired_base" is old enough to mint a leaf that
// has already expired.
struct Pki {
  TestCa root = MakeRoot("Engine Test Root", MakeKey("ec"));
  TestCa other = MakeRoot("Some Other Root", MakeKey("ec"));
  TestCa old_root = [] {
    testing::CaOptions o;
    o.not_before = std::time(nullptr) - 400 * kDay;
    return MakeRoot("Old Root", MakeKey("ec"), o);
  }();
};

Pki& pki() {
  static Pki* p = new Pki();
  return *p;
}

LeafKeys& keys() {
  static LeafKeys* k = new LeafKeys({LeafKeyType::kEcdsaP256});
  return *k;
}

LeafPtr Mint(const TestCa& ca, const std::string& host, bool intermediate = false,
             std::time_t now = std::time(nullptr)) {
  SignerOptions o;
  o.signing_intermediate = intermediate;
  o.leaf_days = 30;
  static std::vector<std::unique_ptr<CertAuthority>>* keep =
      new std::vector<std::unique_ptr<CertAuthority>>();
  keep->push_back(CertAuthority::Create(Spec("p"), Material(ca), o, now));
  LeafMinter minter(keys(), 30);
  MintRequest req;
  req.host = host;
  Result<LeafPtr> r = minter.Mint(*keep->back()->signer(now), req, now);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error());
  return r.ok() ? r.value() : nullptr;
}

struct Outcome {
  TlsEngine::Status client;
  TlsEngine::Status server;
};

// Moves ciphertext between the two engines until both handshakes finish, or one failed and
// nothing more is in flight (so the failing side's alert still reaches the other).
// `before_step` runs before each handshake step.
Outcome Pump(TlsEngine& c, TlsEngine& s, const std::function<void()>& before_step = {}) {
  Outcome o{TlsEngine::Status::kWantMore, TlsEngine::Status::kWantMore};
  for (int i = 0; i < 20; ++i) {
    if (before_step) before_step();
    o.client = c.Handshake();
    std::string to_server = c.TakeCiphertext();
    s.FeedCiphertext(to_server.data(), to_server.size());
    if (before_step) before_step();
    o.server = s.Handshake();
    std::string to_client = s.TakeCiphertext();
    c.FeedCiphertext(to_client.data(), to_client.size());
    if (o.client == TlsEngine::Status::kDone && o.server == TlsEngine::Status::kDone) break;
    bool failed = o.client == TlsEngine::Status::kError || o.server == TlsEngine::Status::kError;
    if (failed && to_server.empty() && to_client.empty()) break;
  }
  return o;
}

// Delivers everything `from` has to send to `to` and returns what `to` decrypts.
std::string Transfer(TlsEngine& from, TlsEngine& to) {
  std::string bytes = from.TakeCiphertext();
  to.FeedCiphertext(bytes.data(), bytes.size());
  return to.ReadPlaintext();
}

// Record headers in a run of TLS ciphertext: (content type, length) for each record.
std::vector<std::pair<int, std::size_t>> Records(const std::string& wire) {
  std::vector<std::pair<int, std::size_t>> out;
  std::size_t off = 0;
  while (off + 5 <= wire.size()) {
    const auto* p = reinterpret_cast<const unsigned char*>(wire.data() + off);
    const std::size_t len = (static_cast<std::size_t>(p[3]) << 8) | p[4];
    out.emplace_back(p[0], len);
    off += 5 + len;
  }
  EXPECT_EQ(off, wire.size()) << "ciphertext ends inside a record";
  return out;
}

class TlsEngineTest : public ::testing::Test {
 protected:
  std::unique_ptr<TlsContexts> Contexts(const std::vector<X509*>& trust) {
    TlsContextOptions o;
    o.use_system_trust = false;
    std::string file = dir_.File("trust" + std::to_string(files_++) + ".pem");
    WritePem(file, trust);
    o.extra_trust.push_back(file);
    return std::make_unique<TlsContexts>(o);
  }

  // A server with a leaf for `host` from pki().root and a client that trusts that root.
  struct Engines {
    std::unique_ptr<TlsContexts> ctx;
    TlsEngine server;
    TlsEngine client;
  };
  Engines ForHost(const std::string& host) {
    LeafPtr leaf = Mint(pki().root, host);
    if (!leaf) throw std::runtime_error("no leaf for " + host);
    auto ctx = Contexts({pki().root.cert.get()});
    TlsContexts* c = ctx.get();
    return Engines{std::move(ctx), TlsEngine::Server(c->server(), *leaf),
                   TlsEngine::Client(c->client(), host, host, nullptr)};
  }

  TempDir dir_;
  int files_ = 0;
};

// What a cache hit serves: the compact leaf, whose X509 the engine rebuilds.
TEST_F(TlsEngineTest, CompactLeafFromTheCacheHandshakesAndVerifies) {
  LeafPtr minted = Mint(pki().root, "cached.example.com");
  ASSERT_TRUE(minted);
  CertCache cache(CertCache::Options{});
  const std::time_t now = std::time(nullptr);
  CacheKeyView key;
  key.host = "cached.example.com";
  ASSERT_EQ(cache.Acquire(key, now, nullptr).outcome, CertCache::Outcome::kMiss);
  cache.Complete(key, minted, now);
  LeafPtr hit = cache.Find(key, now);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->cert, nullptr) << "the cache kept the X509";
  auto ctx = Contexts({pki().root.cert.get()});
  for (int i = 0; i < 2; ++i) {  // rebuilt, then from the thread's table
    TlsEngine server = TlsEngine::Server(ctx->server(), *hit);
    TlsEngine client =
        TlsEngine::Client(ctx->client(), "cached.example.com", "cached.example.com", nullptr);
    Outcome o = Pump(client, server);
    ASSERT_EQ(o.client, TlsEngine::Status::kDone) << client.error();
    ASSERT_EQ(o.server, TlsEngine::Status::kDone) << server.error();
    EXPECT_EQ(client.verify_result(), X509_V_OK) << client.verify_reason();
    X509Ptr peer(SSL_get1_peer_certificate(client.ssl()));
    ASSERT_TRUE(peer);
    EXPECT_EQ(X509_cmp(peer.get(), minted->cert.get()), 0);
  }
}

TEST_F(TlsEngineTest, HandshakeVerifiesAndCarriesData) {
  auto [ctx, server, client] = ForHost("www.example.com");
  static const unsigned char kOffer[] = "\x02h2\x08http/1.1";
  ASSERT_EQ(SSL_set_alpn_protos(client.ssl(), kOffer, sizeof kOffer - 1), 0);

  Outcome o = Pump(client, server);
  ASSERT_EQ(o.client, TlsEngine::Status::kDone) << client.error();
  ASSERT_EQ(o.server, TlsEngine::Status::kDone) << server.error();
  EXPECT_TRUE(client.handshake_done());
  EXPECT_TRUE(server.handshake_done());
  EXPECT_EQ(client.verify_result(), X509_V_OK) << client.verify_reason();
  EXPECT_EQ(client.alpn(), "http/1.1");
  EXPECT_EQ(server.alpn(), "http/1.1");
  const char* sni = SSL_get_servername(server.ssl(), TLSEXT_NAMETYPE_host_name);
  ASSERT_NE(sni, nullptr);
  EXPECT_STREQ(sni, "www.example.com");

  ASSERT_TRUE(client.WritePlaintext("GET / HTTP/1.1\r\n\r\n"));
  EXPECT_EQ(Transfer(client, server), "GET / HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(server.WritePlaintext("HTTP/1.1 200 OK\r\n\r\n"));
  EXPECT_EQ(Transfer(server, client), "HTTP/1.1 200 OK\r\n\r\n");

  // 1 MiB each way, in several writes of odd sizes.
  std::string big(1 << 20, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7 + i / 251);
  for (TlsEngine* from : {&client, &server}) {
    TlsEngine* to = from == &client ? &server : &client;
    std::string got;
    for (std::size_t off = 0; off < big.size(); off += 100003) {
      ASSERT_TRUE(from->WritePlaintext(std::string_view(big).substr(off, 100003)));
      got += Transfer(*from, *to);
    }
    EXPECT_EQ(got.size(), big.size());
    EXPECT_TRUE(got == big);
  }

  // Writes until the ciphertext is taken share records: a response head and a small body
  // queued separately make one application-data record.
  ASSERT_TRUE(server.WritePlaintext("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"));
  ASSERT_TRUE(server.QueuePlaintext(std::string("hello")));
  std::string wire = server.TakeCiphertext();
  auto records = Records(wire);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].first, 23);
  client.FeedCiphertext(wire.data(), wire.size());
  EXPECT_EQ(client.ReadPlaintext(), "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
  // 40,000 bytes in three writes: full 16 KiB records, not one per write.
  ASSERT_TRUE(server.QueuePlaintext(std::string(10000, 'a')));
  ASSERT_TRUE(server.QueuePlaintext(std::string(20000, 'b')));
  ASSERT_TRUE(server.WritePlaintext(std::string(10000, 'c')));
  wire = server.TakeCiphertext();
  EXPECT_EQ(Records(wire).size(), 3u);
  client.FeedCiphertext(wire.data(), wire.size());
  EXPECT_EQ(client.ReadPlaintext(),
            std::string(10000, 'a') + std::string(20000, 'b') + std::string(10000, 'c'));

  // A bulk chunk with nothing queued is sealed at once; what follows still comes after it.
  ASSERT_TRUE(server.WritePlaintext(std::string(20000, 'd')));
  ASSERT_TRUE(server.WritePlaintext("tail"));
  wire = server.TakeCiphertext();
  client.FeedCiphertext(wire.data(), wire.size());
  EXPECT_EQ(client.ReadPlaintext(), std::string(20000, 'd') + "tail");

  // Queued data goes out before a close_notify asked for after it.
  EXPECT_FALSE(server.closed());
  ASSERT_TRUE(client.WritePlaintext("last words"));
  client.Shutdown();
  wire = client.TakeCiphertext();
  EXPECT_EQ(Records(wire).size(), 2u);
  server.FeedCiphertext(wire.data(), wire.size());
  EXPECT_EQ(server.ReadPlaintext(), "last words");
  EXPECT_TRUE(server.closed());
  EXPECT_EQ(server.error(), "");
  EXPECT_FALSE(client.WritePlaintext("x"));  // nothing may follow our close_notify
}

TEST_F(TlsEngineTest, NoAlpnWhenHttp11NotOffered) {
  auto [ctx, server, client] = ForHost("www.example.com");
  static const unsigned char kOffer[] = "\x02h2";
  ASSERT_EQ(SSL_set_alpn_protos(client.ssl(), kOffer, sizeof kOffer - 1), 0);
  Outcome o = Pump(client, server);
  ASSERT_EQ(o.client, TlsEngine::Status::kDone) << client.error();
  ASSERT_EQ(o.server, TlsEngine::Status::kDone) << server.error();
  EXPECT_EQ(client.alpn(), "");
  EXPECT_EQ(server.alpn(), "");
}

TEST_F(TlsEngineTest, SigningIntermediateIsSentInTheChain) {
  LeafPtr leaf = Mint(pki().root, "chain.example.com", /*intermediate=*/true);
  ASSERT_TRUE(leaf);
  ASSERT_GE(leaf->chain->certs.size(), 2u);
  auto ctx = Contexts({pki().root.cert.get()});
  TlsEngine server = TlsEngine::Server(ctx->server(), *leaf);
  TlsEngine client =
      TlsEngine::Client(ctx->client(), "chain.example.com", "chain.example.com", nullptr);
  Outcome o = Pump(client, server);
  ASSERT_EQ(o.client, TlsEngine::Status::kDone) << client.error();
  ASSERT_EQ(o.server, TlsEngine::Status::kDone) << server.error();
  // Only the root is trusted, so this needs the intermediate from the server.
  EXPECT_EQ(client.verify_result(), X509_V_OK) << client.verify_reason();
  STACK_OF(X509)* sent = SSL_get_peer_cert_chain(client.ssl());
  ASSERT_NE(sent, nullptr);
  EXPECT_EQ(sk_X509_num(sent), 1 + static_cast<int>(leaf->chain->certs.size()));
}

TEST_F(TlsEngineTest, UnknownIssuerIsReportedNotFatal) {
  LeafPtr leaf = Mint(pki().root, "www.example.com");
  ASSERT_TRUE(leaf);
  auto ctx = Contexts({pki().other.cert.get()});
  {
    // The chain ends with the (untrusted) root itself.
    TlsEngine server = TlsEngine::Server(ctx->server(), *leaf);
    TlsEngine client =
        TlsEngine::Client(ctx->client(), "www.example.com", "www.example.com", nullptr);
    Outcome o = Pump(client, server);
    ASSERT_EQ(o.client, TlsEngine::Status::kDone) << client.error();
    ASSERT_EQ(o.server, TlsEngine::Status::kDone) << server.error();
    EXPECT_EQ(client.verify_result(), X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN);
    EXPECT_EQ(client.verify_reason(), "self-signed certificate in certificate chain");
  }
  // A server that sends the leaf alone.
  Leaf bare;
  bare.cert = UpRef(leaf->cert.get());
  bare.key = UpRef(leaf->key.get());
  TlsEngine server = TlsEngine::Server(ctx->server(), bare);
  TlsEngine client =
      TlsEngine::Client(ctx->client(), "www.example.com", "www.example.com", nullptr);
  Outcome o = Pump(client, server);
  ASSERT_EQ(o.client, TlsEngine::Status::kDone) << client.error();
  ASSERT_EQ(o.server, TlsEngine::Status::kDone) << server.error();
  EXPECT_EQ(client.verify_result(), X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
  EXPECT_EQ(client.verify_reason(), "unable to get local issuer certificate");
  // Relaying still works: the caller decides what to do with the result.
  ASSERT_TRUE(client.WritePlaintext("x"));
  EXPECT_EQ(Transfer(client, server), "x");
}

// OpenSSL overwrites the error with each later failure once verification continues; the
// first one (the root cause) is what gets reported.
TEST_F(TlsEngineTest, FirstVerificationErrorIsReported) {
  LeafPtr leaf = Mint(pki().old_root, "www.example.com", false, std::time(nullptr) - 300 * kDay);
  ASSERT_TRUE(leaf);
  Leaf bare;
  bare.cert = UpRef(leaf->cert.get());
  bare.key = UpRef(leaf->key.get());
  auto ctx = Contexts({pki().other.cert.get()});
  TlsEngine server = TlsEngine::Server(ctx->server(), bare);
  TlsEngine client =
      TlsEngine::Client(ctx->client(), "www.example.com", "other.example.com", nullptr);
  Outcome o = Pump(client, server);
  ASSERT_EQ(o.client, TlsEngine::Status::kDone) << client.error();
  EXPECT_EQ(client.verify_result(), X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY)
      << client.verify_reason();
}

TEST_F(TlsEngineTest, HostnameMismatchIsReported) {
  LeafPtr leaf = Mint(pki().root, "www.example.com");
  ASSERT_TRUE(leaf);
  auto ctx = Contexts({pki().root.cert.get()});
  TlsEngine server = TlsEngine::Server(ctx->server(), *leaf);
  TlsEngine client =
      TlsEngine::Client(ctx->client(), "www.example.com", "other.example.com", nullptr);
  Outcome o = Pump(client, server);
  ASSERT_EQ(o.client, TlsEngine::Status::kDone) << client.error();
  EXPECT_EQ(client.verify_result(), X509_V_ERR_HOSTNAME_MISMATCH);
}

TEST_F(TlsEngineTest, ExpiredLeafIsReported) {
  // Minted 300 days ago for 30 days.
  LeafPtr leaf = Mint(pki().old_root, "www.example.com", false, std::time(nullptr) - 300 * kDay);
  ASSERT_TRUE(leaf);
  ASSERT_LT(leaf->not_after, std::time(nullptr));
  auto ctx = Contexts({pki().old_root.cert.get()});
  TlsEngine server = TlsEngine::Server(ctx->server(), *leaf);
  TlsEngine client =
      TlsEngine::Client(ctx->client(), "www.example.com", "www.example.com", nullptr);
  Outcome o = Pump(client, server);
  ASSERT_EQ(o.client, TlsEngine::Status::kDone) << client.error();
  EXPECT_EQ(client.verify_result(), X509_V_ERR_CERT_HAS_EXPIRED);
  EXPECT_EQ(client.verify_reason(), "certificate has expired");
}

TEST_F(TlsEngineTest, IpLiteralIsVerifiedAgainstIpSanWithoutSni) {
  LeafPtr leaf = Mint(pki().root, "192.0.2.7");
  ASSERT_TRUE(leaf);
  auto ctx = Contexts({pki().root.cert.get()});
  for (const char* name : {"192.0.2.7", "192.0.2.8"}) {
    TlsEngine server = TlsEngine::Server(ctx->server(), *leaf);
    TlsEngine client = TlsEngine::Client(ctx->client(), name, name, nullptr);
    Outcome o = Pump(client, server);
    ASSERT_EQ(o.client, TlsEngine::Status::kDone) << client.error();
    ASSERT_EQ(o.server, TlsEngine::Status::kDone) << server.error();
    EXPECT_EQ(SSL_get_servername(server.ssl(), TLSEXT_NAMETYPE_host_name), nullptr);
    if (std::string(name) == "192.0.2.7") {
      EXPECT_EQ(client.verify_result(), X509_V_OK) << client.verify_reason();
    } else {
      EXPECT_EQ(client.verify_result(), X509_V_ERR_IP_ADDRESS_MISMATCH);
    }
  }
}

// A server certificate from a trusted CA whose subject CN is the host but that has no DNS SAN
// (`ip_san`: an IP SAN only). OpenSSL falls back to the CN for such a certificate; browsers
// do not, and neither may the gateway, or it would re-mint a clean leaf for a certificate the
// client itself would refuse.
Leaf CommonNameOnlyLeaf(const std::string& cn, bool ip_san) {
  Leaf leaf;
  leaf.key = MakeKey("ec");
  X509Ptr x(X509_new());
  X509_set_version(x.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x.get()), 4242);
  X509_gmtime_adj(X509_getm_notBefore(x.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x.get()), 30 * kDay);
  X509_NAME* name = X509_get_subject_name(x.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(x.get(), X509_get_subject_name(pki().root.cert.get()));
  X509_set_pubkey(x.get(), leaf.key.get());
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, pki().root.cert.get(), x.get(), nullptr, nullptr, 0);
  std::vector<std::pair<int, const char*>> extensions = {
      {NID_basic_constraints, "critical,CA:FALSE"}, {NID_ext_key_usage, "serverAuth"}};
  if (ip_san) extensions.emplace_back(NID_subject_alt_name, "IP:192.0.2.1");
  for (const auto& [nid, value] : extensions) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
    X509_add_ext(x.get(), ext, -1);
    X509_EXTENSION_free(ext);
  }
  X509_sign(x.get(), pki().root.key.get(), EVP_sha256());
  leaf.cert = std::move(x);
  return leaf;
}

TEST_F(TlsEngineTest, SubjectCommonNameIsNeverMatchedOnlySans) {
  auto ctx = Contexts({pki().root.cert.get()});
  for (bool ip_san : {false, true}) {
    Leaf leaf = CommonNameOnlyLeaf("www.example.com", ip_san);
    TlsEngine server = TlsEngine::Server(ctx->server(), leaf);
    TlsEngine client =
        TlsEngine::Client(ctx->client(), "www.example.com", "www.example.com", nullptr);
    Outcome o = Pump(client, server);
    ASSERT_EQ(o.client, TlsEngine::Status::kDone) << client.error();
    EXPECT_EQ(client.verify_result(), X509_V_ERR_HOSTNAME_MISMATCH)
        << "ip_san=" << ip_san << ": " << client.verify_reason();
  }
}

// How the gateway learns that a client lacks its CA: the client's alert ends the server
// engine's handshake with an error naming it.
TEST_F(TlsEngineTest, ClientRejectingTheLeafIsReportedWithItsAlert) {
  LeafPtr leaf = Mint(pki().root, "www.example.com");
  ASSERT_TRUE(leaf);
  auto ctx = Contexts({pki().root.cert.get()});
  SslCtxPtr strict(SSL_CTX_new(TLS_client_method()));
  SSL_CTX_set_verify(strict.get(), SSL_VERIFY_PEER, nullptr);
  TlsEngine server = TlsEngine::Server(ctx->server(), *leaf);
  TlsEngine client = TlsEngine::Client(strict.get(), "www.example.com", "www.example.com", nullptr);
  Outcome o = Pump(client, server);
  EXPECT_EQ(o.client, TlsEngine::Status::kError);
  EXPECT_NE(client.error().find("certificate verify failed"), std::string::npos) << client.error();
  EXPECT_NE(client.error().find("sent alert: unknown CA"), std::string::npos) << client.error();
  ASSERT_EQ(o.server, TlsEngine::Status::kError);
  EXPECT_NE(server.error().find("peer sent alert: unknown CA"), std::string::npos)
      << server.error();
  EXPECT_TRUE(server.closed());
  EXPECT_FALSE(server.handshake_done());
}

TEST_F(TlsEngineTest, GarbageIsAnErrorNotACrash) {
  LeafPtr leaf = Mint(pki().root, "www.example.com");
  ASSERT_TRUE(leaf);
  auto ctx = Contexts({pki().root.cert.get()});
  TlsEngine server = TlsEngine::Server(ctx->server(), *leaf);
  std::string garbage = "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n";
  server.FeedCiphertext(garbage.data(), garbage.size());
  EXPECT_EQ(server.Handshake(), TlsEngine::Status::kError);
  EXPECT_FALSE(server.error().empty());
  EXPECT_EQ(server.Handshake(), TlsEngine::Status::kError);  // stays failed
  server.TakeCiphertext();
  EXPECT_EQ(server.ReadPlaintext(), "");
  EXPECT_FALSE(server.WritePlaintext("x"));

  // A TLS record header announcing a huge record with random contents.
  TlsEngine server2 = TlsEngine::Server(ctx->server(), *leaf);
  std::string bad("\x16\x03\x01\x40\x00", 5);
  bad.append(std::string(300, '\x5a'));
  server2.FeedCiphertext(bad.data(), bad.size());
  EXPECT_NE(server2.Handshake(), TlsEngine::Status::kDone);
}

TEST_F(TlsEngineTest, MissingTrustFileNamesIt) {
  TlsContextOptions o;
  o.use_system_trust = false;
  o.extra_trust.push_back(dir_.File("missing.pem"));
  try {
    TlsContexts ctx(o);
    FAIL() << "no LoadError";
  } catch (const LoadError& e) {
    EXPECT_EQ(e.file(), dir_.File("missing.pem"));
    EXPECT_NE(std::string(e.what()).find("missing.pem"), std::string::npos);
  }
}

TEST_F(TlsEngineTest, DerTrustFileWorks) {
  std::string file = dir_.File("root.cer");
  unsigned char* der = nullptr;
  int len = i2d_X509(pki().root.cert.get(), &der);
  ASSERT_GT(len, 0);
  FILE* f = std::fopen(file.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(std::fwrite(der, 1, static_cast<std::size_t>(len), f), static_cast<std::size_t>(len));
  std::fclose(f);
  OPENSSL_free(der);

  TlsContextOptions o;
  o.use_system_trust = false;
  o.extra_trust.push_back(file);
  TlsContexts ctx(o);
  LeafPtr leaf = Mint(pki().root, "www.example.com");
  ASSERT_TRUE(leaf);
  TlsEngine server = TlsEngine::Server(ctx.server(), *leaf);
  TlsEngine client = TlsEngine::Client(ctx.client(), "www.example.com", "www.example.com", nullptr);
  Outcome out = Pump(client, server);
  ASSERT_EQ(out.client, TlsEngine::Status::kDone) << client.error();
  EXPECT_EQ(client.verify_result(), X509_V_OK) << client.verify_reason();
}

class TlsEngineResumeTest : public TlsEngineTest, public ::testing::WithParamInterface<int> {};

// The first connection is dropped without Shutdown(), as the proxy does with idle origin
// connections: the session must stay resumable.
TEST_P(TlsEngineResumeTest, SessionIsResumed) {
  LeafPtr leaf = Mint(pki().root, "www.example.com");
  ASSERT_TRUE(leaf);
  auto ctx = Contexts({pki().root.cert.get()});
  ASSERT_EQ(SSL_CTX_set_max_proto_version(ctx->client(), GetParam()), 1);
  SSL_SESSION* session = nullptr;
  {
    TlsEngine server = TlsEngine::Server(ctx->server(), *leaf);
    TlsEngine client =
        TlsEngine::Client(ctx->client(), "www.example.com", "www.example.com", nullptr);
    Outcome o = Pump(client, server);
    ASSERT_EQ(o.client, TlsEngine::Status::kDone) << client.error();
    ASSERT_EQ(o.server, TlsEngine::Status::kDone) << server.error();
    EXPECT_EQ(SSL_session_reused(client.ssl()), 0);
    // TLS 1.3 tickets arrive after the handshake; reading processes them.
    EXPECT_EQ(Transfer(server, client), "");
    session = SSL_get1_session(client.ssl());
    ASSERT_NE(session, nullptr);
    ASSERT_EQ(SSL_SESSION_is_resumable(session), 1);
  }
  TlsEngine server = TlsEngine::Server(ctx->server(), *leaf);
  TlsEngine client =
      TlsEngine::Client(ctx->client(), "www.example.com", "www.example.com", session);
  SSL_SESSION_free(session);  // the SSL holds its own reference
  Outcome o = Pump(client, server);
  ASSERT_EQ(o.client, TlsEngine::Status::kDone) << client.error();
  ASSERT_EQ(o.server, TlsEngine::Status::kDone) << server.error();
  EXPECT_EQ(SSL_session_reused(client.ssl()), 1);
  EXPECT_EQ(SSL_session_reused(server.ssl()), 1);
  EXPECT_EQ(SSL_version(client.ssl()), GetParam());
  EXPECT_EQ(client.verify_result(), X509_V_OK);
}

INSTANTIATE_TEST_SUITE_P(TlsEngineVersions, TlsEngineResumeTest,
                         ::testing::Values(TLS1_2_VERSION, TLS1_3_VERSION));

TEST_F(TlsEngineTest, MovedEngineKeepsWorking) {
  LeafPtr leaf = Mint(pki().root, "www.example.com");
  ASSERT_TRUE(leaf);
  auto ctx = Contexts({pki().root.cert.get()});
  std::vector<TlsEngine> engines;
  engines.push_back(TlsEngine::Server(ctx->server(), *leaf));
  engines.push_back(
      TlsEngine::Client(ctx->client(), "www.example.com", "www.example.com", nullptr));
  TlsEngine server = std::move(engines[0]);
  TlsEngine client = std::move(engines[1]);
  Outcome o = Pump(client, server);
  ASSERT_EQ(o.client, TlsEngine::Status::kDone) << client.error();
  ASSERT_EQ(o.server, TlsEngine::Status::kDone) << server.error();
  ASSERT_TRUE(client.WritePlaintext("ping"));
  EXPECT_EQ(Transfer(client, server), "ping");
}

// Another connection on the same thread may leave errors in OpenSSL's queue; SSL_get_error
// would take them for this connection's, and a wait for more bytes for a failure.
TEST_F(TlsEngineTest, StaleErrorsOnTheThreadDoNotFailAConnection) {
  auto [ctx, server, client] = ForHost("www.example.com");
  auto stale = [] { ERR_raise(ERR_LIB_SSL, ERR_R_INTERNAL_ERROR); };
  Outcome o = Pump(client, server, stale);
  ASSERT_EQ(o.client, TlsEngine::Status::kDone) << client.error();
  ASSERT_EQ(o.server, TlsEngine::Status::kDone) << server.error();

  stale();
  ASSERT_TRUE(client.WritePlaintext("GET / HTTP/1.1\r\n\r\n"));
  const std::string wire = client.TakeCiphertext();
  server.FeedCiphertext(wire.data(), wire.size() / 2);  // half a record: wait for the rest
  stale();
  EXPECT_EQ(server.ReadPlaintext(), "");
  EXPECT_EQ(server.error(), "");
  server.FeedCiphertext(wire.data() + wire.size() / 2, wire.size() - wire.size() / 2);
  stale();
  EXPECT_EQ(server.ReadPlaintext(), "GET / HTTP/1.1\r\n\r\n");
  EXPECT_EQ(server.error(), "");
  ERR_clear_error();
}

}  // namespace
}  // namespace mintgate::tls
