// Fuzzes what an origin server sends back: HttpParser in response mode (proxy/http/http_codec.h),
// including responses to HEAD (SetNextResponseHasNoBody), 1xx responses, close-delimited
// bodies ended by FeedEof, and the head relayed to the client (SerializeResponseHead).
//
// The input is the byte stream of one origin connection. It is parsed twice: in one Feed, and
// cut at points derived from the input (as TCP would cut it), resuming after each message the
// way the session does. Both runs must see the same messages, and a relayed head must parse
// back with the same status and framing.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/http/http_codec.h"

namespace {

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

std::uint64_t Hash(std::string_view input) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (char c : input) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL;
  return h;
}

// Chunk sizes from a generator seeded by the input, so a crash reproduces from its file alone
// and the corpus stays plain HTTP.
class Splitter {
 public:
  explicit Splitter(std::string_view input) : state_(Hash(input) | 1) {}
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
  std::uint64_t state_;
};

// Whether the request that response `index` answers was a HEAD: about one in four, from the
// input, the same for both runs.
bool AnswersHead(std::string_view input, std::size_t index) {
  return ((Hash(input) >> (2 * (index % 32))) & 3) == 0;
}

struct Message {
  HttpHead head;
  std::string body;
  bool complete = false;
  bool no_body = false;  // the parser was told the request was HEAD
};

class Recorder : public HttpParser::Handler {
 public:
  void OnHead(HttpHead& head) override { messages.push_back(Message{head, "", false, head_next}); }
  void OnBody(const char* data, std::size_t size) override {
    FUZZ_CHECK(!messages.empty() && !messages.back().complete);
    FUZZ_CHECK(!messages.back().no_body || messages.back().head.upgrade);
    messages.back().body.append(data, size);
  }
  void OnMessageComplete() override {
    FUZZ_CHECK(!messages.empty() && !messages.back().complete);
    messages.back().complete = true;
  }
  std::vector<Message> messages;
  bool head_next = false;
};

struct Outcome {
  std::vector<Message> messages;
  bool error = false;
};

// Feeds `input` as the session does: a response to HEAD is announced before it, a pause is
// followed by Resume, a 101 hands the connection over to the tunnel, and the peer's close ends
// the stream (FeedEof).
Outcome Run(std::string_view input, Splitter* splitter) {
  Recorder recorder;
  HttpParser parser(HttpParser::Kind::kResponse, recorder);
  Outcome out;
  std::size_t request = 0;  // which request the next response answers (1xx do not count)
  auto announce = [&] {
    recorder.head_next = AnswersHead(input, request);
    parser.SetNextResponseHasNoBody(recorder.head_next);
  };
  announce();
  std::size_t pos = 0;
  bool tunnel = false;
  while (pos < input.size() && !out.error && !tunnel) {
    const std::size_t end = splitter ? pos + splitter->Next(input.size() - pos) : input.size();
    while (pos < end) {
      const HttpParser::FeedResult r = parser.Feed(input.data() + pos, end - pos);
      FUZZ_CHECK(r.consumed <= end - pos);
      if (r.error) {
        FUZZ_CHECK(r.error->status == 502);
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
      const HttpHead& last = recorder.messages.back().head;
      if (last.upgrade && last.status == 101) {
        tunnel = true;
        break;
      }
      parser.Resume();
      if (last.status >= 200) {
        ++request;
        announce();
      }
    }
  }
  if (!out.error && !tunnel) {
    const bool was_in_message = parser.in_message();
    if (auto error = parser.FeedEof()) {
      FUZZ_CHECK(error->status == 502);
      out.error = true;
    } else if (was_in_message) {
      FUZZ_CHECK(!recorder.messages.empty() && recorder.messages.back().complete);
    }
  }
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
    FUZZ_CHECK(a.head.status == b.head.status && a.head.reason == b.head.reason);
    FUZZ_CHECK(a.head.version_major == b.head.version_major &&
               a.head.version_minor == b.head.version_minor);
    FUZZ_CHECK(SameHeaders(a.head.headers, b.head.headers));
    FUZZ_CHECK(a.head.chunked == b.head.chunked && a.head.content_length == b.head.content_length);
    FUZZ_CHECK(a.head.upgrade == b.head.upgrade && a.head.keep_alive == b.head.keep_alive);
    FUZZ_CHECK(a.body == b.body && a.complete == b.complete);
  }
}

// The head relayed to the client must frame the body as the origin's head did.
void CheckRelayedHead(const HttpHead& head) {
  const std::string wire = mintgate::proxy::SerializeResponseHead(head, head.upgrade, {});
  Recorder recorder;
  HttpParser parser(HttpParser::Kind::kResponse, recorder);
  const HttpParser::FeedResult r = parser.Feed(wire.data(), wire.size());
  FUZZ_CHECK(!r.error);
  FUZZ_CHECK(recorder.messages.size() == 1);
  const HttpHead& again = recorder.messages[0].head;
  FUZZ_CHECK(again.status == head.status);
  FUZZ_CHECK(again.chunked == head.chunked);
  FUZZ_CHECK(again.content_length == head.content_length);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const Outcome whole = Run(input, nullptr);
  Splitter splitter(input);
  const Outcome split = Run(input, &splitter);
  CheckSameOutcome(whole, split);
  for (const Message& m : whole.messages) CheckRelayedHead(m.head);
  return 0;
}
