// The origin-to-client direction of a session: the response parser over the origin's bytes
// (plaintext on a decrypted leg), the head passed on with what the client's connection needs,
// interim 1xx responses passed as they are, the body passed on as it arrives (chunked again
// when the response is chunked), and the switch of an Upgrade. In a tunnel it moves bytes as
// they are. Its watermarks decide when the origin's leg reads.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>

#include "proxy/http/http_codec.h"
#include "proxy/session/transport.h"
#include "proxy/session/watermarks.h"

namespace mintgate::proxy {

class ResponseRelay final : private HttpParser::Handler {
 public:
  class Events {
   public:
    // The final response's head, before it goes to the client: the session notes what it
    // tells (status, keep-alive, authentication) and says whether the client's connection
    // stays open after it (`close_delimited`: the body ends with the origin's connection).
    virtual bool OnResponseHead(const HttpHead& head, bool close_delimited) = 0;
    // "101 Switching Protocols"; `asked`: the request asked for an Upgrade. Unasked, the
    // head is not passed on (nothing sane can follow).
    virtual void OnSwitch(bool asked) = 0;

   protected:
    ~Events() = default;
  };

  // `sink`: the client leg's transport.
  ResponseRelay(Events& events, Transport& sink) : events_(events), sink_(sink) {}
  ResponseRelay(const ResponseRelay&) = delete;
  ResponseRelay& operator=(const ResponseRelay&) = delete;

  // A request went to the origin: its response is parsed next. `head_request`: a HEAD, whose
  // response has no body whatever its headers say; `upgrade_asked`: the request asked for a
  // protocol switch.
  void Begin(bool head_request, bool upgrade_asked);
  // Parses origin bytes. Paused: a message ended; complete() tells a final response from an
  // interim one (Resume then), upgrading() a switch (the rest of the bytes are the new
  // protocol's).
  HttpParser::FeedResult Feed(const char* data, std::size_t size) {
    return parser_->Feed(data, size);
  }
  void Resume() { parser_->Resume(); }
  // The origin closed: completes a close-delimited body, or says why the response is cut.
  std::optional<HttpError> FeedEof() { return parser_->FeedEof(); }
  // The exchange is over (or spliced): the parser goes; what was learnt stays until Reset.
  void End() {
    parser_.reset();
    upgrading_ = false;
  }
  // Between exchanges: nothing started.
  void Reset();
  // Tunnel bytes, as they are.
  void Splice(const char* data, std::size_t size) { sink_.Write(std::string(data, size)); }

  bool active() const { return parser_ != nullptr; }
  bool started() const { return started_; }
  bool complete() const { return complete_; }
  bool close_delimited() const { return close_delimited_; }
  bool upgrading() const { return upgrading_; }
  // Whether the origin's leg should read, by the client leg's write queue.
  bool SourceReads(bool reading_now) const {
    return Watermarks::SourceReads(reading_now, sink_.queued_bytes());
  }

 private:
  void OnHead(HttpHead& head) override;
  void OnBody(const char* data, std::size_t size) override;
  void OnMessageComplete() override;

  Events& events_;
  Transport& sink_;
  std::unique_ptr<HttpParser> parser_;
  bool head_request_ = false;
  bool upgrade_asked_ = false;
  bool started_ = false;  // a final (or 101) head went to the client
  bool complete_ = false;
  bool chunked_ = false;
  bool close_delimited_ = false;
  bool upgrading_ = false;  // a 101 for an Upgrade request: splice once its head is out
};

}  // namespace mintgate::proxy
