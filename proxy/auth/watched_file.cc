#include "proxy/auth/watched_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>

namespace mintgate::proxy::auth {
namespace {

std::atomic<std::int64_t> interval_ms{kWatchedFileInterval.count()};

// Far above any real htpasswd or groups file: a wrong path (a log, a disk image) fails fast.
constexpr off_t kMaxBytes = off_t{64} << 20;

struct FileText {
  std::string text;
  struct stat st {};
  std::string error;  // why it could not be read; "" when it could
};

FileText ReadWhole(const std::string& path) {
  FileText out;
  // O_NONBLOCK: a FIFO in its place must not hang the caller.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    out.error = std::strerror(errno);
    return out;
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  if (::fstat(fd, &out.st) != 0) {
    out.error = std::strerror(errno);
    return out;
  }
  if (!S_ISREG(out.st.st_mode)) {
    out.error = "not a regular file";
    return out;
  }
  char buffer[16384];
  while (true) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      out.error = std::strerror(errno);
      return out;
    }
    if (n == 0) break;
    out.text.append(buffer, static_cast<std::size_t>(n));
    if (out.text.size() > static_cast<std::size_t>(kMaxBytes)) {
      out.error = "larger than 64 MiB (is it the right file?)";
      return out;
    }
  }
  return out;
}

std::string Mode(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

std::int64_t Nanoseconds(const timespec& t) {
  return std::int64_t{t.tv_sec} * 1'000'000'000 + t.tv_nsec;
}

}  // namespace

void SetWatchedFileIntervalForTesting(std::chrono::milliseconds interval) {
  interval_ms.store(interval.count(), std::memory_order_relaxed);
}

WatchedFile::WatchedFile(std::string path, std::string key, bool secret, Parse parse)
    : path_(std::move(path)), key_(std::move(key)), secret_(secret), parse_(std::move(parse)) {}

WatchedFile::Stamp WatchedFile::StampOf(const struct stat& st) {
  return Stamp{st.st_dev, st.st_ino, st.st_size, Nanoseconds(st.st_mtim), Nanoseconds(st.st_ctim)};
}

std::string WatchedFile::ReadLocked(std::vector<std::string>* warnings) {
  const std::string where = key_ + " \"" + path_ + "\"";
  FileText file = ReadWhole(path_);
  if (!file.error.empty()) {
    std::string why = where + ": cannot read: " + file.error;
    if (contents_) why += " (what it held when last read stays in use)";
    return why;
  }
  const mode_t mode = file.st.st_mode;
  if (warnings != nullptr && secret_ && (mode & 044) != 0) {
    warnings->push_back(where + " is readable by group or others (mode " + Mode(mode) +
                        ") and holds password hashes; run: chmod 600 " + path_);
  }
  if (warnings != nullptr && (mode & 002) != 0) {
    warnings->push_back(where + " is writable by others (mode " + Mode(mode) +
                        "): anyone on this host can change it; run: chmod o-w " + path_);
  }
  std::vector<std::string> lines;
  std::shared_ptr<const void> parsed = parse_(file.text, &lines);
  if (warnings != nullptr) {
    for (const std::string& line : lines) warnings->push_back(where + ": " + line);
  }
  contents_ = std::move(parsed);
  // From the descriptor read: a change made while reading differs from it and is read again.
  stamp_ = StampOf(file.st);
  return "";
}

std::string WatchedFile::Load(std::vector<std::string>* warnings) {
  std::lock_guard lock(mu_);
  looked_ = std::chrono::steady_clock::now();
  return ReadLocked(warnings);
}

std::shared_ptr<const void> WatchedFile::Get() {
  std::lock_guard lock(mu_);
  const auto now = std::chrono::steady_clock::now();
  const std::chrono::milliseconds interval(interval_ms.load(std::memory_order_relaxed));
  if (!looked_ || now - *looked_ >= interval) {
    looked_ = now;
    struct stat st {};
    // A file gone or unreadable keeps what it held (Load says why); a changed one is read.
    if (::stat(path_.c_str(), &st) == 0 && stamp_ != StampOf(st)) ReadLocked(nullptr);
  }
  return contents_;
}

}  // namespace mintgate::proxy::auth
