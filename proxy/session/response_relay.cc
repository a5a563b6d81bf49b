#include "proxy/session/response_relay.h"

#include <vector>

namespace mintgate::proxy {

void ResponseRelay::Begin(bool head_request, bool upgrade_asked) {
  head_request_ = head_request;
  upgrade_asked_ = upgrade_asked;
  parser_ = std::make_unique<HttpParser>(HttpParser::Kind::kResponse, static_cast<Handler&>(*this));
  parser_->SetNextResponseHasNoBody(head_request);
}

void ResponseRelay::Reset() {
  parser_.reset();
  started_ = false;
  complete_ = false;
  chunked_ = false;
  close_delimited_ = false;
  upgrading_ = false;
}

void ResponseRelay::OnHead(HttpHead& head) {
  if (head.status >= 100 && head.status < 200 && head.status != 101) {
    // 100 Continue and friends go to the client as they are; the final response follows.
    sink_.Write(SerializeResponseHead(head, false, {}));
    return;
  }
  started_ = true;
  if (head.status == 101) {
    events_.OnSwitch(upgrade_asked_);
    if (!upgrade_asked_) return;
    // The protocol switch goes to the client as is; the session then splices.
    upgrading_ = true;
    sink_.Write(SerializeResponseHead(head, true, {}));
    return;
  }
  const bool no_body = head_request_ || head.status == 204 || head.status == 304;
  chunked_ = head.chunked && !no_body;
  close_delimited_ = !no_body && !head.chunked && !head.content_length;
  std::vector<HttpHeader> extra;
  if (!events_.OnResponseHead(head, close_delimited_)) extra.push_back({"Connection", "close"});
  sink_.Write(SerializeResponseHead(head, false, extra));
}

void ResponseRelay::OnBody(const char* data, std::size_t size) {
  if (size == 0) return;
  if (!chunked_) {
    sink_.WriteBody(data, size);  // sealed straight from the parser's view when decrypted
    return;
  }
  sink_.Write(SerializeChunk(std::string_view(data, size)));
}

void ResponseRelay::OnMessageComplete() {
  if (!started_ || upgrading_) return;  // 1xx: the final one follows
  if (chunked_) sink_.Write("0\r\n\r\n");
  // Finished by the session once the parser has returned: never torn down from inside its
  // own callback.
  complete_ = true;
}

}  // namespace mintgate::proxy
