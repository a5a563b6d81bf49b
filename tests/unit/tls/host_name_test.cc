#include "tls/host_name.h"

#include <gtest/gtest.h>

#include <string>

namespace mintgate::tls {
namespace {

TEST(HostName, NormalisesValidDnsNames) {
  struct Case {
    std::string in, out;
  } cases[] = {{"Example.COM", "example.com"},
               {"example.com.", "example.com"},
               {"*.example.com", "*.example.com"},
               {"a-b.c0.example", "a-b.c0.example"},
               {"xn--bcher-kva.example", "xn--bcher-kva.example"},
               {"localhost", "localhost"}};
  for (const auto& c : cases) {
    auto r = ParseSanName(c.in);
    ASSERT_TRUE(r.ok()) << c.in << ": " << r.error();
    EXPECT_EQ(r->kind, SanName::Kind::kDns);
    EXPECT_EQ(r->text, c.out);
  }
}

TEST(HostName, AcceptsIpLiterals) {
  auto v4 = ParseSanName("192.0.2.1");
  ASSERT_TRUE(v4.ok());
  EXPECT_EQ(v4->kind, SanName::Kind::kIp);
  EXPECT_EQ(v4->ip_len, 4);
  EXPECT_EQ(v4->text, "192.0.2.1");
  auto v6 = ParseSanName("[2001:DB8:0::1]");
  ASSERT_TRUE(v6.ok()) << v6.error();
  EXPECT_EQ(v6->ip_len, 16);
  EXPECT_EQ(v6->text, "2001:db8::1");
  EXPECT_TRUE(ParseSanName("::1").ok());
}

TEST(HostName, RefusesEverythingElse) {
  const std::string nul_name("a.com\0evil.com", 14);
  const std::string cases[] = {
      "",
      ".",
      "a.com,DNS:evil.com",
      "a.com, DNS:evil.com",
      nul_name,
      "*.*.example.com",
      "foo*.example.com",
      "*foo.example.com",
      "a.*.example.com",
      "*",
      "*.",
      "-a.example.com",
      "a-.example.com",
      "a..example.com",
      ".example.com",
      "example.com..",
      "exa mple.com",
      "exa_mple.com",
      "a.com/evil",
      "a.com:443",
      "ex\xc3\xa4mple.com",
      "1.2.3",
      "999.1.1.1",
      "[192.0.2.1]",
      "[::1",
      "::g",
      std::string(64, 'a') + ".com",
      std::string(250, 'a').insert(60, ".").insert(120, ".").insert(180, ".") + ".com",
  };
  for (const auto& c : cases) {
    auto r = ParseSanName(c);
    EXPECT_FALSE(r.ok()) << "accepted: " << c;
    if (!r.ok()) {
      EXPECT_NE(r.error().find("invalid host name"), std::string::npos);
    }
  }
}

TEST(HostName, LengthLimitIs253) {
  std::string name;
  while (name.size() < 253) name += "abcdefghi.";
  name.resize(253);
  if (name.back() == '.') name.back() = 'x';
  EXPECT_TRUE(ParseSanName(name).ok());
  EXPECT_FALSE(ParseSanName(name + "x").ok());
}

TEST(HostName, ErrorNeverEchoesControlBytes) {
  auto r = ParseSanName(std::string("a\nb\x01.com"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().find('\n'), std::string::npos);
  EXPECT_NE(r.error().find("\\x0a"), std::string::npos);
}

}  // namespace
}  // namespace mintgate::tls
