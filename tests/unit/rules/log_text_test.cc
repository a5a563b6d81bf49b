#include "rules/log_text.h"

#include <gtest/gtest.h>

namespace mintgate::rules {
namespace {

TEST(EscapeForLog, PrintableAsciiStaysEverythingElseIsHex) {
  EXPECT_EQ(EscapeForLog("www.example.com"), "www.example.com");
  EXPECT_EQ(EscapeForLog("a\nb\rc\x1b[2Jd"), "a\\x0ab\\x0dc\\x1b[2Jd");
  EXPECT_EQ(EscapeForLog("\"q\" \\"), "\\x22q\\x22 \\x5c");
  EXPECT_EQ(EscapeForLog("caf\xc3\xa9"), "caf\\xc3\\xa9");
  EXPECT_EQ(EscapeForLog(std::string_view("a\0b", 3)), "a\\x00b");
  EXPECT_EQ(EscapeForLog(std::string(300, 'x'), 10), std::string(10, 'x') + "...");
}

}  // namespace
}  // namespace mintgate::rules
