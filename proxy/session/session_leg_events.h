// Private to the session's files: a leg's socket events, to the session's read and write
// handlers for that leg.
#pragma once

#include "proxy/session/session.h"
#include "proxy/session/session_context.h"

namespace mintgate::proxy {

// One leg's socket events, to the session's handlers for that leg.
class Session::LegEvents final : public net::TcpStream::Delegate {
 public:
  LegEvents(Session& s, Leg leg) : s_(s), leg_(leg) {}
  // Every read of the loop goes into the loop's one buffer: whatever a read delivers is
  // consumed (parsed, copied, sealed) before its callback returns, so a connection holds no
  // read buffer at all between reads.
  uv_buf_t ReadBuffer() override { return s_.context_.ReadBuffer(); }
  void OnRead(ssize_t nread, const char* data) override { s_.OnLegRead(leg_, nread, data); }
  void OnWriteDone(int status) override { s_.OnWritten(leg_, status); }

 private:
  Session& s_;
  Leg leg_;
};

}  // namespace mintgate::proxy
