// One leg of a connection as the session sees it: bytes in and out of a net::Stream,
// through a TLS engine once that leg is decrypted, with the same interface either way (h2o's
// socket API). Output made while the session handles one read is corked and leaves in one
// write when that read is done: a response head and a small body become one TLS record and
// one syscall. Nothing outside the transport tests whether its leg is TLS to write.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "proxy/net/conn_error.h"
#include "proxy/net/tcp_stream.h"
#include "tls/tls_engine.h"

namespace mintgate::proxy {

class Transport {
 public:
  // What the session hears from its transports.
  class Events {
   public:
    // A write could not be made; the leg is unusable. Called at most once per failure.
    virtual void OnTransportFailed(const net::ConnError& error) = 0;
    // Bytes were queued on the socket: the session rechecks its read watermarks.
    virtual void OnTransportQueued() = 0;

   protected:
    ~Events() = default;
  };
  // Shared by a session's two transports: output is held while depth > 0 (one read being
  // handled) and never once the session is closing.
  struct Cork {
    int depth = 0;
    bool closing = false;
  };

  Transport(net::ErrorSource source, Cork& cork, Events& events)
      : source_(source), cork_(cork), events_(events) {}
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  // The socket this leg writes to: the client's for the whole connection, an origin
  // connection's while the session holds it; null while there is none (output is dropped).
  void Attach(net::Stream* stream) { stream_ = stream; }
  net::Stream* stream() const { return stream_; }

  // The leg's TLS engine, set once its handshake starts; application data goes through it
  // once the handshake is done.
  std::optional<tls::TlsEngine> tls;
  bool encrypted() const { return tls && tls->handshake_done(); }

  // Application data.
  void Write(std::string data);
  // A body chunk relayed as it is: on a decrypted leg sealed straight from `data`, no copy.
  void WriteBody(const char* data, std::size_t size);
  // Bytes for the socket as they are (handshake records, a tunnel's bytes, an alert).
  void RawWrite(std::string data);
  // Sends what was corked (sealing the queued plaintext into as few records as fit).
  void Flush();
  // The engine's handshake output, if any.
  void SendTlsOutput() { RawWrite(tls->TakeCiphertext()); }
  // A decrypted leg that ends cleanly says so (close_notify after what was queued), so the
  // peer can tell the end from a truncation. Nothing before the handshake has finished.
  void SendCloseNotify() {
    if (!tls || !tls->handshake_done()) return;
    tls->Shutdown();
    SendTlsOutput();
  }

  // What one read from the socket brought, the same on a plain leg and a TLS one.
  struct Input {
    bool handshaking = false;  // the bytes were handshake records, fed to the engine
    bool ended = false;        // close_notify or a fatal TLS error: no more input
    std::string error;         // the TLS error, when it ended with one
    // Application bytes: the read itself on a plain leg, the plaintext on a TLS one.
    std::string_view bytes() const {
      return raw != nullptr ? std::string_view(raw, raw_size) : std::string_view(plaintext);
    }
    const char* raw = nullptr;
    std::size_t raw_size = 0;
    std::string plaintext;
  };
  // Bytes read from the socket. On a TLS leg they are fed to the engine: during its
  // handshake the caller steps it; after, the plaintext comes back (and the engine's own
  // answers, such as a key update, are sent).
  Input Receive(const char* data, std::size_t size);

  // Writes not yet in the socket, corked output counting as one; and their bytes.
  std::size_t pending_writes() const;
  std::size_t queued_bytes() const;

 private:
  void AfterPlaintext(std::size_t size, bool accepted);
  void Submit(std::string data);
  void Failed(const std::string& reason, bool in_tls);

  net::ErrorSource source_;
  Cork& cork_;
  Events& events_;
  net::Stream* stream_ = nullptr;
  // Output held while corked.
  std::string corked_raw_;     // bytes for the socket, in order
  bool engine_dirty_ = false;  // plaintext queued in the engine after corked_raw_
  bool corked_ = false;        // counted as one pending write
  std::size_t corked_bytes_ = 0;
};

}  // namespace mintgate::proxy
