#include "tls/tls_engine.h"

#include <openssl/err.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <utility>

#include "tls/host_name.h"
#include "tls/leaf_cert.h"
#include "tls/tls_error.h"

namespace mintgate::tls {
namespace {

// The last alerts this SSL received and sent, packed into one ex_data slot (received in the
// low 16 bits, sent in the high 16, each as OpenSSL's (level << 8) | description). Kept on
// the SSL rather than in the engine because the engine is movable and the callback only gets
// the SSL.
int AlertIndex() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

std::uintptr_t Alerts(const SSL* ssl) {
  return reinterpret_cast<std::uintptr_t>(SSL_get_ex_data(ssl, AlertIndex()));
}

// close_notify is the orderly end, not a reason, so it is not recorded.
void InfoCallback(const SSL* ssl, int where, int ret) {
  if ((where & SSL_CB_ALERT) == 0 || (ret & 0xff) == SSL_AD_CLOSE_NOTIFY) return;
  std::uintptr_t alerts = Alerts(ssl);
  const auto value = static_cast<std::uintptr_t>(ret) & 0xffff;
  if ((where & SSL_CB_READ) != 0) {
    alerts = (alerts & ~std::uintptr_t{0xffff}) | value;
  } else {
    alerts = (alerts & std::uintptr_t{0xffff}) | (value << 16);
  }
  // The callback gets a const SSL; the ex_data slot is ours, so writing it is safe.
  SSL_set_ex_data(const_cast<SSL*>(ssl), AlertIndex(), reinterpret_cast<void*>(alerts));
}

const char* SslErrorName(int code) {
  switch (code) {
    case SSL_ERROR_SSL:
      return "protocol error";
    case SSL_ERROR_SYSCALL:
      return "unexpected end of input";
    case SSL_ERROR_ZERO_RETURN:
      return "peer closed the connection";
    case SSL_ERROR_WANT_X509_LOOKUP:
    case SSL_ERROR_WANT_CLIENT_HELLO_CB:
      return "callback did not complete";
    default:
      return "unexpected SSL error";
  }
}

// A BIO type of the engine's: initialised at creation, data set by the engine.
BIO_METHOD* NewEngineBio(const char* name) {
  BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, name);
  if (m == nullptr) return m;
  BIO_meth_set_create(m, [](BIO* b) {
    BIO_set_init(b, 1);
    return 1;
  });
  return m;
}

// The read side of every engine reads CiphertextIn: a plain string rather than a memory BIO,
// which zero-fills every byte it grows by.
BIO_METHOD* CiphertextSource() {
  static BIO_METHOD* const method = [] {
    BIO_METHOD* m = NewEngineBio("mintgate ciphertext source");
    if (m == nullptr) return m;
    BIO_meth_set_read_ex(m, [](BIO* b, char* out, std::size_t len, std::size_t* got) {
      auto* in = static_cast<CiphertextIn*>(BIO_get_data(b));
      BIO_clear_retry_flags(b);
      const std::size_t available = in->data.size() - in->read;
      if (available == 0) {
        BIO_set_retry_read(b);  // not the end: more may be fed (WANT_READ, as a memory BIO)
        *got = 0;
        return 0;
      }
      const std::size_t n = len < available ? len : available;
      std::memcpy(out, in->data.data() + in->read, n);
      in->read += n;
      if (in->read == in->data.size()) {
        in->data.clear();
        in->read = 0;
      }
      *got = n;
      return 1;
    });
    BIO_meth_set_ctrl(m, [](BIO* b, int cmd, long, void*) -> long {  // NOLINT(runtime/int)
      const auto* in = static_cast<const CiphertextIn*>(BIO_get_data(b));
      if (cmd == BIO_CTRL_PENDING) return static_cast<long>(in->data.size() - in->read);  // NOLINT
      return cmd == BIO_CTRL_FLUSH ? 1 : 0;
    });
    return m;
  }();
  return method;
}

// The write side of every engine: records are appended straight to a string the engine owns
// and TakeCiphertext hands out whole, instead of a memory BIO that each take copies out of
// into a zero-filled string (two passes over every byte sent).
BIO_METHOD* CiphertextSink() {
  static BIO_METHOD* const method = [] {
    BIO_METHOD* m = NewEngineBio("mintgate ciphertext sink");
    if (m == nullptr) return m;
    BIO_meth_set_write_ex(m, [](BIO* b, const char* data, std::size_t len, std::size_t* written) {
      static_cast<std::string*>(BIO_get_data(b))->append(data, len);
      *written = len;
      return 1;
    });
    // Flush succeeds (everything is already "sent"); nothing else applies to a sink.
    BIO_meth_set_ctrl(m, [](BIO*, int cmd, long, void*) -> long {  // NOLINT(runtime/int)
      return cmd == BIO_CTRL_FLUSH ? 1 : 0;
    });
    return m;
  }();
  return method;
}

bool IsIpLiteral(const std::string& name, std::string* canonical) {
  Result<SanName> parsed = ParseSanName(name);
  if (!parsed.ok() || parsed->kind != SanName::Kind::kIp) return false;
  if (canonical != nullptr) *canonical = parsed->text;
  return true;
}

// Stale errors from other connections on this thread would turn a WANT_READ into a spurious
// failure (SSL_get_error consults the queue), so the queue must be empty before each SSL
// call. Runs for every record: peeking at an empty queue costs ~30 ns, clearing it ~250 ns.
void ClearStaleErrors() {
  if (ERR_peek_error() != 0) ERR_clear_error();
}

}  // namespace

bool TlsEngine::Init(SSL_CTX* ctx) {
  // On the heap: the engine is movable and its BIOs point at them.
  in_ciphertext_ = std::make_unique<CiphertextIn>();
  out_ciphertext_ = std::make_unique<std::string>();
  ERR_clear_error();
  ssl_.reset(SSL_new(ctx));
  if (!ssl_) {
    Fail("cannot create SSL");
    return false;
  }
  BIO_METHOD* source = CiphertextSource();
  BIO_METHOD* sink = CiphertextSink();
  BIO* in = source != nullptr ? BIO_new(source) : nullptr;
  BIO* out = sink != nullptr ? BIO_new(sink) : nullptr;
  if (in == nullptr || out == nullptr) {
    BIO_free(in);
    BIO_free(out);
    Fail("cannot create the engine's BIOs");
    return false;
  }
  BIO_set_data(in, in_ciphertext_.get());
  BIO_set_data(out, out_ciphertext_.get());
  SSL_set_bio(ssl_.get(), in, out);
  SSL_set_info_callback(ssl_.get(), InfoCallback);
  return true;
}

TlsEngine TlsEngine::Server(SSL_CTX* ctx, const Leaf& leaf) {
  TlsEngine e;
  if (!e.Init(ctx)) return e;
  SSL* ssl = e.ssl_.get();
  SSL_set_accept_state(ssl);
  // A cached leaf is compact: its X509 comes from the thread's table of rebuilt ones.
  const X509Ptr leaf_cert = LeafCert(leaf);
  if (leaf_cert == nullptr || SSL_use_certificate(ssl, leaf_cert.get()) != 1) {
    e.Fail("cannot use leaf certificate");
    return e;
  }
  if (SSL_use_PrivateKey(ssl, leaf.key.get()) != 1) {
    e.Fail("cannot use leaf key");
    return e;
  }
  if (leaf.chain) {
    // add1: the chain certificates are shared by every leaf of the signer, so this SSL takes
    // its own references instead of the ones the CertChain holds.
    for (const X509Ptr& cert : leaf.chain->certs) {
      if (SSL_add1_chain_cert(ssl, cert.get()) != 1) {
        e.Fail("cannot add chain certificate");
        return e;
      }
    }
  }
  return e;
}

TlsEngine TlsEngine::Client(SSL_CTX* ctx, const std::string& sni, const std::string& verify_name,
                            SSL_SESSION* resume) {
  TlsEngine e;
  if (!e.Init(ctx)) return e;
  SSL* ssl = e.ssl_.get();
  SSL_set_connect_state(ssl);
  // RFC 6066 forbids IP literals in SNI.
  if (!sni.empty() && !IsIpLiteral(sni, nullptr) &&
      SSL_set_tlsext_host_name(ssl, sni.c_str()) != 1) {
    e.Fail("cannot set SNI");
    return e;
  }
  if (!verify_name.empty()) {
    std::string ip;
    if (IsIpLiteral(verify_name, &ip)) {
      // Canonical text without brackets: set1_ip_asc does not accept "[::1]".
      if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), ip.c_str()) != 1) {
        e.Fail("cannot set verification IP");
        return e;
      }
    } else {
      // As browsers: names are matched against DNS SANs only, never the subject CN (which
      // OpenSSL falls back to when no DNS SAN exists), and "f*.example.com" style partial
      // wildcards are refused. A CN-only certificate would otherwise pass here and be shown
      // to the client under a clean minted leaf that the client would have refused.
      SSL_set_hostflags(ssl,
                        X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS | X509_CHECK_FLAG_NEVER_CHECK_SUBJECT);
      if (SSL_set1_host(ssl, verify_name.c_str()) != 1) {
        e.Fail("cannot set verification name");
        return e;
      }
    }
  }
  if (resume != nullptr && SSL_set_session(ssl, resume) != 1) {
    // A session that cannot be resumed only costs a full handshake.
    ERR_clear_error();
  }
  return e;
}

TlsEngine::~TlsEngine() {
  // SSL_free treats a connection that never sent close_notify as broken and invalidates its
  // session, so an origin connection the proxy simply drops (idle timeout, client gone, origin
  // closed TCP without close_notify) could never be resumed. Only a connection that failed
  // keeps that treatment.
  if (ssl_ && handshake_done_ && error_.empty()) {
    SSL_set_shutdown(ssl_.get(), SSL_get_shutdown(ssl_.get()) | SSL_SENT_SHUTDOWN);
  }
}

void TlsEngine::FeedCiphertext(const char* data, std::size_t size) {
  if (!ssl_ || size == 0) return;
  CiphertextIn& in = *in_ciphertext_;
  if (in.read > 0) {  // drop what the SSL consumed (what is left is part of one record)
    in.data.erase(0, in.read);
    in.read = 0;
  }
  in.data.append(data, size);
}

TlsEngine::Status TlsEngine::Handshake() {
  if (handshake_done_) return Status::kDone;
  if (!ssl_ || !error_.empty()) return Status::kError;
  ClearStaleErrors();
  int rc = SSL_do_handshake(ssl_.get());
  if (rc == 1) {
    handshake_done_ = true;
    return Status::kDone;
  }
  int code = SSL_get_error(ssl_.get(), rc);
  if (code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE) return Status::kWantMore;
  Fail((std::string("handshake failed: ") + SslErrorName(code)).c_str());
  return Status::kError;
}

std::string TlsEngine::ReadPlaintext() {
  std::string out;
  if (!ssl_ || closed_) return out;
  Seal();  // SSL_read may answer (key update): what was written first goes first
  if (closed_) return out;
  out.reserve(in_ciphertext_->data.size() - in_ciphertext_->read);  // plaintext is shorter
  char buf[16384];
  for (;;) {
    ClearStaleErrors();
    std::size_t n = 0;
    int rc = SSL_read_ex(ssl_.get(), buf, sizeof buf, &n);
    if (rc == 1) {
      out.append(buf, n);
      continue;
    }
    int code = SSL_get_error(ssl_.get(), rc);
    if (code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE) break;
    if (code == SSL_ERROR_ZERO_RETURN) {
      closed_ = true;
      break;
    }
    Fail((std::string("read failed: ") + SslErrorName(code)).c_str());
    break;
  }
  // SSL_read may have completed the handshake (or a TLS 1.3 ticket) on the way.
  if (!handshake_done_ && SSL_is_init_finished(ssl_.get()) == 1) handshake_done_ = true;
  return out;
}

// Before the handshake is done there is nothing to write with yet; not fatal. After our
// close_notify nothing more may follow it.
bool TlsEngine::Writable() const {
  return ssl_ && !closed_ && handshake_done_ &&
         (SSL_get_shutdown(ssl_.get()) & SSL_SENT_SHUTDOWN) == 0;
}

bool TlsEngine::WritePlaintext(std::string_view data) {
  if (!Writable()) return false;
  if (pending_.empty() && data.size() >= kSealAtOnce) {
    // A bulk chunk with nothing queued before it: encrypted from the caller's buffer now,
    // not copied first (it fills whole records anyway; the order stays that of the calls).
    SealFrom(data);
    return error_.empty();
  }
  pending_.append(data);
  return true;
}

bool TlsEngine::QueuePlaintext(std::string&& data) {
  if (!Writable()) return false;
  if (pending_.empty()) {
    pending_ = std::move(data);  // a relayed body chunk is not copied again
  } else {
    pending_.append(data);
  }
  return true;
}

// Queued plaintext becomes records before anything else the SSL emits, so the order on the
// wire is the order of the calls. Everything queued since the last seal goes out as few
// full records as possible: a response head and a small body share one record.
void TlsEngine::Seal() {
  if (pending_.empty()) return;
  SealFrom(pending_);
  // A moved-in body chunk keeps its capacity: give it back rather than hold it while idle.
  if (pending_.capacity() > 16 * 1024) {
    std::string().swap(pending_);
  } else {
    pending_.clear();
  }
}

void TlsEngine::SealFrom(std::string_view data) {
  // Room for the records (16 KiB of plaintext each, plus header, tag and type byte), so the
  // sink does not copy what it holds again as it grows.
  out_ciphertext_->reserve(out_ciphertext_->size() + data.size() + (data.size() / 16384 + 1) * 32);
  while (!data.empty() && !closed_) {
    ClearStaleErrors();
    std::size_t n = 0;
    int rc = SSL_write_ex(ssl_.get(), data.data(), data.size(), &n);
    if (rc != 1) {
      Fail((std::string("write failed: ") + SslErrorName(SSL_get_error(ssl_.get(), rc))).c_str());
      break;
    }
    data.remove_prefix(n);
  }
}

void TlsEngine::Shutdown() {
  // SSL_shutdown during the handshake only queues an error; there is nothing to close yet.
  if (!ssl_ || !handshake_done_) return;
  Seal();
  ClearStaleErrors();
  // Once: the engine never waits for the peer's close_notify (the proxy closes the socket).
  SSL_shutdown(ssl_.get());
  ERR_clear_error();
}

std::string TlsEngine::TakeCiphertext() {
  std::string out;
  if (!ssl_) return out;
  Seal();
  out.swap(*out_ciphertext_);
  return out;
}

long TlsEngine::verify_result() const {  // NOLINT(runtime/int): OpenSSL's type
  if (!ssl_) return X509_V_ERR_UNSPECIFIED;
  return SSL_get_verify_result(ssl_.get());
}

std::string TlsEngine::verify_reason() const {
  return X509_verify_cert_error_string(verify_result());
}

std::string TlsEngine::alpn() const {
  if (!ssl_) return {};
  const unsigned char* data = nullptr;
  unsigned int len = 0;
  SSL_get0_alpn_selected(ssl_.get(), &data, &len);
  if (data == nullptr) return {};
  return std::string(reinterpret_cast<const char*>(data), len);
}

void TlsEngine::Fail(const char* what) {
  closed_ = true;
  std::string message = what;
  if (ssl_) {
    const std::uintptr_t alerts = Alerts(ssl_.get());
    // The peer's alert comes first: the gateway recognises clients that reject its CA by it
    // ("peer sent alert: unknown CA").
    if ((alerts & 0xffff) != 0) {
      message += "; peer sent alert: ";
      message += SSL_alert_desc_string_long(static_cast<int>(alerts & 0xffff));
    }
    if ((alerts >> 16) != 0) {
      message += "; sent alert: ";
      message += SSL_alert_desc_string_long(static_cast<int>(alerts >> 16));
    }
  }
  std::string detail = DrainOpenSslErrors();
  if (!detail.empty()) {
    message += "; ";
    message += detail;
  }
  if (error_.empty()) error_ = std::move(message);
}

}  // namespace mintgate::tls
