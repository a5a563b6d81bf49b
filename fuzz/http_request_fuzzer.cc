// Fuzzes what a client sends the gateway: HttpParser in request mode (proxy/http/http_codec.h), the
// request target as the session reads it (ParseAbsoluteHttpUrl, ParseAuthority for CONNECT) and
// the head it forwards (SerializeRequestHead).
//
// The input is a byte stream from one client connection. It is parsed twice: in one Feed, and
// cut at points derived from the input (as TCP would cut it), resuming after each message the
// way the session does. Both runs must see the same messages, and a forwarded head must parse
// back to the same request with the same framing (a difference would be a smuggling vector).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/http/http_codec.h"
#include "rules/canonical_host.h"

namespace {

using mintgate::proxy::HttpError;
using mintgate::proxy::HttpHead;
using mintgate::proxy::HttpHeader;
using mintgate::proxy::HttpParser;

#define FUZZ_CHECK(cond)                                                                \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      std::fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                     \
    }                                                                                   \
  } while (0)

// Chunk sizes from a generator seeded by the input, so a crash reproduces from its file alone
// and the corpus stays plain HTTP.
class Splitter {
 public:
  explicit Splitter(std::string_view input) {
    for (char c : input) state_ = (state_ ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL;
  }
  std::size_t Next(std::size_t remaining) {
    state_ ^= state_ << 13;
    state_ ^= state_ >> 7;
    state_ ^= state_ << 17;
    switch (state_ % 4) {
      case 0:
        return 1;
      case 1:
        return remaining;
      default:
        return 1 + (state_ >> 8) % std::min<std::size_t>(remaining, 64);
    }
  }

 private:
  std::uint64_t state_ = 0xcbf29ce484222325ULL;
};

struct Message {
  HttpHead head;
  std::string body;
  bool complete = false;
};

class Recorder : public HttpParser::Handler {
 public:
  void OnHead(HttpHead& head) override { messages.push_back(Message{head, "", false}); }
  void OnBody(const char* data, std::size_t size) override {
    FUZZ_CHECK(!messages.empty() && !messages.back().complete);
    messages.back().body.append(data, size);
  }
  void OnMessageComplete() override {
    FUZZ_CHECK(!messages.empty() && !messages.back().complete);
    messages.back().complete = true;
  }
  std::vector<Message> messages;
};

struct Outcome {
  std::vector<Message> messages;
  bool error = false;
};

// Feeds `input` as the session does: after a pause, Resume and feed the rest; after a CONNECT
// or an upgrade the bytes that follow belong to the tunnel, not to the parser.
Outcome Run(std::string_view input, Splitter* splitter) {
  Recorder recorder;
  HttpParser parser(HttpParser::Kind::kRequest, recorder);
  Outcome out;
  std::size_t pos = 0;
  bool tunnel = false;
  while (pos < input.size() && !out.error && !tunnel) {
    const std::size_t end = splitter ? pos + splitter->Next(input.size() - pos) : input.size();
    while (pos < end) {
      const HttpParser::FeedResult r = parser.Feed(input.data() + pos, end - pos);
      FUZZ_CHECK(r.consumed <= end - pos);
      if (r.error) {
        FUZZ_CHECK(r.error->status == 400 || r.error->status == 414 || r.error->status == 431 ||
                   r.error->status == 505);
        out.error = true;
        break;
      }
      pos += r.consumed;
      if (!r.paused) {
        FUZZ_CHECK(pos == end);
        continue;
      }
      FUZZ_CHECK(!parser.in_message());
      FUZZ_CHECK(!recorder.messages.empty() && recorder.messages.back().complete);
      if (recorder.messages.back().head.upgrade) {
        tunnel = true;
        break;
      }
      parser.Resume();
    }
  }
  if (!out.error && !tunnel && parser.FeedEof()) out.error = true;
  out.messages = std::move(recorder.messages);
  return out;
}

bool SameHeaders(const std::vector<HttpHeader>& a, const std::vector<HttpHeader>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].name != b[i].name || a[i].value != b[i].value) return false;
  }
  return true;
}

void CheckSameOutcome(const Outcome& whole, const Outcome& split) {
  FUZZ_CHECK(whole.error == split.error);
  FUZZ_CHECK(whole.messages.size() == split.messages.size());
  for (std::size_t i = 0; i < whole.messages.size(); ++i) {
    const Message& a = whole.messages[i];
    const Message& b = split.messages[i];
    FUZZ_CHECK(a.head.method == b.head.method && a.head.target == b.head.target);
    FUZZ_CHECK(a.head.version_major == b.head.version_major &&
               a.head.version_minor == b.head.version_minor);
    FUZZ_CHECK(SameHeaders(a.head.headers, b.head.headers));
    FUZZ_CHECK(a.head.chunked == b.head.chunked && a.head.content_length == b.head.content_length);
    FUZZ_CHECK(a.head.upgrade == b.head.upgrade && a.head.keep_alive == b.head.keep_alive);
    FUZZ_CHECK(a.body == b.body && a.complete == b.complete);
  }
}

bool IsLower(std::string_view s) {
  for (char c : s) {
    if (c >= 'A' && c <= 'Z') return false;
  }
  return true;
}

// The head the session sends upstream must be read by the next hop exactly as we read it.
void CheckForwardedHead(const HttpHead& head, const std::string& path, const std::string& host) {
  const std::string wire =
      mintgate::proxy::SerializeRequestHead(head, path, host, head.upgrade, {});
  Recorder recorder;
  HttpParser parser(HttpParser::Kind::kRequest, recorder);
  const HttpParser::FeedResult r = parser.Feed(wire.data(), wire.size());
  FUZZ_CHECK(!r.error);
  FUZZ_CHECK(recorder.messages.size() == 1);
  const HttpHead& again = recorder.messages[0].head;
  FUZZ_CHECK(again.method == head.method);
  FUZZ_CHECK(again.target == path);
  FUZZ_CHECK(again.chunked == head.chunked);
  FUZZ_CHECK(again.content_length == head.content_length);
  FUZZ_CHECK(again.upgrade == head.upgrade);
  int hosts = 0;
  for (const HttpHeader& h : again.headers) {
    if (h.name == "Host") {
      ++hosts;
      FUZZ_CHECK(h.value == host);
    }
  }
  FUZZ_CHECK(hosts == 1);
  // Body bytes may follow the head (content-length or chunked), but never a second head.
  FUZZ_CHECK(r.consumed == wire.size() || r.paused);
}

void CheckTarget(const HttpHead& head) {
  if (head.method == "CONNECT") {
    if (auto authority = mintgate::proxy::ParseAuthority(head.target)) {
      FUZZ_CHECK(!authority->first.empty() && IsLower(authority->first));
      const auto canonical = mintgate::rules::CanonicalizeHost(authority->first, nullptr);
      FUZZ_CHECK(canonical && canonical->ToString() == authority->first);
      FUZZ_CHECK(authority->second != 0);
    }
    return;
  }
  auto url = mintgate::proxy::ParseAbsoluteHttpUrl(head.target);
  if (!url) return;
  FUZZ_CHECK(!url->host.empty() && IsLower(url->host));
  // Hosts leave the parser canonical (rules/canonical_host.h): nothing later re-reads them.
  const auto canonical = mintgate::rules::CanonicalizeHost(url->host, nullptr);
  FUZZ_CHECK(canonical && canonical->ToString() == url->host);
  FUZZ_CHECK(url->port != 0);
  FUZZ_CHECK(!url->path.empty() && url->path.front() == '/');
  FUZZ_CHECK(url->path.find('#') == std::string::npos);
  // As Session::SendRequestUpstream builds it.
  std::string host = url->host.find(':') != std::string::npos ? "[" + url->host + "]" : url->host;
  if (url->port != 80) host += ":" + std::to_string(url->port);
  CheckForwardedHead(head, url->path, host);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const Outcome whole = Run(input, nullptr);
  Splitter splitter(input);
  const Outcome split = Run(input, &splitter);
  CheckSameOutcome(whole, split);
  for (const Message& m : whole.messages) CheckTarget(m.head);
  return 0;
}
