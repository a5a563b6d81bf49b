#include "proxy/auth/groups_file.h"

#include <algorithm>
#include <map>

#include "proxy/auth/watched_file.h"

namespace mintgate::proxy::auth {
namespace {

std::string_view Trim(std::string_view s) {
  const auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r'; };
  while (!s.empty() && blank(s.front())) s.remove_prefix(1);
  while (!s.empty() && blank(s.back())) s.remove_suffix(1);
  return s;
}

// user -> the groups listing it, in the order of the file.
using Memberships = std::map<std::string, std::vector<std::string>, std::less<>>;

Memberships ParseGroups(const std::string& text, std::vector<std::string>* warnings) {
  Memberships out;
  int number = 0;
  for (std::size_t start = 0; start < text.size();) {
    const std::size_t newline = std::min(text.find('\n', start), text.size());
    std::string_view line(text.data() + start, newline - start);
    start = newline + 1;
    ++number;
    line = Trim(line.substr(0, line.find('#')));
    if (line.empty()) continue;
    const std::string where = "line " + std::to_string(number);
    const std::size_t colon = line.find(':');
    const std::string_view group =
        colon == std::string_view::npos ? std::string_view() : Trim(line.substr(0, colon));
    if (group.empty()) {
      warnings->push_back(where + ": expected \"group: user, user\"; skipped");
      continue;
    }
    // A group listed again adds its members to the first listing.
    std::string_view members = line.substr(colon + 1);
    while (!members.empty()) {
      const std::size_t comma = members.find(',');
      const std::string_view user = Trim(members.substr(0, comma));
      members = comma == std::string_view::npos ? std::string_view() : members.substr(comma + 1);
      if (user.empty()) continue;
      if (user.find_first_of(" \t") != std::string_view::npos) {
        warnings->push_back(where + " (" + std::string(group) + "): the member \"" +
                            std::string(user) +
                            "\" has a space inside; members are separated by commas");
      }
      std::vector<std::string>& groups = out[std::string(user)];
      if (std::find(groups.begin(), groups.end(), group) == groups.end()) {
        groups.emplace_back(group);
      }
    }
  }
  return out;
}

}  // namespace

struct GroupsFile::Impl {
  explicit Impl(const std::string& path)
      : file(path, "auth.groups_file", /*secret=*/false, ParseGroups) {}
  ParsedFile<Memberships> file;
};

GroupsFile::GroupsFile(std::string path)
    : path_(std::move(path)), impl_(std::make_shared<Impl>(path_)) {}

std::string GroupsFile::Load(std::vector<std::string>* warnings) {
  return impl_->file.Load(warnings);
}

std::vector<std::string> GroupsFile::GroupsOf(std::string_view user) {
  const std::shared_ptr<const Memberships> memberships = impl_->file.Get();
  if (!memberships) return {};
  const auto it = memberships->find(user);
  return it == memberships->end() ? std::vector<std::string>{} : it->second;
}

}  // namespace mintgate::proxy::auth
