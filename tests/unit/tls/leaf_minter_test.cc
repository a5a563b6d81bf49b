#include "tls/leaf_minter.h"

#include <gtest/gtest.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "tls/cert_authority.h"
#include "tls/cert_fields.h"
#include "tls/leaf_cert.h"
#include "unit/tls/test_pki.h"

namespace mintgate::tls {
namespace {

using testing::CaOptions;
using testing::MakeKey;
using testing::MakeRoot;
using testing::Material;
using testing::Spec;
using testing::TestCa;
using testing::VerifyLeaf;

constexpr std::time_t kDay = 86400;

// Roots shared by the tests of this file (RSA key generation is slow).
struct Pki {
  TestCa legacy = MakeRoot("TREND.IWS.2", MakeKey("ec"));
  TestCa fresh = MakeRoot("Web Security Cloud Root CA", MakeKey("ec"));
  TestCa customer = MakeRoot("Customer Enterprise Root", MakeKey("rsa2048"));
  TestCa rsa_root = MakeRoot("RSA Root", MakeKey("rsa2048"));
  X509Ptr cross = testing::CrossSign(fresh, customer);
};

Pki& pki() {
  static Pki* p = new Pki();
  return *p;
}

class LeafMinterTest : public ::testing::Test {
 protected:
  std::unique_ptr<CertAuthority> Authority(CaMaterial m, bool intermediate = false,
                                           const std::string& name = "p") {
    SignerOptions o;
    o.signing_intermediate = intermediate;
    o.leaf_days = 30;
    return CertAuthority::Create(Spec(name), std::move(m), o, now_);
  }
  LeafPtr MintOk(CertAuthority& ca, const std::string& host,
                 const std::vector<std::string>* extra = nullptr,
                 LeafKeyType type = LeafKeyType::kEcdsaP256) {
    MintRequest req;
    req.host = host;
    req.extra_names = extra;
    req.key_type = type;
    Result<LeafPtr> r = minter_.Mint(*ca.signer(now_), req, now_);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error());
    return r.ok() ? r.value() : nullptr;
  }

  static LeafKeys& keys() {
    static LeafKeys* k = new LeafKeys({LeafKeyType::kEcdsaP256});
    return *k;
  }
  // Taken once the shared roots exist: building them takes seconds, and a root made after
  // now_ would start later than now_ - 1 h, which the minter rightly clamps the leaf to.
  static std::time_t NowAfterRoots() {
    pki();
    return std::time(nullptr);
  }
  std::time_t now_ = NowAfterRoots();
  LeafMinter minter_{keys(), 30};
};

TEST_F(LeafMinterTest, SelfSignedLegacyRootLeafVerifiesOnlyAgainstLegacyRoot) {
  auto ca = Authority(Material(pki().legacy));
  EXPECT_FALSE(ca->cross_signed());
  LeafPtr leaf = MintOk(*ca, "www.example.com");
  ASSERT_TRUE(leaf);
  EXPECT_EQ(VerifyLeaf(*leaf, {pki().legacy.cert.get()}, "www.example.com"), "");
  EXPECT_NE(VerifyLeaf(*leaf, {pki().fresh.cert.get()}, "www.example.com"), "");
  EXPECT_NE(VerifyLeaf(*leaf, {pki().legacy.cert.get()}, "other.example.com"), "");
}

TEST_F(LeafMinterTest, SelfSignedNewRootLeafVerifies) {
  auto ca = Authority(Material(pki().fresh));
  LeafPtr leaf = MintOk(*ca, "news.example.org");
  ASSERT_TRUE(leaf);
  EXPECT_EQ(VerifyLeaf(*leaf, {pki().fresh.cert.get()}, "news.example.org"), "");
  EXPECT_NE(VerifyLeaf(*leaf, {pki().legacy.cert.get()}, "news.example.org"), "");
}

TEST_F(LeafMinterTest, CrossSignedLeafVerifiesWithEitherRootAlone) {
  auto ca =
      Authority(Material(pki().cross.get(), pki().fresh.key.get(), {pki().customer.cert.get()}));
  EXPECT_TRUE(ca->cross_signed());
  LeafPtr leaf = MintOk(*ca, "intranet.example.net");
  ASSERT_TRUE(leaf);
  // Served chain: cross-signed certificate, then the customer root.
  ASSERT_EQ(leaf->chain->certs.size(), 2u);
  EXPECT_EQ(leaf->chain->certs[0].get(), pki().cross.get());
  EXPECT_EQ(leaf->chain->certs[1].get(), pki().customer.cert.get());
  EXPECT_EQ(VerifyLeaf(*leaf, {pki().customer.cert.get()}, "intranet.example.net"), "");
  EXPECT_EQ(VerifyLeaf(*leaf, {pki().fresh.cert.get()}, "intranet.example.net"), "");
  EXPECT_NE(VerifyLeaf(*leaf, {pki().legacy.cert.get()}, "intranet.example.net"), "");
}

TEST_F(LeafMinterTest, RsaRootWithSigningIntermediate) {
  auto ca = Authority(Material(pki().rsa_root), /*intermediate=*/true);
  LeafPtr leaf = MintOk(*ca, "fast.example.com");
  ASSERT_TRUE(leaf);
  ASSERT_EQ(leaf->chain->certs.size(), 2u);
  X509* inter = leaf->chain->certs[0].get();
  EXPECT_EQ(leaf->chain->certs[1].get(), pki().rsa_root.cert.get());
  EXPECT_EQ(X509_get_pathlen(inter), 0);
  EXPECT_EQ(EVP_PKEY_get_base_id(X509_get0_pubkey(inter)), EVP_PKEY_EC);
  EXPECT_EQ(X509_get_signature_nid(leaf->cert.get()), NID_ecdsa_with_SHA256);
  EXPECT_EQ(X509_get_signature_nid(inter), NID_sha256WithRSAEncryption);
  EXPECT_EQ(VerifyLeaf(*leaf, {pki().rsa_root.cert.get()}, "fast.example.com"), "");
  // The intermediate's AKI is the root's SKI and the leaf's AKI is the intermediate's SKI.
  EXPECT_EQ(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(leaf->cert.get()),
                                  X509_get0_subject_key_id(inter)),
            0);
  EXPECT_EQ(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(inter),
                                  X509_get0_subject_key_id(pki().rsa_root.cert.get())),
            0);
}

TEST_F(LeafMinterTest, CrossSignedWithIntermediateVerifiesWithCustomerRoot) {
  auto ca = Authority(
      Material(pki().cross.get(), pki().fresh.key.get(), {pki().customer.cert.get()}), true);
  LeafPtr leaf = MintOk(*ca, "x.example.com");
  ASSERT_TRUE(leaf);
  ASSERT_EQ(leaf->chain->certs.size(), 3u);
  EXPECT_EQ(VerifyLeaf(*leaf, {pki().customer.cert.get()}, "x.example.com"), "");
  EXPECT_EQ(VerifyLeaf(*leaf, {pki().fresh.cert.get()}, "x.example.com"), "");
}

TEST_F(LeafMinterTest, IntermediateRefusedWhenRootPathLenIsZero) {
  CaOptions o;
  o.path_len = 0;
  TestCa root = MakeRoot("Constrained Root", MakeKey("ec"), o);
  try {
    Authority(Material(root), true, "constrained");
    FAIL() << "expected LoadError";
  } catch (const LoadError& e) {
    EXPECT_EQ(e.file(), "constrained.pem");
    EXPECT_NE(std::string(e.what()).find("pathLenConstraint 0"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("signing_intermediate"), std::string::npos);
  }
  // Without the intermediate the same root signs leaves directly.
  EXPECT_NO_THROW(Authority(Material(root), false));
}

TEST_F(LeafMinterTest, CustomerRootPathLenMustAllowCrossSignedAndIntermediate) {
  CaOptions o;
  o.path_len = 0;
  TestCa customer = MakeRoot("Tight Customer Root", MakeKey("ec"), o);
  X509Ptr cross = testing::CrossSign(pki().fresh, customer);
  CaProfileSpec spec = Spec("tight");
  spec.chain_files = {"customer.pem"};
  SignerOptions so;
  try {
    CertAuthority::Create(spec, Material(cross.get(), pki().fresh.key.get(), {customer.cert.get()}),
                          so, now_);
    FAIL() << "expected LoadError";
  } catch (const LoadError& e) {
    EXPECT_EQ(e.file(), "customer.pem");
  }
}

TEST_F(LeafMinterTest, LeafHasEveryFieldBrowsersRequire) {
  auto ca = Authority(Material(pki().fresh));
  LeafPtr leaf = MintOk(*ca, "Shop.Example.COM");
  ASSERT_TRUE(leaf);
  X509* x = leaf->cert.get();
  EXPECT_EQ(X509_get_version(x), X509_VERSION_3);
  EXPECT_EQ(X509_get_signature_nid(x), NID_ecdsa_with_SHA256);
  // Empty subject, so the SAN is critical (RFC 5280 4.2.1.6) and holds exactly the host.
  EXPECT_EQ(X509_NAME_entry_count(X509_get_subject_name(x)), 0);
  int san_crit = -1;
  auto* san =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(x, NID_subject_alt_name, &san_crit, nullptr));
  ASSERT_NE(san, nullptr);
  EXPECT_EQ(san_crit, 1);
  ASSERT_EQ(sk_GENERAL_NAME_num(san), 1);
  GENERAL_NAME* g = sk_GENERAL_NAME_value(san, 0);
  ASSERT_EQ(g->type, GEN_DNS);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(g->d.dNSName)),
                        ASN1_STRING_length(g->d.dNSName)),
            "shop.example.com");
  GENERAL_NAMES_free(san);
  // basicConstraints CA:FALSE, critical.
  int crit = -1;
  auto* bc =
      static_cast<BASIC_CONSTRAINTS*>(X509_get_ext_d2i(x, NID_basic_constraints, &crit, nullptr));
  ASSERT_NE(bc, nullptr);
  EXPECT_EQ(bc->ca, 0);
  EXPECT_EQ(crit, 1);
  BASIC_CONSTRAINTS_free(bc);
  // EKU serverAuth, keyUsage digitalSignature.
  EXPECT_NE(X509_get_extended_key_usage(x) & XKU_SSL_SERVER, 0u);
  EXPECT_NE(X509_get_key_usage(x) & KU_DIGITAL_SIGNATURE, 0u);
  // Serial: positive, 16 bytes.
  const ASN1_INTEGER* serial = X509_get0_serialNumber(x);
  EXPECT_EQ(ASN1_STRING_type(serial), V_ASN1_INTEGER);
  EXPECT_EQ(ASN1_STRING_length(serial), 16);
  // AKI = signer SKI; no SKI of its own.
  EXPECT_EQ(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(x),
                                  X509_get0_subject_key_id(pki().fresh.cert.get())),
            0);
  EXPECT_EQ(X509_get0_subject_key_id(x), nullptr);
  // Validity: one hour back, leaf_days forward.
  EXPECT_EQ(ToTimeT(X509_get0_notBefore(x)), now_ - 3600);
  EXPECT_EQ(ToTimeT(X509_get0_notAfter(x)), now_ + 30 * kDay);
  EXPECT_EQ(leaf->not_after, now_ + 30 * kDay);
  // The leaf key is the shared leaf key, never the CA key.
  EXPECT_EQ(EVP_PKEY_eq(X509_get0_pubkey(x), pki().fresh.key.get()), 0);
  EXPECT_EQ(X509_get0_pubkey(x), leaf->key.get());
  EXPECT_EQ(X509_check_private_key(x, leaf->key.get()), 1);
}

TEST_F(LeafMinterTest, IpLiteralsBecomeIpSans) {
  auto ca = Authority(Material(pki().fresh));
  LeafPtr v4 = MintOk(*ca, "192.0.2.7");
  LeafPtr v6 = MintOk(*ca, "[2001:db8::7]");
  ASSERT_TRUE(v4 && v6);
  EXPECT_EQ(VerifyLeaf(*v4, {pki().fresh.cert.get()}, "192.0.2.7"), "");
  EXPECT_EQ(VerifyLeaf(*v6, {pki().fresh.cert.get()}, "2001:db8::7"), "");
  EXPECT_NE(VerifyLeaf(*v4, {pki().fresh.cert.get()}, "192.0.2.8"), "");
}

TEST_F(LeafMinterTest, ExtraNamesAreMirroredAndValidated) {
  auto ca = Authority(Material(pki().fresh));
  std::vector<std::string> extra = {"example.com", "*.example.com", "WWW.example.com"};
  LeafPtr leaf = MintOk(*ca, "www.example.com", &extra);
  ASSERT_TRUE(leaf);
  auto* san = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(leaf->cert.get(), NID_subject_alt_name, nullptr, nullptr));
  ASSERT_NE(san, nullptr);
  EXPECT_EQ(sk_GENERAL_NAME_num(san), 3);  // the duplicate of the host is dropped
  GENERAL_NAMES_free(san);
  EXPECT_EQ(VerifyLeaf(*leaf, {pki().fresh.cert.get()}, "api.example.com"), "");

  std::vector<std::string> evil = {"ok.example.com", "a.com,DNS:evil.com"};
  MintRequest req;
  req.host = "www.example.com";
  req.extra_names = &evil;
  auto r = minter_.Mint(*ca->signer(now_), req, now_);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("invalid host name"), std::string::npos);
}

TEST_F(LeafMinterTest, RefusesSanInjectionAndEmbeddedNul) {
  auto ca = Authority(Material(pki().fresh));
  for (std::string host : {std::string("a.com,DNS:evil.com"), std::string("a.com\0evil.com", 14),
                           std::string("*.*.com"), std::string("foo*.com")}) {
    MintRequest req;
    req.host = host;
    auto r = minter_.Mint(*ca->signer(now_), req, now_);
    EXPECT_FALSE(r.ok()) << host;
  }
}

TEST_F(LeafMinterTest, SerialsAreUniqueOverManyMints) {
  auto ca = Authority(Material(pki().fresh));
  std::set<std::string> serials;
  const int kMints = 2000;
  for (int i = 0; i < kMints; ++i) {
    LeafPtr leaf = MintOk(*ca, "same.example.com");
    ASSERT_TRUE(leaf);
    const ASN1_INTEGER* s = X509_get0_serialNumber(leaf->cert.get());
    EXPECT_EQ(ASN1_STRING_length(s), 16);
    serials.emplace(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)), ASN1_STRING_length(s));
  }
  EXPECT_EQ(serials.size(), static_cast<std::size_t>(kMints));
}

TEST_F(LeafMinterTest, ValidityIsClampedToTheSignersNotAfter) {
  CaOptions o;
  o.not_after = now_ + 5 * kDay;
  TestCa short_root = MakeRoot("Short Root", MakeKey("ec"), o);
  auto ca = Authority(Material(short_root));
  LeafPtr leaf = MintOk(*ca, "short.example.com");
  ASSERT_TRUE(leaf);
  EXPECT_EQ(leaf->not_after, now_ + 5 * kDay);
  EXPECT_EQ(ToTimeT(X509_get0_notAfter(leaf->cert.get())), now_ + 5 * kDay);
  EXPECT_EQ(VerifyLeaf(*leaf, {short_root.cert.get()}, "short.example.com"), "");

  // Once the CA has expired nothing is signed.
  MintRequest req;
  req.host = "late.example.com";
  auto r = minter_.Mint(*ca->signer(now_), req, now_ + 6 * kDay);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("expired"), std::string::npos);
}

TEST_F(LeafMinterTest, LeafDaysOutsideChromeLimitIsRefused) {
  EXPECT_THROW(LeafMinter(keys(), 0), std::invalid_argument);
  EXPECT_THROW(LeafMinter(keys(), 200), std::invalid_argument);
  EXPECT_NO_THROW(LeafMinter(keys(), 199));
}

TEST_F(LeafMinterTest, RsaLeafKeyIsSharedAndHasKeyEncipherment) {
  auto ca = Authority(Material(pki().fresh));
  LeafPtr a = MintOk(*ca, "a.example.com", nullptr, LeafKeyType::kRsa2048);
  LeafPtr b = MintOk(*ca, "b.example.com", nullptr, LeafKeyType::kRsa2048);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(EVP_PKEY_get_base_id(a->key.get()), EVP_PKEY_RSA);
  EXPECT_EQ(a->key.get(), b->key.get());
  EXPECT_NE(X509_get_key_usage(a->cert.get()) & KU_KEY_ENCIPHERMENT, 0u);
  EXPECT_EQ(VerifyLeaf(*a, {pki().fresh.cert.get()}, "a.example.com"), "");
}

TEST_F(LeafMinterTest, IntermediateIsRenewedBeforeItExpires) {
  auto ca = Authority(Material(pki().rsa_root), true);
  auto first = ca->signer(now_);
  // Intermediates live 2 x leaf_days and renew once fewer than leaf_days remain.
  EXPECT_EQ(first->not_after, now_ + 60 * kDay);
  EXPECT_EQ(ca->signer(now_ + 29 * kDay).get(), first.get());
  auto second = ca->signer(now_ + 31 * kDay);
  EXPECT_NE(second.get(), first.get());
  EXPECT_EQ(second->not_after, now_ + 91 * kDay);
  EXPECT_EQ(ca->signer(now_ + 32 * kDay).get(), second.get());
  // A clock stepped back before the new intermediate's not-before gets the previous one.
  EXPECT_EQ(ca->signer(now_).get(), first.get());
  MintRequest req;
  req.host = "later.example.com";
  auto leaf = minter_.Mint(*second, req, now_ + 31 * kDay);
  ASSERT_TRUE(leaf.ok());
  EXPECT_EQ(VerifyLeaf(**leaf, {pki().rsa_root.cert.get()}, "later.example.com", now_ + 32 * kDay),
            "");
}

// Minting threads share one signer (its prepared signing context is copied, never written)
// and call signer() while it renews; run under TSan by ./test.sh.
TEST_F(LeafMinterTest, ConcurrentMintsFromOneSignerAllVerify) {
  auto ca = Authority(Material(pki().rsa_root), true);
  constexpr int kThreads = 4;
  constexpr int kPerThread = 40;
  std::vector<std::vector<LeafPtr>> results(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        // Half the threads ask at a later instant, forcing a concurrent renewal.
        std::time_t at = now_ + (t % 2 == 0 ? 0 : 31 * kDay);
        MintRequest req;
        std::string host = "t" + std::to_string(t) + "-" + std::to_string(i) + ".example.com";
        req.host = host;
        std::shared_ptr<const Signer> signer = ca->signer(at);
        auto r = minter_.Mint(*signer, req, at);
        if (!r.ok()) continue;
        // Each thread encodes into its own buffer; it must match what it signed.
        std::vector<unsigned char> tbs = LeafMinter::LastTbsForTesting();
        unsigned char* der = nullptr;
        const int len = i2d_re_X509_tbs(r.value()->cert.get(), &der);
        const bool same = len > 0 && tbs == std::vector<unsigned char>(der, der + len);
        OPENSSL_free(der);
        if (same && X509_verify(r.value()->cert.get(), signer->key.get()) == 1) {
          results[t].push_back(r.value());
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  std::set<std::string> serials;
  for (int t = 0; t < kThreads; ++t) {
    ASSERT_EQ(results[t].size(), static_cast<std::size_t>(kPerThread));
    for (const LeafPtr& leaf : results[t]) {
      std::time_t at = now_ + (t % 2 == 0 ? 0 : 31 * kDay) + 60;
      GENERAL_NAMES* names = static_cast<GENERAL_NAMES*>(
          X509_get_ext_d2i(leaf->cert.get(), NID_subject_alt_name, nullptr, nullptr));
      ASSERT_NE(names, nullptr);
      ASN1_IA5STRING* dns = sk_GENERAL_NAME_value(names, 0)->d.dNSName;
      std::string host(reinterpret_cast<const char*>(ASN1_STRING_get0_data(dns)),
                       ASN1_STRING_length(dns));
      GENERAL_NAMES_free(names);
      EXPECT_EQ(VerifyLeaf(*leaf, {pki().rsa_root.cert.get()}, host, at), "") << host;
      const ASN1_INTEGER* s = X509_get0_serialNumber(leaf->cert.get());
      serials.emplace(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                      ASN1_STRING_length(s));
    }
  }
  EXPECT_EQ(serials.size(), static_cast<std::size_t>(kThreads * kPerThread));
}

// Mint() signs a TBSCertificate it encodes itself from cached pieces (tls/leaf_minter.cc).
// It must be byte for byte what OpenSSL encodes from the finished certificate, or every
// verifier would reject the signature.
std::string TbsMismatch(const Leaf& leaf, EVP_PKEY* signer_key, const std::vector<X509*>& anchors,
                        const std::string& host, std::time_t at) {
  X509* x = leaf.cert.get();
  std::vector<unsigned char> mine = LeafMinter::LastTbsForTesting();
  if (mine.empty()) return "leaf was not signed over a hand-encoded TBSCertificate";
  unsigned char* der = nullptr;
  const int len = i2d_re_X509_tbs(x, &der);
  if (len <= 0) return "i2d_re_X509_tbs failed";
  std::vector<unsigned char> openssl(der, der + len);
  OPENSSL_free(der);
  if (mine != openssl) return "TBSCertificate differs from i2d_re_X509_tbs";
  // The SAN value (encoded by hand too) is the canonical DER of the names it holds.
  const int san_at = X509_get_ext_by_NID(x, NID_subject_alt_name, -1);
  if (san_at < 0) return "no SAN";
  const ASN1_OCTET_STRING* san_value = X509_EXTENSION_get_data(X509_get_ext(x, san_at));
  GeneralNamesPtr names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(x, NID_subject_alt_name, nullptr, nullptr)));
  unsigned char* san_der = nullptr;
  const int san_len = names ? i2d_GENERAL_NAMES(names.get(), &san_der) : -1;
  const bool san_same = san_len == ASN1_STRING_length(san_value) &&
                        std::equal(san_der, san_der + san_len, ASN1_STRING_get0_data(san_value));
  OPENSSL_free(san_der);
  if (!san_same) return "SAN value is not the DER of its names";
  if (X509_verify(x, signer_key) != 1) return "X509_verify failed";
  // The whole certificate survives a DER round trip and verifies as parsed.
  const int full_len = i2d_X509(x, nullptr);
  std::vector<unsigned char> full(static_cast<std::size_t>(full_len));
  unsigned char* p = full.data();
  if (full_len <= 0 || i2d_X509(x, &p) != full_len) return "i2d_X509 failed";
  const unsigned char* in = full.data();
  X509Ptr parsed(d2i_X509(nullptr, &in, full_len));
  if (!parsed || in != full.data() + full.size()) return "d2i_X509 failed";
  if (X509_verify(parsed.get(), signer_key) != 1) return "parsed X509_verify failed";
  if (X509_cmp(parsed.get(), x) != 0) return "parsed certificate differs";
  Leaf copy;
  copy.cert = std::move(parsed);
  copy.key = UpRef(leaf.key.get());
  copy.chain = leaf.chain;
  if (std::string e = VerifyLeaf(copy, anchors, host, at); !e.empty()) return "parsed: " + e;
  // The cache keeps the compact form; the X509 rebuilt from it must be the same certificate,
  // byte for byte, or its signature would not verify.
  if (leaf.parts.bytes == nullptr || leaf.parts.signer == nullptr) return "no parts";
  Leaf compact;
  compact.key = UpRef(leaf.key.get());
  compact.chain = leaf.chain;
  compact.not_before = leaf.not_before;
  compact.not_after = leaf.not_after;
  compact.parts = leaf.parts;
  compact.cert = LeafMinter::Rebuild(compact);
  if (!compact.cert) return "Rebuild failed";
  std::vector<unsigned char> rebuilt(
      static_cast<std::size_t>(i2d_X509(compact.cert.get(), nullptr)));
  p = rebuilt.data();
  if (i2d_X509(compact.cert.get(), &p) != full_len || rebuilt != full) {
    return "rebuilt certificate differs";
  }
  if (X509_verify(compact.cert.get(), signer_key) != 1) return "rebuilt X509_verify failed";
  if (std::string e = VerifyLeaf(compact, anchors, host, at); !e.empty()) return "rebuilt: " + e;
  return VerifyLeaf(leaf, anchors, host, at);
}

// The cache stores CompactLeaf's result: no X509, the parts shared with the minted leaf.
// LeafCert gives a handshake the minted X509 itself, or for a compact leaf one rebuilt once
// per thread and then reused.
TEST_F(LeafMinterTest, CompactLeafIsServedThroughARebuiltCertificate) {
  auto ca = Authority(Material(pki().fresh));
  LeafPtr leaf = MintOk(*ca, "compact.example.com");
  ASSERT_TRUE(leaf);
  ASSERT_TRUE(leaf->parts.bytes);
  LeafPtr compact = CompactLeaf(leaf);
  ASSERT_NE(compact, leaf);
  EXPECT_EQ(compact->cert, nullptr);
  EXPECT_EQ(compact->parts.bytes, leaf->parts.bytes);
  EXPECT_EQ(compact->key.get(), leaf->key.get());
  EXPECT_EQ(compact->chain, leaf->chain);
  EXPECT_EQ(compact->not_after, leaf->not_after);

  EXPECT_EQ(LeafCert(*leaf).get(), leaf->cert.get());
  X509Ptr first = LeafCert(*compact);
  ASSERT_TRUE(first);
  EXPECT_NE(first.get(), leaf->cert.get());
  EXPECT_EQ(X509_cmp(first.get(), leaf->cert.get()), 0);
  EXPECT_EQ(LeafCert(*compact).get(), first.get()) << "rebuilt again instead of reused";
  EXPECT_EQ(VerifyLeaf(Leaf{UpRef(first.get()),
                            UpRef(compact->key.get()),
                            compact->chain,
                            compact->not_before,
                            compact->not_after,
                            {}},
                       {pki().fresh.cert.get()}, "compact.example.com", now_),
            "");

  // Another leaf in the same thread gets its own certificate, never a neighbour's.
  std::vector<LeafPtr> others;
  for (int i = 0; i < 600; ++i) {
    others.push_back(CompactLeaf(MintOk(*ca, "h" + std::to_string(i) + ".example.com")));
  }
  for (int round = 0; round < 2; ++round) {
    for (int i = 0; i < 600; ++i) {
      X509Ptr x = LeafCert(*others[i]);
      ASSERT_TRUE(x);
      GeneralNamesPtr names(static_cast<GENERAL_NAMES*>(
          X509_get_ext_d2i(x.get(), NID_subject_alt_name, nullptr, nullptr)));
      ASSERT_TRUE(names);
      const ASN1_IA5STRING* dns = sk_GENERAL_NAME_value(names.get(), 0)->d.dNSName;
      EXPECT_EQ(std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(dns)),
                            static_cast<std::size_t>(ASN1_STRING_length(dns))),
                "h" + std::to_string(i) + ".example.com");
    }
  }

  // A leaf without parts (signed through X509_sign_ctx, or made by hand) keeps its X509.
  auto bare = std::make_shared<Leaf>();
  bare->cert = UpRef(leaf->cert.get());
  LeafPtr bare_ptr = bare;
  EXPECT_EQ(CompactLeaf(bare_ptr), bare_ptr);
  EXPECT_EQ(LeafCert(*bare_ptr).get(), leaf->cert.get());
}

TEST_F(LeafMinterTest, HandEncodedTbsIsWhatOpenSslEncodes) {
  struct Case {
    const char* what;
    std::unique_ptr<CertAuthority> ca;
    X509* anchor;
  };
  std::vector<Case> cases;
  cases.push_back({"ec direct", Authority(Material(pki().fresh)), pki().fresh.cert.get()});
  cases.push_back({"ec legacy", Authority(Material(pki().legacy)), pki().legacy.cert.get()});
  cases.push_back({"rsa direct", Authority(Material(pki().rsa_root)), pki().rsa_root.cert.get()});
  cases.push_back(
      {"rsa intermediate", Authority(Material(pki().rsa_root), true), pki().rsa_root.cert.get()});
  cases.push_back(
      {"cross intermediate",
       Authority(Material(pki().cross.get(), pki().fresh.key.get(), {pki().customer.cert.get()}),
                 true),
       pki().customer.cert.get()});
  TestCa no_ski = [] {
    CaOptions o;
    o.with_ski = false;
    return MakeRoot("Root Without SKI", MakeKey("p384"), o);
  }();
  cases.push_back({"p384 without ski", Authority(Material(no_ski)), no_ski.cert.get()});

  // Names that move the SAN, extension and TBS lengths across the 127/255/65535-byte DER
  // length forms.
  std::vector<std::string> few = {"example.com", "*.example.com", "192.0.2.1", "[2001:db8::1]"};
  std::vector<std::string> some;
  for (int i = 0; i < 12; ++i) some.push_back("n" + std::to_string(i) + ".example.org");
  std::vector<std::string> many;
  for (int i = 0; i < 1200; ++i) {
    many.push_back("host-number-" + std::to_string(i) + ".some-long-domain-name.example.net");
  }
  struct Req {
    std::string host;
    const std::vector<std::string>* extra;
  };
  const std::vector<Req> reqs = {{"a.io", nullptr},
                                 {"www.example.com", nullptr},
                                 {"192.0.2.7", nullptr},
                                 {"[2001:db8::7]", nullptr},
                                 {std::string(60, 'x') + ".example.com", nullptr},
                                 {"www.example.com", &few},
                                 {"www.example.org", &some},
                                 {"www.example.net", &many}};
  for (const Case& c : cases) {
    std::shared_ptr<const Signer> signer = c.ca->signer(now_);
    ASSERT_TRUE(signer->signature_algorithm) << c.what;
    for (LeafKeyType type : {LeafKeyType::kEcdsaP256, LeafKeyType::kRsa2048}) {
      for (const Req& r : reqs) {
        LeafPtr leaf = MintOk(*c.ca, r.host, r.extra, type);
        ASSERT_TRUE(leaf) << c.what << " " << r.host;
        std::string host = r.host.front() == '[' ? r.host.substr(1, r.host.size() - 2) : r.host;
        EXPECT_EQ(TbsMismatch(*leaf, signer->key.get(), {c.anchor}, host, now_), "")
            << c.what << " " << ToString(type) << " " << r.host;
      }
    }
  }
}

// Times from 2050 on are GeneralizedTime, before it UTCTime, exactly as ASN1_TIME_set writes
// them; the hand-encoded TBSCertificate must follow.
TEST_F(LeafMinterTest, HandEncodedTbsAcrossThe2050TimeFormatSwitch) {
  const std::time_t y2050 = 2524608000;  // 2050-01-01T00:00:00Z
  CaOptions o;
  o.not_after = y2050 + 400 * kDay;
  TestCa root = MakeRoot("Long Root", MakeKey("ec"), o);
  for (std::time_t at : {y2050 - 10 * kDay, y2050 - 1800, y2050 + 10 * kDay}) {
    now_ = at;
    auto ca = Authority(Material(root));
    LeafPtr leaf = MintOk(*ca, "future.example.com");
    ASSERT_TRUE(leaf);
    X509* x = leaf->cert.get();
    EXPECT_EQ(ASN1_STRING_type(X509_get0_notBefore(x)),
              at - 3600 < y2050 ? V_ASN1_UTCTIME : V_ASN1_GENERALIZEDTIME);
    EXPECT_EQ(ASN1_STRING_type(X509_get0_notAfter(x)), V_ASN1_GENERALIZEDTIME);
    EXPECT_EQ(ToTimeT(X509_get0_notBefore(x)), at - 3600);
    EXPECT_EQ(TbsMismatch(*leaf, root.key.get(), {root.cert.get()}, "future.example.com", at), "");
  }
}

TEST_F(LeafMinterTest, ReloadedProfilesGetNewIds) {
  auto a = Authority(Material(pki().fresh));
  auto b = Authority(Material(pki().fresh));
  EXPECT_NE(a->id(), b->id());
}

// An independent implementation (the openssl command) agrees with our verifier.
TEST_F(LeafMinterTest, OpensslCommandVerifiesExportedCrossSignedChain) {
  auto ca = Authority(
      Material(pki().cross.get(), pki().fresh.key.get(), {pki().customer.cert.get()}), true);
  LeafPtr leaf = MintOk(*ca, "cli.example.com");
  ASSERT_TRUE(leaf);
  testing::TempDir tmp;
  const std::string& dir = tmp.path();
  testing::WritePem(dir + "/leaf.pem", {leaf->cert.get()});
  std::vector<X509*> chain;
  for (const auto& c : leaf->chain->certs) chain.push_back(c.get());
  testing::WritePem(dir + "/chain.pem", chain);
  testing::WritePem(dir + "/customer.pem", {pki().customer.cert.get()});
  testing::WritePem(dir + "/new.pem", {pki().fresh.cert.get()});
  testing::WritePem(dir + "/legacy.pem", {pki().legacy.cert.get()});

  auto run = [](const std::string& cmd) {
    std::string out;
    FILE* p = popen((cmd + " 2>&1").c_str(), "r");
    char buf[512];
    while (p != nullptr && fgets(buf, sizeof buf, p) != nullptr) out += buf;
    int rc = p != nullptr ? pclose(p) : -1;
    return std::make_pair(rc, out);
  };
  for (const char* anchor : {"customer.pem", "new.pem"}) {
    auto [rc, out] =
        run("openssl verify -purpose sslserver -verify_hostname cli.example.com -CAfile " + dir +
            "/" + anchor + " -untrusted " + dir + "/chain.pem " + dir + "/leaf.pem");
    EXPECT_EQ(rc, 0) << anchor << ": " << out;
    EXPECT_NE(out.find("OK"), std::string::npos) << out;
  }
  auto [bad_rc, bad_out] = run("openssl verify -CAfile " + dir + "/legacy.pem -untrusted " + dir +
                               "/chain.pem " + dir + "/leaf.pem");
  EXPECT_NE(bad_rc, 0) << bad_out;
  auto [rc, text] = run("openssl x509 -noout -text -in " + dir + "/leaf.pem");
  EXPECT_EQ(rc, 0);
  EXPECT_NE(text.find("DNS:cli.example.com"), std::string::npos) << text;
  EXPECT_NE(text.find("TLS Web Server Authentication"), std::string::npos);
  EXPECT_NE(text.find("CA:FALSE"), std::string::npos);
  EXPECT_NE(text.find("ecdsa-with-SHA256"), std::string::npos);
}

}  // namespace
}  // namespace mintgate::tls
