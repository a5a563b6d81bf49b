#include "rules/canonical_host.h"

#include <gtest/gtest.h>

namespace mintgate::rules {
namespace {

std::string Canonical(std::string_view host) {
  std::string error;
  std::optional<CanonicalHost> c = CanonicalizeHost(host, &error);
  return c ? c->ToString() : "error: " + error;
}

bool IsAddress(std::string_view host) {
  std::optional<CanonicalHost> c = CanonicalizeHost(host, nullptr);
  return c && c->is_address();
}

// Every spelling browsers read as 127.0.0.1 (the WHATWG URL standard's IPv4 parser) is
// 127.0.0.1 here too, so no spelling reaches a rule or the destination check as a name.
TEST(CanonicalHost, NumericIpv4SpellingsAreTheAddressBrowsersRead) {
  for (const char* spelling :
       {"127.0.0.1", "0177.1", "0x7f.1", "0X7F.0.0.1", "127.0.0.01", "127.1", "127.0.1",
        "2130706433", "0x7f000001", "017700000001", "127.0.0.1.", "0x7F.00.0.1"}) {
    EXPECT_EQ(Canonical(spelling), "127.0.0.1") << spelling;
    EXPECT_TRUE(IsAddress(spelling)) << spelling;
  }
  EXPECT_EQ(Canonical("0"), "0.0.0.0");
  EXPECT_EQ(Canonical("0x"), "0.0.0.0");  // WHATWG: "0x" alone is zero
  EXPECT_EQ(Canonical("1.2.3.0x"), "1.2.3.0");
  EXPECT_EQ(Canonical("169.254.43518"), "169.254.169.254");
  EXPECT_EQ(Canonical("10.0.0.255"), "10.0.0.255");
}

TEST(CanonicalHost, NumericHostsThatAreNoAddressAreRefused) {
  for (const char* bad :
       {"1.2.3.4.5", "256.1.1.1", "1.2.3.256", "4294967296", "0x100000000", "1.2.65536", "09.1.1.1",
        "a.1", "www.0x1", "1..1", "1.2.3.4..", "0xg.1.1.1", "1.2.3.-4"}) {
    EXPECT_EQ(Canonical(bad).rfind("error: ", 0), 0u) << bad << " -> " << Canonical(bad);
  }
  // Still names: the last label is not a number.
  EXPECT_EQ(Canonical("1.2.3.example"), "1.2.3.example");
  EXPECT_EQ(Canonical("0x1.example"), "0x1.example");
}

TEST(CanonicalHost, Ipv6IsCanonicalAndMappedFormsAreIpv4) {
  EXPECT_EQ(Canonical("[2001:DB8:0:0::1]"), "2001:db8::1");
  EXPECT_EQ(Canonical("2001:db8::1"), "2001:db8::1");
  EXPECT_EQ(Canonical("[::1]"), "::1");
  EXPECT_EQ(Canonical("[::]"), "::");
  EXPECT_EQ(Canonical("[::ffff:127.0.0.1]"), "127.0.0.1");
  EXPECT_EQ(Canonical("[::ffff:7f00:1]"), "127.0.0.1");
  EXPECT_EQ(Canonical("[0:0:0:0:0:ffff:a9fe:a9fe]"), "169.254.169.254");
  EXPECT_EQ(Canonical("[::169.254.169.254]"), "169.254.169.254");  // IPv4-compatible
  EXPECT_EQ(Canonical("[64:ff9b::7f00:1]"), "64:ff9b::7f00:1");    // NAT64 stays IPv6
  for (const char* bad : {"[::1", "[]", "[fe80::1%25eth0]", "[fe80::1%eth0]", "[1.2.3.4]",
                          "[::1]:80", "[:::1]", "[1:2:3:4:5:6:7:8:9]", "[::ffff:01.2.3.4]"}) {
    EXPECT_EQ(Canonical(bad).rfind("error: ", 0), 0u) << bad << " -> " << Canonical(bad);
  }
}

TEST(CanonicalHost, NamesAreFoldedAndChecked) {
  EXPECT_EQ(Canonical("WWW.Example.COM."), "www.example.com");
  EXPECT_EQ(Canonical("_sip.example.com"), "_sip.example.com");
  EXPECT_EQ(Canonical("localhost"), "localhost");
  EXPECT_EQ(Canonical("xn--bcher-kva.example"), "xn--bcher-kva.example");
  for (const char* bad :
       {"", ".", "a..b", ".example.com", "*.example.com", "ex ample.com", "exa%6dple.com",
        "b\xc3\xbc"
        "cher.example",
        "-a.example", "a-.example", "a.example..", "host/path", "a@b", "a\r\nb"}) {
    EXPECT_EQ(Canonical(bad).rfind("error: ", 0), 0u) << bad << " -> " << Canonical(bad);
  }
  EXPECT_EQ(Canonical(std::string(63, 'a') + ".example"), std::string(63, 'a') + ".example");
  EXPECT_NE(Canonical(std::string(64, 'a') + ".example").find("63"), std::string::npos);
  std::string long_name;
  for (int i = 0; i < 4; ++i) long_name += std::string(62, 'a') + ".";
  EXPECT_NE(Canonical(long_name + "ab").find("253"), std::string::npos);
}

TEST(CanonicalHost, ErrorsQuoteTheHostEscaped) {
  std::string error;
  EXPECT_FALSE(CanonicalizeHost("a\x1b[31mb", &error));
  EXPECT_NE(error.find("a\\x1b[31mb"), std::string::npos) << error;
  EXPECT_EQ(error.find('\x1b'), std::string::npos);
}

TEST(CanonicalHost, EmbeddedIpv4) {
  auto v6 = [](const char* text) { return *IpAddress::Parse(text); };
  EXPECT_EQ(EmbeddedIpv4(v6("::ffff:10.1.2.3"))->ToString(), "10.1.2.3");
  EXPECT_EQ(EmbeddedIpv4(v6("64:ff9b::a9fe:a9fe"))->ToString(), "169.254.169.254");
  EXPECT_EQ(EmbeddedIpv4(v6("2002:7f00:1::1"))->ToString(), "127.0.0.1");
  EXPECT_FALSE(EmbeddedIpv4(v6("2001:db8::1")));
  EXPECT_FALSE(EmbeddedIpv4(v6("::1")));
  EXPECT_FALSE(EmbeddedIpv4(*IpAddress::Parse("10.0.0.1")));
  EXPECT_EQ(Unmapped(v6("::1")).ToString(), "::1");
  EXPECT_EQ(Unmapped(v6("::")).ToString(), "::");
  EXPECT_EQ(Unmapped(v6("::2")).ToString(), "0.0.0.2");
}

}  // namespace
}  // namespace mintgate::rules
