#include "proxy/runtime/destination_policy.h"

#include <gtest/gtest.h>

#include "proxy/config/config_loader.h"

namespace mintgate::proxy {
namespace {

rules::IpAddress Ip(const char* text) { return *rules::IpAddress::Parse(text); }

Config ConfigOf(const std::string& toml) {
  ConfigLoadResult r = ConfigLoader::Parse(toml, "/etc/mintgate/mintgate.toml");
  EXPECT_TRUE(r.ok()) << (r.errors.empty() ? "" : r.errors[0].ToString());
  return r.config;
}

// Every range the audit found missing, in every spelling a client can reach it with.
TEST(DestinationPolicy, RefusesTheBuiltInRangesInEveryForm) {
  const DestinationPolicy policy = DestinationPolicy::FromConfig(ConfigOf(""), {});
  for (const char* forbidden :
       {"127.0.0.1", "127.9.9.9", "::1", "0.0.0.0", "::", "169.254.169.254", "fe80::1",
        "100.100.100.200", "100.64.0.1", "fd00:ec2::254", "fc00::1", "fec0::1", "224.0.0.1",
        "ff02::1", "255.255.255.255", "240.0.0.1",
        // The IPv4 inside an IPv6 address is judged too.
        "::ffff:127.0.0.1", "::ffff:169.254.169.254", "::169.254.169.254", "64:ff9b::a9fe:a9fe",
        "64:ff9b::7f00:1", "2002:a9fe:a9fe::1", "2002:7f00:1::", "64:ff9b:1::a9fe:a9fe"}) {
    EXPECT_TRUE(policy.Check(Ip(forbidden), 443)) << forbidden;
  }
  for (const char* allowed : {"93.184.216.34", "10.1.2.3", "192.168.1.1", "172.16.0.1",
                              "2606:2800:220:1::1", "64:ff9b::5db8:d822", "2002:5db8:d822::1"}) {
    EXPECT_FALSE(policy.Check(Ip(allowed), 443))
        << allowed << ": " << *policy.Check(Ip(allowed), 443);
  }
  const std::optional<std::string> why = policy.Check(Ip("::ffff:169.254.169.254"), 80);
  ASSERT_TRUE(why);
  EXPECT_NE(why->find("169.254.0.0/16"), std::string::npos) << *why;
  EXPECT_NE(why->find("link-local"), std::string::npos) << *why;
}

TEST(DestinationPolicy, DenyDestinationsAddToTheList) {
  const DestinationPolicy policy = DestinationPolicy::FromConfig(
      ConfigOf("[server]\ndeny_destinations = [\"10.0.0.0/8\", \"2001:db8::/32\"]\n"), {});
  EXPECT_TRUE(policy.Check(Ip("10.9.8.7"), 443));
  EXPECT_TRUE(policy.Check(Ip("::ffff:10.9.8.7"), 443));
  EXPECT_TRUE(policy.Check(Ip("64:ff9b::a09:807"), 443));
  EXPECT_TRUE(policy.Check(Ip("2001:db8::5"), 443));
  EXPECT_NE(policy.Check(Ip("10.9.8.7"), 443)->find("server.deny_destinations"), std::string::npos);
  EXPECT_FALSE(policy.Check(Ip("192.168.0.1"), 443));
  EXPECT_TRUE(policy.Check(Ip("169.254.169.254"), 443));  // the built-in list stays
}

// With loopback origins allowed (tests and labs), the gateway's own listeners stay refused by
// address and port in every spelling, and wildcard listeners by every address of the host.
TEST(DestinationPolicy, OwnListenersAreRefusedByAddressAndPort) {
  const Config config = ConfigOf(
      "[server]\nlisten = [\"127.0.0.1:3128\", \"0.0.0.0:3129\"]\nallow_loopback_upstreams = "
      "true\n[admin]\nlisten = \"127.0.0.1:9090\"\n");
  const DestinationPolicy policy = DestinationPolicy::FromConfig(config, {Ip("192.0.2.10")});
  EXPECT_FALSE(policy.Check(Ip("127.0.0.1"), 8080));  // another loopback service: allowed here
  EXPECT_TRUE(policy.Check(Ip("127.0.0.1"), 3128));
  EXPECT_TRUE(policy.Check(Ip("127.0.0.1"), 9090));
  EXPECT_TRUE(policy.Check(Ip("::ffff:127.0.0.1"), 9090));
  EXPECT_TRUE(policy.Check(Ip("::127.0.0.1"), 9090));
  EXPECT_FALSE(policy.Check(Ip("127.0.0.2"), 9090));  // not bound there
  // The wildcard listener answers on every local address.
  EXPECT_TRUE(policy.Check(Ip("127.0.0.2"), 3129));
  EXPECT_TRUE(policy.Check(Ip("192.0.2.10"), 3129));
  EXPECT_TRUE(policy.Check(Ip("0.0.0.0"), 3129));
  EXPECT_FALSE(policy.Check(Ip("192.0.2.11"), 3129));
  const std::optional<std::string> why = policy.Check(Ip("::ffff:127.0.0.1"), 9090);
  ASSERT_TRUE(why);
  EXPECT_NE(why->find("admin listener 127.0.0.1:9090"), std::string::npos) << *why;
}

TEST(DestinationPolicy, Ports) {
  const DestinationPolicy defaults = DestinationPolicy::FromConfig(ConfigOf(""), {});
  EXPECT_FALSE(defaults.CheckConnectPort(443));
  EXPECT_TRUE(defaults.CheckConnectPort(22));
  // Like Squid's Safe_ports: 80, 443 and the unprivileged ports.
  for (std::uint16_t port : {80, 443, 1025, 8080, 65535})
    EXPECT_FALSE(defaults.CheckHttpPort(port));
  for (std::uint16_t port : {22, 25, 79, 81, 1024}) {
    ASSERT_TRUE(defaults.CheckHttpPort(port)) << port;
    EXPECT_NE(defaults.CheckHttpPort(port)->find("server.http_ports"), std::string::npos);
  }
  const DestinationPolicy custom = DestinationPolicy::FromConfig(
      ConfigOf("[server]\nhttp_ports = [8000]\n[inspection]\nconnect_ports = [443, 8443]\n"), {});
  EXPECT_FALSE(custom.CheckHttpPort(8000));
  EXPECT_TRUE(custom.CheckHttpPort(80));
  EXPECT_FALSE(custom.CheckConnectPort(8443));
}

}  // namespace
}  // namespace mintgate::proxy
