#include "tls/client_hello_peek.h"

#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include <random>
#include <string>
#include <vector>

#include "tls/openssl_ptr.h"

namespace mintgate::tls {
namespace {

using Bytes = std::vector<std::uint8_t>;

// A real ClientHello from OpenSSL's client, with the given SNI and ALPN.
Bytes RealClientHello(const char* sni, const Bytes& alpn_wire) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  SslPtr ssl(SSL_new(ctx.get()));
  BIO* rbio = BIO_new(BIO_s_mem());
  BIO* wbio = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl.get(), rbio, wbio);
  if (sni != nullptr) SSL_set_tlsext_host_name(ssl.get(), sni);
  if (!alpn_wire.empty()) {
    SSL_set_alpn_protos(ssl.get(), alpn_wire.data(), static_cast<unsigned>(alpn_wire.size()));
  }
  SSL_connect(ssl.get());  // wants to read: the ClientHello is in wbio
  char* data = nullptr;
  long n = BIO_get_mem_data(wbio, &data);
  return Bytes(data, data + n);
}

// The same handshake bytes re-framed into records of at most `chunk` bytes each.
Bytes Refragment(const Bytes& one_record, std::size_t chunk) {
  Bytes payload(one_record.begin() + 5, one_record.end());
  Bytes out;
  for (std::size_t i = 0; i < payload.size(); i += chunk) {
    std::size_t n = std::min(chunk, payload.size() - i);
    out.insert(out.end(),
               {22, 3, 1, static_cast<std::uint8_t>(n >> 8), static_cast<std::uint8_t>(n & 0xff)});
    out.insert(out.end(), payload.begin() + i, payload.begin() + i + n);
  }
  return out;
}

const Bytes kAlpn = {2, 'h', '2', 8, 'h', 't', 't', 'p', '/', '1', '.', '1'};

TEST(ClientHelloPeek, ReadsSniAndAlpnFromARealHello) {
  Bytes hello = RealClientHello("www.example.com", kAlpn);
  ClientHelloPeek peek;
  ASSERT_EQ(peek.Examine(hello.data(), hello.size()), ClientHelloPeek::Status::kDone)
      << peek.error();
  EXPECT_EQ(peek.info().sni, "www.example.com");
  EXPECT_EQ(peek.info().alpn, (std::vector<std::string>{"h2", "http/1.1"}));
  EXPECT_EQ(peek.info().legacy_version, 0x0303);
}

TEST(ClientHelloPeek, NoSniNoAlpn) {
  Bytes hello = RealClientHello(nullptr, {});
  ClientHelloPeek peek;
  ASSERT_EQ(peek.Examine(hello.data(), hello.size()), ClientHelloPeek::Status::kDone);
  EXPECT_EQ(peek.info().sni, "");
  EXPECT_TRUE(peek.info().alpn.empty());
}

TEST(ClientHelloPeek, NeedsMoreUntilEveryByteHasArrived) {
  Bytes hello = RealClientHello("split.example.com", kAlpn);
  for (std::size_t n = 0; n < hello.size(); ++n) {
    ClientHelloPeek peek;
    ASSERT_EQ(peek.Examine(hello.data(), n), ClientHelloPeek::Status::kNeedMore) << n;
  }
}

TEST(ClientHelloPeek, HelloSplitOverManyRecords) {
  Bytes hello = RealClientHello("records.example.com", kAlpn);
  for (std::size_t chunk : {1u, 7u, 100u, 512u}) {
    Bytes fragmented = Refragment(hello, chunk);
    ClientHelloPeek peek;
    ASSERT_EQ(peek.Examine(fragmented.data(), fragmented.size()), ClientHelloPeek::Status::kDone)
        << chunk << ": " << peek.error();
    EXPECT_EQ(peek.info().sni, "records.example.com");
    // And every prefix of it just needs more.
    for (std::size_t n = 0; n < fragmented.size(); n += 13) {
      ClientHelloPeek partial;
      ASSERT_EQ(partial.Examine(fragmented.data(), n), ClientHelloPeek::Status::kNeedMore);
    }
  }
}

TEST(ClientHelloPeek, PlainHttpIsNotTls) {
  const std::string http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  ClientHelloPeek peek;
  EXPECT_EQ(peek.Examine(reinterpret_cast<const std::uint8_t*>(http.data()), http.size()),
            ClientHelloPeek::Status::kNotTls);
  const std::uint8_t one = 'G';
  EXPECT_EQ(ClientHelloPeek().Examine(&one, 1), ClientHelloPeek::Status::kNotTls);
}

TEST(ClientHelloPeek, MalformedHellosAreRefusedNotCrashed) {
  Bytes hello = RealClientHello("www.example.com", kAlpn);
  // Not a ClientHello (ServerHello type).
  Bytes wrong_type = hello;
  wrong_type[5] = 2;
  EXPECT_EQ(ClientHelloPeek().Examine(wrong_type.data(), wrong_type.size()),
            ClientHelloPeek::Status::kMalformed);
  // Zero-length record.
  Bytes empty = {22, 3, 1, 0, 0};
  EXPECT_EQ(ClientHelloPeek().Examine(empty.data(), empty.size()),
            ClientHelloPeek::Status::kMalformed);
  // A declared ClientHello far larger than any real one.
  Bytes huge = {22, 3, 1, 0, 4, 1, 0x10, 0, 0};
  EXPECT_EQ(ClientHelloPeek().Examine(huge.data(), huge.size()),
            ClientHelloPeek::Status::kMalformed);
  // Random corruption of the body: never a crash, never an out-of-bounds read (ASan).
  std::mt19937 rng(7);
  for (int i = 0; i < 3000; ++i) {
    Bytes mutated = hello;
    for (int k = 0; k < 4; ++k) {
      std::size_t at = 9 + rng() % (mutated.size() - 9);
      mutated[at] = static_cast<std::uint8_t>(rng());
    }
    ClientHelloPeek peek;
    ClientHelloPeek::Status st = peek.Examine(mutated.data(), mutated.size());
    if (st == ClientHelloPeek::Status::kMalformed) {
      EXPECT_FALSE(peek.error().empty());
    }
  }
}

}  // namespace
}  // namespace mintgate::tls
