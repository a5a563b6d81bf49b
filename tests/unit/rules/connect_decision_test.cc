#include "rules/connect_decision.h"

#include <gtest/gtest.h>

namespace mintgate::rules {
namespace {

Decision Made(const char* rule, Action action) {
  Decision d;
  d.rule = rule;
  d.action = action;
  return d;
}

const Decision kDefaultDecrypt = Made("default", Action::kDecrypt);
const Decision kDefaultTunnel = Made("default", Action::kTunnel);
const Decision kBankTunnel = Made("no-decrypt-bank", Action::kTunnel);
const Decision kIpTunnel = Made("partner-net", Action::kTunnel);
const Decision kShopDecrypt = Made("shop", Action::kDecrypt);
const Decision kBlock = Made("block-bad", Action::kBlock);

std::string Winner(const Decision& host, const Decision& sni, bool bound) {
  return CombineConnectDecisions(host, sni, bound).rule;
}

// The audit's case: CONNECT to an address nothing matches, with a bank's SNI.
TEST(ConnectDecision, AnSniTunnelNeedsTheDestinationToBeTheSnis) {
  EXPECT_EQ(Winner(kDefaultDecrypt, kBankTunnel, true), "no-decrypt-bank");
  EXPECT_EQ(Winner(kDefaultDecrypt, kBankTunnel, false), "default");
  EXPECT_TRUE(SniBindingMatters(kDefaultDecrypt, kBankTunnel));
  // With a default that tunnels, the SNI changes nothing: no lookup needed (and the decision
  // that holds without one is the default rule's).
  EXPECT_FALSE(SniBindingMatters(kDefaultTunnel, kBankTunnel));
  EXPECT_EQ(Winner(kDefaultTunnel, kBankTunnel, false), "default");
}

TEST(ConnectDecision, TheStricterOfTwoMatchedRulesWins) {
  EXPECT_EQ(Winner(kIpTunnel, kShopDecrypt, false), "shop");  // decrypt binds itself
  EXPECT_EQ(Winner(kIpTunnel, kBlock, false), "block-bad");   // block needs no binding
  EXPECT_EQ(Winner(kShopDecrypt, kBankTunnel, true), "shop");
  EXPECT_EQ(Winner(kIpTunnel, kBankTunnel, true), "partner-net");  // both tunnel: the host's
  EXPECT_EQ(Winner(kIpTunnel, kBankTunnel, false), "partner-net");
  EXPECT_FALSE(SniBindingMatters(kIpTunnel, kBankTunnel));
  EXPECT_FALSE(SniBindingMatters(kShopDecrypt, kBankTunnel));
}

TEST(ConnectDecision, TheDefaultRuleOnEitherSideDefersToAMatchedRule) {
  EXPECT_EQ(Winner(kIpTunnel, kDefaultDecrypt, false), "partner-net");
  EXPECT_EQ(Winner(kDefaultTunnel, kShopDecrypt, false), "shop");
  EXPECT_EQ(Winner(kDefaultDecrypt, kDefaultDecrypt, false), "default");
  EXPECT_FALSE(SniBindingMatters(kDefaultDecrypt, kShopDecrypt));
}

}  // namespace
}  // namespace mintgate::rules
