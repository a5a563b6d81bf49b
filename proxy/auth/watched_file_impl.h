// Private to proxy/auth: WatchedFile's template definitions (watched_file.h includes this).
#pragma once

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace mintgate::proxy::auth {

template <typename Parsed>
std::string WatchedFile<Parsed>::ReadLocked(std::vector<std::string>* warnings) {
  const std::string where = key_ + " \"" + path_ + "\"";
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0) return where + ": cannot read: " + std::strerror(errno);
  std::ifstream in(path_, std::ios::binary);
  if (!in) return where + ": cannot read: " + std::strerror(errno);
  std::ostringstream text;
  text << in.rdbuf();
  if (secret_ && warnings != nullptr && (st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    warnings->push_back(where + " is readable by group or others (mode " + mode +
                        "); run: chmod 600 " + path_);
  }
  std::vector<std::string> lines;
  auto parsed = std::make_shared<const Parsed>(parse_(text.str(), &lines));
  if (warnings != nullptr) {
    for (std::string& line : lines) warnings->push_back(where + ": " + std::move(line));
  }
  contents_ = std::move(parsed);
  stamp_ = Stamp{st.st_ino, st.st_size,
                 std::int64_t(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec};
  return "";
}

template <typename Parsed>
std::string WatchedFile<Parsed>::Load(std::vector<std::string>* warnings) {
  std::lock_guard lock(mu_);
  checked_ = std::chrono::steady_clock::now();
  return ReadLocked(warnings);
}

template <typename Parsed>
std::shared_ptr<const Parsed> WatchedFile<Parsed>::Get() {
  std::lock_guard lock(mu_);
  const auto now = std::chrono::steady_clock::now();
  if (now - checked_ >= interval_) {
    checked_ = now;
    struct stat st {};
    if (::stat(path_.c_str(), &st) == 0) {
      const Stamp seen{st.st_ino, st.st_size,
                       std::int64_t(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec};
      // A file that cannot be read now keeps its last good contents.
      if (!(seen == stamp_)) ReadLocked(nullptr);
    }
  }
  return contents_;
}

}  // namespace mintgate::proxy::auth
