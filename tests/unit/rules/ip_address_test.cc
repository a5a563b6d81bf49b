#include "rules/ip_address.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

namespace mintgate::rules {
namespace {

TEST(IpAddress, ParsesDottedQuad) {
  auto a = IpAddress::Parse("192.0.2.255");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->family(), IpAddress::Family::kV4);
  EXPECT_EQ(a->bytes()[0], 192);
  EXPECT_EQ(a->bytes()[3], 255);
  EXPECT_EQ(a->ToString(), "192.0.2.255");
  EXPECT_TRUE(IpAddress::Parse("0.0.0.0"));
}

TEST(IpAddress, RejectsMalformedIpv4) {
  for (const char* text :
       {"", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "1.2.3.04", "1..2.3", "1.2.3.4.",
        "a.b.c.d", "1.2.3.-4", "[1.2.3.4]", " 1.2.3.4", "1234.1.1.1"}) {
    EXPECT_FALSE(IpAddress::Parse(text)) << text;
  }
}

TEST(IpAddress, ParsesIpv6Forms) {
  struct Case {
    const char* text;
    const char* canonical;
  };
  for (const Case& c : {Case{"::", "::"}, Case{"::1", "::1"}, Case{"[::1]", "::1"},
                        Case{"2001:DB8::1", "2001:db8::1"}, Case{"1::", "1::"},
                        Case{"1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"},
                        Case{"2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"},
                        Case{"2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"},
                        Case{"::ffff:1.2.3.4", "::ffff:102:304"},
                        Case{"1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:102:304"}}) {
    auto a = IpAddress::Parse(c.text);
    ASSERT_TRUE(a) << c.text;
    EXPECT_EQ(a->family(), IpAddress::Family::kV6) << c.text;
    EXPECT_EQ(a->ToString(), c.canonical) << c.text;
  }
}

TEST(IpAddress, RejectsMalformedIpv6) {
  for (const char* text : {":", ":::", "1:::2", "1::2::3", "1:2:3:4:5:6:7", "1:2:3:4:5:6:7:8:9",
                           "12345::", "g::1", ":1::", "1::2:", "::1.2.3", "::1.2.3.4:5",
                           "1:2:3:4:5:6:7:1.2.3.4", "fe80::1%eth0", "[::1", "::1]"}) {
    EXPECT_FALSE(IpAddress::Parse(text)) << text;
  }
}

TEST(IpAddress, MappedIpv4StaysIpv6) {
  auto mapped = IpAddress::Parse("::ffff:1.2.3.4");
  auto plain = IpAddress::Parse("1.2.3.4");
  ASSERT_TRUE(mapped && plain);
  EXPECT_NE(*mapped, *plain);
  EXPECT_FALSE(Cidr::Single(*plain).Contains(*mapped));
  EXPECT_FALSE(Cidr::Single(*mapped).Contains(*plain));
}

TEST(Cidr, ParsesAndContains) {
  std::string error;
  auto block = Cidr::Parse("10.0.0.0/8", &error);
  ASSERT_TRUE(block) << error;
  EXPECT_TRUE(block->Contains(*IpAddress::Parse("10.255.1.2")));
  EXPECT_FALSE(block->Contains(*IpAddress::Parse("11.0.0.0")));
  auto odd = Cidr::Parse("192.168.0.0/17", &error);
  ASSERT_TRUE(odd);
  EXPECT_TRUE(odd->Contains(*IpAddress::Parse("192.168.127.255")));
  EXPECT_FALSE(odd->Contains(*IpAddress::Parse("192.168.128.0")));
  auto v6 = Cidr::Parse("2001:db8::/32", &error);
  ASSERT_TRUE(v6);
  EXPECT_TRUE(v6->Contains(*IpAddress::Parse("2001:db8:ffff::1")));
  EXPECT_FALSE(v6->Contains(*IpAddress::Parse("2001:db9::1")));
  EXPECT_FALSE(v6->Contains(*IpAddress::Parse("10.0.0.1")));
}

TEST(Cidr, EdgePrefixLengths) {
  std::string error;
  auto all_v4 = Cidr::Parse("0.0.0.0/0", &error);
  ASSERT_TRUE(all_v4);
  EXPECT_TRUE(all_v4->Contains(*IpAddress::Parse("255.255.255.255")));
  EXPECT_FALSE(all_v4->Contains(*IpAddress::Parse("::1")));
  auto all_v6 = Cidr::Parse("::/0", &error);
  ASSERT_TRUE(all_v6);
  EXPECT_TRUE(all_v6->Contains(*IpAddress::Parse("::ffff:1.2.3.4")));
  EXPECT_FALSE(all_v6->Contains(*IpAddress::Parse("1.2.3.4")));
  auto one = Cidr::Parse("1.2.3.4/32", &error);
  ASSERT_TRUE(one);
  EXPECT_TRUE(one->Contains(*IpAddress::Parse("1.2.3.4")));
  EXPECT_FALSE(one->Contains(*IpAddress::Parse("1.2.3.5")));
  auto single = Cidr::Parse("2001:db8::1", &error);
  ASSERT_TRUE(single);
  EXPECT_EQ(single->prefix_length(), 128);
  EXPECT_EQ(single->ToString(), "2001:db8::1/128");
  EXPECT_FALSE(single->Contains(*IpAddress::Parse("2001:db8::2")));
  EXPECT_EQ(Cidr::Parse("1.2.3.4", &error)->prefix_length(), 32);
}

TEST(Cidr, RejectsBadBlocksWithReasons) {
  std::string error;
  EXPECT_FALSE(Cidr::Parse("10.0.0.1/8", &error));
  EXPECT_EQ(error, "host bits are set below the /8 prefix (did you mean \"10.0.0.0/8\"?)");
  EXPECT_FALSE(Cidr::Parse("10.0.0.0/33", &error));
  EXPECT_EQ(error, "prefix length \"33\" is not a number from 0 to 32");
  EXPECT_FALSE(Cidr::Parse("::/129", &error));
  EXPECT_EQ(error, "prefix length \"129\" is not a number from 0 to 128");
  EXPECT_FALSE(Cidr::Parse("10.0.0.0/", &error));
  EXPECT_FALSE(Cidr::Parse("10.0.0.0/08", &error));
  EXPECT_FALSE(Cidr::Parse("10.0.0.0/8x", &error));
  EXPECT_FALSE(Cidr::Parse("10.0.0/8", &error));
  EXPECT_EQ(error, "\"10.0.0\" is not an IPv4 or IPv6 address");
}

// Found by the host_name fuzzer: a long prefix text overflowed the int it was summed into
// before being refused (undefined behaviour, which the ASan+UBSan build aborts on).
TEST(Cidr, RefusesLongPrefixTextWithoutOverflow) {
  std::string error;
  EXPECT_FALSE(Cidr::Parse("10.0.0.0/99999999999", &error));
  EXPECT_EQ(error, "prefix length \"99999999999\" is not a number from 0 to 32");
  EXPECT_FALSE(Cidr::Parse(std::string_view("::/:=\xaf\x08\0``\0\0:", 13), &error));
  EXPECT_EQ(error.rfind("prefix length ", 0), 0u);
}

}  // namespace
}  // namespace mintgate::rules
