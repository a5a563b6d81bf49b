// Fuzzes the PROXY protocol header parser (proxy/net/proxy_header.h) that reads the first bytes
// of a connection from a load balancer, possibly a byte at a time. Beyond "no crash":
// - a kDone header is at most `size` bytes and at most 1040, ends where the version's framing
//   says it does, names canonical addresses (or none when local), and parses the same from
//   exactly its `consumed` bytes;
// - the answer for a prefix (bytes fed in two reads) is kNeedMore or the answer for the whole;
// - kAny answers as the listener of the version the first byte names, and no input is accepted
//   by both a v1-only and a v2-only listener;
// - an error is one printable line;
// - the input as a v1 address is accepted exactly when inet_pton accepts it, and a line cut
//   after it asks for more exactly when inet_pton accepts it with some ending; the input as a
//   v2 body (after a version/command and a family byte) is checked the same way, also with a
//   correct CRC32C TLV appended, which changes nothing when it is read and verified.
#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "proxy/net/proxy_header.h"

using namespace mintgate::proxy::net;

namespace {

using Status = ProxyHeaderParse::Status;

void Check(bool ok) {
  if (!ok) std::abort();
}

bool SameAnswer(const ProxyHeaderParse& a, const ProxyHeaderParse& b) {
  return a.status == b.status && a.consumed == b.consumed && a.header == b.header;
}

// Printed by inet_ntop as it is, and not an IPv4-mapped IPv6 address (those come back as IPv4).
bool CanonicalAddress(const std::string& text) {
  unsigned char bytes[16] = {};
  char back[INET6_ADDRSTRLEN] = {};
  if (inet_pton(AF_INET, text.c_str(), bytes) == 1) {
    return inet_ntop(AF_INET, bytes, back, sizeof back) != nullptr && text == back;
  }
  if (inet_pton(AF_INET6, text.c_str(), bytes) != 1) return false;
  static constexpr unsigned char kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(bytes, kMapped, sizeof kMapped) == 0) return false;
  return inet_ntop(AF_INET6, bytes, back, sizeof back) != nullptr && text == back;
}

std::size_t Hash(std::string_view data) {
  std::size_t hash = 14695981039346656037ull;
  for (const char c : data) hash = (hash ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  return hash;
}

void CheckOne(std::string_view data, ProxyHeaderAccept accept) {
  const ProxyHeaderParse whole = ParseProxyHeader(data, accept);
  switch (whole.status) {
    case Status::kDone: {
      const ProxyHeader& header = whole.header;
      const std::size_t consumed = whole.consumed;
      Check(consumed > 0 && consumed <= data.size() && consumed <= kMaxProxyHeader);
      Check(whole.error.empty());
      if (header.version == 1) {
        Check(accept != ProxyHeaderAccept::kV2);
        Check(consumed <= 107 && data.starts_with("PROXY ") &&
              data.substr(consumed - 2, 2) == "\r\n" &&
              data.substr(0, consumed - 2).find_first_of("\r\n") == std::string_view::npos);
        Check(header.unique_id.empty());
      } else {
        Check(header.version == 2 && accept != ProxyHeaderAccept::kV1);
        Check(consumed >= 16);
        const auto byte = [&](std::size_t at) { return static_cast<unsigned char>(data[at]); };
        const std::size_t length = std::size_t{byte(14)} << 8 | byte(15);
        Check(consumed == 16 + length);
      }
      if (header.local) {
        Check(header.source_address.empty() && header.destination_address.empty());
        Check(header.source_port == 0 && header.destination_port == 0);
      } else {
        Check(CanonicalAddress(header.source_address));
        Check(CanonicalAddress(header.destination_address));
      }
      Check(header.unique_id.size() <= 256);
      for (const char c : header.unique_id) Check(c >= 0x21 && c <= 0x7e);
      // Exactly the header's bytes give the same answer.
      Check(SameAnswer(ParseProxyHeader(data.substr(0, consumed), accept), whole));
      break;
    }
    case Status::kNeedMore:
      Check(whole.consumed == 0 && whole.error.empty() && whole.header == ProxyHeader{});
      Check(data.size() < kMaxProxyHeader);
      if (!data.empty() && data[0] == 'P') Check(data.size() < 107);
      break;
    case Status::kInvalid:
      Check(whole.consumed == 0 && whole.header == ProxyHeader{} && !whole.error.empty());
      for (const char c : whole.error) Check(c >= 0x20 && c < 0x7f);
      break;
  }

  // The bytes fed in two reads: the first read's answer is kNeedMore or already the final one.
  // Every split of a short input; some of a long one (the parser reads at most 1040 bytes).
  const auto split = [&](std::size_t n) {
    const ProxyHeaderParse part = ParseProxyHeader(data.substr(0, n), accept);
    Check(part.status == Status::kNeedMore || SameAnswer(part, whole));
    if (whole.status == Status::kDone && n < whole.consumed)
      Check(part.status == Status::kNeedMore);
  };
  if (data.size() <= 160) {
    for (std::size_t n = 0; n < data.size(); ++n) split(n);
  } else {
    std::size_t hash = Hash(data);
    for (int i = 0; i < 12; ++i, hash = hash * 6364136223846793005ull + 1442695040888963407ull) {
      split((hash >> 17) % data.size());
    }
    for (const std::size_t n : {std::size_t{1}, std::size_t{12}, std::size_t{13}, std::size_t{15},
                                std::size_t{16}, whole.consumed - 1}) {
      if (n < data.size()) split(n);
    }
  }
}

void CheckAllListeners(std::string_view data) {
  CheckOne(data, ProxyHeaderAccept::kV1);
  CheckOne(data, ProxyHeaderAccept::kV2);
  CheckOne(data, ProxyHeaderAccept::kAny);
  const ProxyHeaderParse v1 = ParseProxyHeader(data, ProxyHeaderAccept::kV1);
  const ProxyHeaderParse v2 = ParseProxyHeader(data, ProxyHeaderAccept::kV2);
  const ProxyHeaderParse any = ParseProxyHeader(data, ProxyHeaderAccept::kAny);
  if (data.empty()) return;
  Check(v1.status == Status::kInvalid || v2.status == Status::kInvalid);
  if (data[0] == 'P') Check(SameAnswer(any, v1));
  if (data[0] == '\r') Check(SameAnswer(any, v2));
  if (data[0] != 'P' && data[0] != '\r') Check(any.status == Status::kInvalid);
}

// RFC 4960 appendix B, bit by bit.
std::uint32_t Crc32c(std::string_view bytes) {
  std::uint32_t crc = 0xFFFFFFFFu;
  for (const char c : bytes) {
    crc ^= static_cast<unsigned char>(c);
    for (int bit = 0; bit < 8; ++bit) crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
  }
  return ~crc;
}

std::string V2Header(char version_command, char family, std::string_view body) {
  std::string header("\r\n\r\n\0\r\nQUIT\n", 12);
  header += version_command;
  header += family;
  header += static_cast<char>(body.size() >> 8);
  header += static_cast<char>(body.size() & 0xff);
  header += body;
  return header;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  CheckAllListeners(text);

  // The input as a v1 address: accepted exactly when inet_pton reads it.
  if (!text.empty() && size <= 60 &&
      text.find_first_of(std::string_view(" \r\n\0", 4)) == std::string_view::npos) {
    const std::string address(text);
    unsigned char bytes[16];
    const std::string tcp4 = "PROXY TCP4 " + address + " 0.0.0.0 1 2\r\n";
    const std::string tcp6 = "PROXY TCP6 ::1 " + address + " 1 2\r\n";
    const bool v4 = inet_pton(AF_INET, address.c_str(), bytes) == 1;
    const bool v6 = inet_pton(AF_INET6, address.c_str(), bytes) == 1;
    if (tcp4.size() <= 107) {
      Check((ParseProxyHeader(tcp4, ProxyHeaderAccept::kV1).status == Status::kDone) == v4);
    }
    if (tcp6.size() <= 107) {
      Check((ParseProxyHeader(tcp6, ProxyHeaderAccept::kV1).status == Status::kDone) == v6);
    }
    CheckOne(tcp4, ProxyHeaderAccept::kAny);
    CheckOne(tcp6, ProxyHeaderAccept::kAny);

    // Strictness: the line cut after the input asks for more exactly when inet_pton accepts the
    // input with one of these endings (enough to complete any prefix of an address: a group, a
    // colon or "::", the numbers a dotted quad lacks).
    static constexpr std::string_view kEndings[] = {"",     "0",      ":",   "::",    ".0",
                                                    ".0.0", ".0.0.0", "0.0", "0.0.0", "0.0.0.0"};
    for (const int family : {AF_INET, AF_INET6}) {
      bool completes = false;
      for (const std::string_view ending : kEndings) {
        completes =
            completes || inet_pton(family, (address + std::string(ending)).c_str(), bytes) == 1;
      }
      const std::string cut = (family == AF_INET ? "PROXY TCP4 " : "PROXY TCP6 ") + address;
      const Status status = ParseProxyHeader(cut, ProxyHeaderAccept::kV1).status;
      Check(status != Status::kDone && (status == Status::kNeedMore) == completes);
    }
  }

  // The input as a v2 header's version/command byte, family byte and body; then with a correct
  // CRC32C TLV appended, which can only be accepted if the header without it is.
  if (size >= 2 && size - 2 + 7 <= 1024) {
    const std::string_view body = text.substr(2);
    const std::string plain = V2Header(text[0], text[1], body);
    CheckOne(plain, ProxyHeaderAccept::kV2);
    std::string with_crc = V2Header(
        text[0], text[1], std::string(body) + '\x03' + '\0' + '\x04' + std::string(4, '\0'));
    const std::uint32_t crc = Crc32c(with_crc);
    for (int i = 0; i < 4; ++i) {
      with_crc[with_crc.size() - 4 + static_cast<std::size_t>(i)] =
          static_cast<char>((crc >> (24 - 8 * i)) & 0xff);
    }
    CheckOne(with_crc, ProxyHeaderAccept::kV2);
    // When a changed checksum is refused, the TLV was read as a CRC32C TLV (not skipped with a
    // LOCAL header's body, nor inside a longer TLV): the TLVs before it end where it starts, so
    // the header without it is the same header.
    const ProxyHeaderParse checked = ParseProxyHeader(with_crc, ProxyHeaderAccept::kV2);
    std::string changed = with_crc;
    changed.back() = static_cast<char>(changed.back() ^ 0x01);
    const ProxyHeaderParse refused = ParseProxyHeader(changed, ProxyHeaderAccept::kV2);
    if (checked.status == Status::kDone && refused.status == Status::kInvalid) {
      Check(refused.error == "v2: CRC32C checksum mismatch");
      const ProxyHeaderParse unchecked = ParseProxyHeader(plain, ProxyHeaderAccept::kV2);
      Check(unchecked.status == Status::kDone && unchecked.header == checked.header);
    }
  }
  return 0;
}
