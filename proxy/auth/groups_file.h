// Group membership from a local file: "group: user, user" lines, '#' comments. Read again
// when it changes (checked at most once a second). Thread-safe.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace mintgate::proxy::auth {

class GroupsFile {
 public:
  explicit GroupsFile(std::string path);
  // Reads the file now: "" when it is usable, else why not. Malformed lines are reported
  // through *warnings (optional), with their numbers, and skipped.
  std::string Load(std::vector<std::string>* warnings = nullptr);
  // The groups `user` is in, in file order (empty when the file cannot be read).
  std::vector<std::string> GroupsOf(std::string_view user);
  const std::string& path() const { return path_; }

 private:
  struct Impl;
  std::string path_;
  std::shared_ptr<Impl> impl_;
};

}  // namespace mintgate::proxy::auth
