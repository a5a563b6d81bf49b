#include "proxy/auth/base64.h"

#include <openssl/evp.h>

namespace mintgate::proxy::auth {

std::optional<std::string> DecodeBase64(std::string_view in, std::size_t max_bytes) {
  if (in.empty() || in.size() % 4 != 0 || in.size() / 4 * 3 > max_bytes + 2) return std::nullopt;
  for (std::size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    const bool alnum = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    // '=' only in the last two places, and "x=" only when "=" follows.
    const bool pad = c == '=' && i + 2 >= in.size() && (i + 1 == in.size() || in.back() == '=');
    if (!alnum && c != '+' && c != '/' && !pad) return std::nullopt;
  }
  std::string out(in.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()),
                                static_cast<int>(in.size()));
  if (n < 0) return std::nullopt;
  // EVP_DecodeBlock counts the padding as zero bytes.
  std::size_t size = static_cast<std::size_t>(n);
  if (in.back() == '=') --size;
  if (in[in.size() - 2] == '=') --size;
  out.resize(size);
  return out;
}

std::string EncodeBase64(const void* data, std::size_t size) {
  std::string out(4 * ((size + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                static_cast<const unsigned char*>(data), static_cast<int>(size));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

}  // namespace mintgate::proxy::auth
