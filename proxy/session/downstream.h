// The client's side of a session: its connection, the transport over it (TLS once the
// connection is decrypted), the bytes read and not yet consumed, whether the client ended its
// side, and the byte counts already written to the access log.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "proxy/net/tcp_stream.h"
#include "proxy/session/transport.h"

namespace mintgate::proxy {

struct Downstream {
  Downstream(std::unique_ptr<net::Stream> client, Transport::Cork& cork, Transport::Events& events)
      : stream(std::move(client)), transport(net::ErrorSource::kDownstream, cork, events) {
    transport.Attach(stream.get());
  }
  Downstream(const Downstream&) = delete;
  Downstream& operator=(const Downstream&) = delete;

  std::unique_ptr<net::Stream> stream;  // for the session's whole life
  Transport transport;
  // Read and not yet consumed by the request parser or the ClientHello peek. Given back
  // between requests when it grew: an idle connection holds no buffer.
  std::string in;
  bool ended = false;                 // FIN, or close_notify on a decrypted connection
  bool reset = false;                 // ... and that end was a TCP reset
  std::uint64_t bytes_in_logged = 0;  // the stream's counts at the last access record
  std::uint64_t bytes_out_logged = 0;
};

}  // namespace mintgate::proxy
