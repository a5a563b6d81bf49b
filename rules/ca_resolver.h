// CA profile scheduling (SPEC §4): a profile whose retire_at has passed is replaced by its
// successor, repeatedly (a -> b -> c). Shared by rule decisions and `ca audit`.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "rules/rule.h"

namespace mintgate::rules {

// "2022-06-29T15:00:00Z"
std::string FormatInstant(Instant at);

// One problem found by CaResolver::Build: the profile it concerns (an index into its `cas`)
// and which of that profile's values is wrong.
struct CaScheduleError {
  enum class Key { kProfile, kRetireAt, kSuccessor };
  std::size_t profile = 0;
  Key key = Key::kProfile;
  std::string message;
};

class CaResolver {
 public:
  // Appends every problem (unknown or missing successor, cycles, duplicates) to *errors.
  static CaResolver Build(const std::vector<CaSchedule>& cas, std::vector<CaScheduleError>* errors);

  int Find(std::string_view name) const;  // -1 when unknown
  const std::string& Name(int id) const { return cas_[id].name; }

  // The profile that signs at `at` in place of `id`. When `why` is non-null and a
  // replacement happened, appends e.g. "\"a\" retired at ..., successor \"b\"".
  int Resolve(int id, Instant at, std::string* why) const;

 private:
  struct Entry {
    std::string name;
    std::optional<Instant> retire_at;
    int successor = -1;
  };
  std::vector<Entry> cas_;
  std::unordered_map<std::string, int> by_name_;
};

}  // namespace mintgate::rules
