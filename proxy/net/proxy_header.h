// The PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1 and 2) that a load
// balancer in front of the gateway sends first on each connection, naming the client it relays.
// Parsed from the bytes as they arrive (possibly one at a time) and strictly: a connection is
// refused at its first byte that cannot belong to a header the listener accepts, so a client
// that connects directly and speaks HTTP or TLS is refused at once rather than after a timeout.
//
// What the integrator must know:
// - `local` headers (v2 LOCAL, v1 UNKNOWN, v2 PROXY with AF_UNSPEC) name no client: the balancer
//   itself connected (a health check) or could not say who the client is. Use the real peer
//   address of the socket, as the spec says.
// - The spec forbids guessing: a listener configured for the PROXY protocol must refuse a
//   connection without one, and should accept headers only from trusted balancers.
// - Bytes after `consumed` are the client's own stream (a ClientHello, a request): hand them on.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace mintgate::proxy::net {

// What a listener accepts.
enum class ProxyHeaderAccept { kV1, kV2, kAny };

struct ProxyHeader {
  int version = 0;  // 1 or 2
  // No client address: v2 LOCAL (any family), v1 "UNKNOWN", v2 PROXY over AF_UNSPEC. The
  // address and port members are then empty and 0.
  bool local = false;
  // The client, as uv_ip4_name/uv_ip6_name (inet_ntop) print it: "192.0.2.7", "2001:db8::1".
  // An IPv4-mapped IPv6 address ("::ffff:192.0.2.7", which balancers send when the client and
  // the balancer's listener differ in family) is returned as its IPv4 text, "192.0.2.7", so that
  // rules written for IPv4 apply; the destination is treated the same way.
  std::string source_address;
  std::uint16_t source_port = 0;
  std::string destination_address;  // the address the client connected to on the balancer
  std::uint16_t destination_port = 0;
  // v2 PP2_TYPE_UNIQUE_ID (0x05), "" when absent. Printable for a log: kept as is when every
  // byte is 0x21..0x7e, else in lower-case hex.
  std::string unique_id;

  friend bool operator==(const ProxyHeader&, const ProxyHeader&) = default;
};

struct ProxyHeaderParse {
  enum class Status { kNeedMore, kDone, kInvalid };
  Status status = Status::kNeedMore;
  std::size_t consumed = 0;  // kDone: the header's length (bytes after it are the client's)
  ProxyHeader header;        // kDone
  // kInvalid: why, one line of printable ASCII for a log ("not a PROXY protocol header",
  // "v2 header from a v1-only listener", "v1: bad source port \"70000\"", ...).
  std::string error;
};

// Larger v2 headers are refused (a v1 header is at most 107 bytes).
inline constexpr std::size_t kMaxProxyHeader = 16 + 1024;

// `data`: everything received so far on the connection. kNeedMore only while `data` is a strict
// prefix of some valid header the listener accepts; kInvalid as soon as it cannot be one. The
// answer for a longer `data` never contradicts a kDone or kInvalid for a shorter one (one
// exception: a v2 CRC32C checksum is checked once the header is complete). The function keeps
// no state: call it again with the longer buffer when more bytes arrive (at most 1040 bytes are
// ever read, so repeating the work costs little).
//
// v1: "PROXY TCP4|TCP6 <source> <destination> <source port> <destination port>\r\n" with
// single spaces, addresses of the family named (IPv4 dotted quads without leading zeros; IPv6 as
// inet_pton reads it, including the "::ffff:192.0.2.7" form), decimal ports 0..65535 without
// sign or leading zero; or "PROXY UNKNOWN" followed by CRLF or by a space and anything but CR
// and LF up to the CRLF. At most 107 bytes with the CRLF.
// v2: the 12-byte signature, version 2, command LOCAL or PROXY; PROXY only over TCP (IPv4 or
// IPv6) or AF_UNSPEC; a length that covers the addresses and at most 1024; TLVs that fit
// exactly; a PP2_TYPE_CRC32C TLV (4 bytes) that matches; a unique id of at most 128 bytes; at
// most one of each of these two TLVs. With LOCAL the family and addresses are ignored; the TLVs
// after the address block are still checked when the family is a defined one and the length
// covers its addresses, else everything after the 16 fixed bytes is skipped unread.
ProxyHeaderParse ParseProxyHeader(std::string_view data, ProxyHeaderAccept accept);

}  // namespace mintgate::proxy::net
