#include "rules/host_pattern.h"

#include <gtest/gtest.h>

namespace mintgate::rules {
namespace {

bool Matches(const char* pattern_text, const char* host) {
  std::string error;
  auto pattern = HostPattern::Parse(pattern_text, &error);
  EXPECT_TRUE(pattern) << pattern_text << ": " << error;
  std::string buffer;
  return pattern && pattern->Matches(MakeHostView(host, buffer));
}

std::string Rejection(const char* pattern_text) {
  std::string error;
  EXPECT_FALSE(HostPattern::Parse(pattern_text, &error)) << pattern_text;
  return error;
}

TEST(HostPattern, ExactMatchesOnlyThatName) {
  EXPECT_TRUE(Matches("pay.example.com", "pay.example.com"));
  EXPECT_FALSE(Matches("pay.example.com", "a.pay.example.com"));
  EXPECT_FALSE(Matches("pay.example.com", "example.com"));
  EXPECT_FALSE(Matches("pay.example.com", "xpay.example.com"));
}

TEST(HostPattern, StarMatchesAnyDepthBelowButNotSelf) {
  EXPECT_TRUE(Matches("*.bank.example", "a.bank.example"));
  EXPECT_TRUE(Matches("*.bank.example", "a.b.bank.example"));
  EXPECT_FALSE(Matches("*.bank.example", "bank.example"));
  EXPECT_FALSE(Matches("*.bank.example", "xbank.example"));
}

TEST(HostPattern, DotMatchesSelfAndBelow) {
  EXPECT_TRUE(Matches(".bank.example", "bank.example"));
  EXPECT_TRUE(Matches(".bank.example", "www.bank.example"));
  EXPECT_TRUE(Matches(".bank.example", "a.b.bank.example"));
  EXPECT_FALSE(Matches(".bank.example", "mybank.example"));
}

TEST(HostPattern, CaseInsensitiveAndTrailingDot) {
  EXPECT_TRUE(Matches("Pay.Example.COM", "pay.example.com"));
  EXPECT_TRUE(Matches("pay.example.com", "PAY.example.Com."));
  EXPECT_TRUE(Matches("pay.example.com.", "pay.example.com"));
  EXPECT_TRUE(Matches("*.EXAMPLE.com", "WWW.example.COM."));
}

TEST(HostPattern, IdnInAsciiForm) {
  EXPECT_TRUE(Matches("xn--bcher-kva.example", "XN--BCHER-KVA.example"));
  EXPECT_TRUE(Matches("*.xn--fiqs8s", "www.xn--fiqs8s"));
  EXPECT_EQ(Rejection("bücher.example"),
            "character '\xc3' is not allowed (letters, digits and '-' only; IDNs in xn-- form)");
}

TEST(HostPattern, IpLiteralsMatchOnlyAddressPatterns) {
  EXPECT_TRUE(Matches("192.0.2.1", "192.0.2.1"));
  EXPECT_TRUE(Matches("10.0.0.0/8", "10.1.2.3"));
  EXPECT_TRUE(Matches("2001:db8::/32", "[2001:DB8::5]"));
  EXPECT_TRUE(Matches("[2001:db8::1]", "2001:db8:0::1"));
  // IPv4-mapped IPv6 reaches the IPv4 address, so it is judged as one.
  EXPECT_TRUE(Matches("10.0.0.0/8", "::ffff:10.0.0.1"));
  // A name never matches an address pattern, and an address never a name pattern.
  EXPECT_FALSE(Matches("10.0.0.0/8", "10.example"));
  EXPECT_FALSE(Matches(".com", "1.2.3.4"));
  EXPECT_FALSE(Matches("*.com", "::1"));
}

TEST(HostPattern, RejectsInvalidPatterns) {
  const std::string star = "\"*\" is only allowed as a whole first label (\"*.example.com\")";
  EXPECT_EQ(Rejection("*.*.com"), star);
  EXPECT_EQ(Rejection("foo*.com"), star);
  EXPECT_EQ(Rejection("*foo.com"), star);
  EXPECT_EQ(Rejection("*"), star);
  EXPECT_EQ(Rejection("."), "empty pattern");
  EXPECT_EQ(Rejection(""), "empty pattern");
  EXPECT_EQ(Rejection("a..com"), "empty label");
  EXPECT_EQ(Rejection("..com"), "empty label");
  EXPECT_EQ(Rejection("a_b.com"),
            "character '_' is not allowed (letters, digits and '-' only; IDNs in xn-- form)");
  EXPECT_EQ(Rejection("-a.com"), "label \"-a\" starts or ends with '-'");
  EXPECT_EQ(Rejection(std::string(64, 'a').append(".com").c_str()),
            "label \"" + std::string(64, 'a') + "\" is longer than 63");
  std::string long_name;
  for (int i = 0; i < 64; ++i) long_name += "abc.";
  long_name += "com";
  EXPECT_EQ(Rejection(long_name.c_str()), "longer than 253 characters");
  EXPECT_EQ(Rejection("1.2.3.256"),
            "the last label is all digits, but it is not a valid IP address");
  EXPECT_EQ(Rejection("10.0.0.1/8"),
            "host bits are set below the /8 prefix (did you mean \"10.0.0.0/8\"?)");
  EXPECT_EQ(Rejection("2001:db8::zz"), "\"2001:db8::zz\" is not an IPv4 or IPv6 address");
}

TEST(HostPattern, AcceptsBoundaryNames) {
  std::string error;
  EXPECT_TRUE(HostPattern::Parse(std::string(63, 'a') + ".com", &error)) << error;
  EXPECT_TRUE(HostPattern::Parse("localhost", &error)) << error;
  EXPECT_TRUE(HostPattern::Parse("*.com", &error)) << error;
  EXPECT_TRUE(HostPattern::Parse("3com.example", &error)) << error;
}

// Patterns mean what targets are judged as: an IPv4-mapped block is the IPv4 block (targets
// in that form are judged as IPv4), and a name that browsers read as an address is refused.
TEST(HostPattern, PatternsAreCanonicalLikeTargets) {
  EXPECT_TRUE(Matches("::ffff:192.0.2.1", "192.0.2.1"));
  EXPECT_TRUE(Matches("::ffff:192.0.2.1", "[::ffff:192.0.2.1]"));
  EXPECT_TRUE(Matches("::ffff:10.0.0.0/104", "10.9.9.9"));
  EXPECT_FALSE(Matches("::ffff:10.0.0.0/104", "11.0.0.1"));
  EXPECT_NE(Rejection("10.0.0.0x8").find("hexadecimal"), std::string::npos);
  EXPECT_NE(Rejection("*.0x7f").find("hexadecimal"), std::string::npos);
  EXPECT_NE(Rejection("0x7f.0.0.1").find("all digits"), std::string::npos);
  std::string error;
  EXPECT_TRUE(HostPattern::Parse("0xdeadbeef.example", &error)) << error;  // not the last label
  EXPECT_TRUE(HostPattern::Parse("a.0xg", &error)) << error;               // not a number
}

TEST(NormalizeHost, LowercasesAndStrips) {
  EXPECT_EQ(NormalizeHost("WWW.Example.COM."), "www.example.com");
  EXPECT_EQ(NormalizeHost("[2001:DB8::1]"), "2001:db8::1");
  EXPECT_EQ(NormalizeHost(""), "");
  std::string buffer;
  EXPECT_TRUE(MakeHostView("[::1]", buffer).address);
}

// A target is judged as the address it reaches, however it is spelt: "01.2.3.4" is octal 1,
// i.e. 1.2.3.4, for browsers and for the socket, so it must be for rules too.
TEST(MakeHostView, EverySpellingOfAnAddressIsTheAddress) {
  std::string buffer;
  ASSERT_TRUE(MakeHostView("01.2.3.4", buffer).address);
  EXPECT_EQ(MakeHostView("01.2.3.4", buffer).address->ToString(), "1.2.3.4");
  EXPECT_EQ(MakeHostView("0x7f.1", buffer).address->ToString(), "127.0.0.1");
  EXPECT_EQ(MakeHostView("[::ffff:10.1.2.3]", buffer).address->ToString(), "10.1.2.3");
  EXPECT_EQ(MakeHostView("www.example.com", buffer).name, "www.example.com");
  EXPECT_EQ(MakeHostView("3com.example", buffer).name, "3com.example");
  EXPECT_TRUE(Matches("10.0.0.0/8", "[::ffff:10.1.2.3]"));
  EXPECT_TRUE(Matches("10.0.0.0/8", "012.1.2.3"));
  EXPECT_TRUE(Matches("10.0.0.0/8", "167772161"));
  EXPECT_FALSE(Matches("10.0.0.0/8", "[2001:db8::1]"));
}

}  // namespace
}  // namespace mintgate::rules
