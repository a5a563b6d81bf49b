#include "proxy/http/form.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace mintgate::proxy {
namespace {

TEST(PercentDecode, DecodesEscapesInEitherCase) {
  EXPECT_EQ(PercentDecode("a%20b"), "a b");
  EXPECT_EQ(PercentDecode("%2f%2F%41"), "//A");
  EXPECT_EQ(PercentDecode("%e2%82%ac"), "\xe2\x82\xac");
  EXPECT_EQ(PercentDecode("%00x"), std::string("\0x", 2));
  EXPECT_EQ(PercentDecode(""), "");
}

TEST(PercentDecode, PlusIsASpaceOnlyWhenAsked) {
  EXPECT_EQ(PercentDecode("a+b"), "a+b");
  EXPECT_EQ(PercentDecode("a+b", true), "a b");
  EXPECT_EQ(PercentDecode("a%2Bb", true), "a+b");
}

TEST(PercentDecode, KeepsBadEscapesAsTheyAre) {
  EXPECT_EQ(PercentDecode("%"), "%");
  EXPECT_EQ(PercentDecode("a%"), "a%");
  EXPECT_EQ(PercentDecode("a%4"), "a%4");
  EXPECT_EQ(PercentDecode("%zz"), "%zz");
  EXPECT_EQ(PercentDecode("%4g%41"), "%4gA");
  EXPECT_EQ(PercentDecode("100%"), "100%");
  EXPECT_EQ(PercentDecode("%%41"), "%A");
}

TEST(ParseForm, DecodesNamesAndValues) {
  const auto form = ParseForm("user=j%C3%B6rg&password=a+b%26c%3Dd&return=https%3A%2F%2Fx%2F");
  ASSERT_EQ(form.size(), 3u);
  EXPECT_EQ(form.at("user"), "j\xc3\xb6rg");
  EXPECT_EQ(form.at("password"), "a b&c=d");
  EXPECT_EQ(form.at("return"), "https://x/");
  EXPECT_EQ(ParseForm("my+name=1").at("my name"), "1");
  EXPECT_EQ(ParseForm("a=b=c").at("a"), "b=c");
}

TEST(ParseForm, RepeatedNameKeepsTheFirstValue) {
  const auto form = ParseForm("csrf=first&csrf=second&x=1&csrf=");
  EXPECT_EQ(form.at("csrf"), "first");
  EXPECT_EQ(form.at("x"), "1");
  EXPECT_EQ(form.size(), 2u);
}

TEST(ParseForm, EmptyPairsAndMissingValues) {
  EXPECT_TRUE(ParseForm("").empty());
  EXPECT_TRUE(ParseForm("&&&").empty());
  const auto form = ParseForm("&a=1&&b&c=&");
  ASSERT_EQ(form.size(), 3u);
  EXPECT_EQ(form.at("a"), "1");
  EXPECT_EQ(form.at("b"), "");
  EXPECT_EQ(form.at("c"), "");
  // "=v" is a pair with an empty name, not an empty pair.
  EXPECT_EQ(ParseForm("=v").at(""), "v");
}

TEST(QueryValue, FindsTheDecodedValue) {
  EXPECT_EQ(QueryValue("/login?return=https%3A%2F%2Fexample.com%2Fa%3Fb%3D1", "return"),
            "https://example.com/a?b=1");
  EXPECT_EQ(QueryValue("/p?a=1&b=2", "a"), "1");
  EXPECT_EQ(QueryValue("/p?a=1&b=2", "b"), "2");
  EXPECT_EQ(QueryValue("/p?a=x+y&a=2", "a"), "x y");
  EXPECT_EQ(QueryValue("/p?a=1#b=2", "b"), "");
  EXPECT_EQ(QueryValue("/p?a=1#frag", "a"), "1");
  EXPECT_EQ(QueryValue("?a=1", "a"), "1");
}

TEST(QueryValue, EmptyWhenAbsent) {
  EXPECT_EQ(QueryValue("/login", "return"), "");
  EXPECT_EQ(QueryValue("/login?", "return"), "");
  EXPECT_EQ(QueryValue("/login?returned=1&xreturn=2", "return"), "");
  EXPECT_EQ(QueryValue("/login?return", "return"), "");
  EXPECT_EQ(QueryValue("", "return"), "");
}

TEST(CookieValue, ReadsEveryCookieHeader) {
  const std::vector<HttpHeader> headers = {
      {"Host", "mintgate.portal"},       {"Cookie", "a=1; b=2"}, {"Accept", "*/*"},
      {"cookie", "mg_csrf=tok%3D; c=3"}, {"COOKIE", "d=4"},
  };
  EXPECT_EQ(CookieValue(headers, "a"), "1");
  EXPECT_EQ(CookieValue(headers, "b"), "2");
  EXPECT_EQ(CookieValue(headers, "mg_csrf"), "tok%3D");  // a cookie value is not decoded
  EXPECT_EQ(CookieValue(headers, "c"), "3");
  EXPECT_EQ(CookieValue(headers, "d"), "4");
  EXPECT_EQ(CookieValue(headers, "e"), "");
  EXPECT_EQ(CookieValue(headers, "Host"), "");
  EXPECT_EQ(CookieValue({}, "a"), "");
}

TEST(CookieValue, SpacingAndLookalikes) {
  const std::vector<HttpHeader> headers = {
      {"Cookie", "a=1;b=2;   c=3;d=; session_x=no; session=yes=1"},
  };
  EXPECT_EQ(CookieValue(headers, "a"), "1");
  EXPECT_EQ(CookieValue(headers, "b"), "2");
  EXPECT_EQ(CookieValue(headers, "c"), "3");
  EXPECT_EQ(CookieValue(headers, "d"), "");
  EXPECT_EQ(CookieValue(headers, "session"), "yes=1");
  EXPECT_EQ(CookieValue(headers, "sess"), "");
  EXPECT_EQ(CookieValue(headers, "A"), "");  // names are case-sensitive
  // The first occurrence wins, also across headers.
  EXPECT_EQ(CookieValue({{"Cookie", "x=first"}, {"Cookie", "x=second"}}, "x"), "first");
}

TEST(PercentEncode, EncodesAllButUnreserved) {
  EXPECT_EQ(PercentEncode("AZaz09-._~"), "AZaz09-._~");
  EXPECT_EQ(PercentEncode("a b/c?d=e&f#g+h%"), "a%20b%2Fc%3Fd%3De%26f%23g%2Bh%25");
  EXPECT_EQ(PercentEncode("\xe2\x82\xac"), "%E2%82%AC");
  EXPECT_EQ(PercentEncode(std::string("\0\x7f\xff", 3)), "%00%7F%FF");
  EXPECT_EQ(PercentEncode(""), "");
}

TEST(PercentEncode, RoundTrips) {
  std::string every_byte;
  for (int c = 0; c < 256; ++c) every_byte += static_cast<char>(c);
  EXPECT_EQ(PercentDecode(PercentEncode(every_byte)), every_byte);
  EXPECT_EQ(PercentDecode(PercentEncode(every_byte), true), every_byte);
  const std::string url = "https://example.com/a b?c=d&e=f+g#h";
  EXPECT_EQ(QueryValue("/login?return=" + PercentEncode(url), "return"), url);
  EXPECT_EQ(ParseForm("return=" + PercentEncode(url)).at("return"), url);
}

}  // namespace
}  // namespace mintgate::proxy
