// Private to proxy/auth: a small text file read again when it changes (its inode, size or
// modification time), checked at most once per interval, keeping the last good contents when
// it becomes unreadable. Thread-safe.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace mintgate::proxy::auth {

template <typename Parsed>
class WatchedFile {
 public:
  // `parse` turns the file's text into Parsed, adding one warning per unusable line.
  using Parse = std::function<Parsed(const std::string& text, std::vector<std::string>* warnings)>;
  // `secret`: warn when group or others can read it (password hashes).
  WatchedFile(std::string path, std::string key, Parse parse, bool secret,
              std::chrono::milliseconds interval = std::chrono::seconds(1))
      : path_(std::move(path)),
        key_(std::move(key)),
        parse_(std::move(parse)),
        secret_(secret),
        interval_(interval) {}

  // Reads the file now: "" when usable (the contents replace the old ones), else why not.
  std::string Load(std::vector<std::string>* warnings);
  // The contents, read again first when the file changed (at most once per interval). Null
  // until a read succeeded.
  std::shared_ptr<const Parsed> Get();
  const std::string& path() const { return path_; }

 private:
  struct Stamp {
    ino_t inode = 0;
    off_t size = -1;
    std::int64_t mtime_ns = 0;
    bool operator==(const Stamp&) const = default;
  };
  std::string ReadLocked(std::vector<std::string>* warnings);

  const std::string path_;
  const std::string key_;  // the configuration key, for messages ("auth.htpasswd")
  const Parse parse_;
  const bool secret_;
  const std::chrono::milliseconds interval_;
  std::mutex mu_;
  std::shared_ptr<const Parsed> contents_;
  Stamp stamp_;
  std::chrono::steady_clock::time_point checked_{};
};

}  // namespace mintgate::proxy::auth

#include "proxy/auth/watched_file_impl.h"
