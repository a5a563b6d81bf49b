#include "tls/leaf_minter.h"

#include <openssl/err.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "tls/host_name.h"

namespace mintgate::tls {
namespace {

constexpr std::time_t kDay = 24 * 60 * 60;
constexpr std::time_t kBackdate = 60 * 60;

// A DER Validity SEQUENCE: two times of at most 15 characters.
struct ValidityDer {
  unsigned char bytes[2 + 2 * (2 + 15)];
  std::size_t size = 0;
};

// tag, length, contents of a primitive ASN1_TIME exactly as i2d writes it (UTCTime before
// 2050, GeneralizedTime after: ASN1_TIME_set chooses, the type says which).
unsigned char* PutTime(unsigned char* p, const ASN1_TIME* t) {
  *p++ = static_cast<unsigned char>(ASN1_STRING_type(t));
  *p++ = static_cast<unsigned char>(ASN1_STRING_length(t));
  std::memcpy(p, ASN1_STRING_get0_data(t), static_cast<std::size_t>(ASN1_STRING_length(t)));
  return p + ASN1_STRING_length(t);
}

bool EncodeValidity(const ASN1_TIME* before, const ASN1_TIME* after, ValidityDer& out) {
  for (const ASN1_TIME* t : {before, after}) {
    const int type = ASN1_STRING_type(t);
    const int len = ASN1_STRING_length(t);
    if ((type != V_ASN1_UTCTIME && type != V_ASN1_GENERALIZEDTIME) || len < 1 || len > 15) {
      return false;
    }
  }
  unsigned char* p = out.bytes;
  *p++ = V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED;
  *p++ = static_cast<unsigned char>(4 + ASN1_STRING_length(before) + ASN1_STRING_length(after));
  p = PutTime(p, before);
  p = PutTime(p, after);
  out.size = static_cast<std::size_t>(p - out.bytes);
  return true;
}

// Every mint in the same second gets the same validity, so the two ASN1_TIME values (and
// their DER) are formatted once per thread and second and copied into each certificate.
const ValidityDer* SetValidity(X509* cert, std::time_t not_before, std::time_t not_after) {
  struct Cached {
    std::time_t not_before = -1;
    std::time_t not_after = -1;
    Asn1TimePtr before{ASN1_TIME_new()};
    Asn1TimePtr after{ASN1_TIME_new()};
    ValidityDer der;
  };
  thread_local Cached cache;
  if (!cache.before || !cache.after) return nullptr;
  if (cache.not_before != not_before || cache.not_after != not_after) {
    if (!SetTime(cache.before.get(), not_before) || !SetTime(cache.after.get(), not_after)) {
      cache.not_before = cache.not_after = -1;
      return nullptr;
    }
    // An unexpected time format leaves der.size 0: the leaf is then signed by X509_sign_ctx.
    if (!EncodeValidity(cache.before.get(), cache.after.get(), cache.der)) cache.der.size = 0;
    cache.not_before = not_before;
    cache.not_after = not_after;
  }
  if (X509_set1_notBefore(cert, cache.before.get()) != 1 ||
      X509_set1_notAfter(cert, cache.after.get()) != 1) {
    return nullptr;
  }
  return &cache.der;
}

// DER helpers for the hand-encoded TBSCertificate. Lengths above 16 MiB are refused.
constexpr std::size_t kMaxDerLength = 0xffffff;

std::size_t LengthOfLength(std::size_t n) {
  return n < 0x80 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : 4;
}

std::size_t TlvSize(std::size_t content) { return 1 + LengthOfLength(content) + content; }

unsigned char* PutHeader(unsigned char* p, unsigned char tag, std::size_t n) {
  *p++ = tag;
  const std::size_t extra = LengthOfLength(n) - 1;
  if (extra == 0) {
    *p++ = static_cast<unsigned char>(n);
    return p;
  }
  *p++ = static_cast<unsigned char>(0x80 | extra);
  for (std::size_t i = extra; i > 0; --i) *p++ = static_cast<unsigned char>(n >> (8 * (i - 1)));
  return p;
}

unsigned char* Put(unsigned char* p, const unsigned char* data, std::size_t n) {
  if (n != 0) std::memcpy(p, data, n);
  return p + n;
}

// The calling thread's last hand-encoded TBSCertificate (reused as the encoding buffer).
std::vector<unsigned char>& TbsBuffer() {
  thread_local std::vector<unsigned char> buffer;
  return buffer;
}

constexpr unsigned char kVersion3[] = {0xa0, 0x03, 0x02, 0x01, 0x02};  // [0] { INTEGER 2 }
constexpr unsigned char kCritical[] = {0x01, 0x01, 0xff};              // BOOLEAN TRUE

// Encodes the TBSCertificate of `cert` into `out`, byte for byte what i2d_re_X509_tbs would
// write once the signature AlgorithmIdentifier is set: the fixed fields from their caches,
// the names from their own cached DER (X509_NAME keeps its encoding), and the extensions from
// the DER values X509_add1_ext_i2d already stored in the certificate. False when the
// certificate holds something this encoder does not handle; the caller then falls back to
// X509_sign_ctx. The unit tests compare the result with i2d_re_X509_tbs for many leaves.
bool EncodeTbs(X509* cert, const std::vector<unsigned char>& sig_alg, const ValidityDer& validity,
               const std::vector<unsigned char>& spki, std::vector<unsigned char>& out) {
  if (X509_get_version(cert) != X509_VERSION_3 || validity.size == 0 || sig_alg.empty() ||
      spki.empty()) {
    return false;
  }
  // serialNumber: a positive INTEGER whose minimal encoding is its bytes as they are.
  const ASN1_INTEGER* serial = X509_get0_serialNumber(cert);
  const int serial_len = ASN1_STRING_length(serial);
  const unsigned char* serial_bytes = ASN1_STRING_get0_data(serial);
  if (ASN1_STRING_type(serial) != V_ASN1_INTEGER || serial_len < 1 || serial_len > 126 ||
      serial_bytes[0] == 0 || (serial_bytes[0] & 0x80) != 0) {
    return false;
  }
  const unsigned char* issuer = nullptr;
  const unsigned char* subject = nullptr;
  std::size_t issuer_len = 0;
  std::size_t subject_len = 0;
  if (X509_NAME_get0_der(X509_get_issuer_name(cert), &issuer, &issuer_len) != 1 ||
      X509_NAME_get0_der(X509_get_subject_name(cert), &subject, &subject_len) != 1) {
    return false;
  }

  // Extension ::= SEQUENCE { extnID OID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET }
  const STACK_OF(X509_EXTENSION)* exts = X509_get0_extensions(cert);
  const int ext_count = sk_X509_EXTENSION_num(exts);
  std::size_t exts_len = 0;
  for (int i = 0; i < ext_count; ++i) {
    X509_EXTENSION* ext = sk_X509_EXTENSION_value(exts, i);
    const int oid_len = OBJ_length(X509_EXTENSION_get_object(ext));
    const int value_len = ASN1_STRING_length(X509_EXTENSION_get_data(ext));
    if (oid_len <= 0 || value_len < 0 || static_cast<std::size_t>(value_len) > kMaxDerLength) {
      return false;
    }
    const std::size_t content = TlvSize(static_cast<std::size_t>(oid_len)) +
                                (X509_EXTENSION_get_critical(ext) ? sizeof kCritical : 0) +
                                TlvSize(static_cast<std::size_t>(value_len));
    exts_len += TlvSize(content);
    if (exts_len > kMaxDerLength) return false;
  }

  std::size_t body = sizeof kVersion3 + TlvSize(static_cast<std::size_t>(serial_len)) +
                     sig_alg.size() + issuer_len + validity.size + subject_len + spki.size();
  if (ext_count > 0) body += TlvSize(TlvSize(exts_len));  // [3] EXPLICIT SEQUENCE OF
  if (body > kMaxDerLength) return false;
  out.resize(TlvSize(body));

  unsigned char* p = out.data();
  p = PutHeader(p, V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED, body);
  p = Put(p, kVersion3, sizeof kVersion3);
  p = PutHeader(p, V_ASN1_INTEGER, static_cast<std::size_t>(serial_len));
  p = Put(p, serial_bytes, static_cast<std::size_t>(serial_len));
  p = Put(p, sig_alg.data(), sig_alg.size());
  p = Put(p, issuer, issuer_len);
  p = Put(p, validity.bytes, validity.size);
  p = Put(p, subject, subject_len);
  p = Put(p, spki.data(), spki.size());
  if (ext_count > 0) {
    p = PutHeader(p, V_ASN1_CONTEXT_SPECIFIC | V_ASN1_CONSTRUCTED | 3, TlvSize(exts_len));
    p = PutHeader(p, V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED, exts_len);
    for (int i = 0; i < ext_count; ++i) {
      X509_EXTENSION* ext = sk_X509_EXTENSION_value(exts, i);
      const ASN1_OBJECT* oid = X509_EXTENSION_get_object(ext);
      const ASN1_OCTET_STRING* value = X509_EXTENSION_get_data(ext);
      const auto oid_len = static_cast<std::size_t>(OBJ_length(oid));
      const auto value_len = static_cast<std::size_t>(ASN1_STRING_length(value));
      const bool critical = X509_EXTENSION_get_critical(ext) != 0;
      p = PutHeader(p, V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED,
                    TlvSize(oid_len) + (critical ? sizeof kCritical : 0) + TlvSize(value_len));
      p = PutHeader(p, V_ASN1_OBJECT, oid_len);
      p = Put(p, OBJ_get0_data(oid), oid_len);
      if (critical) p = Put(p, kCritical, sizeof kCritical);
      p = PutHeader(p, V_ASN1_OCTET_STRING, value_len);
      p = Put(p, ASN1_STRING_get0_data(value), value_len);
    }
  }
  return p == out.data() + out.size();
}

// Copies the signer's prepared DigestSign context into a per-thread context and signs with
// it. FINALISE lets OpenSSL finish in place instead of duplicating the context once more.
EVP_MD_CTX* SigningContext(const Signer& signer) {
  thread_local EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_MD_CTX_copy_ex(ctx.get(), signer.sign_template.get()) != 1) return nullptr;
  EVP_MD_CTX_set_flags(ctx.get(), EVP_MD_CTX_FLAG_FINALISE);
  return ctx.get();
}

// The fallback: OpenSSL encodes the TBSCertificate itself.
bool SignWithOpenSsl(X509* cert, const Signer& signer) {
  EVP_MD_CTX* ctx = SigningContext(signer);
  return ctx != nullptr && X509_sign_ctx(cert, ctx) > 0;
}

// Stores what ASN1_item_sign_ctx would have stored: both signature AlgorithmIdentifiers and
// the signature BIT STRING, which takes ownership of `sig` (from OPENSSL_malloc).
bool StoreSignature(X509* cert, const Signer& signer, unsigned char* sig, std::size_t sig_len) {
  // OpenSSL 3.0 has no setters for these three fields: X509_sign_ctx fills them from inside.
  // The getters return pointers into the certificate we own and have not shared yet, so
  // writing through them is what X509_sign_ctx itself does; const_cast only drops the
  // read-only promise of the accessor.
  const ASN1_BIT_STRING* signature = nullptr;
  const X509_ALGOR* outer_alg = nullptr;
  X509_get0_signature(&signature, &outer_alg, cert);
  auto* bits = const_cast<ASN1_BIT_STRING*>(signature);
  ASN1_STRING_set0(bits, sig, static_cast<int>(sig_len));  // takes ownership of sig
  // As ASN1_item_sign_ctx does: "0 unused bits" recorded explicitly.
  bits->flags &= ~(ASN1_STRING_FLAG_BITS_LEFT | 0x07);
  bits->flags |= ASN1_STRING_FLAG_BITS_LEFT;
  return X509_ALGOR_copy(const_cast<X509_ALGOR*>(outer_alg), signer.signature_algorithm.get()) ==
             1 &&
         X509_ALGOR_copy(const_cast<X509_ALGOR*>(X509_get0_tbs_sigalg(cert)),
                         signer.signature_algorithm.get()) == 1;
}

// Signs the hand-encoded `tbs` and stores the signature into `cert`.
bool SignTbs(X509* cert, const Signer& signer, const std::vector<unsigned char>& tbs) {
  EVP_MD_CTX* ctx = SigningContext(signer);
  const int max_len = EVP_PKEY_get_size(signer.key.get());
  if (ctx == nullptr || max_len <= 0) return false;
  std::size_t sig_len = static_cast<std::size_t>(max_len);
  auto* sig = static_cast<unsigned char*>(OPENSSL_malloc(sig_len));
  if (sig == nullptr || EVP_DigestSign(ctx, sig, &sig_len, tbs.data(), tbs.size()) != 1) {
    OPENSSL_free(sig);
    return false;
  }
  return StoreSignature(cert, signer, sig, sig_len);
}

// Appends a new extension to `exts` (which owns it from then on).
bool AppendExtension(STACK_OF(X509_EXTENSION) * exts, const ASN1_OBJECT* oid, bool critical,
                     const unsigned char* der, std::size_t len) {
  X509ExtensionPtr ext(X509_EXTENSION_new());
  if (!ext || len > kMaxDerLength || X509_EXTENSION_set_object(ext.get(), oid) != 1 ||
      X509_EXTENSION_set_critical(ext.get(), critical ? 1 : 0) != 1 ||
      ASN1_OCTET_STRING_set(X509_EXTENSION_get_data(ext.get()), der, static_cast<int>(len)) != 1 ||
      sk_X509_EXTENSION_push(exts, ext.get()) <= 0) {
    return false;
  }
  ext.release();
  return true;
}

// A copy of an extension built once: the OID is a static object, the value a memcpy.
// X509_add_ext would copy it through an i2d/d2i round trip instead.
bool AppendCopy(STACK_OF(X509_EXTENSION) * exts, X509_EXTENSION* prototype) {
  const ASN1_OCTET_STRING* value = X509_EXTENSION_get_data(prototype);
  return AppendExtension(exts, X509_EXTENSION_get_object(prototype),
                         X509_EXTENSION_get_critical(prototype) != 0, ASN1_STRING_get0_data(value),
                         static_cast<std::size_t>(ASN1_STRING_length(value)));
}

// GeneralNames DER: SEQUENCE OF dNSName [2] IA5String | iPAddress [7] OCTET STRING, what i2d
// of the GENERAL_NAMES from MakeGeneralNames writes (the names are validated already).
bool EncodeGeneralNames(const std::vector<const SanName*>& names, std::vector<unsigned char>& out) {
  std::size_t content = 0;
  for (const SanName* n : names) {
    content += TlvSize(n->kind == SanName::Kind::kDns ? n->text.size() : n->ip_len);
  }
  if (content > kMaxDerLength) return false;
  out.resize(TlvSize(content));
  unsigned char* p = PutHeader(out.data(), V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED, content);
  for (const SanName* n : names) {
    if (n->kind == SanName::Kind::kDns) {
      p = PutHeader(p, V_ASN1_CONTEXT_SPECIFIC | GEN_DNS, n->text.size());
      p = Put(p, reinterpret_cast<const unsigned char*>(n->text.data()), n->text.size());
    } else {
      p = PutHeader(p, V_ASN1_CONTEXT_SPECIFIC | GEN_IPADD, n->ip_len);
      p = Put(p, n->ip.data(), n->ip_len);
    }
  }
  return p == out.data() + out.size();
}

// The constant extensions, built once per process and only read afterwards (a rebuilt leaf
// must carry the very bytes its minter signed). basicConstraints is encoded into each leaf by
// X509_add1_ext_i2d (which creates the extension list); the others are copied.
struct Prototypes {
  BasicConstraintsPtr basic_constraints = MakeBasicConstraintsValue(false);
  X509ExtensionPtr key_usage_ec = MakeKeyUsage(KU_DIGITAL_SIGNATURE);
  X509ExtensionPtr key_usage_rsa = MakeKeyUsage(KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT);
  X509ExtensionPtr server_auth = MakeServerAuthEku();

  bool ok() const { return basic_constraints && key_usage_ec && key_usage_rsa && server_auth; }
};

const Prototypes& GetPrototypes() {
  static const Prototypes* const prototypes = new Prototypes();  // never freed: used at exit
  return *prototypes;
}

// Everything of a leaf but its serial number and signature: the same calls, in the same
// order, for a mint and for a rebuild, so both encode to the same TBSCertificate.
const ValidityDer* BuildFields(X509* cert, const Signer& signer, EVP_PKEY* leaf_key,
                               LeafKeyType key_type, std::time_t not_before, std::time_t not_after,
                               const unsigned char* san, std::size_t san_len) {
  const Prototypes& proto = GetPrototypes();
  X509_EXTENSION* key_usage =
      (key_type == LeafKeyType::kRsa2048 ? proto.key_usage_rsa : proto.key_usage_ec).get();
  constexpr unsigned long kAppend = X509V3_ADD_APPEND;  // NOLINT(runtime/int): OpenSSL's type
  const ValidityDer* validity = nullptr;
  bool ok = X509_set_version(cert, X509_VERSION_3) == 1 &&
            X509_set_issuer_name(cert, X509_get_subject_name(signer.cert.get())) == 1 &&
            (validity = SetValidity(cert, not_before, not_after)) != nullptr &&
            X509_set_pubkey(cert, leaf_key) == 1 &&
            X509_add1_ext_i2d(cert, NID_basic_constraints, proto.basic_constraints.get(), 1,
                              kAppend) == 1;
  if (ok) {
    // OpenSSL 3.0 can add an extension only by encoding a value structure
    // (X509_add1_ext_i2d) or by copying a finished extension through an i2d/d2i round trip
    // (X509_add_ext). The list X509_add1_ext_i2d created above is the certificate's own and the
    // certificate is not shared yet, so the others are appended to it directly, which is what
    // X509v3_add_ext does after its copy; const_cast only drops the accessor's promise.
    auto* exts = const_cast<STACK_OF(X509_EXTENSION)*>(X509_get0_extensions(cert));
    ok = exts != nullptr && AppendCopy(exts, key_usage) &&
         AppendCopy(exts, proto.server_auth.get()) &&
         AppendExtension(exts, OBJ_nid2obj(NID_subject_alt_name), true, san, san_len) &&
         (!signer.authority_key_id_extension ||
          AppendCopy(exts, signer.authority_key_id_extension.get()));
  }
  return ok ? validity : nullptr;
}

// The parts that rebuild `cert` (LeafMinter::Rebuild): its serial's content octets, the SAN
// value and the signature, in one buffer shared by the minted leaf and its compact copy.
bool SaveParts(const X509* cert, const Signer& signer, LeafKeyType key_type,
               const std::vector<unsigned char>& san, LeafParts& parts) {
  std::shared_ptr<const Signer> owner = signer.weak_from_this().lock();
  if (owner == nullptr) return false;  // a Signer not owned by a shared_ptr (never in mintgate)
  const ASN1_INTEGER* serial = X509_get0_serialNumber(cert);
  const ASN1_BIT_STRING* signature = nullptr;
  X509_get0_signature(&signature, nullptr, cert);
  const int serial_len = ASN1_STRING_length(serial);
  const int sig_len = ASN1_STRING_length(signature);
  if (serial_len <= 0 || sig_len <= 0 || san.size() > 0xffff || sig_len > 0xffff ||
      serial_len > 0xffff) {
    return false;
  }
  const std::size_t total =
      static_cast<std::size_t>(serial_len) + san.size() + static_cast<std::size_t>(sig_len);
  std::shared_ptr<unsigned char[]> bytes = std::make_shared_for_overwrite<unsigned char[]>(total);
  unsigned char* p = bytes.get();
  p = Put(p, ASN1_STRING_get0_data(serial), static_cast<std::size_t>(serial_len));
  p = Put(p, san.data(), san.size());
  Put(p, ASN1_STRING_get0_data(signature), static_cast<std::size_t>(sig_len));
  parts.signer = std::move(owner);
  parts.bytes = std::move(bytes);
  parts.serial_len = static_cast<std::uint16_t>(serial_len);
  parts.san_len = static_cast<std::uint16_t>(san.size());
  parts.signature_len = static_cast<std::uint16_t>(sig_len);
  parts.key_type = key_type;
  return true;
}

}  // namespace

LeafMinter::LeafMinter(LeafKeys& keys, int leaf_days) : keys_(keys), leaf_days_(leaf_days) {
  if (leaf_days < 1 || leaf_days > kMaxLeafDays) {
    throw std::invalid_argument("leaf_days must be between 1 and " + std::to_string(kMaxLeafDays) +
                                ", got " + std::to_string(leaf_days));
  }
  if (!GetPrototypes().ok()) {
    throw std::runtime_error(WithOpenSslErrors("cannot build leaf extensions"));
  }
}

X509Ptr LeafMinter::Rebuild(const Leaf& leaf) {
  const LeafParts& parts = leaf.parts;
  if (parts.bytes == nullptr || parts.signer == nullptr || leaf.key == nullptr) return nullptr;
  const Signer& signer = *parts.signer;
  if (!signer.signature_algorithm) return nullptr;
  const unsigned char* serial = parts.bytes.get();
  const unsigned char* san = serial + parts.serial_len;
  const unsigned char* signature = san + parts.san_len;
  X509Ptr x(X509_new());
  if (!x) return nullptr;
  X509* cert = x.get();
  if (ASN1_STRING_set(X509_get_serialNumber(cert), serial, parts.serial_len) != 1 ||
      BuildFields(cert, signer, leaf.key.get(), parts.key_type, leaf.not_before, leaf.not_after,
                  san, parts.san_len) == nullptr) {
    return nullptr;
  }
  auto* sig = static_cast<unsigned char*>(OPENSSL_memdup(signature, parts.signature_len));
  if (sig == nullptr) return nullptr;
  if (!StoreSignature(cert, signer, sig, parts.signature_len)) return nullptr;
  return x;
}

std::vector<unsigned char> LeafMinter::LastTbsForTesting() { return TbsBuffer(); }

const std::vector<unsigned char>* LeafMinter::Spki(LeafKeyType type, X509* cert,
                                                   EVP_PKEY* key) const {
  SpkiCache& slot = (*spki_)[static_cast<std::size_t>(type)];
  std::call_once(slot.once, [&slot, cert, key] {
    const X509_PUBKEY* pub = X509_get_X509_PUBKEY(cert);
    const int len = i2d_X509_PUBKEY(pub, nullptr);
    if (len <= 0) return;
    slot.der.resize(static_cast<std::size_t>(len));
    unsigned char* p = slot.der.data();
    if (i2d_X509_PUBKEY(pub, &p) != len) {
      slot.der.clear();
      return;
    }
    slot.key = key;
  });
  // Another key of the same type (never, with LeafKeys) would need its own encoding.
  return slot.key == key && !slot.der.empty() ? &slot.der : nullptr;
}

Result<LeafPtr> LeafMinter::Mint(const Signer& signer, const MintRequest& request,
                                 std::time_t now) const {
  ERR_clear_error();
  Result<SanName> primary = ParseSanName(request.host);
  if (!primary) return Error{primary.error()};
  std::vector<SanName> extras;
  std::vector<const SanName*> names{&primary.value()};
  if (request.extra_names != nullptr) {
    extras.reserve(request.extra_names->size());
    for (const std::string& n : *request.extra_names) {
      Result<SanName> parsed = ParseSanName(n);
      if (!parsed) return Error{parsed.error()};
      extras.push_back(std::move(parsed.value()));
    }
    for (const SanName& e : extras) {
      bool dup = std::any_of(names.begin(), names.end(), [&e](const SanName* n) {
        return n->kind == e.kind && n->text == e.text;
      });
      if (!dup) names.push_back(&e);
    }
  }

  EVP_PKEY* leaf_key = keys_.Get(request.key_type);
  if (leaf_key == nullptr) return Error{WithOpenSslErrors("leaf key unavailable")};

  const std::time_t not_before = std::max(now - kBackdate, signer.not_before);
  const std::time_t not_after =
      std::min(now + static_cast<std::time_t>(leaf_days_) * kDay, signer.not_after);
  if (not_after <= now) return Error{"signing CA has expired"};

  thread_local std::vector<unsigned char> san;
  X509Ptr x(X509_new());
  if (!x) return Error{WithOpenSslErrors("out of memory")};
  if (!EncodeGeneralNames(names, san)) return Error{"too many names for one certificate"};
  X509* cert = x.get();
  const ValidityDer* validity = nullptr;
  if (!SetRandomSerial(cert) ||
      (validity = BuildFields(cert, signer, leaf_key, request.key_type, not_before, not_after,
                              san.data(), san.size())) == nullptr) {
    return Error{WithOpenSslErrors("cannot build leaf certificate")};
  }
  std::vector<unsigned char>& tbs = TbsBuffer();
  const std::vector<unsigned char>* spki = Spki(request.key_type, cert, leaf_key);
  const bool hand_encoded = signer.signature_algorithm && spki != nullptr &&
                            EncodeTbs(cert, signer.signature_algorithm_der, *validity, *spki, tbs);
  if (!hand_encoded) tbs.clear();
  if (!(hand_encoded ? SignTbs(cert, signer, tbs) : SignWithOpenSsl(cert, signer))) {
    tbs.clear();
    return Error{WithOpenSslErrors("cannot sign leaf certificate")};
  }

  auto leaf = std::make_shared<Leaf>();
  // Only a hand-encoded leaf can be rebuilt: its TBSCertificate is known to be exactly what
  // the API calls of BuildFields encode to. Without parts the cache keeps the X509 itself.
  if (hand_encoded) SaveParts(cert, signer, request.key_type, san, leaf->parts);
  leaf->cert = std::move(x);
  leaf->key = UpRef(leaf_key);
  leaf->chain = signer.chain;
  leaf->not_before = not_before;
  leaf->not_after = not_after;
  return LeafPtr(std::move(leaf));
}

}  // namespace mintgate::tls
