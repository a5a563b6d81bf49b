#include "proxy/control/service_notify.h"

#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <ctime>

namespace mintgate::proxy {
namespace {

// The address $NOTIFY_SOCKET names, with its length; false when it names none we support.
bool NotifyAddress(const char* name, sockaddr_un& address, socklen_t& length) {
  if (name == nullptr) return false;
  const std::size_t size = std::strlen(name);
  address = {};
  address.sun_family = AF_UNIX;
  if (name[0] == '/') {
    if (size >= sizeof address.sun_path) return false;  // no room for the terminating NUL
    std::memcpy(address.sun_path, name, size);
    length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + size + 1);
    return true;
  }
  if (name[0] == '@' && size > 1) {
    // Abstract: a leading NUL, then the name's bytes; the length says where it ends.
    if (size > sizeof address.sun_path) return false;
    std::memcpy(address.sun_path + 1, name + 1, size - 1);
    length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + size);
    return true;
  }
  return false;
}

}  // namespace

bool NotifyService(std::string_view state) noexcept {
  sockaddr_un address;
  socklen_t length = 0;
  if (!NotifyAddress(std::getenv("NOTIFY_SOCKET"), address, length)) return false;

  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  // A datagram send waits only while the receiver's queue is full: systemd reads it at once,
  // so this bounds a stuck manager rather than a normal send.
  const timeval timeout{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  ssize_t sent;
  do {
    sent = ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL,
                    reinterpret_cast<const sockaddr*>(&address), length);
  } while (sent < 0 && errno == EINTR);
  const int saved = errno;
  ::close(fd);
  errno = saved;
  return sent >= 0 && static_cast<std::size_t>(sent) == state.size();
}

std::string ReadyMessage(std::string_view status) {
  std::string message = "READY=1\nSTATUS=";
  for (char c : status) message += (c == '\n' || c == '\r') ? ' ' : c;
  return message;
}

std::string ReloadingMessage(std::uint64_t monotonic_usec) {
  return "RELOADING=1\nMONOTONIC_USEC=" + std::to_string(monotonic_usec);
}

std::uint64_t MonotonicMicroseconds() noexcept {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<std::uint64_t>(now.tv_sec) * 1000000u +
         static_cast<std::uint64_t>(now.tv_nsec) / 1000u;
}

bool NotifyReady(std::string_view status) noexcept {
  try {
    return NotifyService(ReadyMessage(status));
  } catch (...) {  // std::bad_alloc: a notification is never worth a crash
    return false;
  }
}

bool NotifyReloading() noexcept {
  try {
    return NotifyService(ReloadingMessage(MonotonicMicroseconds()));
  } catch (...) {
    return false;
  }
}

bool NotifyReloaded() noexcept { return NotifyService("READY=1"); }

bool NotifyStopping() noexcept { return NotifyService("STOPPING=1"); }

}  // namespace mintgate::proxy
