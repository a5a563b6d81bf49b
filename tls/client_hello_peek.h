// Reads SNI and ALPN out of a TLS ClientHello without consuming it: the gateway decides by the
// rules before any TLS starts, then either splices the buffered bytes to the origin (tunnel)
// or feeds them to its own TLS server (decrypt). Pure parsing; no OpenSSL state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace mintgate::tls {

struct ClientHelloInfo {
  std::string sni;                   // "" when the client sent none
  std::vector<std::string> alpn;     // in the client's order
  std::uint16_t legacy_version = 0;  // ClientHello.legacy_version (0x0303 for TLS 1.2 and 1.3)
};

class ClientHelloPeek {
 public:
  enum class Status {
    kNeedMore,   // feed more bytes (the ClientHello is incomplete)
    kDone,       // info() is set
    kNotTls,     // the first bytes are not a TLS handshake record (e.g. plain HTTP)
    kMalformed,  // a TLS record, but not a well-formed ClientHello (error() says why)
  };

  // A ClientHello larger than this is refused (real ones are < 2 KiB; post-quantum key
  // shares make them ~1.8 KiB).
  static constexpr std::size_t kMaxHelloBytes = 64 * 1024;

  // Examines all bytes received so far (the caller keeps them; nothing is consumed). Handles a
  // ClientHello split over several TLS records and TCP reads.
  Status Examine(const std::uint8_t* data, std::size_t size);

  const ClientHelloInfo& info() const { return info_; }
  const std::string& error() const { return error_; }

 private:
  Status Malformed(std::string why);
  Status ParseHello(const std::vector<std::uint8_t>& hello);

  ClientHelloInfo info_;
  std::string error_;
};

}  // namespace mintgate::tls
