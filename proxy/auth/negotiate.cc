#include "proxy/auth/negotiate.h"

#include <gssapi/gssapi.h>
#include <gssapi/gssapi_ext.h>
#include <gssapi/gssapi_krb5.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>

#include "proxy/auth/base64.h"

namespace mintgate::proxy::auth {
namespace {

constexpr std::size_t kMaxToken = 64 << 10;

// The GSS-API's words for a major and minor status.
std::string StatusText(OM_uint32 major, OM_uint32 minor) {
  std::string out;
  auto append = [&out](OM_uint32 code, int type) {
    OM_uint32 context = 0;
    do {
      OM_uint32 ignored = 0;
      gss_buffer_desc text = GSS_C_EMPTY_BUFFER;
      if (gss_display_status(&ignored, code, type, GSS_C_NO_OID, &context, &text) !=
          GSS_S_COMPLETE) {
        break;
      }
      if (!out.empty()) out += "; ";
      out.append(static_cast<const char*>(text.value), text.length);
      gss_release_buffer(&ignored, &text);
    } while (context != 0);
  };
  append(major, GSS_C_GSS_CODE);
  if (minor != 0) append(minor, GSS_C_MECH_CODE);
  return out;
}

}  // namespace

struct NegotiateAcceptor::Impl {
  std::string keytab;
  std::string service_principal;
  bool strip_realm = true;
  gss_cred_id_t cred = GSS_C_NO_CREDENTIAL;

  ~Impl() {
    if (cred != GSS_C_NO_CREDENTIAL) {
      OM_uint32 minor = 0;
      gss_release_cred(&minor, &cred);
    }
  }
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
  {
    std::ifstream in(impl_->keytab, std::ios::binary);
    if (!in) return where + ": cannot read: " + std::strerror(errno);
  }
  OM_uint32 minor = 0;
  if (impl_->cred != GSS_C_NO_CREDENTIAL) gss_release_cred(&minor, &impl_->cred);
  gss_name_t name = GSS_C_NO_NAME;
  if (!impl_->service_principal.empty()) {
    gss_buffer_desc text{impl_->service_principal.size(),
                         const_cast<char*>(impl_->service_principal.data())};
    const OM_uint32 major = gss_import_name(&minor, &text, GSS_KRB5_NT_PRINCIPAL_NAME, &name);
    if (GSS_ERROR(major)) {
      return "auth.service_principal \"" + impl_->service_principal +
             "\": " + StatusText(major, minor);
    }
  }
  // The keytab is given to this credential only (no KRB5_KTNAME, nothing process-wide).
  gss_key_value_element_desc element{"keytab", impl_->keytab.c_str()};
  gss_key_value_set_desc store{1, &element};
  const OM_uint32 major =
      gss_acquire_cred_from(&minor, name, GSS_C_INDEFINITE, GSS_C_NO_OID_SET, GSS_C_ACCEPT, &store,
                            &impl_->cred, nullptr, nullptr);
  if (name != GSS_C_NO_NAME) {
    OM_uint32 ignored = 0;
    gss_release_name(&ignored, &name);
  }
  if (GSS_ERROR(major)) {
    impl_->cred = GSS_C_NO_CREDENTIAL;
    return where + ": no usable key" +
           (impl_->service_principal.empty() ? std::string()
                                             : " for \"" + impl_->service_principal + "\"") +
           ": " + StatusText(major, minor);
  }
  return "";
}

NegotiateResult NegotiateAcceptor::Accept(std::string_view token_base64) const {
  NegotiateResult result;
  if (impl_->cred == GSS_C_NO_CREDENTIAL) {
    result.error = "the keytab is not loaded";
    return result;
  }
  while (!token_base64.empty() && (token_base64.back() == ' ' || token_base64.back() == '\t')) {
    token_base64.remove_suffix(1);
  }
  std::optional<std::string> token = DecodeBase64(token_base64, kMaxToken);
  if (!token || token->empty()) {
    result.error = "the Negotiate token is not base64";
    return result;
  }
  gss_buffer_desc input{token->size(), token->data()};
  gss_ctx_id_t context = GSS_C_NO_CONTEXT;
  gss_name_t source = GSS_C_NO_NAME;
  gss_buffer_desc output = GSS_C_EMPTY_BUFFER;
  OM_uint32 minor = 0;
  const OM_uint32 major =
      gss_accept_sec_context(&minor, &context, impl_->cred, &input, GSS_C_NO_CHANNEL_BINDINGS,
                             &source, nullptr, &output, nullptr, nullptr, nullptr);
  OM_uint32 ignored = 0;
  if (output.length > 0) result.reply = EncodeBase64(output.value, output.length);
  gss_release_buffer(&ignored, &output);
  if (major == GSS_S_COMPLETE) {
    gss_buffer_desc name = GSS_C_EMPTY_BUFFER;
    const OM_uint32 display = gss_display_name(&ignored, source, &name, nullptr);
    if (display == GSS_S_COMPLETE) {
      result.principal.assign(static_cast<const char*>(name.value), name.length);
      gss_release_buffer(&ignored, &name);
      result.user = result.principal;
      if (impl_->strip_realm) result.user = result.user.substr(0, result.user.rfind('@'));
      result.ok = !result.user.empty();
      if (!result.ok) result.error = "the client's principal has no name";
    } else {
      result.error = "the client's principal cannot be named";
    }
  } else if (major & GSS_S_CONTINUE_NEEDED) {
    result.error = "needs another round trip (NTLM inside SPNEGO is not supported)";
  } else {
    result.error = StatusText(major, minor);
  }
  if (!result.ok) result.reply.clear();
  if (source != GSS_C_NO_NAME) gss_release_name(&ignored, &source);
  if (context != GSS_C_NO_CONTEXT) gss_delete_sec_context(&ignored, &context, GSS_C_NO_BUFFER);
  return result;
}

}  // namespace mintgate::proxy::auth
