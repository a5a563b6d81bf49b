// The client-to-origin direction of a session: the request parser over the client's bytes,
// the head it found, and the body passed on as it arrives (chunked again when the request is
// chunked), held back until an origin connection takes it. In a tunnel it moves bytes as they
// are. Its watermarks decide when the client's leg reads.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "proxy/http/http_codec.h"
#include "proxy/session/transport.h"
#include "proxy/session/watermarks.h"

namespace mintgate::proxy {

class RequestRelay final : private HttpParser::Handler {
 public:
  class Events {
   public:
    // A request head was parsed (the relay keeps it; see head()). Called from inside Feed.
    virtual void OnRequestHead(HttpHead& head) = 0;

   protected:
    ~Events() = default;
  };

  // `sink`: the origin leg's transport.
  RequestRelay(Events& events, Transport& sink) : events_(events), sink_(sink) {}
  RequestRelay(const RequestRelay&) = delete;
  RequestRelay& operator=(const RequestRelay&) = delete;

  // A fresh parser: the first request of a connection, and the first inside a decrypted one.
  void NewParser();
  // The next request of the connection: no head yet, nothing complete, nothing held back,
  // the origin not taking bytes.
  void Next();
  // Parses the front of `in` and erases what it consumed. Stops after a whole request
  // (paused: the next stays in `in` until Resume), at an error or when `in` is used up.
  HttpParser::FeedResult Feed(std::string& in);
  // After the exchange: the parser may go on to the next request.
  void Resume();

  // The origin connection is ready: the head goes out (with `path` and the Host value
  // `host`), then whatever body was held back, and from now on the body as it comes.
  void SendHead(std::string_view path, std::string_view host);
  // The origin connection is gone (retried, upgraded): body bytes are held back again.
  void Hold() { flowing_ = false; }
  // Tunnel bytes, as they are.
  void Splice(const char* data, std::size_t size) { sink_.Write(std::string(data, size)); }

  // The body read while no origin takes it, for a request the gateway answers itself (the
  // portal's sign-in form); as sent (not re-chunked: such requests carry a Content-Length).
  std::string TakeBody() {
    std::string body;
    body.swap(backlog_);
    return body;
  }
  HttpHead& head() { return head_; }
  const HttpHead& head() const { return head_; }
  bool complete() const { return complete_; }
  bool paused() const { return paused_; }
  bool in_message() const { return parser_ && parser_->in_message(); }
  // Whether the client's leg should read, by the origin leg's write queue.
  bool SourceReads(bool reading_now) const {
    return Watermarks::SourceReads(reading_now, sink_.queued_bytes());
  }

 private:
  void OnHead(HttpHead& head) override;
  void OnBody(const char* data, std::size_t size) override { Forward(data, size); }
  void OnMessageComplete() override;
  void Forward(const char* data, std::size_t size);

  Events& events_;
  Transport& sink_;
  std::unique_ptr<HttpParser> parser_;
  HttpHead head_;
  bool complete_ = false;
  bool paused_ = false;   // the parser stopped after a whole request
  bool flowing_ = false;  // the origin takes the body now (else it is held back)
  std::string backlog_;   // body bytes read before the origin connection was ready
};

}  // namespace mintgate::proxy
