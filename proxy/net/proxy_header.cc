// The PROXY protocol header parser (proxy_header.h). Each call scans `data` from its first
// byte and stops at the first byte no valid header can have there: the v1 line with small
// incremental validators for the address and port texts (which also know how many bytes a
// valid ending still needs, for the 107-byte limit), the v2 header field by field and its TLVs
// as far as they have arrived.
#include "proxy/net/proxy_header.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <array>
#include <cstring>
#include <string>

namespace mintgate::proxy::net {
namespace {

using Status = ProxyHeaderParse::Status;

constexpr std::string_view kV1Start = "PROXY ";
constexpr std::string_view kV2Signature{"\r\n\r\n\0\r\nQUIT\n", 12};
constexpr std::size_t kMaxV1 = 107;  // the longest line the spec allows, CRLF included
constexpr std::size_t kV2Fixed = 16;
constexpr std::size_t kMaxV2Body = kMaxProxyHeader - kV2Fixed;
constexpr std::size_t kMaxUniqueId = 128;

constexpr unsigned char kTlvCrc32c = 0x03;
constexpr unsigned char kTlvUniqueId = 0x05;

ProxyHeaderParse NeedMore() { return {}; }

ProxyHeaderParse Invalid(std::string error) {
  ProxyHeaderParse parse;
  parse.status = Status::kInvalid;
  parse.error = std::move(error);
  return parse;
}

ProxyHeaderParse Done(std::size_t consumed, ProxyHeader header) {
  ProxyHeaderParse parse;
  parse.status = Status::kDone;
  parse.consumed = consumed;
  parse.header = std::move(header);
  return parse;
}

constexpr char kHex[] = "0123456789abcdef";

// Bytes from the network for an error message: printable ASCII kept, the rest as \xNN, cut at
// 64 bytes.
std::string Quote(std::string_view text) {
  std::string out = "\"";
  const std::size_t shown = text.size() < 64 ? text.size() : 64;
  for (std::size_t i = 0; i < shown; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    }
  }
  if (shown < text.size()) out += "...";
  out += '"';
  return out;
}

std::string Hex2(unsigned value) {
  std::string out = "0x";
  out += kHex[(value >> 4) & 0xf];
  out += kHex[value & 0xf];
  return out;
}

// ---- v1 ----

// An IPv4 dotted quad being read, one character at a time, as inet_pton(AF_INET) reads it:
// four decimal numbers 0..255 without leading zeros.
class Ipv4Text {
 public:
  // False when `c` cannot continue the text into a valid address.
  bool Push(char c) {
    if (c >= '0' && c <= '9') {
      if (digits_ > 0 && value_ == 0) return false;  // a leading zero
      value_ = value_ * 10 + (c - '0');
      if (value_ > 255) return false;
      ++digits_;
      return true;
    }
    if (c == '.' && digits_ > 0 && dots_ < 3) {
      ++dots_;
      digits_ = 0;
      value_ = 0;
      return true;
    }
    return false;
  }
  bool Complete() const { return dots_ == 3 && digits_ > 0; }
  // The fewest characters that make it complete ("0" and ".0" each).
  std::size_t MinCompletion() const {
    return (digits_ > 0 ? 0 : 1) + static_cast<std::size_t>(3 - dots_) * 2;
  }

 private:
  int dots_ = 0;
  int digits_ = 0;  // of the number in progress
  int value_ = 0;
};

// An IPv6 text being read as glibc's inet_pton(AF_INET6) reads it: up to eight groups of 1..4
// hex digits separated by colons, at most one "::" (standing for at least one zero group), a
// leading colon only as part of "::", and optionally a dotted quad as the last 32 bits.
class Ipv6Text {
 public:
  bool Push(char c) {
    const bool first = length_++ == 0;
    if (in_ipv4_) return ipv4_.Push(c);
    if (lead_colon_) {  // ":" at the start must be "::"
      if (c != ':') return false;
      lead_colon_ = false;
      double_colon_ = true;
      return true;
    }
    if (c == ':') {
      if (first) {
        lead_colon_ = true;
        return true;
      }
      if (digits_ == 0) {  // right after a colon: "::"
        if (double_colon_) return false;
        double_colon_ = true;
        single_colon_ = false;
        return groups_ <= 7;  // "::" stands for at least one group
      }
      ++groups_;
      digits_ = 0;
      single_colon_ = true;
      return groups_ + 1 <= MaxGroups();  // another group (or "::") must follow
    }
    if (c == '.') {
      // The group in progress was the first number of a dotted quad, which ends the address
      // and takes two groups: exactly the last two without "::", at least one left for it.
      if (digits_ == 0) return false;
      if (double_colon_ ? groups_ + 2 > 7 : groups_ != 6) return false;
      in_ipv4_ = true;
      for (int i = 0; i < digits_; ++i) {
        if (!ipv4_.Push(group_[i])) return false;
      }
      return ipv4_.Push('.');
    }
    const bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    if (!hex || digits_ == 4) return false;
    if (digits_ == 0 && groups_ + 1 > MaxGroups()) return false;
    group_[digits_++] = c;
    single_colon_ = false;
    return true;
  }

  bool Complete() const {
    if (in_ipv4_) return ipv4_.Complete();
    if (length_ == 0 || lead_colon_ || single_colon_) return false;
    const int total = groups_ + (digits_ > 0 ? 1 : 0);
    return double_colon_ ? total <= 7 : total == 8;
  }

  std::size_t MinCompletion() const {
    if (in_ipv4_) return ipv4_.MinCompletion();
    if (length_ == 0) return 2;                  // "::"
    if (lead_colon_ || single_colon_) return 1;  // ":" or a digit
    if (double_colon_) return 0;
    return groups_ + 1 == 8 ? 0 : 2;  // complete, or "::" after the group in progress
  }

 private:
  int MaxGroups() const { return double_colon_ ? 7 : 8; }

  int length_ = 0;
  int groups_ = 0;  // groups ended by a colon
  int digits_ = 0;  // hex digits of the group in progress
  char group_[4] = {};
  bool lead_colon_ = false;
  bool single_colon_ = false;  // the last character is a colon after a group
  bool double_colon_ = false;
  bool in_ipv4_ = false;
  Ipv4Text ipv4_;
};

// A port: decimal 0..65535, no sign, no leading zero.
class PortText {
 public:
  bool Push(char c) {
    if (c < '0' || c > '9') return false;
    if (digits_ > 0 && value_ == 0) return false;
    value_ = value_ * 10 + static_cast<std::uint32_t>(c - '0');
    if (value_ > 65535) return false;
    ++digits_;
    return true;
  }
  bool Complete() const { return digits_ > 0; }
  std::size_t MinCompletion() const { return digits_ > 0 ? 0 : 1; }
  std::uint16_t value() const { return static_cast<std::uint16_t>(value_); }

 private:
  int digits_ = 0;
  std::uint32_t value_ = 0;
};

class AddressText {
 public:
  explicit AddressText(bool v6) : v6_(v6) {}
  bool Push(char c) { return v6_ ? v6_text_.Push(c) : v4_text_.Push(c); }
  bool Complete() const { return v6_ ? v6_text_.Complete() : v4_text_.Complete(); }
  std::size_t MinCompletion() const {
    return v6_ ? v6_text_.MinCompletion() : v4_text_.MinCompletion();
  }
  std::size_t MinLength() const { return v6_ ? 2 : 7; }  // "::", "0.0.0.0"

 private:
  bool v6_;
  Ipv4Text v4_text_;
  Ipv6Text v6_text_;
};

// Canonical text of 4 or 16 address bytes; an IPv4-mapped IPv6 address as its IPv4 text so that
// rules written for IPv4 apply to clients a balancer relays over IPv6.
std::string AddressName(const unsigned char* bytes, bool v6) {
  static constexpr unsigned char kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (v6 && std::memcmp(bytes, kMapped, sizeof kMapped) == 0) {
    bytes += sizeof kMapped;
    v6 = false;
  }
  char text[INET6_ADDRSTRLEN] = {};
  if (inet_ntop(v6 ? AF_INET6 : AF_INET, bytes, text, sizeof text) == nullptr) return {};
  return text;
}

// `text` was validated by AddressText: inet_pton reads it the same way.
bool AddressFromText(std::string_view text, bool v6, std::string& name) {
  unsigned char bytes[16] = {};
  const std::string copy(text);
  if (inet_pton(v6 ? AF_INET6 : AF_INET, copy.c_str(), bytes) != 1) return false;
  name = AddressName(bytes, v6);
  return !name.empty();
}

ProxyHeaderParse ParseV1Unknown(std::string_view data) {
  // "PROXY UNKNOWN" then CRLF, or a space and anything but CR and LF up to the CRLF.
  constexpr std::size_t kAfterWord = 13;
  ProxyHeader header;
  header.version = 1;
  header.local = true;
  if (data.size() == kAfterWord) return NeedMore();
  if (data[kAfterWord] != ' ' && data[kAfterWord] != '\r') {
    return Invalid("v1: UNKNOWN must be followed by a space or CRLF");
  }
  for (std::size_t i = kAfterWord; i < data.size(); ++i) {
    const char c = data[i];
    if (c == '\r') {
      if (i + 1 == data.size()) return NeedMore();  // i + 2 <= kMaxV1: checked below
      if (data[i + 1] != '\n') return Invalid("v1: CR without LF");
      return Done(i + 2, header);
    }
    if (c == '\n') return Invalid("v1: LF without CR");
    // Room for this byte and the CRLF?
    if (i + 1 + 2 > kMaxV1) return Invalid("v1: no CRLF in the first 107 bytes");
  }
  return NeedMore();
}

ProxyHeaderParse ParseV1(std::string_view data) {
  for (std::size_t i = 0; i < data.size() && i < kV1Start.size(); ++i) {
    if (data[i] != kV1Start[i]) return Invalid("not a PROXY protocol header");
  }
  if (data.size() <= kV1Start.size()) return NeedMore();

  // The protocol word.
  static constexpr std::string_view kWords[] = {"TCP4 ", "TCP6 ", "UNKNOWN"};
  const std::string_view rest = data.substr(kV1Start.size());
  std::string_view word;
  for (const std::string_view candidate : kWords) {
    const std::size_t n = rest.size() < candidate.size() ? rest.size() : candidate.size();
    if (rest.substr(0, n) == candidate.substr(0, n)) {
      word = candidate;
      break;
    }
  }
  if (word.empty()) {
    return Invalid("v1: unknown protocol " + Quote(rest.substr(0, rest.find_first_of(" \r\n"))));
  }
  if (rest.size() < word.size()) return NeedMore();
  if (word == "UNKNOWN") return ParseV1Unknown(data);

  // "TCP4 " or "TCP6 ": four fields separated by single spaces, then CRLF.
  const bool v6 = word == "TCP6 ";
  static constexpr const char* kNames[] = {"source address", "destination address", "source port",
                                           "destination port"};
  AddressText source(v6), destination(v6);
  PortText source_port, destination_port;
  const auto push = [&](int field, char c) {
    switch (field) {
      case 0:
        return source.Push(c);
      case 1:
        return destination.Push(c);
      case 2:
        return source_port.Push(c);
      default:
        return destination_port.Push(c);
    }
  };
  const auto complete = [&](int field) {
    switch (field) {
      case 0:
        return source.Complete();
      case 1:
        return destination.Complete();
      case 2:
        return source_port.Complete();
      default:
        return destination_port.Complete();
    }
  };

  const std::size_t first = kV1Start.size() + word.size();
  std::size_t starts[4] = {first, 0, 0, 0};
  int field = 0;  // 0..3: the field being read; 4: CR seen, LF expected
  for (std::size_t i = first; i < data.size(); ++i) {
    const char c = data[i];
    if (field == 4) {
      if (c != '\n') return Invalid("v1: CR without LF");
      if (i + 1 > kMaxV1) return Invalid("v1: longer than 107 bytes");
      ProxyHeader header;
      header.version = 1;
      const std::string_view src = data.substr(starts[0], starts[1] - 1 - starts[0]);
      const std::string_view dst = data.substr(starts[1], starts[2] - 1 - starts[1]);
      if (!AddressFromText(src, v6, header.source_address)) {
        return Invalid("v1: bad source address " + Quote(src));
      }
      if (!AddressFromText(dst, v6, header.destination_address)) {
        return Invalid("v1: bad destination address " + Quote(dst));
      }
      header.source_port = source_port.value();
      header.destination_port = destination_port.value();
      return Done(i + 1, std::move(header));
    }
    const bool ends = field < 3 ? c == ' ' : c == '\r';
    if (ends) {
      if (!complete(field)) {
        return Invalid(std::string("v1: bad ") + kNames[field] + " " +
                       Quote(data.substr(starts[field], i - starts[field])));
      }
      ++field;
      if (field < 4) starts[field] = i + 1;
      continue;
    }
    if (!push(field, c)) {
      if (field == 3 && c == '\n') return Invalid("v1: LF without CR");
      return Invalid(std::string("v1: bad ") + kNames[field] + " " +
                     Quote(data.substr(starts[field], i + 1 - starts[field])));
    }
    if (i + 1 >= kMaxV1) return Invalid("v1: longer than 107 bytes");
  }

  // Out of data: can the line still end within 107 bytes? The fewest bytes that complete the
  // field in progress, then each later field at its shortest, then the CRLF.
  std::size_t needed = 2;
  switch (field) {
    case 0:
      needed += source.MinCompletion() + 1 + destination.MinLength() + 1 + 1 + 1 + 1;
      break;
    case 1:
      needed += destination.MinCompletion() + 1 + 1 + 1 + 1;
      break;
    case 2:
      needed += source_port.MinCompletion() + 1 + 1;
      break;
    case 3:
      needed += destination_port.MinCompletion();
      break;
    default:
      needed = 1;  // the LF
      break;
  }
  if (data.size() + needed > kMaxV1) return Invalid("v1: longer than 107 bytes");
  return NeedMore();
}

// ---- v2 ----

// CRC32c (Castagnoli, reflected polynomial 0x82F63B78), as RFC 4960 appendix B computes it.
constexpr std::array<std::uint32_t, 256> MakeCrc32cTable() {
  std::array<std::uint32_t, 256> table{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t crc = i;
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ ((crc & 1) ? 0x82F63B78u : 0u);
    table[i] = crc;
  }
  return table;
}
constexpr std::array<std::uint32_t, 256> kCrc32cTable = MakeCrc32cTable();

std::uint32_t Crc32c(std::string_view bytes) {
  std::uint32_t crc = 0xFFFFFFFFu;
  for (const char c : bytes) {
    crc = (crc >> 8) ^ kCrc32cTable[(crc ^ static_cast<unsigned char>(c)) & 0xff];
  }
  return crc ^ 0xFFFFFFFFu;
}

unsigned Byte(std::string_view data, std::size_t at) {
  return static_cast<unsigned char>(data[at]);
}

// The address block of a defined family/transport byte, or -1 for an undefined one.
int AddressBlockSize(unsigned family) {
  switch (family) {
    case 0x00:
      return 0;
    case 0x11:
    case 0x12:
      return 12;
    case 0x21:
    case 0x22:
      return 36;
    case 0x31:
    case 0x32:
      return 216;
    default:
      return -1;
  }
}

std::string PrintableId(std::string_view id) {
  bool printable = true;
  for (const char c : id) {
    const auto b = static_cast<unsigned char>(c);
    if (b < 0x21 || b > 0x7e) printable = false;
  }
  if (printable) return std::string(id);
  std::string out;
  out.reserve(id.size() * 2);
  for (const char c : id) {
    const auto b = static_cast<unsigned char>(c);
    out += kHex[b >> 4];
    out += kHex[b & 0xf];
  }
  return out;
}

ProxyHeaderParse ParseV2(std::string_view data) {
  for (std::size_t i = 0; i < data.size() && i < kV2Signature.size(); ++i) {
    if (data[i] != kV2Signature[i]) return Invalid("not a PROXY protocol header");
  }
  if (data.size() <= 12) return NeedMore();
  const unsigned version_command = Byte(data, 12);
  if ((version_command >> 4) != 2) {
    return Invalid("v2: unsupported version " + std::to_string(version_command >> 4));
  }
  const unsigned command = version_command & 0xf;
  if (command > 1) return Invalid("v2: unknown command " + std::to_string(command));
  bool local = command == 0;
  if (data.size() == 13) return NeedMore();

  const unsigned family = Byte(data, 13);
  const int address_size = AddressBlockSize(family);
  if (!local) {
    switch (family) {
      case 0x00:  // AF_UNSPEC: the balancer could not say who the client is
        local = true;
        break;
      case 0x11:
      case 0x21:
        break;
      case 0x12:
      case 0x22:
        return Invalid("v2: a UDP client (family " + Hex2(family) + ") is not a TCP client");
      case 0x31:
      case 0x32:
        return Invalid("v2: a unix socket client (family " + Hex2(family) +
                       ") is not a TCP client");
      default:
        return Invalid("v2: undefined address family/transport " + Hex2(family));
    }
  }
  if (data.size() == 14) return NeedMore();

  if (Byte(data, 14) * 256u > kMaxV2Body) return Invalid("v2: header longer than 1040 bytes");
  if (data.size() == 15) return NeedMore();
  const std::size_t length = Byte(data, 14) * 256u + Byte(data, 15);
  if (length > kMaxV2Body) return Invalid("v2: header longer than 1040 bytes");
  const std::size_t end = kV2Fixed + length;

  // Where the TLVs start, or 0 when the bytes after the fixed part are skipped unread (LOCAL
  // with an undefined family, or without room for the family's addresses: the spec says to
  // ignore them).
  std::size_t tlvs = 0;
  if (!local || family == 0x00) {
    if (length < static_cast<std::size_t>(address_size)) {
      return Invalid("v2: length " + std::to_string(length) + " does not cover the " +
                     std::to_string(address_size) + "-byte address block");
    }
    tlvs = kV2Fixed + static_cast<std::size_t>(address_size);
  } else if (address_size >= 0 && length >= static_cast<std::size_t>(address_size)) {
    tlvs = kV2Fixed + static_cast<std::size_t>(address_size);
  }

  // The TLVs received so far, each refused at its first byte that shows it cannot be valid: a
  // type that may appear once appearing again, a length past what remains of the header (or a
  // CRC32C TLV not of 4 bytes, a unique id over 128 bytes), 1 or 2 bytes left for a TLV.
  // (The checksum itself can only be checked once the header is complete.)
  std::size_t crc_at = 0, id_at = 0, id_size = 0;
  bool has_crc = false, has_id = false;
  if (tlvs != 0) {
    std::size_t at = tlvs;
    while (at < end) {
      if (end - at < 3) return Invalid("v2: truncated TLV at the end of the header");
      if (data.size() <= at) break;
      const unsigned type = Byte(data, at);
      if (type == kTlvCrc32c && has_crc) return Invalid("v2: more than one CRC32C TLV");
      if (type == kTlvUniqueId && has_id) return Invalid("v2: more than one unique id TLV");
      const std::size_t room = end - at - 3;
      if (type == kTlvCrc32c && room < 4) return Invalid("v2: no room for a CRC32C TLV");
      std::size_t limit = room;  // the largest size this TLV may have
      if (type == kTlvCrc32c && limit > 4) limit = 4;
      if (type == kTlvUniqueId && limit > kMaxUniqueId) limit = kMaxUniqueId;
      if (data.size() < at + 3) {
        // Only the length's first byte may be here: is there a size it can still have?
        if (data.size() == at + 2 && Byte(data, at + 1) * 256u > limit) {
          return Invalid("v2: TLV " + Hex2(type) + " of " +
                         std::to_string(Byte(data, at + 1) * 256u) + " bytes or more does not fit");
        }
        break;
      }
      const std::size_t size = Byte(data, at + 1) * 256u + Byte(data, at + 2);
      if (type == kTlvCrc32c) {
        if (size != 4) return Invalid("v2: CRC32C TLV of " + std::to_string(size) + " bytes");
        has_crc = true;
        crc_at = at + 3;
      } else if (type == kTlvUniqueId) {
        if (size > kMaxUniqueId) {
          return Invalid("v2: unique id of " + std::to_string(size) + " bytes (at most 128)");
        }
        has_id = true;
        id_at = at + 3;
        id_size = size;
      }
      if (size > room) {
        return Invalid("v2: TLV " + Hex2(type) + " of " + std::to_string(size) +
                       " bytes runs past the header");
      }
      at += 3 + size;
    }
  }
  if (data.size() < end) return NeedMore();

  if (has_crc) {
    std::string copy(data.substr(0, end));
    const std::uint32_t sent = Byte(data, crc_at) << 24 | Byte(data, crc_at + 1) << 16 |
                               Byte(data, crc_at + 2) << 8 | Byte(data, crc_at + 3);
    std::memset(copy.data() + crc_at, 0, 4);
    if (Crc32c(copy) != sent) return Invalid("v2: CRC32C checksum mismatch");
  }

  ProxyHeader header;
  header.version = 2;
  header.local = local;
  if (!local) {
    const bool v6 = family == 0x21;
    const std::size_t size = v6 ? 16 : 4;
    const auto* bytes = reinterpret_cast<const unsigned char*>(data.data()) + kV2Fixed;
    header.source_address = AddressName(bytes, v6);
    header.destination_address = AddressName(bytes + size, v6);
    const std::size_t ports = kV2Fixed + 2 * size;
    header.source_port = static_cast<std::uint16_t>(Byte(data, ports) << 8 | Byte(data, ports + 1));
    header.destination_port =
        static_cast<std::uint16_t>(Byte(data, ports + 2) << 8 | Byte(data, ports + 3));
  }
  if (has_id) header.unique_id = PrintableId(data.substr(id_at, id_size));
  return Done(end, std::move(header));
}

}  // namespace

ProxyHeaderParse ParseProxyHeader(std::string_view data, ProxyHeaderAccept accept) {
  if (data.empty()) return NeedMore();
  // The first byte tells the versions apart: 'P' of "PROXY", CR of the v2 signature.
  const bool v1 = data[0] == kV1Start[0];
  const bool v2 = data[0] == kV2Signature[0];
  if (!v1 && !v2) return Invalid("not a PROXY protocol header");
  if (v2 && accept == ProxyHeaderAccept::kV1) {
    return Invalid(data.starts_with(kV2Signature) ? "v2 header from a v1-only listener"
                                                  : "not a PROXY protocol v1 header");
  }
  if (v1 && accept == ProxyHeaderAccept::kV2) {
    return Invalid(data.starts_with("PROXY ") ? "v1 header from a v2-only listener"
                                              : "not a PROXY protocol v2 header");
  }
  return v1 ? ParseV1(data) : ParseV2(data);
}

}  // namespace mintgate::proxy::net
