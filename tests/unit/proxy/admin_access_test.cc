#include "proxy/config/admin_access.h"

#include <gtest/gtest.h>

namespace mintgate::proxy {
namespace {

bool Allowed(const char* host, const HostPort& listen) {
  return AdminHostProblem(host, listen).empty();
}

TEST(AdminHost, TheLoopbackListenerByAddressOrLocalhost) {
  const HostPort listen{"127.0.0.1", 9090};
  for (const char* ok :
       {"127.0.0.1", "127.0.0.1:9090", "localhost", "localhost:9090", "LocalHost:9090"}) {
    EXPECT_TRUE(Allowed(ok, listen)) << ok;
  }
  for (const char* bad : {"127.0.0.1:9091",
                          "localhost:80",
                          "127.0.0.2",
                          "127.0.0.1:",
                          "127.0.0.1:09090x",
                          "127.0.0.1:+9090",
                          "[::1]:9090",
                          "[127.0.0.1]",
                          "127.1",
                          "2130706433",
                          "0x7f.0.0.1",
                          "127.000.000.001",
                          "localhost.",
                          "localhost.evil.example",
                          "evil.example",
                          "evil.example:9090",
                          "",
                          ":9090",
                          "127.0.0.1:9090:9090",
                          "127.0.0.1 ",
                          "user@127.0.0.1",
                          "127.0.0.1/x"}) {
    EXPECT_FALSE(Allowed(bad, listen)) << bad;
  }
  // The 403 says why and how to do it right.
  const std::string problem = AdminHostProblem("evil.example:9090", listen);
  EXPECT_NE(problem.find("Host \"evil.example:9090\" does not name this admin listener "
                         "(127.0.0.1:9090)"),
            std::string::npos)
      << problem;
  EXPECT_NE(problem.find("DNS rebinding"), std::string::npos) << problem;
  EXPECT_NE(problem.find("http://127.0.0.1:9090/"), std::string::npos) << problem;
}

TEST(AdminHost, Ipv6InBracketsOnly) {
  const HostPort listen{"::1", 9090};
  for (const char* ok : {"[::1]", "[::1]:9090", "[0:0:0:0:0:0:0:1]:9090", "localhost:9090"}) {
    EXPECT_TRUE(Allowed(ok, listen)) << ok;
  }
  for (const char* bad : {"::1", "[::1]:9091", "[::1]9090", "[::1", "[::2]:9090", "127.0.0.1:9090",
                          "[::ffff:127.0.0.1]:9090", "[localhost]:9090"}) {
    EXPECT_FALSE(Allowed(bad, listen)) << bad;
  }
}

TEST(AdminHost, ANetworkAddressIsNamedByItselfOnly) {
  const HostPort listen{"192.0.2.10", 9090};
  EXPECT_TRUE(Allowed("192.0.2.10:9090", listen));
  EXPECT_TRUE(Allowed("192.0.2.10", listen));
  EXPECT_FALSE(Allowed("localhost:9090", listen));  // not this listener's address
  EXPECT_FALSE(Allowed("127.0.0.1:9090", listen));
  EXPECT_FALSE(Allowed("gateway.corp.example:9090", listen));
}

TEST(AdminHost, AWildcardListenerTakesAnyAddressButNoName) {
  for (const HostPort& listen : {HostPort{"0.0.0.0", 9090}, HostPort{"::", 9090}}) {
    for (const char* ok : {"127.0.0.1:9090", "192.0.2.10:9090", "10.1.2.3", "[::1]:9090",
                           "[2001:db8::1]", "localhost:9090"}) {
      EXPECT_TRUE(Allowed(ok, listen)) << listen.host << " " << ok;
    }
    for (const char* bad : {"gateway.corp.example:9090", "evil.example", "10.1.2.3:9091"}) {
      EXPECT_FALSE(Allowed(bad, listen)) << listen.host << " " << bad;
    }
  }
}

TEST(AdminHost, ControlBytesAreMaskedInTheReason) {
  const std::string problem = AdminHostProblem("evil\r\nX-Injected: 1", {"127.0.0.1", 9090});
  EXPECT_EQ(problem.find('\r'), std::string::npos);
  EXPECT_EQ(problem.find('\n'), std::string::npos);
}

TEST(AdminHost, Loopback) {
  for (const char* yes : {"127.0.0.1", "127.1.2.3", "::1", "localhost"}) {
    EXPECT_TRUE(IsLoopbackAddress(yes)) << yes;
  }
  for (const char* no : {"0.0.0.0", "::", "192.0.2.1", "::ffff:127.0.0.1", "10.0.0.1", "name"}) {
    EXPECT_FALSE(IsLoopbackAddress(no)) << no;
  }
}

}  // namespace
}  // namespace mintgate::proxy
