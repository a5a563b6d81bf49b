#include "tls/tls_error.h"

#include <openssl/err.h>

namespace mintgate::tls {

std::string DrainOpenSslErrors() {
  std::string out;
  const char* file = nullptr;
  int line = 0;
  const char* data = nullptr;
  int flags = 0;
  unsigned long code;  // NOLINT(runtime/int): OpenSSL's type
  while ((code = ERR_get_error_all(&file, &line, nullptr, &data, &flags)) != 0) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
    if ((flags & ERR_TXT_STRING) != 0 && data != nullptr && *data != '\0') {
      out += " (";
      out += data;
      out += ")";
    }
  }
  return out;
}

std::string WithOpenSslErrors(std::string what) {
  std::string detail = DrainOpenSslErrors();
  if (!detail.empty()) {
    what += ": ";
    what += detail;
  }
  return what;
}

}  // namespace mintgate::tls
