// Private to proxy/auth: a small text file read again when it changes (its device, inode,
// size, modification or change time), looked at no more than once a second, that keeps its last
// good contents when it can no longer be read. HtpasswdFile and GroupsFile share it.
// Thread-safe.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace mintgate::proxy::auth {

// How often Get() looks at the file (a stat) unless a test changed it.
inline constexpr std::chrono::milliseconds kWatchedFileInterval{1000};
// Tests only: the interval of every WatchedFile from its next Get() on (0 = on every call).
void SetWatchedFileIntervalForTesting(std::chrono::milliseconds interval);

// The untyped part: reading, change detection and the last good contents. ParsedFile<T> below
// is what the files use.
class WatchedFile {
 public:
  // Turns the file's text into its contents, adding one warning per unusable line ("line 3:
  // ..."; the caller adds the key and path). Must never put secrets into warnings.
  using Parse = std::function<std::shared_ptr<const void>(const std::string& text,
                                                          std::vector<std::string>* warnings)>;
  // `key` names the setting in messages ("auth.htpasswd"); `secret`: warn when group or others
  // can read the file.
  WatchedFile(std::string path, std::string key, bool secret, Parse parse);

  // Reads the file now: "" when it could be read (its contents replace the old ones), else
  // why not (the old contents stay). Warnings (optional) name the key and path.
  std::string Load(std::vector<std::string>* warnings);
  // The contents, read again first when the file changed and the interval has passed since the
  // last look. Null until a read succeeded.
  std::shared_ptr<const void> Get();

 private:
  struct Stamp {
    dev_t device = 0;
    ino_t inode = 0;
    off_t size = 0;
    std::int64_t mtime_ns = 0;
    std::int64_t ctime_ns = 0;
    bool operator==(const Stamp&) const = default;
  };
  static Stamp StampOf(const struct stat& st);
  std::string ReadLocked(std::vector<std::string>* warnings);

  const std::string path_;
  const std::string key_;
  const bool secret_;
  const Parse parse_;
  std::mutex mu_;
  std::shared_ptr<const void> contents_;  // guarded by mu_, as are the two below
  std::optional<Stamp> stamp_;            // of the file contents_ came from
  std::optional<std::chrono::steady_clock::time_point> looked_;  // the last Load or Get stat
};

// A WatchedFile whose contents are a `Parsed`.
template <typename Parsed>
class ParsedFile {
 public:
  using Parse = std::function<Parsed(const std::string& text, std::vector<std::string>* warnings)>;
  ParsedFile(std::string path, std::string key, bool secret, Parse parse)
      : file_(std::move(path), std::move(key), secret,
              [parse = std::move(parse)](const std::string& text,
                                         std::vector<std::string>* warnings) {
                return std::shared_ptr<const void>(
                    std::make_shared<const Parsed>(parse(text, warnings)));
              }) {}

  std::string Load(std::vector<std::string>* warnings) { return file_.Load(warnings); }
  std::shared_ptr<const Parsed> Get() {
    return std::static_pointer_cast<const Parsed>(file_.Get());
  }

 private:
  WatchedFile file_;
};

}  // namespace mintgate::proxy::auth
