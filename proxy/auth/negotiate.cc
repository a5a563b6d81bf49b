#include "proxy/auth/negotiate.h"

#include <gssapi/gssapi.h>
#include <gssapi/gssapi_ext.h>
#include <gssapi/gssapi_krb5.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>

#include "proxy/auth/base64.h"

// MIT GSS-API and threads (krb5 1.20, src/lib/gssapi): Accept shares one acceptor credential
// between threads without a lock of its own around the GSS calls. The mechglue union
// credential and the SPNEGO credential are only read while a context is accepted, and the
// krb5 mechanism's credential (krb5_gss_cred_id_rec) carries a mutex that
// krb5_gss_accept_sec_context holds for the whole call (kg_cred_resolve locks it, the exit
// path unlocks it), which covers its keytab and replay cache handles; so MIT serializes the
// Kerberos step per credential itself. Each Accept has its own gss_ctx_id_t, and the minor
// status's message is kept per thread, so gss_display_status in the same thread reads its
// own call's reason. The handle is held by a shared_ptr that Load() swaps under a mutex: a
// Load() during Accepts is safe (the old handle is released by its last user), and a failed
// Load() keeps the credential it had.
//
// The replay cache is MIT's default ("dfl": the file krb5_<euid>.rcache2 in $KRB5RCACHEDIR,
// else $TMPDIR, else /var/tmp), the same one every Kerberos service of that user shares; it
// is safe across threads and processes (each store is under a file lock), survives restarts
// of the gateway, and so refuses an authenticator that was already used. Nothing is set for
// it here: a path of the acceptor's own would need a setting of its own, and "none:" would
// accept a replayed token.

namespace mintgate::proxy::auth {
namespace {

// A Negotiate token is a few KiB (more with a PAC full of groups); bigger is not Kerberos.
constexpr std::size_t kMaxToken = 64 << 10;

// SPNEGO (RFC 4178), 1.3.6.1.5.5.2: MIT's headers name no constant for it.
gss_OID_desc kSpnegoOid{6, const_cast<char*>("\x2b\x06\x01\x05\x05\x02")};

// RAII for what the GSS-API hands out.
class Buffer {
 public:
  Buffer() = default;
  ~Buffer() {
    OM_uint32 minor = 0;
    gss_release_buffer(&minor, &buffer_);
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  gss_buffer_t get() { return &buffer_; }
  std::string str() const {
    return buffer_.length == 0
               ? std::string()
               : std::string(static_cast<const char*>(buffer_.value), buffer_.length);
  }
  std::size_t size() const { return buffer_.length; }
  const void* data() const { return buffer_.value; }

 private:
  gss_buffer_desc buffer_ = GSS_C_EMPTY_BUFFER;
};

class Name {
 public:
  Name() = default;
  ~Name() {
    OM_uint32 minor = 0;
    if (name_ != GSS_C_NO_NAME) gss_release_name(&minor, &name_);
  }
  Name(const Name&) = delete;
  Name& operator=(const Name&) = delete;
  gss_name_t* out() { return &name_; }
  gss_name_t get() const { return name_; }

 private:
  gss_name_t name_ = GSS_C_NO_NAME;
};

class Context {
 public:
  Context() = default;
  ~Context() {
    OM_uint32 minor = 0;
    if (context_ != GSS_C_NO_CONTEXT) gss_delete_sec_context(&minor, &context_, GSS_C_NO_BUFFER);
  }
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;
  gss_ctx_id_t* out() { return &context_; }

 private:
  gss_ctx_id_t context_ = GSS_C_NO_CONTEXT;
};

// The GSS-API's words for a major status (every routine and supplementary error it holds)
// and the mechanism's for the minor one; never the token.
std::string StatusText(OM_uint32 major, OM_uint32 minor) {
  std::string out;
  auto append = [&out](OM_uint32 code, int type) {
    OM_uint32 more = 0;
    // A bounded loop: gss_display_status gives one message a call, "more" says if another.
    for (int i = 0; i < 8; ++i) {
      OM_uint32 ignored = 0;
      Buffer text;
      if (GSS_ERROR(gss_display_status(&ignored, code, type, GSS_C_NO_OID, &more, text.get()))) {
        break;
      }
      if (text.size() > 0) {
        if (!out.empty()) out += ": ";
        out += text.str();
      }
      if (more == 0) break;
    }
  };
  append(major, GSS_C_GSS_CODE);
  if (minor != 0) append(minor, GSS_C_MECH_CODE);
  if (out.empty()) out = "GSS-API major status " + std::to_string(major);
  return out;
}

// An acquired acceptor credential, released with its last user.
class Credential {
 public:
  explicit Credential(gss_cred_id_t cred) : cred_(cred) {}
  ~Credential() {
    OM_uint32 minor = 0;
    if (cred_ != GSS_C_NO_CREDENTIAL) gss_release_cred(&minor, &cred_);
  }
  Credential(const Credential&) = delete;
  Credential& operator=(const Credential&) = delete;
  gss_cred_id_t get() const { return cred_; }

 private:
  gss_cred_id_t cred_;
};

}  // namespace

struct NegotiateAcceptor::Impl {
  std::string keytab;
  std::string service_principal;
  bool strip_realm = true;

  std::shared_ptr<const Credential> Current() const {
    std::lock_guard lock(mu);
    return cred;
  }
  void Replace(std::shared_ptr<const Credential> fresh) {
    std::lock_guard lock(mu);
    cred.swap(fresh);
    // The old one (now in `fresh`) is released outside the lock, by its last user.
  }

  mutable std::mutex mu;
  std::shared_ptr<const Credential> cred;  // guarded by mu; null until a Load() succeeds
};

NegotiateAcceptor::NegotiateAcceptor(std::string keytab, std::string service_principal,
                                     bool strip_realm)
    : impl_(std::make_unique<Impl>()) {
  impl_->keytab = std::move(keytab);
  impl_->service_principal = std::move(service_principal);
  impl_->strip_realm = strip_realm;
}

NegotiateAcceptor::~NegotiateAcceptor() = default;

std::string NegotiateAcceptor::Load() {
  const std::string where = "auth.keytab \"" + impl_->keytab + "\"";
  if (impl_->keytab.empty()) return "auth.keytab is not set";
  // Readable by this process (the GSS-API's own reason for a missing file is vaguer).
  if (std::FILE* file = std::fopen(impl_->keytab.c_str(), "rb")) {
    std::fclose(file);
  } else {
    return where + ": cannot read: " + std::strerror(errno);
  }

  Name name;
  if (!impl_->service_principal.empty()) {
    gss_buffer_desc text{impl_->service_principal.size(),
                         const_cast<char*>(impl_->service_principal.data())};
    OM_uint32 minor = 0;
    const OM_uint32 major = gss_import_name(&minor, &text, GSS_KRB5_NT_PRINCIPAL_NAME, name.out());
    if (GSS_ERROR(major)) {
      return "auth.service_principal \"" + impl_->service_principal +
             "\": " + StatusText(major, minor);
    }
  }

  // The keytab is given to this credential only: no KRB5_KTNAME, nothing process-wide. As a
  // keytab name a path with ':' could be read as "TYPE:residual", hence the explicit FILE:.
  const std::string keytab_name = "FILE:" + impl_->keytab;
  gss_key_value_element_desc element{"keytab", keytab_name.c_str()};
  gss_key_value_set_desc store{1, &element};
  // SPNEGO only (RFC 4559): the acceptor credential is the SPNEGO mechanism's, which holds
  // the keytab's Kerberos credential; a bare Kerberos token finds no credential and fails.
  gss_OID_set_desc spnego{1, &kSpnegoOid};
  OM_uint32 minor = 0;
  gss_cred_id_t cred = GSS_C_NO_CREDENTIAL;
  OM_uint32 major = gss_acquire_cred_from(&minor, name.get(), GSS_C_INDEFINITE, &spnego,
                                          GSS_C_ACCEPT, &store, &cred, nullptr, nullptr);
  const std::string what =
      where + (impl_->service_principal.empty() ? std::string()
                                                : " for \"" + impl_->service_principal + "\"");
  if (GSS_ERROR(major)) {
    // SPNEGO reports only that no mechanism had a credential: ask Kerberos itself for why.
    OM_uint32 krb5_minor = 0;
    gss_cred_id_t krb5_cred = GSS_C_NO_CREDENTIAL;
    gss_OID_set_desc krb5{1, gss_mech_krb5};
    const OM_uint32 krb5_major =
        gss_acquire_cred_from(&krb5_minor, name.get(), GSS_C_INDEFINITE, &krb5, GSS_C_ACCEPT,
                              &store, &krb5_cred, nullptr, nullptr);
    if (krb5_cred != GSS_C_NO_CREDENTIAL) gss_release_cred(&krb5_minor, &krb5_cred);
    if (GSS_ERROR(krb5_major)) return what + ": " + StatusText(krb5_major, krb5_minor);
    return what + ": " + StatusText(major, minor);
  }
  // Kerberos is the one mechanism SPNEGO may choose (the MS clients' Kerberos OID is mapped
  // to it): not IAKERB, whose acceptor would relay the client's KDC requests, nor NTLM or
  // NegoEx mechanisms that a GSS plugin on this host might add.
  gss_OID_set_desc krb5_only{1, gss_mech_krb5};
  major = gss_set_neg_mechs(&minor, cred, &krb5_only);
  if (GSS_ERROR(major)) {
    gss_release_cred(&minor, &cred);
    return what + ": cannot restrict SPNEGO to Kerberos: " + StatusText(major, minor);
  }
  impl_->Replace(std::make_shared<const Credential>(cred));
  return "";
}

NegotiateResult NegotiateAcceptor::Accept(std::string_view token_base64) const {
  NegotiateResult result;
  const std::shared_ptr<const Credential> cred = impl_->Current();
  if (!cred) {
    result.error = "the keytab is not loaded";
    return result;
  }
  while (!token_base64.empty() && (token_base64.back() == ' ' || token_base64.back() == '\t')) {
    token_base64.remove_suffix(1);
  }
  std::optional<std::string> token = DecodeBase64(token_base64, kMaxToken);
  if (!token || token->empty()) {
    result.error = token_base64.size() > kMaxToken / 3 * 4 + 4
                       ? "the Negotiate token is too large"
                       : "the Negotiate token is not base64";
    return result;
  }

  gss_buffer_desc input{token->size(), token->data()};
  Context context;
  Name source;
  Buffer output;
  OM_uint32 minor = 0;
  const OM_uint32 major =
      gss_accept_sec_context(&minor, context.out(), cred->get(), &input, GSS_C_NO_CHANNEL_BINDINGS,
                             source.out(), nullptr, output.get(), nullptr, nullptr, nullptr);
  if (GSS_ERROR(major)) {
    result.error = StatusText(major, minor);
    return result;
  }
  if (major & GSS_S_CONTINUE_NEEDED) {
    result.error = "needs another round trip (NTLM inside SPNEGO is not supported)";
    return result;
  }

  Buffer name;
  OM_uint32 name_minor = 0;
  const OM_uint32 name_major = gss_display_name(&name_minor, source.get(), name.get(), nullptr);
  if (GSS_ERROR(name_major)) {
    result.error = "the client's principal cannot be named: " + StatusText(name_major, name_minor);
    return result;
  }
  result.principal = name.str();
  result.user = result.principal;
  if (impl_->strip_realm) {
    // The realm follows the last '@' (one inside the name is escaped: "a\@b@REALM").
    const std::size_t at = result.user.rfind('@');
    if (at != std::string::npos) result.user.resize(at);
  }
  if (result.user.empty()) {
    result.error = "the client's principal has no name";
    result.principal.clear();
    return result;
  }
  // The mutual-authentication token (SPNEGO's accept-completed with the AP-REP).
  if (output.size() > 0) result.reply = EncodeBase64(output.data(), output.size());
  result.ok = true;
  return result;
}

}  // namespace mintgate::proxy::auth
