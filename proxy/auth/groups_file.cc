#include "proxy/auth/groups_file.h"

#include <algorithm>
#include <map>
#include <sstream>

#include "proxy/auth/watched_file.h"

namespace mintgate::proxy::auth {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

// user -> groups, in file order.
using Memberships = std::map<std::string, std::vector<std::string>, std::less<>>;

Memberships ParseGroups(const std::string& text, std::vector<std::string>* warnings) {
  Memberships out;
  std::istringstream in(text);
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    std::string_view view = line;
    view = Trim(view.substr(0, view.find('#')));
    if (view.empty()) continue;
    const std::size_t colon = view.find(':');
    const std::string_view group =
        colon == std::string_view::npos ? "" : Trim(view.substr(0, colon));
    if (group.empty()) {
      warnings->push_back("line " + std::to_string(number) +
                          ": expected \"group: user, user\"; skipped");
      continue;
    }
    std::string_view members = view.substr(colon + 1);
    while (!members.empty()) {
      const std::size_t comma = members.find(',');
      const std::string_view user = Trim(members.substr(0, comma));
      members = comma == std::string_view::npos ? std::string_view() : members.substr(comma + 1);
      if (user.empty()) continue;
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
  explicit Impl(const std::string& path) : file(path, "auth.groups_file", ParseGroups, false) {}
  WatchedFile<Memberships> file;
};

GroupsFile::GroupsFile(std::string path)
    : path_(std::move(path)), impl_(std::make_shared<Impl>(path_)) {}

std::string GroupsFile::Load(std::vector<std::string>* warnings) {
  return impl_->file.Load(warnings);
}

std::vector<std::string> GroupsFile::GroupsOf(std::string_view user) {
  std::shared_ptr<const Memberships> m = impl_->file.Get();
  if (!m) return {};
  const auto it = m->find(user);
  return it == m->end() ? std::vector<std::string>{} : it->second;
}

}  // namespace mintgate::proxy::auth
