// Fuzzes the ClientHello peek (tls/client_hello_peek.h): the first bytes a client sends inside
// a CONNECT tunnel, before any TLS library sees them.
//
// The session examines everything received so far after each read, with a new peek each
// time. The input is examined the same way at growing prefixes (cut at points derived from
// the input): once a prefix gives an answer other than kNeedMore, every longer prefix must give
// the same answer, since the session acts on the first one.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "tls/client_hello_peek.h"
#include "tls/host_name.h"

namespace {

using mintgate::tls::ClientHelloPeek;

#define FUZZ_CHECK(cond)                                                                \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      std::fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                     \
    }                                                                                   \
  } while (0)

struct Answer {
  ClientHelloPeek::Status status = ClientHelloPeek::Status::kNeedMore;
  std::string sni;
  std::vector<std::string> alpn;
  std::uint16_t legacy_version = 0;
  std::string error;
  bool operator==(const Answer&) const = default;
};

Answer Examine(const std::uint8_t* data, std::size_t size) {
  ClientHelloPeek peek;
  Answer a;
  a.status = peek.Examine(data, size);
  a.error = peek.error();
  if (a.status == ClientHelloPeek::Status::kDone) {
    a.sni = peek.info().sni;
    a.alpn = peek.info().alpn;
    a.legacy_version = peek.info().legacy_version;
  }
  return a;
}

void CheckAnswer(const Answer& a, const std::uint8_t* data, std::size_t size) {
  switch (a.status) {
    case ClientHelloPeek::Status::kNotTls:
      FUZZ_CHECK(size > 0 && (data[0] != 22 || (size > 1 && data[1] != 3)));
      break;
    case ClientHelloPeek::Status::kMalformed:
      FUZZ_CHECK(!a.error.empty());
      break;
    case ClientHelloPeek::Status::kNeedMore:
      break;
    case ClientHelloPeek::Status::kDone:
      for (const std::string& protocol : a.alpn) {
        FUZZ_CHECK(!protocol.empty() && protocol.size() <= 255);
      }
      // The session decides on the SNI and, to decrypt, mints for it after this check.
      if (!a.sni.empty()) (void)mintgate::tls::ParseSanName(a.sni);
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const Answer full = Examine(data, size);
  CheckAnswer(full, data, size);

  std::uint64_t state = 0xcbf29ce484222325ULL;
  for (std::size_t i = 0; i < size; ++i) state = (state ^ data[i]) * 0x100000001b3ULL;
  std::size_t prefix = 0;
  while (prefix < size) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    prefix += 1 + state % std::min<std::size_t>(size - prefix, (state >> 32) % 2 ? 8 : 512);
    const Answer part = Examine(data, prefix);
    CheckAnswer(part, data, prefix);
    if (part.status != ClientHelloPeek::Status::kNeedMore) {
      FUZZ_CHECK(part == full);
      break;
    }
  }
  return 0;
}
