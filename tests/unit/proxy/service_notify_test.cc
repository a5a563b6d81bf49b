#include "proxy/control/service_notify.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <filesystem>
#include <optional>
#include <random>
#include <string>

namespace mintgate::proxy {
namespace {

// A real AF_UNIX datagram socket standing in for systemd, and $NOTIFY_SOCKET pointing at it;
// the variable is restored afterwards.
class ServiceNotifyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (const char* value = std::getenv("NOTIFY_SOCKET")) saved_ = value;
    dir_ = (std::filesystem::temp_directory_path() / "mgnotifyXXXXXX").string();
    ASSERT_NE(mkdtemp(dir_.data()), nullptr);
  }
  void TearDown() override {
    if (fd_ >= 0) ::close(fd_);
    if (saved_) {
      ::setenv("NOTIFY_SOCKET", saved_->c_str(), 1);
    } else {
      ::unsetenv("NOTIFY_SOCKET");
    }
    std::filesystem::remove_all(dir_);
  }

  // Binds the receiving socket at `path` (a file) and points NOTIFY_SOCKET at it.
  void BindPath(const std::string& path) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    ASSERT_LT(path.size(), sizeof address.sun_path);
    std::memcpy(address.sun_path, path.data(), path.size());
    Bind(address, static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1));
    ::setenv("NOTIFY_SOCKET", path.c_str(), 1);
  }

  // Binds an abstract socket named `name` and sets NOTIFY_SOCKET to "@name".
  void BindAbstract(const std::string& name) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    ASSERT_LT(name.size(), sizeof address.sun_path);
    std::memcpy(address.sun_path + 1, name.data(), name.size());
    Bind(address, static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size()));
    ::setenv("NOTIFY_SOCKET", ("@" + name).c_str(), 1);
  }

  // The next datagram, or nullopt when none arrives within a second.
  std::optional<std::string> Receive() {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 1000) != 1) return std::nullopt;
    char buffer[4096];
    const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
    if (n < 0) return std::nullopt;
    return std::string(buffer, static_cast<std::size_t>(n));
  }

  // True when nothing is queued on the receiving socket.
  bool NothingQueued() {
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, 50) == 0;
  }

  std::string dir_;
  int fd_ = -1;

 private:
  void Bind(const sockaddr_un& address, socklen_t length) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd_, 0);
    ASSERT_EQ(::bind(fd_, reinterpret_cast<const sockaddr*>(&address), length), 0)
        << std::strerror(errno);
  }

  std::optional<std::string> saved_;
};

TEST_F(ServiceNotifyTest, SendsEachStateAsOneDatagramToAPathSocket) {
  BindPath(dir_ + "/notify");

  EXPECT_TRUE(NotifyService("STATUS=hello"));
  EXPECT_EQ(Receive(), "STATUS=hello");

  EXPECT_TRUE(NotifyReady("listening on 127.0.0.1:3128"));
  EXPECT_EQ(Receive(), "READY=1\nSTATUS=listening on 127.0.0.1:3128");

  const std::uint64_t before = MonotonicMicroseconds();
  EXPECT_TRUE(NotifyReloading());
  const std::uint64_t after = MonotonicMicroseconds();
  const std::optional<std::string> reloading = Receive();
  ASSERT_TRUE(reloading);
  const std::string prefix = "RELOADING=1\nMONOTONIC_USEC=";
  ASSERT_EQ(reloading->substr(0, prefix.size()), prefix) << *reloading;
  const std::string digits = reloading->substr(prefix.size());
  ASSERT_FALSE(digits.empty());
  EXPECT_EQ(digits.find_first_not_of("0123456789"), std::string::npos) << digits;
  const std::uint64_t stamp = std::stoull(digits);
  EXPECT_GE(stamp, before);
  EXPECT_LE(stamp, after);

  EXPECT_TRUE(NotifyReloaded());
  EXPECT_EQ(Receive(), "READY=1");

  EXPECT_TRUE(NotifyStopping());
  EXPECT_EQ(Receive(), "STOPPING=1");
  EXPECT_TRUE(NothingQueued());
}

TEST_F(ServiceNotifyTest, SendsToAnAbstractSocket) {
  std::random_device random;
  BindAbstract("mintgate-notify-test-" + std::to_string(::getpid()) + "-" +
               std::to_string(random()));
  EXPECT_TRUE(NotifyReady("up"));
  EXPECT_EQ(Receive(), "READY=1\nSTATUS=up");
  EXPECT_TRUE(NotifyStopping());
  EXPECT_EQ(Receive(), "STOPPING=1");
}

TEST_F(ServiceNotifyTest, DoesNothingWithoutNotifySocket) {
  BindPath(dir_ + "/notify");
  ::unsetenv("NOTIFY_SOCKET");
  EXPECT_FALSE(NotifyService("READY=1"));
  EXPECT_FALSE(NotifyReady("up"));
  EXPECT_FALSE(NotifyReloading());
  EXPECT_FALSE(NotifyReloaded());
  EXPECT_FALSE(NotifyStopping());
  ::setenv("NOTIFY_SOCKET", "", 1);
  EXPECT_FALSE(NotifyService("READY=1"));
  EXPECT_TRUE(NothingQueued());
}

TEST_F(ServiceNotifyTest, FailsForASocketThatIsNotThere) {
  ::setenv("NOTIFY_SOCKET", (dir_ + "/nobody-listens").c_str(), 1);
  EXPECT_FALSE(NotifyService("READY=1"));
  EXPECT_FALSE(NotifyStopping());
  // Forms it does not support: relative paths, a bare '@', vsock, a path too long for
  // sockaddr_un.
  for (const std::string& value : {std::string("notify"), std::string("@"),
                                   std::string("vsock:2:1234"), "/" + std::string(200, 'x')}) {
    ::setenv("NOTIFY_SOCKET", value.c_str(), 1);
    EXPECT_FALSE(NotifyService("READY=1")) << value;
  }
}

TEST_F(ServiceNotifyTest, StatusStaysOnOneLine) {
  EXPECT_EQ(ReadyMessage("a\nb\r\nc"), "READY=1\nSTATUS=a b  c");
  EXPECT_EQ(ReadyMessage(""), "READY=1\nSTATUS=");
  EXPECT_EQ(ReloadingMessage(1234567), "RELOADING=1\nMONOTONIC_USEC=1234567");
}

}  // namespace
}  // namespace mintgate::proxy
