#include "proxy/config/rfc3339.h"

#include <gtest/gtest.h>

namespace mintgate::proxy {
namespace {

long long Epoch(std::string_view text) {
  auto t = ParseRfc3339(text);
  return t ? t->time_since_epoch().count() : -1;
}

TEST(Rfc3339, ParsesOffsetsAndZulu) {
  EXPECT_EQ(Epoch("2022-06-29T15:00:00Z"), 1656514800);
  EXPECT_EQ(Epoch("2022-06-30T00:00:00+09:00"), 1656514800);
  EXPECT_EQ(Epoch("2022-06-29T10:30:00-04:30"), 1656514800);
  EXPECT_EQ(Epoch("2022-06-29t15:00:00z"), 1656514800);
  EXPECT_EQ(Epoch("2022-06-29 15:00:00.123456Z"), 1656514800);
  EXPECT_EQ(Epoch("2024-02-29T00:00:00Z"), 1709164800);  // a leap day
}

TEST(Rfc3339, RefusesAnythingElse) {
  for (const char* bad :
       {"", "yesterday", "2022-06-30", "2022-06-30T00:00:00", "2022-06-30T00:00:00+0900",
        "2022-13-01T00:00:00Z", "2023-02-29T00:00:00Z", "2022-06-30T24:00:00Z",
        "2022-06-30T00:00:00Zx", "2022-06-30T00:00:00.Z", "2022-6-30T00:00:00Z"}) {
    EXPECT_FALSE(ParseRfc3339(bad).has_value()) << bad;
  }
}

}  // namespace
}  // namespace mintgate::proxy
