// TLS as a byte engine (ENGINEERING.md): an SSL with memory BIOs, fed ciphertext from the
// network and asked for ciphertext to send, so the proxy's event loop owns all I/O and the
// engine can be tested by pumping bytes between two of them with no sockets.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "tls/leaf.h"
#include "tls/openssl_ptr.h"

namespace mintgate::tls {

// Ciphertext fed to an engine and not yet read by its SSL (see tls_engine.cc).
struct CiphertextIn {
  std::string data;
  std::size_t read = 0;  // bytes of data the SSL has consumed
};

class TlsEngine {
 public:
  enum class Status {
    kWantMore,  // needs more ciphertext from the peer (send TakeCiphertext() first)
    kDone,      // handshake complete
    kError,     // failed: error() says why; send TakeCiphertext() (it may hold an alert)
  };

  // Server side with a minted leaf: certificate, key and chain are attached to this SSL only.
  static TlsEngine Server(SSL_CTX* ctx, const Leaf& leaf);
  // Client side towards an origin: SNI `sni` (omitted when empty or an IP literal), hostname or
  // IP verification against `verify_name`, optional session to resume.
  static TlsEngine Client(SSL_CTX* ctx, const std::string& sni, const std::string& verify_name,
                          SSL_SESSION* resume);

  // Keeps the session resumable when a healthy connection is dropped without Shutdown():
  // SSL_free would otherwise mark it not resumable, including for SSL_get1_session holders.
  ~TlsEngine();
  TlsEngine(TlsEngine&&) noexcept = default;
  TlsEngine& operator=(TlsEngine&&) noexcept = default;

  // Network bytes from the peer.
  void FeedCiphertext(const char* data, std::size_t size);
  // Drives the handshake as far as the fed bytes allow.
  Status Handshake();
  // Decrypted application data available now (may be empty); after a fatal error or the
  // peer's close_notify, closed() becomes true.
  std::string ReadPlaintext();
  // Queues application data once the handshake is done (false before, or once closed). It is
  // encrypted on the next TakeCiphertext() (or any call that makes the SSL emit records), so
  // several writes in a row become one run of full records. A failure to encrypt closes the
  // engine and sets error().
  bool WritePlaintext(std::string_view data);
  bool QueuePlaintext(std::string&& data);  // the same, taking the buffer when it can
  // Sends close_notify (into TakeCiphertext()).
  void Shutdown();
  // Ciphertext to send to the peer (moves it out).
  std::string TakeCiphertext();

  bool handshake_done() const { return handshake_done_; }
  bool closed() const { return closed_; }
  const std::string& error() const { return error_; }
  // Client side after the handshake: X509_V_OK, or the verification result
  // (X509_V_ERR_CERT_HAS_EXPIRED, ..._UNABLE_TO_GET_ISSUER_CERT_LOCALLY, ..._HOSTNAME_MISMATCH).
  long verify_result() const;
  // A short human reason for a verification failure ("certificate has expired", ...).
  std::string verify_reason() const;
  std::string alpn() const;  // negotiated ALPN or ""
  SSL* ssl() const { return ssl_.get(); }

 private:
  TlsEngine() = default;
  bool Init(SSL_CTX* ctx);  // SSL, its BIOs and alert capture; false after Fail()
  void Fail(const char* what);
  void Seal();  // queued plaintext into records (see WritePlaintext)
  void SealFrom(std::string_view data);
  static constexpr std::size_t kSealAtOnce = 8 * 1024;
  bool Writable() const;

  // The BIOs of ssl_ point at these two: declared first, so they outlive it.
  std::unique_ptr<CiphertextIn> in_ciphertext_;  // fed, not yet read by the SSL
  std::unique_ptr<std::string> out_ciphertext_;  // what the SSL wrote, until taken
  SslPtr ssl_;
  bool handshake_done_ = false;
  bool closed_ = false;
  std::string error_;
  std::string pending_;  // plaintext written but not yet sealed into records
};

}  // namespace mintgate::tls
