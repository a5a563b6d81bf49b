#include "proxy/session/request_relay.h"

#include <utility>

namespace mintgate::proxy {
void RequestRelay::NewParser() {
  parser_ = std::make_unique<HttpParser>(HttpParser::Kind::kRequest, static_cast<Handler&>(*this));
  paused_ = false;
}

void RequestRelay::Next() {
  head_ = HttpHead{};
  complete_ = false;
  flowing_ = false;
  backlog_.clear();
}

HttpParser::FeedResult RequestRelay::Feed(std::string& in) {
  HttpParser::FeedResult r = parser_->Feed(in.data(), in.size());
  in.erase(0, r.consumed);
  if (r.paused) paused_ = true;
  return r;
}

void RequestRelay::Resume() {
  paused_ = false;
  parser_->Resume();
}

void RequestRelay::SendHead(std::string_view path, std::string_view host) {
  flowing_ = true;
  sink_.Write(SerializeRequestHead(head_, path, host, head_.upgrade, {}));
  if (!backlog_.empty()) sink_.Write(std::move(backlog_));
  backlog_.clear();
}

void RequestRelay::OnHead(HttpHead& head) {
  head_ = std::move(head);  // the parser starts the next head afresh
  events_.OnRequestHead(head_);
}

void RequestRelay::OnMessageComplete() {
  complete_ = true;
  if (head_.chunked) Forward(nullptr, 0);  // the terminating chunk
}

void RequestRelay::Forward(const char* data, std::size_t size) {
  if (!head_.chunked) {
    if (!flowing_) {
      backlog_.append(data, size);
    } else if (size != 0) {
      sink_.WriteBody(data, size);  // sealed straight from the parser's view when decrypted
    }
    return;
  }
  if (flowing_) {
    sink_.Write(SerializeChunk(std::string_view(data, size)));
  } else {
    backlog_ += SerializeChunk(std::string_view(data, size));
  }
}

}  // namespace mintgate::proxy
