// proxy/net/proxy_header.h: the PROXY protocol header (v1 text, v2 binary) fed as it arrives.
// Every rule with hand-built headers, accepted and refused; a refusal is checked to come at the
// first byte that cannot belong to a valid header (every shorter prefix asks for more).
#include "proxy/net/proxy_header.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mintgate::proxy::net {
namespace {

using Status = ProxyHeaderParse::Status;
constexpr auto kAny = ProxyHeaderAccept::kAny;
constexpr auto kV1 = ProxyHeaderAccept::kV1;
constexpr auto kV2 = ProxyHeaderAccept::kV2;

const std::string kSignature("\r\n\r\n\0\r\nQUIT\n", 12);

std::string Be16(std::size_t value) {
  return {static_cast<char>((value >> 8) & 0xff), static_cast<char>(value & 0xff)};
}

std::string Tlv(unsigned char type, std::string_view value) {
  return std::string(1, static_cast<char>(type)) + Be16(value.size()) + std::string(value);
}

std::string Ip(int family, const char* text) {
  unsigned char bytes[16] = {};
  EXPECT_EQ(inet_pton(family, text, bytes), 1) << text;
  return std::string(reinterpret_cast<const char*>(bytes), family == AF_INET ? 4 : 16);
}

std::string Ipv4Block(const char* source, const char* destination, std::uint16_t source_port,
                      std::uint16_t destination_port) {
  return Ip(AF_INET, source) + Ip(AF_INET, destination) + Be16(source_port) +
         Be16(destination_port);
}

std::string Ipv6Block(const char* source, const char* destination, std::uint16_t source_port,
                      std::uint16_t destination_port) {
  return Ip(AF_INET6, source) + Ip(AF_INET6, destination) + Be16(source_port) +
         Be16(destination_port);
}

// A v2 header: the signature, the version/command and family bytes, the length (that of `body`
// unless given) and the body (the address block, then TLVs).
struct V2 {
  // 0x21: version 2, PROXY; 0x20: LOCAL. 0x11: TCP over IPv4, 0x21: over IPv6, 0x00: AF_UNSPEC.
  V2(unsigned char version_command_in, unsigned char family_in, std::string body_in,
     std::optional<std::size_t> length_in = std::nullopt)
      : version_command(version_command_in),
        family(family_in),
        body(std::move(body_in)),
        length(length_in) {}

  unsigned char version_command;
  unsigned char family;
  std::string body;
  std::optional<std::size_t> length;

  std::string Build() const {
    return kSignature + static_cast<char>(version_command) + static_cast<char>(family) +
           Be16(length.value_or(body.size())) + body;
  }
};

// CRC32c bit by bit (the parser uses a table): RFC 4960 appendix B.
std::uint32_t Crc32c(std::string_view bytes) {
  std::uint32_t crc = 0xFFFFFFFFu;
  for (const char c : bytes) {
    crc ^= static_cast<unsigned char>(c);
    for (int bit = 0; bit < 8; ++bit) crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
  }
  return ~crc;
}

// `v2` with a PP2_TYPE_CRC32C TLV appended and filled in.
std::string WithCrc32c(V2 v2) {
  v2.body += Tlv(0x03, std::string(4, '\0'));
  std::string header = v2.Build();
  const std::uint32_t crc = Crc32c(header);
  for (int i = 0; i < 4; ++i) {
    header[header.size() - 4 + static_cast<std::size_t>(i)] =
        static_cast<char>((crc >> (24 - 8 * i)) & 0xff);
  }
  return header;
}

ProxyHeaderParse Parse(std::string_view data, ProxyHeaderAccept accept = kAny) {
  return ParseProxyHeader(data, accept);
}

// Fed one byte at a time (then with the client's first bytes behind it): every strict prefix
// asks for more, the whole header is done with `consumed` its length, and what follows it is
// left alone. Returns the header.
ProxyHeader ExpectByteByByte(const std::string& header, ProxyHeaderAccept accept = kAny) {
  for (std::size_t n = 0; n < header.size(); ++n) {
    const ProxyHeaderParse prefix = Parse(std::string_view(header).substr(0, n), accept);
    EXPECT_EQ(prefix.status, Status::kNeedMore) << "prefix of " << n << " bytes: " << prefix.error;
    if (prefix.status != Status::kNeedMore) break;
  }
  const ProxyHeaderParse whole = Parse(header, accept);
  EXPECT_EQ(whole.status, Status::kDone) << whole.error;
  EXPECT_EQ(whole.consumed, header.size());
  for (const std::string_view tail : {"GET / HTTP/1.1\r\n", "\x16\x03\x01", "\r\n", "PROXY "}) {
    const ProxyHeaderParse more = Parse(header + std::string(tail), accept);
    EXPECT_EQ(more.status, Status::kDone) << more.error;
    EXPECT_EQ(more.consumed, header.size());
    EXPECT_EQ(more.header, whole.header);
  }
  return whole.header;
}

// The first `at` bytes of `data` may still begin a valid header; the byte at `at` cannot, nor
// can anything longer. Returns the error for all of `data`.
std::string ExpectRefusedAt(std::string_view data, std::size_t at,
                            ProxyHeaderAccept accept = kAny) {
  EXPECT_LT(at, data.size());
  for (std::size_t n = 0; n <= at && n <= data.size(); ++n) {
    const ProxyHeaderParse prefix = Parse(data.substr(0, n), accept);
    EXPECT_EQ(prefix.status, Status::kNeedMore) << "prefix of " << n << " bytes: " << prefix.error;
    if (prefix.status != Status::kNeedMore) return prefix.error;
  }
  std::string error;
  for (std::size_t n = at + 1; n <= data.size(); ++n) {
    const ProxyHeaderParse parse = Parse(data.substr(0, n), accept);
    EXPECT_EQ(parse.status, Status::kInvalid) << "prefix of " << n << " bytes";
    EXPECT_FALSE(parse.error.empty());
    EXPECT_EQ(parse.error.find_first_of("\r\n"), std::string::npos) << parse.error;
    error = parse.error;
  }
  return error;
}

// ---- v1 ----

TEST(ProxyHeaderV1Test, AcceptsTcp4) {
  const ProxyHeader header = ExpectByteByByte("PROXY TCP4 192.0.2.7 198.51.100.1 51000 443\r\n");
  EXPECT_EQ(header.version, 1);
  EXPECT_FALSE(header.local);
  EXPECT_EQ(header.source_address, "192.0.2.7");
  EXPECT_EQ(header.source_port, 51000);
  EXPECT_EQ(header.destination_address, "198.51.100.1");
  EXPECT_EQ(header.destination_port, 443);
  EXPECT_EQ(header.unique_id, "");
  ExpectByteByByte("PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n", kV1);
}

TEST(ProxyHeaderV1Test, AcceptsTcp6AndPrintsItCanonically) {
  const ProxyHeader header =
      ExpectByteByByte("PROXY TCP6 2001:0DB8:0000:0000:0000:0000:0000:0001 2001:db8::2 1 8443\r\n");
  EXPECT_EQ(header.source_address, "2001:db8::1");
  EXPECT_EQ(header.destination_address, "2001:db8::2");
  EXPECT_EQ(header.source_port, 1);
  EXPECT_EQ(header.destination_port, 8443);
  // The longest line with the plain form: 104 bytes.
  const std::string longest =
      "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
      "65535 65535\r\n";
  ASSERT_EQ(longest.size(), 104u);
  EXPECT_EQ(ExpectByteByByte(longest).source_address, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
  EXPECT_EQ(ExpectByteByByte("PROXY TCP6 :: ::1 0 0\r\n").source_address, "::");
}

TEST(ProxyHeaderV1Test, MappedIpv4IsReturnedAsIpv4) {
  const ProxyHeader header =
      ExpectByteByByte("PROXY TCP6 ::ffff:192.0.2.7 ::FFFF:c633:6401 5 6\r\n");
  EXPECT_EQ(header.source_address, "192.0.2.7");
  EXPECT_EQ(header.destination_address, "198.51.100.1");
  // Other embedded forms stay IPv6.
  EXPECT_EQ(ExpectByteByByte("PROXY TCP6 ::192.0.2.7 64:ff9b::1.2.3.4 5 6\r\n").source_address,
            "::192.0.2.7");
}

TEST(ProxyHeaderV1Test, AcceptsUnknownAsLocal) {
  ProxyHeader header = ExpectByteByByte("PROXY UNKNOWN\r\n");
  EXPECT_EQ(header.version, 1);
  EXPECT_TRUE(header.local);
  EXPECT_EQ(header.source_address, "");
  EXPECT_EQ(header.source_port, 0);
  // Anything up to the CRLF is ignored, addresses included.
  header = ExpectByteByByte("PROXY UNKNOWN ffff:: ffff:: 65535 65535\r\n");
  EXPECT_TRUE(header.local);
  EXPECT_EQ(header.source_address, "");
  EXPECT_TRUE(ExpectByteByByte("PROXY UNKNOWN \t\x01\xff junk\r\n").local);
}

TEST(ProxyHeaderV1Test, AtMost107Bytes) {
  const std::string unknown107 = "PROXY UNKNOWN " + std::string(91, 'x') + "\r\n";
  ASSERT_EQ(unknown107.size(), 107u);
  ExpectByteByByte(unknown107);
  // One byte more: refused at the byte that leaves no room for the CRLF.
  const std::string unknown108 = "PROXY UNKNOWN " + std::string(92, 'x') + "\r\n";
  EXPECT_EQ(ExpectRefusedAt(unknown108, 105), "v1: no CRLF in the first 107 bytes");

  // TCP6 can exceed 107 bytes only with embedded IPv4 and zero padding.
  const std::string tcp6_107 =
      "PROXY TCP6 0000:0000:0000:0000:0000:ffff:255.255.255.255 "
      "000:0000:0000:0000:0000:ffff:1.2.3.4 65535 65535\r\n";
  ASSERT_EQ(tcp6_107.size(), 107u);
  const ProxyHeader header = ExpectByteByByte(tcp6_107);
  EXPECT_EQ(header.source_address, "255.255.255.255");
  EXPECT_EQ(header.destination_address, "1.2.3.4");
  const std::string tcp6_108 =
      "PROXY TCP6 0000:0000:0000:0000:0000:ffff:255.255.255.255 "
      "0000:0000:0000:0000:0000:ffff:1.2.3.4 65535 65535\r\n";
  ASSERT_EQ(tcp6_108.size(), 108u);
  // Refused at the last port digit, which leaves 106 bytes before the CRLF.
  EXPECT_EQ(ExpectRefusedAt(tcp6_108, 105), "v1: longer than 107 bytes");
}

TEST(ProxyHeaderV1Test, RefusesBadSpacingAndWords) {
  ExpectRefusedAt("PROXY  TCP4 192.0.2.7 192.0.2.8 1 2\r\n", 6);
  ExpectRefusedAt("PROXY\tTCP4 192.0.2.7 192.0.2.8 1 2\r\n", 5);
  ExpectRefusedAt("PROXY tcp4 192.0.2.7 192.0.2.8 1 2\r\n", 6);
  EXPECT_EQ(ExpectRefusedAt("PROXY TCP5 192.0.2.7 192.0.2.8 1 2\r\n", 9),
            "v1: unknown protocol \"TCP5\"");
  ExpectRefusedAt("PROXY UDP4 192.0.2.7 192.0.2.8 1 2\r\n", 7);  // "U" may begin "UNKNOWN"
  ExpectRefusedAt("PROXY TCP4  192.0.2.7 192.0.2.8 1 2\r\n", 11);
  ExpectRefusedAt("PROXY TCP4 192.0.2.7  192.0.2.8 1 2\r\n", 21);
  ExpectRefusedAt("PROXY TCP4 192.0.2.7 192.0.2.8  1 2\r\n", 31);
  ExpectRefusedAt("PROXY TCP4 192.0.2.7 192.0.2.8 1  2\r\n", 33);
  EXPECT_EQ(ExpectRefusedAt("PROXY TCP4 192.0.2.7 192.0.2.8 1 2 \r\n", 34),
            "v1: bad destination port \"2 \"");
  ExpectRefusedAt("PROXY TCP4 192.0.2.7 192.0.2.8 1\r\n", 32);  // a field missing
  ExpectRefusedAt("PROXY UNKNOWNX\r\n", 13);
  ExpectRefusedAt("PROXY TCP4\r\n", 10);
}

TEST(ProxyHeaderV1Test, RefusesBadTerminators) {
  EXPECT_EQ(ExpectRefusedAt("PROXY TCP4 192.0.2.7 192.0.2.8 1 2\n", 34), "v1: LF without CR");
  EXPECT_EQ(ExpectRefusedAt("PROXY TCP4 192.0.2.7 192.0.2.8 1 2\rX", 35), "v1: CR without LF");
  EXPECT_EQ(ExpectRefusedAt("PROXY UNKNOWN\rX", 14), "v1: CR without LF");
  EXPECT_EQ(ExpectRefusedAt("PROXY UNKNOWN\n", 13),
            "v1: UNKNOWN must be followed by a space or CRLF");
  EXPECT_EQ(ExpectRefusedAt("PROXY UNKNOWN a\nb\r\n", 15), "v1: LF without CR");
  ExpectRefusedAt("PROXY UNKNOWN a\rb\r\n", 16);
}

TEST(ProxyHeaderV1Test, RefusesAddressesOfTheWrongFamilyOrForm) {
  // Each refused at the first character no address of the family can have there.
  EXPECT_EQ(ExpectRefusedAt("PROXY TCP4 256.1.1.1 192.0.2.8 1 2\r\n", 13),
            "v1: bad source address \"256\"");
  ExpectRefusedAt("PROXY TCP4 01.2.3.4 192.0.2.8 1 2\r\n", 12);  // leading zero
  ExpectRefusedAt("PROXY TCP4 1.2.3.04 192.0.2.8 1 2\r\n", 18);
  ExpectRefusedAt("PROXY TCP4 1.2.3 192.0.2.8 1 2\r\n", 16);
  ExpectRefusedAt("PROXY TCP4 1.2.3.4.5 192.0.2.8 1 2\r\n", 18);
  ExpectRefusedAt("PROXY TCP4 1..2.3 192.0.2.8 1 2\r\n", 13);
  ExpectRefusedAt("PROXY TCP4 0x1.2.3.4 192.0.2.8 1 2\r\n", 12);
  ExpectRefusedAt("PROXY TCP4 2001:db8::1 192.0.2.8 1 2\r\n", 14);
  EXPECT_EQ(ExpectRefusedAt("PROXY TCP4 192.0.2.7 192.0.2.800 1 2\r\n", 31),
            "v1: bad destination address \"192.0.2.800\"");
  ExpectRefusedAt("PROXY TCP6 192.0.2.7 ::1 1 2\r\n", 14);  // IPv4 text for TCP6
  ExpectRefusedAt("PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n", 26);
  ExpectRefusedAt("PROXY TCP6 1:2:3:4:5:6:7 ::1 1 2\r\n", 24);  // seven groups
  ExpectRefusedAt("PROXY TCP6 ::: ::1 1 2\r\n", 13);
  ExpectRefusedAt("PROXY TCP6 :1 ::1 1 2\r\n", 12);
  ExpectRefusedAt("PROXY TCP6 1::2::3 ::1 1 2\r\n", 16);
  ExpectRefusedAt("PROXY TCP6 12345:: ::1 1 2\r\n", 15);
  ExpectRefusedAt("PROXY TCP6 1: ::1 1 2\r\n", 13);
  ExpectRefusedAt("PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", 18);
  ExpectRefusedAt("PROXY TCP6 [::1] ::1 1 2\r\n", 11);
  ExpectRefusedAt("PROXY TCP6 1:2:3:4:5:6:7:1.2.3.4 ::1 1 2\r\n", 26);  // 9 groups' worth
  ExpectRefusedAt("PROXY TCP6 ::1.2.3.4:5 ::1 1 2\r\n", 20);            // IPv4 must end it
  ExpectRefusedAt("PROXY TCP6 ::ffff:1.2.3 ::1 1 2\r\n", 23);
  ExpectRefusedAt("PROXY TCP6 1:2:3:4:5:6:7:8:: ::1 1 2\r\n", 26);
}

// The address texts accepted are exactly those inet_pton accepts.
TEST(ProxyHeaderV1Test, AddressesAsInetPtonReadsThem) {
  const std::vector<std::string> texts = {
      "0.0.0.0",
      "1.2.3.4",
      "255.255.255.255",
      "256.0.0.0",
      "1.2.3",
      "1.2.3.4.",
      "01.2.3.4",
      "1.2.3.00",
      "1.2.3.0",
      "10.0.0.1",
      ".1.2.3",
      "1.2.3.4a",
      "::",
      "::1",
      "1::",
      "1::2",
      "1:2:3:4:5:6:7:8",
      "1:2:3:4:5:6:7::",
      "::2:3:4:5:6:7:8",
      "1:2:3:4:5:6:7:8::",
      "::1:2:3:4:5:6:7:8",
      "1:2:3:4:5:6::8",
      "1:::2",
      ":::",
      "1:",
      ":1",
      "1::2:",
      "abcd:EF01::",
      "abcde::",
      "00000::",
      "0000::",
      "::ffff:1.2.3.4",
      "::1.2.3.4",
      "1:2:3:4:5:6:1.2.3.4",
      "1:2:3:4:5::1.2.3.4",
      "1:2:3:4:5:6::1.2.3.4",
      "1:2:3:4:5:6:7:1.2.3.4",
      "::01.2.3.4",
      "::1.2.3",
      "::a.2.3.4",
      "::256.1.1.1",
      "::1.2.3.4.5",
      "g::",
      "1:2:3:4:5:6:7:8:9",
      "::ffff:1.2.3.4:1",
      ":",
      "1.2.3.4::",
      "1:2::3:4::",
      "fffff::",
      "::0:0:0:0:0:0:0",
      "0:0:0:0:0:0:0::",
      "::0:0:0:0:0:0",
      "1:2:3:4:5:6:7:8:",
      "1.2.3.4",
      "::1234.1.2.3",
      "::1.2.3.4",
      "2001:db8::1.2.3.4",
  };
  for (const std::string& text : texts) {
    unsigned char bytes[16];
    const bool v4 = inet_pton(AF_INET, text.c_str(), bytes) == 1;
    const bool v6 = inet_pton(AF_INET6, text.c_str(), bytes) == 1;
    EXPECT_EQ(Parse("PROXY TCP4 " + text + " 0.0.0.0 1 2\r\n").status == Status::kDone, v4)
        << "TCP4 " << text;
    EXPECT_EQ(Parse("PROXY TCP6 " + text + " ::1 1 2\r\n").status == Status::kDone, v6)
        << "TCP6 " << text;
    EXPECT_EQ(Parse("PROXY TCP6 ::1 " + text + " 1 2\r\n").status == Status::kDone, v6)
        << "TCP6 destination " << text;
  }
}

TEST(ProxyHeaderV1Test, RefusesBadPorts) {
  EXPECT_EQ(ExpectRefusedAt("PROXY TCP4 192.0.2.7 192.0.2.8 70000 2\r\n", 35),
            "v1: bad source port \"70000\"");
  EXPECT_EQ(ExpectRefusedAt("PROXY TCP4 192.0.2.7 192.0.2.8 1 65536\r\n", 37),
            "v1: bad destination port \"65536\"");
  EXPECT_EQ(ExpectRefusedAt("PROXY TCP4 192.0.2.7 192.0.2.8 01 2\r\n", 32),
            "v1: bad source port \"01\"");
  ExpectRefusedAt("PROXY TCP4 192.0.2.7 192.0.2.8 00 2\r\n", 32);
  ExpectRefusedAt("PROXY TCP4 192.0.2.7 192.0.2.8 +1 2\r\n", 31);
  ExpectRefusedAt("PROXY TCP4 192.0.2.7 192.0.2.8 -1 2\r\n", 31);
  ExpectRefusedAt("PROXY TCP4 192.0.2.7 192.0.2.8 1 0x50\r\n", 34);
  ExpectRefusedAt("PROXY TCP4 192.0.2.7 192.0.2.8 1 99999999999999999999\r\n", 37);
  const ProxyHeader header = ExpectByteByByte("PROXY TCP4 192.0.2.7 192.0.2.8 0 65535\r\n");
  EXPECT_EQ(header.source_port, 0);
  EXPECT_EQ(header.destination_port, 65535);
}

// ---- v2 ----

TEST(ProxyHeaderV2Test, Crc32cOfTheTestHelper) {
  EXPECT_EQ(Crc32c("123456789"), 0xE3069283u);  // RFC 3720's check value
}

TEST(ProxyHeaderV2Test, AcceptsTcp4WithUniqueId) {
  const V2 v2{0x21, 0x11, Ipv4Block("192.0.2.7", "198.51.100.1", 51000, 443) + Tlv(0x05, "req-42")};
  const ProxyHeader header = ExpectByteByByte(v2.Build());
  EXPECT_EQ(header.version, 2);
  EXPECT_FALSE(header.local);
  EXPECT_EQ(header.source_address, "192.0.2.7");
  EXPECT_EQ(header.source_port, 51000);
  EXPECT_EQ(header.destination_address, "198.51.100.1");
  EXPECT_EQ(header.destination_port, 443);
  EXPECT_EQ(header.unique_id, "req-42");
  EXPECT_EQ(ExpectByteByByte(v2.Build(), kV2), header);
}

TEST(ProxyHeaderV2Test, AcceptsTcp6) {
  const V2 v2{0x21, 0x21, Ipv6Block("2001:db8::1", "2001:db8:0:0:1::2", 1, 65535)};
  const ProxyHeader header = ExpectByteByByte(v2.Build());
  EXPECT_EQ(header.source_address, "2001:db8::1");
  EXPECT_EQ(header.destination_address, "2001:db8::1:0:0:2");
  EXPECT_EQ(header.source_port, 1);
  EXPECT_EQ(header.destination_port, 65535);
  EXPECT_EQ(header.unique_id, "");
  const V2 mapped{0x21, 0x21, Ipv6Block("::ffff:192.0.2.7", "::ffff:198.51.100.1", 2, 3)};
  const ProxyHeader ipv4 = ExpectByteByByte(mapped.Build());
  EXPECT_EQ(ipv4.source_address, "192.0.2.7");
  EXPECT_EQ(ipv4.destination_address, "198.51.100.1");
}

TEST(ProxyHeaderV2Test, LocalIgnoresTheFamilyAndAddresses) {
  ProxyHeader header = ExpectByteByByte(V2{0x20, 0x00, ""}.Build());
  EXPECT_EQ(header.version, 2);
  EXPECT_TRUE(header.local);
  EXPECT_EQ(header.source_address, "");
  EXPECT_EQ(header.destination_address, "");
  EXPECT_EQ(header.source_port, 0);
  // Addresses present: ignored, the TLVs after them still read.
  header = ExpectByteByByte(
      V2{0x20, 0x11, Ipv4Block("192.0.2.7", "192.0.2.8", 1, 2) + Tlv(0x05, "hc")}.Build());
  EXPECT_TRUE(header.local);
  EXPECT_EQ(header.source_address, "");
  EXPECT_EQ(header.unique_id, "hc");
  // UDP, unix sockets, undefined families, and addresses shorter than the family's: fine.
  EXPECT_TRUE(ExpectByteByByte(V2{0x20, 0x12, std::string(12, 'a')}.Build()).local);
  EXPECT_TRUE(ExpectByteByByte(V2{0x20, 0x32, std::string(216, '\0')}.Build()).local);
  EXPECT_TRUE(ExpectByteByByte(V2{0x20, 0x45, "\x01\x02\x03\x04\x05"}.Build()).local);
  EXPECT_TRUE(ExpectByteByByte(V2{0x20, 0x21, std::string(7, '\xff')}.Build()).local);
  // A truncated TLV after a defined family's addresses is still refused.
  ExpectRefusedAt(
      V2{0x20, 0x11, Ipv4Block("192.0.2.7", "192.0.2.8", 1, 2) + std::string("\x04\x00", 2)}
          .Build(),
      15);
}

TEST(ProxyHeaderV2Test, ProxyOverUnspecIsLocal) {
  const ProxyHeader header =
      ExpectByteByByte(V2{0x21, 0x00, Tlv(0x04, "pad") + Tlv(0x05, "x")}.Build());
  EXPECT_TRUE(header.local);
  EXPECT_EQ(header.source_address, "");
  EXPECT_EQ(header.unique_id, "x");
}

TEST(ProxyHeaderV2Test, RefusesProxyForUdpAndUnixSockets) {
  const std::string v4 = Ipv4Block("192.0.2.7", "192.0.2.8", 1, 2);
  const std::string v6 = Ipv6Block("2001:db8::1", "2001:db8::2", 1, 2);
  EXPECT_EQ(ExpectRefusedAt(V2{0x21, 0x12, v4}.Build(), 13),
            "v2: a UDP client (family 0x12) is not a TCP client");
  ExpectRefusedAt(V2{0x21, 0x22, v6}.Build(), 13);
  ExpectRefusedAt(V2{0x21, 0x31, std::string(216, 'a')}.Build(), 13);
  ExpectRefusedAt(V2{0x21, 0x32, std::string(216, 'a')}.Build(), 13);
  for (const unsigned char family : {0x01, 0x10, 0x13, 0x20, 0x30, 0x41, 0xff}) {
    ExpectRefusedAt(V2{0x21, family, v6}.Build(), 13);
  }
}

TEST(ProxyHeaderV2Test, RefusesOtherVersionsAndCommands) {
  const std::string v4 = Ipv4Block("192.0.2.7", "192.0.2.8", 1, 2);
  EXPECT_EQ(ExpectRefusedAt(V2{0x11, 0x11, v4}.Build(), 12), "v2: unsupported version 1");
  ExpectRefusedAt(V2{0x31, 0x11, v4}.Build(), 12);
  ExpectRefusedAt(V2{0x01, 0x11, v4}.Build(), 12);
  EXPECT_EQ(ExpectRefusedAt(V2{0x22, 0x11, v4}.Build(), 12), "v2: unknown command 2");
  ExpectRefusedAt(V2{0x2f, 0x11, v4}.Build(), 12);
  // A signature that differs anywhere.
  for (std::size_t i = 0; i < 12; ++i) {
    std::string header = V2{0x21, 0x11, v4}.Build();
    header[i] = static_cast<char>(header[i] ^ 0x40);
    ExpectRefusedAt(header, i, kV2);
  }
}

TEST(ProxyHeaderV2Test, LengthMustCoverTheAddresses) {
  const std::string v4 = Ipv4Block("192.0.2.7", "192.0.2.8", 1, 2);
  const std::string v6 = Ipv6Block("2001:db8::1", "2001:db8::2", 1, 2);
  EXPECT_EQ(ExpectRefusedAt(V2{0x21, 0x11, v4.substr(0, 11)}.Build(), 15),
            "v2: length 11 does not cover the 12-byte address block");
  ExpectRefusedAt(V2{0x21, 0x21, v6.substr(0, 35)}.Build(), 15);
  ExpectRefusedAt(V2{0x21, 0x21, v4}.Build(), 15);
  ExpectByteByByte(V2{0x21, 0x11, v4}.Build());
}

TEST(ProxyHeaderV2Test, AtMost1040Bytes) {
  const std::string v4 = Ipv4Block("192.0.2.7", "192.0.2.8", 1, 2);
  // 1024 bytes after the fixed part: the addresses and a NOOP TLV.
  const std::string largest =
      V2{0x21, 0x11, v4 + Tlv(0x04, std::string(1024 - 12 - 3, 'n'))}.Build();
  ASSERT_EQ(largest.size(), kMaxProxyHeader);
  ExpectByteByByte(largest);
  const std::string larger =
      V2{0x21, 0x11, v4 + Tlv(0x04, std::string(1024 - 12 - 2, 'n'))}.Build();
  EXPECT_EQ(ExpectRefusedAt(larger, 15), "v2: header longer than 1040 bytes");
  // The length's first byte already says so.
  ExpectRefusedAt(V2{0x21, 0x11, v4, 0x0500}.Build(), 14);
  ExpectRefusedAt(V2{0x21, 0x11, v4, 0xffff}.Build(), 14);
}

TEST(ProxyHeaderV2Test, TlvsMustFitExactly) {
  const std::string v4 = Ipv4Block("192.0.2.7", "192.0.2.8", 1, 2);
  // Registered, custom and SSL (with sub-TLVs) TLVs are skipped.
  const std::string tlvs = Tlv(0x01, "h2") + Tlv(0x02, "example.com") + Tlv(0x04, "") +
                           Tlv(0x20, std::string("\x01\0\0\0\0", 5) + Tlv(0x21, "TLSv1.3")) +
                           Tlv(0x30, "ns") + Tlv(0xe0, "custom");
  EXPECT_EQ(ExpectByteByByte(V2{0x21, 0x11, v4 + tlvs}.Build()).source_address, "192.0.2.7");

  // One or two bytes left: no room for a TLV, known as soon as the length is (byte 15) or the
  // last TLV's length is.
  EXPECT_EQ(ExpectRefusedAt(V2{0x21, 0x11, v4 + "\x04"}.Build(), 15),
            "v2: truncated TLV at the end of the header");
  ExpectRefusedAt(V2{0x21, 0x11, v4 + std::string("\x04\x00", 2)}.Build(), 15);
  ExpectRefusedAt(V2{0x21, 0x00, std::string("\x04\x00", 2)}.Build(), 15);
  ExpectRefusedAt(V2{0x21, 0x11, v4 + Tlv(0x04, "ab") + std::string("\x04\x00", 2)}.Build(),
                  16 + 12 + 2);
  // A TLV longer than what remains: refused at its length's second byte.
  std::string body = v4 + Tlv(0x04, "abcd");
  body[12 + 2] = 5;
  EXPECT_EQ(ExpectRefusedAt(V2{0x21, 0x11, body}.Build(), 16 + 12 + 2),
            "v2: TLV 0x04 of 5 bytes runs past the header");
  // A first length byte that already says so: refused there.
  body[12 + 1] = 1;
  body[12 + 2] = 4;
  EXPECT_EQ(ExpectRefusedAt(V2{0x21, 0x11, body}.Build(), 16 + 12 + 1),
            "v2: TLV 0x04 of 260 bytes runs past the header");
  EXPECT_EQ(Parse(V2{0x21, 0x11, body}.Build().substr(0, 16 + 12 + 2)).error,
            "v2: TLV 0x04 of 256 bytes or more does not fit");
}

TEST(ProxyHeaderV2Test, VerifiesCrc32c) {
  const V2 v2{0x21, 0x11, Ipv4Block("192.0.2.7", "198.51.100.1", 51000, 443) + Tlv(0x05, "id")};
  const std::string header = WithCrc32c(v2);
  EXPECT_EQ(ExpectByteByByte(header).unique_id, "id");
  ExpectByteByByte(WithCrc32c(V2{0x20, 0x00, ""}));  // LOCAL too
  ExpectByteByByte(WithCrc32c(V2{0x21, 0x21, Ipv6Block("2001:db8::1", "::1", 1, 2)}));

  // Any changed bit: refused once the header is complete.
  for (const std::size_t at : {std::size_t{17}, std::size_t{25}, header.size() - 1}) {
    std::string changed = header;
    changed[at] = static_cast<char>(changed[at] ^ 0x01);
    EXPECT_EQ(ExpectRefusedAt(changed, header.size() - 1), "v2: CRC32C checksum mismatch");
  }
  // The checksum zeroed is not skipped either.
  std::string zero = header;
  zero.replace(zero.size() - 4, 4, std::string(4, '\0'));
  ExpectRefusedAt(zero, zero.size() - 1);

  // A CRC32C TLV must be 4 bytes, and there is at most one.
  const std::string v4 = Ipv4Block("192.0.2.7", "192.0.2.8", 1, 2);
  EXPECT_EQ(
      ExpectRefusedAt(V2{0x21, 0x11, v4 + Tlv(0x03, "abc") + Tlv(0x04, "")}.Build(), 16 + 12 + 2),
      "v2: CRC32C TLV of 3 bytes");
  const std::string twice = WithCrc32c(V2{0x21, 0x11, v4 + Tlv(0x03, "abcd")});
  EXPECT_EQ(ExpectRefusedAt(twice, 16 + 12 + 7), "v2: more than one CRC32C TLV");
  // No room left for one: refused at its type byte.
  EXPECT_EQ(
      ExpectRefusedAt(V2{0x21, 0x11, v4 + Tlv(0x04, "") + Tlv(0x03, "abc")}.Build(), 16 + 12 + 3),
      "v2: no room for a CRC32C TLV");
}

TEST(ProxyHeaderV2Test, UniqueIdPrintableOrHex) {
  const std::string v4 = Ipv4Block("192.0.2.7", "192.0.2.8", 1, 2);
  const auto id = [&](std::string_view value) {
    return ExpectByteByByte(V2{0x21, 0x11, v4 + Tlv(0x05, value)}.Build()).unique_id;
  };
  EXPECT_EQ(id("!~AZaz09"), "!~AZaz09");
  EXPECT_EQ(id("a b"), "612062");
  EXPECT_EQ(id(std::string("\x01\xab\0\x7f", 4)), "01ab007f");
  EXPECT_EQ(id(""), "");
  EXPECT_EQ(id(std::string(128, 'u')), std::string(128, 'u'));
  EXPECT_EQ(id(std::string(128, '\xff')).size(), 256u);
  EXPECT_EQ(
      ExpectRefusedAt(V2{0x21, 0x11, v4 + Tlv(0x05, std::string(129, 'u'))}.Build(), 16 + 12 + 2),
      "v2: unique id of 129 bytes (at most 128)");
  EXPECT_EQ(
      ExpectRefusedAt(V2{0x21, 0x11, v4 + Tlv(0x05, "a") + Tlv(0x05, "b")}.Build(), 16 + 12 + 4),
      "v2: more than one unique id TLV");
}

// ---- both ----

TEST(ProxyHeaderTest, EmptyNeedsMore) {
  for (const auto accept : {kV1, kV2, kAny}) EXPECT_EQ(Parse("", accept).status, Status::kNeedMore);
}

TEST(ProxyHeaderTest, RefusesOtherProtocolsAtTheFirstByteThatDiffers) {
  for (const auto accept : {kV1, kV2, kAny}) {
    SCOPED_TRACE(static_cast<int>(accept));
    for (const std::string_view data :
         {std::string_view("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"),
          std::string_view("CONNECT example.com:443 HTTP/1.1\r\n\r\n"),
          std::string_view("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11),
          std::string_view("SSH-2.0-OpenSSH_9.2\r\n"), std::string_view("\0\0\0\0", 4),
          std::string_view("\n\r\n")}) {
      EXPECT_EQ(ExpectRefusedAt(data, 0, accept).empty(), false);
    }
  }
  EXPECT_EQ(ExpectRefusedAt("GET / HTTP/1.1\r\n", 0), "not a PROXY protocol header");
  // "P" may begin "PROXY": refused at the first letter that differs.
  EXPECT_EQ(ExpectRefusedAt("POST / HTTP/1.1\r\n\r\n", 1), "not a PROXY protocol header");
  ExpectRefusedAt("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 2, kV1);
  ExpectRefusedAt("PUT / HTTP/1.1\r\n\r\n", 1);
  ExpectRefusedAt("PROXZ", 4);
  // CR may begin the v2 signature; "\r\n\r\n" is a prefix of it, so a blank-line probe waits.
  ExpectRefusedAt("\r\n\r\nGET", 4);
}

TEST(ProxyHeaderTest, ListenersRefuseTheVersionTheyDoNotAccept) {
  const std::string v1 = "PROXY TCP4 192.0.2.7 198.51.100.1 51000 443\r\n";
  const std::string v2 = V2{0x21, 0x11, Ipv4Block("192.0.2.7", "198.51.100.1", 51000, 443)}.Build();
  EXPECT_EQ(ExpectRefusedAt(v2, 0, kV1), "v2 header from a v1-only listener");
  EXPECT_EQ(ExpectRefusedAt(v1, 0, kV2), "v1 header from a v2-only listener");
  EXPECT_EQ(Parse("P", kV2).error, "not a PROXY protocol v2 header");
  EXPECT_EQ(Parse("\r", kV1).error, "not a PROXY protocol v1 header");
  const ProxyHeader from_v1 = ExpectByteByByte(v1, kV1);
  const ProxyHeader from_v2 = ExpectByteByByte(v2, kV2);
  EXPECT_EQ(ExpectByteByByte(v1, kAny), from_v1);
  EXPECT_EQ(ExpectByteByByte(v2, kAny), from_v2);
  // The same connection described both ways.
  EXPECT_EQ(from_v1.source_address, from_v2.source_address);
  EXPECT_EQ(from_v1.source_port, from_v2.source_port);
  EXPECT_EQ(from_v1.destination_address, from_v2.destination_address);
  EXPECT_EQ(from_v1.destination_port, from_v2.destination_port);
}

TEST(ProxyHeaderTest, SplitFeedingNeverChangesTheAnswer) {
  const std::vector<std::string> inputs = {
      "PROXY TCP4 192.0.2.7 198.51.100.1 51000 443\r\nGET / HTTP/1.1\r\n",
      "PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n\x16\x03\x01",
      "PROXY UNKNOWN\r\nPROXY TCP4 1.2.3.4 1.2.3.4 1 1\r\n",
      "PROXY TCP4 192.0.2.7 198.51.100.1 70000 443\r\n",
      WithCrc32c(V2{0x21, 0x11, Ipv4Block("192.0.2.7", "198.51.100.1", 1, 2)}) + "rest",
      V2{0x21, 0x21, Ipv6Block("2001:db8::1", "2001:db8::2", 1, 2) + Tlv(0x05, "u")}.Build() +
          "\r\n",
  };
  for (const std::string& input : inputs) {
    const ProxyHeaderParse whole = Parse(input);
    for (std::size_t n = 0; n <= input.size(); ++n) {
      const ProxyHeaderParse part = Parse(std::string_view(input).substr(0, n));
      if (part.status == Status::kNeedMore) continue;
      EXPECT_EQ(part.status, whole.status) << n;
      EXPECT_EQ(part.consumed, whole.consumed) << n;
      EXPECT_EQ(part.header, whole.header) << n;
    }
  }
}

}  // namespace
}  // namespace mintgate::proxy::net
