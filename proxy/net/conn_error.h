// One error model for a connection (Pingora tags its errors the same way): where it came from,
// what kind of failure it was, and a reason in words for the access log and the error page.
// Made where the failure is seen; recorded once in the access record; turned into an HTTP
// answer, or a close, in one place (Session::Fail).
#pragma once

#include <string>
#include <string_view>

namespace mintgate::proxy::net {

enum class ErrorSource {
  kDownstream,  // the client's TCP connection or its HTTP
  kUpstream,    // the origin's TCP connection or its HTTP
  kDns,
  kClientTls,  // the TLS the gateway serves the client (decrypt)
  kOriginTls,  // the TLS to the origin, and its verification
  kPolicy,     // the gateway refused: rules, destinations, ports, limits
  kInternal,   // the gateway itself: no CA to sign with, shutting down
};

enum class ErrorKind {
  kRefused,      // not allowed (policy), or the peer refused the connection
  kTimeout,      // a [timeouts] value ran out
  kClosed,       // the peer closed before it should have
  kIo,           // a read or write failed (reset, broken pipe)
  kMalformed,    // bytes that break the protocol
  kTooLarge,     // a head or a ClientHello beyond its bound
  kUnavailable,  // what was needed is not there (an address, a leaf, a CA)
  kVerify,       // the origin's certificate was not trusted
};

std::string_view ToString(ErrorSource source);
std::string_view ToString(ErrorKind kind);

struct ConnError {
  ErrorSource source = ErrorSource::kInternal;
  ErrorKind kind = ErrorKind::kUnavailable;
  std::string reason;  // for people: the log's note and the error page
  // The HTTP status to answer with while the client can still be answered in HTTP; 0 closes
  // the connection without an answer.
  int status = 0;

  // "upstream/timeout": the access record's `error` field.
  std::string Tag() const;
};

}  // namespace mintgate::proxy::net
