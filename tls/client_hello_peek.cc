#include "tls/client_hello_peek.h"

namespace mintgate::tls {
namespace {

constexpr std::uint8_t kHandshakeRecord = 22;
constexpr std::uint8_t kClientHello = 1;
constexpr std::uint16_t kExtServerName = 0;
constexpr std::uint16_t kExtAlpn = 16;
constexpr std::size_t kRecordHeader = 5;
constexpr std::size_t kMaxRecordPayload = (1 << 14) + 2048;  // TLSCiphertext bound

// A bounds-checked reader: every read fails cleanly instead of running past the end.
class Reader {
 public:
  Reader(const std::uint8_t* p, std::size_t n) : p_(p), n_(n) {}
  bool U8(std::uint8_t& v) {
    if (n_ < 1) return false;
    v = p_[0];
    Skip(1);
    return true;
  }
  bool U16(std::uint16_t& v) {
    if (n_ < 2) return false;
    v = static_cast<std::uint16_t>((p_[0] << 8) | p_[1]);
    Skip(2);
    return true;
  }
  bool U24(std::uint32_t& v) {
    if (n_ < 3) return false;
    v = (std::uint32_t{p_[0]} << 16) | (std::uint32_t{p_[1]} << 8) | p_[2];
    Skip(3);
    return true;
  }
  bool Sub(std::size_t len, Reader& out) {
    if (n_ < len) return false;
    out = Reader(p_, len);
    Skip(len);
    return true;
  }
  bool Vector8(Reader& out) {
    std::uint8_t len;
    return U8(len) && Sub(len, out);
  }
  bool Vector16(Reader& out) {
    std::uint16_t len;
    return U16(len) && Sub(len, out);
  }
  bool Skip(std::size_t len) {
    if (n_ < len) return false;
    p_ += len;
    n_ -= len;
    return true;
  }
  std::size_t size() const { return n_; }
  const std::uint8_t* data() const { return p_; }

 private:
  const std::uint8_t* p_;
  std::size_t n_;
};

}  // namespace

ClientHelloPeek::Status ClientHelloPeek::Malformed(std::string why) {
  error_ = std::move(why);
  return Status::kMalformed;
}

ClientHelloPeek::Status ClientHelloPeek::Examine(const std::uint8_t* data, std::size_t size) {
  // Reassemble the handshake layer from as many records as have arrived.
  std::vector<std::uint8_t> handshake;
  std::size_t offset = 0;
  while (true) {
    if (size - offset < kRecordHeader) {
      if (offset == 0 && size > 0 && data[0] != kHandshakeRecord) return Status::kNotTls;
      return Status::kNeedMore;
    }
    const std::uint8_t* h = data + offset;
    if (h[0] != kHandshakeRecord) {
      return offset == 0 ? Status::kNotTls : Malformed("non-handshake record inside ClientHello");
    }
    if (h[1] != 3) return offset == 0 ? Status::kNotTls : Malformed("bad record version");
    const std::size_t length = (std::size_t{h[3]} << 8) | h[4];
    if (length == 0 || length > kMaxRecordPayload) return Malformed("bad record length");
    if (size - offset - kRecordHeader < length) return Status::kNeedMore;
    handshake.insert(handshake.end(), h + kRecordHeader, h + kRecordHeader + length);
    offset += kRecordHeader + length;
    if (handshake.size() >= 4) {
      if (handshake[0] != kClientHello)
        return Malformed("first handshake message is not a ClientHello");
      const std::size_t hello_length =
          (std::size_t{handshake[1]} << 16) | (std::size_t{handshake[2]} << 8) | handshake[3];
      if (hello_length > kMaxHelloBytes) return Malformed("ClientHello too large");
      if (handshake.size() >= 4 + hello_length) {
        handshake.resize(4 + hello_length);
        return ParseHello(handshake);
      }
    }
    if (offset > kMaxHelloBytes + 8 * kRecordHeader) return Malformed("ClientHello too large");
  }
}

ClientHelloPeek::Status ClientHelloPeek::ParseHello(const std::vector<std::uint8_t>& hello) {
  Reader r(hello.data() + 4, hello.size() - 4);
  Reader session_id(nullptr, 0), ciphers(nullptr, 0), compression(nullptr, 0);
  if (!r.U16(info_.legacy_version) || !r.Skip(32) || !r.Vector8(session_id) ||
      session_id.size() > 32 || !r.Vector16(ciphers) || ciphers.size() < 2 ||
      ciphers.size() % 2 != 0 || !r.Vector8(compression) || compression.size() < 1) {
    return Malformed("truncated ClientHello");
  }
  if (r.size() == 0) return Status::kDone;  // no extensions at all (old clients)
  Reader extensions(nullptr, 0);
  if (!r.Vector16(extensions) || r.size() != 0) return Malformed("bad extensions length");
  bool seen_sni = false;
  bool seen_alpn = false;
  while (extensions.size() > 0) {
    std::uint16_t type;
    Reader body(nullptr, 0);
    if (!extensions.U16(type) || !extensions.Vector16(body)) {
      return Malformed("truncated extension");
    }
    if (type == kExtServerName) {
      if (seen_sni) return Malformed("duplicate server_name extension");
      seen_sni = true;
      Reader list(nullptr, 0);
      if (!body.Vector16(list) || body.size() != 0) return Malformed("bad server_name list");
      while (list.size() > 0) {
        std::uint8_t name_type;
        Reader name(nullptr, 0);
        if (!list.U8(name_type) || !list.Vector16(name)) return Malformed("bad server_name");
        if (name_type == 0 && info_.sni.empty()) {
          if (name.size() == 0) return Malformed("empty server_name");
          info_.sni.assign(reinterpret_cast<const char*>(name.data()), name.size());
        }
      }
    } else if (type == kExtAlpn) {
      if (seen_alpn) return Malformed("duplicate ALPN extension");
      seen_alpn = true;
      Reader list(nullptr, 0);
      if (!body.Vector16(list) || body.size() != 0) return Malformed("bad ALPN list");
      while (list.size() > 0) {
        Reader proto(nullptr, 0);
        if (!list.Vector8(proto) || proto.size() == 0) return Malformed("bad ALPN protocol");
        info_.alpn.emplace_back(reinterpret_cast<const char*>(proto.data()), proto.size());
      }
    }
  }
  return Status::kDone;
}

}  // namespace mintgate::tls
