// systemd's service notification protocol (sd_notify(3)), without libsystemd: a unit with
// Type=notify learns that the gateway is ready, reloading or stopping from one datagram each,
// sent to the AF_UNIX socket that systemd names in $NOTIFY_SOCKET. Outside systemd (the
// variable unset) every call does nothing and returns false, so callers need no condition.
//
// The gateway's main loop sends, in this order:
//   NotifyReady("...")   once every listener (workers and admin) is up;
//   NotifyReloading()    when a reload (SIGHUP, POST /reload) starts, then
//   NotifyReloaded()     when it has ended, applied or rejected (the old configuration serves);
//   NotifyStopping()     when a drain starts (SIGTERM, SIGINT).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace mintgate::proxy {

// Sends `state` ("KEY=VALUE" lines separated by '\n') as one datagram to $NOTIFY_SOCKET: an
// absolute path, or an abstract socket when it starts with '@'. Returns false, having sent
// nothing, when the variable is unset, empty or names no socket this supports (systemd's
// "vsock:" form); false too when the send fails (errno then says why). Never throws, never
// raises SIGPIPE, and blocks at most about a second when systemd does not read its queue.
bool NotifyService(std::string_view state) noexcept;

// "READY=1\nSTATUS=<status>": the listeners are up; `status` is shown by `systemctl status`.
bool NotifyReady(std::string_view status) noexcept;

// "RELOADING=1\nMONOTONIC_USEC=<CLOCK_MONOTONIC now, µs>": a reload has started. systemd 253
// and later require the timestamp with RELOADING=1 (Type=notify-reload); older ones ignore it.
bool NotifyReloading() noexcept;

// "READY=1": the reload has ended, whatever its outcome.
bool NotifyReloaded() noexcept;

// "STOPPING=1": the gateway no longer accepts and is draining.
bool NotifyStopping() noexcept;

// The messages themselves, for the functions above and their tests. A STATUS value stays on
// one line: line breaks in it become spaces.
std::string ReadyMessage(std::string_view status);
std::string ReloadingMessage(std::uint64_t monotonic_usec);

// CLOCK_MONOTONIC in microseconds, the clock MONOTONIC_USEC is read against.
std::uint64_t MonotonicMicroseconds() noexcept;

}  // namespace mintgate::proxy
