#include "rules/rule_index.h"

#include <algorithm>

namespace mintgate::rules {
namespace {

void AddOnce(RuleIndex::List& list, std::uint32_t id) {
  // Ids are added in ascending order, so a repeat can only be the last element.
  if (list.empty() || list.back() != id) list.push_back(id);
}

}  // namespace

RuleIndex::AddressKey RuleIndex::Mask(const IpAddress& address, int prefix_length) {
  const auto& b = address.bytes();
  AddressKey key;
  for (int k = 0; k < 8; ++k) {
    key.hi = (key.hi << 8) | b[k];
    key.lo = (key.lo << 8) | b[8 + k];
  }
  if (prefix_length <= 0) return {};
  if (prefix_length <= 64) {
    // A shift by 64 is undefined (x86 shifts by 0 instead, which kept every bit of a /64).
    if (prefix_length < 64) key.hi &= ~std::uint64_t{0} << (64 - prefix_length);
    key.lo = 0;
  } else if (prefix_length < 128) {
    key.lo &= ~std::uint64_t{0} << (128 - prefix_length);
  }
  return key;
}

RuleIndex::AddressEntry& RuleIndex::AddressSlot(const Cidr& cidr) {
  auto& levels = cidr.network().family() == IpAddress::Family::kV4 ? v4_levels_ : v6_levels_;
  auto level = std::find_if(levels.begin(), levels.end(), [&](const AddressLevel& l) {
    return l.prefix_length == cidr.prefix_length();
  });
  if (level == levels.end()) {
    levels.push_back({cidr.prefix_length(), {}});
    level = levels.end() - 1;
  }
  return level->blocks[Mask(cidr.network(), cidr.prefix_length())];
}

std::uint64_t RuleIndex::HashName(std::string_view name) {
  return std::hash<std::string_view>{}(name);
}

void RuleIndex::BuildNameTable(std::unordered_map<std::string, NameEntry>&& names) {
  std::size_t size = 16;
  while (size < names.size() * 2) size *= 2;  // load factor <= 0.5 keeps probe runs short
  name_slots_.assign(size, NameSlot{});
  name_mask_ = size - 1;
  name_entries_.reserve(names.size());
  for (auto& [name, entry] : names) {
    NameSlot slot;
    slot.hash = std::uint32_t(HashName(name) >> 32);
    slot.length = std::uint32_t(name.size());
    slot.entry = std::uint32_t(name_entries_.size());
    slot.offset = std::uint32_t(name_pool_.size());
    name_pool_.append(name);
    name_entries_.push_back(std::move(entry));
    std::uint64_t at = HashName(name) & name_mask_;
    while (name_slots_[at].entry != kEmpty) at = (at + 1) & name_mask_;
    name_slots_[at] = slot;
  }
}

const RuleIndex::NameEntry* RuleIndex::FindName(std::string_view name) const {
  if (name_slots_.empty()) return nullptr;
  std::uint64_t hash = HashName(name);
  for (std::uint64_t at = hash & name_mask_;; at = (at + 1) & name_mask_) {
    const NameSlot& slot = name_slots_[at];
    if (slot.entry == kEmpty) return nullptr;
    if (slot.hash != std::uint32_t(hash >> 32)) continue;
    if (slot.length == name.size() && name_pool_.compare(slot.offset, name.size(), name) == 0) {
      return &name_entries_[slot.entry];
    }
  }
}

RuleIndex RuleIndex::Build(const std::vector<CompiledRule>& rules,
                           const std::vector<CompiledCategory>& categories) {
  RuleIndex index;
  std::unordered_map<std::string, NameEntry> names;
  index.rules_by_category_.resize(categories.size());
  for (std::uint32_t id = 0; id < rules.size(); ++id) {
    const CompiledRule& rule = rules[id];
    if (rule.hosts.empty()) {
      if (rule.categories.empty()) index.any_host_rules_.push_back(id);
      for (std::uint32_t category : rule.categories) {
        AddOnce(index.rules_by_category_[category], id);
      }
      continue;
    }
    for (const HostPattern& pattern : rule.hosts) {
      if (pattern.kind == HostPattern::Kind::kAddress) {
        AddOnce(index.AddressSlot(pattern.cidr).rules, id);
        continue;
      }
      NameEntry& entry = names[pattern.name];
      if (pattern.kind != HostPattern::Kind::kBelow) AddOnce(entry.rules_self, id);
      if (pattern.kind != HostPattern::Kind::kExact) AddOnce(entry.rules_below, id);
    }
  }
  for (std::uint32_t id = 0; id < categories.size(); ++id) {
    for (const HostPattern& pattern : categories[id].patterns) {
      if (pattern.kind == HostPattern::Kind::kAddress) {
        AddOnce(index.AddressSlot(pattern.cidr).cats, id);
        continue;
      }
      NameEntry& entry = names[pattern.name];
      if (pattern.kind != HostPattern::Kind::kBelow) AddOnce(entry.cats_self, id);
      if (pattern.kind != HostPattern::Kind::kExact) AddOnce(entry.cats_below, id);
    }
  }
  index.BuildNameTable(std::move(names));
  for (auto* levels : {&index.v4_levels_, &index.v6_levels_}) {
    std::sort(levels->begin(), levels->end(), [](const AddressLevel& a, const AddressLevel& b) {
      return a.prefix_length > b.prefix_length;
    });
  }
  return index;
}

void RuleIndex::Lookup(const HostView& host, Scratch* scratch) const {
  scratch->lists.clear();
  scratch->categories.clear();
  scratch->lists.emplace_back(any_host_rules_);
  auto add_categories = [&](const List& ids) {
    scratch->categories.insert(scratch->categories.end(), ids.begin(), ids.end());
  };
  if (host.address) {
    const auto& levels = host.address->family() == IpAddress::Family::kV4 ? v4_levels_ : v6_levels_;
    for (const AddressLevel& level : levels) {
      auto it = level.blocks.find(Mask(*host.address, level.prefix_length));
      if (it == level.blocks.end()) continue;
      if (!it->second.rules.empty()) scratch->lists.emplace_back(it->second.rules);
      add_categories(it->second.cats);
    }
  } else if (!host.name.empty()) {
    std::string_view name = host.name;
    if (const NameEntry* entry = FindName(name)) {
      if (!entry->rules_self.empty()) scratch->lists.emplace_back(entry->rules_self);
      add_categories(entry->cats_self);
    }
    // Each proper suffix that starts after a '.' is a name the host is strictly below.
    for (std::size_t dot = name.find('.'); dot != name.npos; dot = name.find('.', dot + 1)) {
      const NameEntry* entry = FindName(name.substr(dot + 1));
      if (entry == nullptr) continue;
      if (!entry->rules_below.empty()) scratch->lists.emplace_back(entry->rules_below);
      add_categories(entry->cats_below);
    }
  }
  auto& cats = scratch->categories;
  if (cats.size() > 1) {
    std::sort(cats.begin(), cats.end());
    cats.erase(std::unique(cats.begin(), cats.end()), cats.end());
  }
  for (std::uint32_t category : cats) {
    if (!rules_by_category_[category].empty()) {
      scratch->lists.emplace_back(rules_by_category_[category]);
    }
  }
}

}  // namespace mintgate::rules
