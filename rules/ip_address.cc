#include "rules/ip_address.h"

#include <algorithm>
#include <cstdio>

namespace mintgate::rules {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool ParseV4(std::string_view text, std::uint8_t* out) {
  int part = 0;
  std::size_t i = 0;
  while (true) {
    std::size_t start = i;
    int value = 0;
    while (i < text.size() && IsDigit(text[i]) && i - start < 4) {
      value = value * 10 + (text[i] - '0');
      ++i;
    }
    std::size_t digits = i - start;
    if (digits == 0 || digits > 3 || value > 255) return false;
    if (digits > 1 && text[start] == '0') return false;
    out[part++] = static_cast<std::uint8_t>(value);
    if (part == 4) return i == text.size();
    if (i >= text.size() || text[i] != '.') return false;
    ++i;
  }
}

bool ParseV6(std::string_view text, std::uint8_t* out) {
  // Groups before and after "::" are collected separately, then the gap is zero-filled.
  std::array<std::uint16_t, 8> head{}, tail{};
  int head_count = 0, tail_count = 0;
  bool compressed = false;
  std::size_t i = 0;
  if (text.substr(0, 2) == "::") {
    compressed = true;
    i = 2;
    if (i == text.size()) {
      std::fill(out, out + 16, 0);
      return true;
    }
  } else if (!text.empty() && text[0] == ':') {
    return false;
  }
  bool v4_tail = false;
  std::uint8_t v4[4];
  while (i < text.size()) {
    std::size_t start = i;
    while (i < text.size() && HexValue(text[i]) >= 0) ++i;
    int& count = compressed ? tail_count : head_count;
    auto& groups = compressed ? tail : head;
    if (i < text.size() && text[i] == '.') {
      // The dotted-quad tail must be the last thing and takes two groups.
      if (!ParseV4(text.substr(start), v4) || head_count + tail_count > 6) return false;
      v4_tail = true;
      break;
    }
    std::size_t digits = i - start;
    if (digits == 0 || digits > 4 || head_count + tail_count >= 8) return false;
    std::uint16_t value = 0;
    for (std::size_t k = start; k < i; ++k) value = (value << 4) | HexValue(text[k]);
    groups[count++] = value;
    if (i == text.size()) break;
    if (text[i] != ':') return false;
    ++i;
    if (i < text.size() && text[i] == ':') {
      if (compressed) return false;
      compressed = true;
      ++i;
      if (i == text.size()) break;
    } else if (i == text.size()) {
      return false;  // a single trailing ':'
    }
  }
  int groups_used = head_count + tail_count + (v4_tail ? 2 : 0);
  if (compressed ? groups_used > 7 : groups_used != 8) return false;
  std::array<std::uint16_t, 8> all{};
  for (int k = 0; k < head_count; ++k) all[k] = head[k];
  int tail_start = 8 - tail_count - (v4_tail ? 2 : 0);
  for (int k = 0; k < tail_count; ++k) all[tail_start + k] = tail[k];
  for (int k = 0; k < 8; ++k) {
    out[2 * k] = static_cast<std::uint8_t>(all[k] >> 8);
    out[2 * k + 1] = static_cast<std::uint8_t>(all[k] & 0xff);
  }
  if (v4_tail) std::copy(v4, v4 + 4, out + 12);
  return true;
}

}  // namespace

std::optional<IpAddress> IpAddress::Parse(std::string_view text) {
  IpAddress address;
  bool bracketed = text.size() >= 2 && text.front() == '[' && text.back() == ']';
  if (bracketed) text = text.substr(1, text.size() - 2);
  if (text.find(':') != std::string_view::npos) {
    address.family_ = Family::kV6;
    if (!ParseV6(text, address.bytes_.data())) return std::nullopt;
    return address;
  }
  // Brackets are IPv6 syntax only.
  if (bracketed || !ParseV4(text, address.bytes_.data())) return std::nullopt;
  address.family_ = Family::kV4;
  return address;
}

IpAddress IpAddress::V4(std::uint32_t value) {
  IpAddress address;
  address.family_ = Family::kV4;
  for (int k = 0; k < 4; ++k) address.bytes_[k] = static_cast<std::uint8_t>(value >> (24 - 8 * k));
  return address;
}

IpAddress IpAddress::V6(const std::array<std::uint8_t, 16>& bytes) {
  IpAddress address;
  address.family_ = Family::kV6;
  address.bytes_ = bytes;
  return address;
}

std::string IpAddress::ToString() const {
  char buffer[48];
  if (family_ == Family::kV4) {
    std::snprintf(buffer, sizeof buffer, "%u.%u.%u.%u", bytes_[0], bytes_[1], bytes_[2], bytes_[3]);
    return buffer;
  }
  unsigned groups[8];
  for (int k = 0; k < 8; ++k) groups[k] = (bytes_[2 * k] << 8) | bytes_[2 * k + 1];
  int best_start = -1, best_length = 1;  // RFC 5952: never compress a single zero group
  for (int k = 0; k < 8;) {
    if (groups[k] != 0) {
      ++k;
      continue;
    }
    int start = k;
    while (k < 8 && groups[k] == 0) ++k;
    if (k - start > best_length) best_start = start, best_length = k - start;
  }
  std::string out;
  for (int k = 0; k < 8; ++k) {
    if (k == best_start) {
      out += "::";
      k += best_length - 1;
      continue;
    }
    if (!out.empty() && out.back() != ':') out += ':';
    std::snprintf(buffer, sizeof buffer, "%x", groups[k]);
    out += buffer;
  }
  return out;
}

std::optional<Cidr> Cidr::Parse(std::string_view text, std::string* error) {
  std::size_t slash = text.find('/');
  std::string_view address_text = text.substr(0, slash);
  std::optional<IpAddress> address = IpAddress::Parse(address_text);
  if (!address) {
    if (error) *error = "\"" + std::string(address_text) + "\" is not an IPv4 or IPv6 address";
    return std::nullopt;
  }
  Cidr cidr;
  cidr.network_ = *address;
  cidr.prefix_length_ = address->bit_width();
  if (slash != std::string_view::npos) {
    std::string_view length_text = text.substr(slash + 1);
    int length = 0;
    bool ok = !length_text.empty() && length_text.size() <= 3 &&
              (length_text.size() == 1 || length_text[0] != '0');
    for (char c : length_text) {
      ok = ok && IsDigit(c);
      if (ok) length = length * 10 + (c - '0');  // at most 3 digits: no overflow
    }
    if (!ok || length > address->bit_width()) {
      if (error) {
        *error = "prefix length \"" + std::string(length_text) + "\" is not a number from 0 to " +
                 std::to_string(address->bit_width());
      }
      return std::nullopt;
    }
    cidr.prefix_length_ = length;
    for (int bit = length; bit < address->bit_width(); ++bit) {
      if (address->Bit(bit)) {
        if (error) {
          Cidr fixed = cidr;
          for (int b = length; b < address->bit_width(); ++b) {
            fixed.network_.bytes_[b / 8] &= static_cast<std::uint8_t>(~(0x80u >> (b % 8)));
          }
          *error = "host bits are set below the /" + std::to_string(length) +
                   " prefix (did you mean \"" + fixed.ToString() + "\"?)";
        }
        return std::nullopt;
      }
    }
  }
  return cidr;
}

Cidr Cidr::Single(const IpAddress& address) {
  Cidr cidr;
  cidr.network_ = address;
  cidr.prefix_length_ = address.bit_width();
  return cidr;
}

bool Cidr::Contains(const IpAddress& address) const {
  if (address.family() != network_.family()) return false;
  int full_bytes = prefix_length_ / 8;
  const auto& a = address.bytes();
  const auto& n = network_.bytes();
  for (int k = 0; k < full_bytes; ++k) {
    if (a[k] != n[k]) return false;
  }
  int rest = prefix_length_ % 8;
  if (rest == 0) return true;
  auto mask = static_cast<std::uint8_t>(0xff00u >> rest);
  return (a[full_bytes] & mask) == n[full_bytes];
}

std::string Cidr::ToString() const {
  return network_.ToString() + "/" + std::to_string(prefix_length_);
}

}  // namespace mintgate::rules
