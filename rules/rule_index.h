// The lookup structures that let a decision consider only the rules that can match a host
// instead of scanning the whole list: exact and suffix names in one hash (a name is looked up
// once per label suffix of the target), and per-prefix-length hashes for addresses/CIDRs.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "rules/host_pattern.h"
#include "rules/ip_address.h"

namespace mintgate::rules {

// A rule with its match fields parsed; `categories` are ids into the category list.
struct CompiledRule {
  std::vector<HostPattern> hosts;
  std::vector<Cidr> clients;
  std::vector<std::uint32_t> categories;
  int ca = -1;  // the configured profile of a decrypt rule (CaResolver id)
};

struct CompiledCategory {
  std::string name;
  std::vector<HostPattern> patterns;
};

class RuleIndex {
 public:
  using List = std::vector<std::uint32_t>;  // ascending rule (or category) ids

  // Per-decision working memory; reused across calls so that lookups do not allocate.
  struct Scratch {
    std::vector<std::span<const std::uint32_t>> lists;  // candidate rules, each ascending
    List categories;                                    // categories matching the host, sorted
    std::vector<std::size_t> positions;
  };

  static RuleIndex Build(const std::vector<CompiledRule>& rules,
                         const std::vector<CompiledCategory>& categories);

  // Fills scratch->lists with every rule that can match `host` (rules whose host patterns
  // match it, rules in a matching category, rules with neither) and scratch->categories.
  void Lookup(const HostView& host, Scratch* scratch) const;

  // Calls accept(rule) on the candidates in ascending order until it returns true; returns
  // that rule, or -1.
  template <typename Accept>
  static int FirstAccepted(Scratch* scratch, Accept&& accept);

 private:
  struct NameEntry {
    List rules_self, rules_below;  // rules matching the name itself / names below it
    List cats_self, cats_below;
  };
  struct AddressKey {
    std::uint64_t hi = 0, lo = 0;
    friend bool operator==(const AddressKey&, const AddressKey&) = default;
  };
  struct AddressKeyHash {
    std::size_t operator()(const AddressKey& key) const {
      return std::hash<std::uint64_t>{}(key.hi * 0x9e3779b97f4a7c15ULL ^ key.lo);
    }
  };
  struct AddressEntry {
    List rules, cats;
  };
  struct AddressLevel {
    int prefix_length = 0;
    std::unordered_map<AddressKey, AddressEntry, AddressKeyHash> blocks;
  };

  // Open addressing over a flat array: most suffix lookups miss, and a miss here costs one
  // cache line instead of std::unordered_map's bucket + node + key chase (SPEC §4 asks for
  // 10^6 decisions/s with 10^5 category names).
  struct NameSlot {
    std::uint32_t hash = 0;  // low bits of the full hash, to skip most compares
    std::uint32_t length = 0;
    std::uint32_t entry = kEmpty;
    std::uint32_t offset = 0;  // of the name in name_pool_
  };
  static constexpr std::uint32_t kEmpty = UINT32_MAX;

  static AddressKey Mask(const IpAddress& address, int prefix_length);
  static std::uint64_t HashName(std::string_view name);
  AddressEntry& AddressSlot(const Cidr& cidr);
  void BuildNameTable(std::unordered_map<std::string, NameEntry>&& names);
  const NameEntry* FindName(std::string_view name) const;

  std::vector<NameSlot> name_slots_;
  std::uint64_t name_mask_ = 0;
  std::vector<NameEntry> name_entries_;
  std::string name_pool_;
  std::vector<AddressLevel> v4_levels_, v6_levels_;  // by descending prefix length
  List any_host_rules_;                              // no hosts and no categories
  std::vector<List> rules_by_category_;              // rules with categories but no hosts
};

template <typename Accept>
int RuleIndex::FirstAccepted(Scratch* scratch, Accept&& accept) {
  // A k-way merge: k is small (one list per label suffix, address prefix and category).
  auto& lists = scratch->lists;
  auto& pos = scratch->positions;
  pos.assign(lists.size(), 0);
  std::int64_t last_tried = -1;
  while (true) {
    std::uint32_t best = UINT32_MAX;
    for (std::size_t k = 0; k < lists.size(); ++k) {
      if (pos[k] < lists[k].size() && lists[k][pos[k]] < best) best = lists[k][pos[k]];
    }
    if (best == UINT32_MAX) return -1;
    for (std::size_t k = 0; k < lists.size(); ++k) {
      if (pos[k] < lists[k].size() && lists[k][pos[k]] == best) ++pos[k];
    }
    if (std::int64_t(best) != last_tried && accept(best)) return int(best);
    last_tried = best;
  }
}

}  // namespace mintgate::rules
