#include "proxy/session/transport.h"

#include <utility>

namespace mintgate::proxy {

void Transport::Write(std::string data) {
  if (encrypted()) {
    const std::size_t size = data.size();
    if (size != 0) AfterPlaintext(size, tls->QueuePlaintext(std::move(data)));
    return;
  }
  RawWrite(std::move(data));
}

void Transport::WriteBody(const char* data, std::size_t size) {
  if (encrypted()) {
    if (size != 0) AfterPlaintext(size, tls->WritePlaintext(std::string_view(data, size)));
    return;
  }
  RawWrite(std::string(data, size));
}

// Plaintext went into the engine: held back while corked, else sealed and sent now.
void Transport::AfterPlaintext(std::size_t size, bool accepted) {
  if (!accepted) {
    Failed(
        "TLS: " + (tls->error().empty() ? std::string("the connection is closed") : tls->error()),
        true);
    return;
  }
  if (cork_.depth > 0 && !cork_.closing && stream_ != nullptr) {
    corked_ = true;
    corked_bytes_ += size;
    engine_dirty_ = true;
    return;
  }
  std::string data = tls->TakeCiphertext();
  const bool failed = !tls->error().empty();
  RawWrite(std::move(data));
  if (failed) Failed("TLS: " + tls->error(), true);
}

void Transport::RawWrite(std::string data) {
  if (data.empty() || stream_ == nullptr) return;
  if (cork_.depth > 0 && !cork_.closing) {
    corked_ = true;
    corked_bytes_ += data.size();
    if (corked_raw_.empty()) {
      corked_raw_ = std::move(data);
    } else {
      corked_raw_ += data;
    }
    return;
  }
  Submit(std::move(data));
}

void Transport::Flush() {
  if (!corked_) return;
  std::string data = std::move(corked_raw_);
  corked_raw_.clear();
  bool failed = false;
  if (engine_dirty_ && tls) {
    // Seals everything queued into as few records as fit.
    if (data.empty()) {
      data = tls->TakeCiphertext();
    } else {
      data += tls->TakeCiphertext();
    }
    failed = !tls->error().empty();
  }
  engine_dirty_ = false;
  corked_ = false;
  corked_bytes_ = 0;
  Submit(std::move(data));
  if (failed) Failed("TLS: " + tls->error(), true);
}

Transport::Input Transport::Receive(const char* data, std::size_t size) {
  Input in;
  if (!tls) {
    in.raw = data;
    in.raw_size = size;
    return in;
  }
  tls->FeedCiphertext(data, size);
  if (!tls->handshake_done()) {
    in.handshaking = true;
    return in;
  }
  in.plaintext = tls->ReadPlaintext();
  RawWrite(tls->TakeCiphertext());
  if (tls && tls->closed()) {
    in.ended = true;
    in.error = tls->error();
  }
  return in;
}

void Transport::Submit(std::string data) {
  if (data.empty() || stream_ == nullptr) return;
  if (!stream_->Write(std::move(data))) {  // the peer is gone (EPIPE, ECONNRESET)
    Failed(source_ == net::ErrorSource::kDownstream ? "the client's connection broke"
                                                    : "the origin's connection broke",
           false);
    return;
  }
  events_.OnTransportQueued();
}

void Transport::Failed(const std::string& reason, bool in_tls) {
  net::ErrorSource source = source_;
  if (in_tls) {
    source = source_ == net::ErrorSource::kDownstream ? net::ErrorSource::kClientTls
                                                      : net::ErrorSource::kOriginTls;
  }
  events_.OnTransportFailed({source, net::ErrorKind::kIo, reason, 0});
}

std::size_t Transport::pending_writes() const {
  return (stream_ != nullptr ? stream_->pending_writes() : 0) + (corked_ ? 1 : 0);
}

std::size_t Transport::queued_bytes() const {
  return (stream_ != nullptr ? stream_->queued_bytes() : 0) + corked_bytes_;
}

}  // namespace mintgate::proxy
