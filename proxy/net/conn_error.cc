#include "proxy/net/conn_error.h"

namespace mintgate::proxy::net {

std::string_view ToString(ErrorSource source) {
  switch (source) {
    case ErrorSource::kDownstream:
      return "downstream";
    case ErrorSource::kUpstream:
      return "upstream";
    case ErrorSource::kDns:
      return "dns";
    case ErrorSource::kClientTls:
      return "client_tls";
    case ErrorSource::kOriginTls:
      return "origin_tls";
    case ErrorSource::kPolicy:
      return "policy";
    case ErrorSource::kInternal:
      return "internal";
  }
  return "internal";
}

std::string_view ToString(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kRefused:
      return "refused";
    case ErrorKind::kTimeout:
      return "timeout";
    case ErrorKind::kClosed:
      return "closed";
    case ErrorKind::kIo:
      return "io";
    case ErrorKind::kMalformed:
      return "malformed";
    case ErrorKind::kTooLarge:
      return "too_large";
    case ErrorKind::kUnavailable:
      return "unavailable";
    case ErrorKind::kVerify:
      return "verify";
  }
  return "unavailable";
}

std::string ConnError::Tag() const {
  std::string tag(ToString(source));
  tag += '/';
  tag += ToString(kind);
  return tag;
}

}  // namespace mintgate::proxy::net
