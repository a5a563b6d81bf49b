#include "rules/action.h"

#include <gtest/gtest.h>

namespace mintgate::rules {
namespace {

TEST(Action, RoundTripsEveryName) {
  for (Action a : {Action::kDecrypt, Action::kTunnel, Action::kBlock}) {
    auto parsed = ParseAction(ToString(a));
    ASSERT_TRUE(parsed.has_value());
    EXPECT_EQ(*parsed, a);
  }
}

TEST(Action, RejectsUnknownAndCaseVariants) {
  EXPECT_FALSE(ParseAction("Decrypt").has_value());
  EXPECT_FALSE(ParseAction("allow").has_value());
  EXPECT_FALSE(ParseAction("").has_value());
}

}  // namespace
}  // namespace mintgate::rules
