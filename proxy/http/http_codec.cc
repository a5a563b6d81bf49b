#include "proxy/http/http_codec.h"

#include <llhttp.h>

#include <algorithm>
#include <array>
#include <cassert>
#include <charconv>
#include <cstdio>
#include <cstring>

#include "proxy/http/header_roles.h"
#include "rules/canonical_host.h"

namespace mintgate::proxy {

using http_text::EqualsIgnoreCase;
using http_text::ForEachListElement;
using http_text::HasLineBreak;
using http_text::HeaderRole;
using http_text::IsTchar;
using http_text::Lower;
using http_text::RoleOf;
using http_text::TrimOws;

const HttpHeader* HttpHead::Find(std::string_view name) const {
  for (const HttpHeader& h : headers) {
    if (EqualsIgnoreCase(h.name, name)) return &h;
  }
  return nullptr;
}

struct HttpParser::Impl {
  Impl(Kind k, Handler& h, Limits l) : kind(k), handler(h), limits(l) {
    llhttp_settings_init(&settings);
    settings.on_message_begin = &Impl::OnMessageBegin;
    settings.on_url = &Impl::OnUrl;
    settings.on_status = &Impl::OnStatus;
    settings.on_header_field = &Impl::OnHeaderField;
    settings.on_header_value = &Impl::OnHeaderValue;
    settings.on_header_value_complete = &Impl::OnHeaderValueComplete;
    settings.on_headers_complete = &Impl::OnHeadersComplete;
    settings.on_body = &Impl::OnBodyCb;
    settings.on_message_complete = &Impl::OnMessageCompleteCb;
    llhttp_init(&parser, k == Kind::kRequest ? HTTP_REQUEST : HTTP_RESPONSE, &settings);
    parser.data = this;
  }

  // Whatever is wrong with an upstream response, the client gets a 502.
  int Status(int request_status) const { return kind == Kind::kRequest ? request_status : 502; }

  static Impl& Self(llhttp_t* p) { return *static_cast<Impl*>(p->data); }

  // Records an error of our own and makes llhttp stop with HPE_USER.
  int Fail(int status, const char* reason) {
    pending_error = HttpError{Status(status), reason};
    llhttp_set_error_reason(&parser, reason);
    return HPE_USER;
  }

  static int OnMessageBegin(llhttp_t* p) {
    Impl& s = Self(p);
    s.head = HttpHead{};
    s.head.headers.reserve(16);  // one allocation for a typical head, not five
    s.field.clear();
    s.value.clear();
    s.in_message = true;
    s.in_trailers = false;
    s.trailer_bytes = 0;
    s.host_count = 0;
    s.saw_transfer_encoding = false;
    s.saw_content_length = false;
    return 0;
  }

  static int OnUrl(llhttp_t* p, const char* at, std::size_t len) {
    Impl& s = Self(p);
    if (s.head.target.size() + len > s.limits.max_target_bytes) {
      return s.Fail(414, "request target too long");
    }
    s.head.target.append(at, len);
    return 0;
  }

  static int OnStatus(llhttp_t* p, const char* at, std::size_t len) {
    Self(p).head.reason.append(at, len);
    return 0;
  }

  // Trailers are not relayed (the body is re-framed for the next hop), so they are only
  // counted, which keeps an endless trailer section from growing memory.
  int CountTrailer(std::size_t len) {
    trailer_bytes += len;
    if (trailer_bytes > limits.max_head_bytes) return Fail(431, "trailer section too large");
    return 0;
  }

  static int OnHeaderField(llhttp_t* p, const char* at, std::size_t len) {
    Impl& s = Self(p);
    if (s.in_trailers) return s.CountTrailer(len);
    s.field.append(at, len);
    return 0;
  }

  static int OnHeaderValue(llhttp_t* p, const char* at, std::size_t len) {
    Impl& s = Self(p);
    if (s.in_trailers) return s.CountTrailer(len);
    s.value.append(at, len);
    return 0;
  }

  static int OnHeaderValueComplete(llhttp_t* p) {
    Impl& s = Self(p);
    if (s.in_trailers) return 0;
    for (char c : s.field) {
      // llhttp stops field names at ':' and rejects most bytes, but a name that is not a pure
      // token (e.g. "Host " before the colon) must never reach the next hop.
      if (!IsTchar(c)) return s.Fail(400, "invalid header name");
    }
    if (s.field.empty()) return s.Fail(400, "empty header name");
    std::string_view v = TrimOws(s.value);
    if (HasLineBreak(v)) return s.Fail(400, "invalid header value");
    switch (RoleOf(s.field)) {
      case HeaderRole::kHost:
        ++s.host_count;
        break;
      case HeaderRole::kTransferEncoding:
        s.saw_transfer_encoding = true;
        break;
      case HeaderRole::kContentLength:
        s.saw_content_length = true;
        break;
      default:
        break;
    }
    s.head.headers.push_back(HttpHeader{std::move(s.field), std::string(v)});
    s.field.clear();
    s.value.clear();
    return 0;
  }

  // The final coding of a request body must be exactly "chunked", and only there; anything
  // else leaves the body length ambiguous between us and the next hop.
  bool RequestTransferEncodingOk() const {
    std::vector<std::string_view> codings;
    for (const HttpHeader& h : head.headers) {
      if (!EqualsIgnoreCase(h.name, "Transfer-Encoding")) continue;
      ForEachListElement(h.value, [&](std::string_view e) { codings.push_back(e); });
    }
    if (codings.empty() || !EqualsIgnoreCase(codings.back(), "chunked")) return false;
    for (std::size_t i = 0; i + 1 < codings.size(); ++i) {
      if (EqualsIgnoreCase(codings[i], "chunked")) return false;
    }
    return true;
  }

  // The last coding of the Transfer-Encoding list, as the next hop reads our copy of it.
  std::string_view FinalCoding() const {
    std::string_view last;
    for (const HttpHeader& h : head.headers) {
      if (!EqualsIgnoreCase(h.name, "Transfer-Encoding")) continue;
      ForEachListElement(h.value, [&](std::string_view e) { last = e; });
    }
    return last;
  }

  static int OnHeadersComplete(llhttp_t* p) {
    Impl& s = Self(p);
    s.in_trailers = true;
    HttpHead& h = s.head;
    // Checked here as well as by llhttp: these are the classic request-smuggling vectors
    // and must not depend on one library version's strictness.
    if (s.saw_transfer_encoding && s.saw_content_length) {
      return s.Fail(400, "both Content-Length and Transfer-Encoding");
    }
    if (s.kind == Kind::kRequest) {
      if (s.saw_transfer_encoding && !s.RequestTransferEncodingOk()) {
        return s.Fail(400, "Transfer-Encoding is not chunked-final");
      }
      if (s.host_count > 1) return s.Fail(400, "duplicate Host header");
      h.method = llhttp_method_name(static_cast<llhttp_method_t>(llhttp_get_method(p)));
    } else {
      h.status = llhttp_get_status_code(p);
    }
    h.version_major = llhttp_get_http_major(p);
    h.version_minor = llhttp_get_http_minor(p);
    // llhttp reads "GET /" without a version as HTTP/0.9; nothing here speaks it, and a proxy
    // that answers it turns any byte stream into a request.
    if (h.version_major != 1) {
      return h.version_major == 0 ? s.Fail(400, "request line without an HTTP/1.x version")
                                  : s.Fail(505, "only HTTP/1.0 and HTTP/1.1 are spoken here");
    }
    h.chunked = (p->flags & F_CHUNKED) != 0;
    // The head we forward keeps Transfer-Encoding, OWS trimmed, so it must frame the body as
    // llhttp does: llhttp 8 does not take "chunked" followed by a tab for chunked.
    if (s.saw_transfer_encoding && EqualsIgnoreCase(s.FinalCoding(), "chunked") != h.chunked) {
      return s.Fail(400, "ambiguous Transfer-Encoding");
    }
    if ((p->flags & F_CONTENT_LENGTH) != 0) h.content_length = p->content_length;
    h.upgrade = p->upgrade != 0;
    if (const HttpHeader* expect = h.Find("Expect")) {
      h.expect_continue = EqualsIgnoreCase(expect->value, "100-continue");
    }
    const bool skip_body = s.kind == Kind::kResponse && s.next_response_no_body && !h.upgrade;
    // Set before asking about keep-alive so that a HEAD response without a length is not
    // taken for a close-delimited one.
    if (skip_body) p->flags |= F_SKIPBODY;
    h.keep_alive = llhttp_should_keep_alive(p) != 0;
    s.handler.OnHead(h);
    return skip_body ? 1 : 0;
  }

  static int OnBodyCb(llhttp_t* p, const char* at, std::size_t len) {
    Self(p).handler.OnBody(at, len);
    return 0;
  }

  static int OnMessageCompleteCb(llhttp_t* p) {
    Impl& s = Self(p);
    s.in_message = false;
    s.in_trailers = false;
    s.head_scan = HeadScan{};
    // A 1xx response precedes the real one, which is still the answer to a HEAD request.
    if (s.kind == Kind::kResponse && s.head.status >= 200) s.next_response_no_body = false;
    s.handler.OnMessageComplete();
    // Upgrades make llhttp stop by itself with HPE_PAUSED_UPGRADE; pausing here as well
    // would need two resumes.
    if (p->upgrade) {
      s.upgraded = true;
      return 0;
    }
    return HPE_PAUSED;
  }

  // Raw-byte checks on the head that llhttp 8 does not do itself (bare LF line endings,
  // obs-fold) and the head size limit. Runs ahead of llhttp over each Feed's bytes, so the
  // head is refused before any part of it reaches the handler. llhttp pauses only after a
  // message completes, i.e. after the head end found here, so the scan state always matches
  // the bytes llhttp consumed.
  struct HeadScan {
    bool done = false;
    bool prev_cr = false;
    bool line_started = false;  // the current line has a byte other than CR
    std::size_t lines = 0;      // non-empty lines so far
    std::size_t bytes = 0;
  };

  // Line by line (memchr finds the breaks): only a line's first bytes up to one that is not
  // CR, its last byte and its LF are looked at one by one.
  std::optional<HttpError> ScanHead(const char* data, std::size_t size) {
    HeadScan& sc = head_scan;
    const bool strict = kind == Kind::kRequest;
    const std::size_t max = limits.max_head_bytes;
    std::size_t i = 0;
    while (i < size && !sc.done) {
      const auto* lf = static_cast<const char*>(std::memchr(data + i, '\n', size - i));
      const std::size_t end = lf != nullptr ? static_cast<std::size_t>(lf - data) : size;
      for (; i < end && !sc.line_started; ++i) {
        if (++sc.bytes > max) return HttpError{Status(431), "header section too large"};
        // llhttp 8 takes a CR and any byte after it for the CRLF that ends the head.
        if (sc.prev_cr) return HttpError{Status(400), "CR without LF in header section"};
        const char c = data[i];
        if (c != '\r') {
          if (sc.lines > 0 && (c == ' ' || c == '\t')) {
            return HttpError{Status(400), "obsolete line folding in header section"};
          }
          sc.line_started = true;
        }
        sc.prev_cr = c == '\r';
      }
      if (i < end) {
        // Nor after a status line or an empty header value: a CR may only come before LF.
        if (sc.prev_cr || std::memchr(data + i, '\r', end - 1 - i) != nullptr) {
          return HttpError{Status(400), "CR without LF in header section"};
        }
        sc.bytes += end - i;
        if (sc.bytes > max) return HttpError{Status(431), "header section too large"};
        sc.prev_cr = data[end - 1] == '\r';
        i = end;
      }
      if (lf == nullptr) break;
      if (++sc.bytes > max) return HttpError{Status(431), "header section too large"};
      if (!sc.prev_cr && strict) return HttpError{400, "bare LF in header section"};
      if (sc.line_started) {
        ++sc.lines;
      } else if (sc.lines > 0) {
        sc.done = true;
      }
      sc.line_started = false;
      sc.prev_cr = false;
      ++i;
    }
    return std::nullopt;
  }

  Kind kind;
  Handler& handler;
  Limits limits;
  llhttp_settings_t settings{};
  llhttp_t parser{};
  HttpHead head;
  std::string field;
  std::string value;
  HeadScan head_scan;
  std::size_t trailer_bytes = 0;
  int host_count = 0;
  bool saw_transfer_encoding = false;
  bool saw_content_length = false;
  bool in_message = false;
  bool in_trailers = false;
  bool paused = false;
  bool upgraded = false;  // the last pause was llhttp's upgrade pause
  bool next_response_no_body = false;
  std::optional<HttpError> pending_error;
  std::optional<HttpError> fatal;
};

HttpParser::HttpParser(Kind kind, Handler& handler, Limits limits)
    : impl_(std::make_unique<Impl>(kind, handler, limits)) {}
HttpParser::HttpParser(Kind kind, Handler& handler) : HttpParser(kind, handler, Limits{}) {}
HttpParser::~HttpParser() = default;

HttpParser::FeedResult HttpParser::Feed(const char* data, std::size_t size) {
  Impl& s = *impl_;
  FeedResult result;
  if (s.fatal) {
    result.error = s.fatal;
    return result;
  }
  if (s.paused) {
    result.paused = true;
    return result;
  }
  if (size == 0) return result;
  if (auto err = s.ScanHead(data, size)) {
    s.fatal = std::move(err);
    result.error = s.fatal;
    return result;
  }
  const llhttp_errno_t rc = llhttp_execute(&s.parser, data, size);
  if (rc == HPE_OK) {
    result.consumed = size;
    return result;
  }
  if (rc == HPE_PAUSED || rc == HPE_PAUSED_UPGRADE) {
    s.paused = true;
    result.paused = true;
    result.consumed = static_cast<std::size_t>(llhttp_get_error_pos(&s.parser) - data);
    return result;
  }
  if (s.pending_error) {
    s.fatal = std::move(s.pending_error);
  } else {
    const int status = s.Status(400);
    const char* reason = llhttp_get_error_reason(&s.parser);
    s.fatal = HttpError{status, reason != nullptr ? reason : llhttp_errno_name(rc)};
  }
  result.error = s.fatal;
  return result;
}

void HttpParser::Resume() {
  Impl& s = *impl_;
  if (!s.paused) return;
  s.paused = false;
  // After an upgrade pause, resuming means the upgrade did not happen (e.g. the server
  // refused the WebSocket handshake) and the connection goes on speaking HTTP/1.1.
  if (s.upgraded) {
    s.upgraded = false;
    llhttp_resume_after_upgrade(&s.parser);
  } else {
    llhttp_resume(&s.parser);
  }
}

void HttpParser::SetNextResponseHasNoBody(bool no_body) { impl_->next_response_no_body = no_body; }

std::optional<HttpError> HttpParser::FeedEof() {
  Impl& s = *impl_;
  if (s.fatal) return s.fatal;
  if (!s.in_message) return std::nullopt;
  const int status = s.Status(400);
  // Requests never have close-delimited bodies; a response is complete at EOF only when
  // llhttp says so (no length, not chunked).
  if (s.kind == Kind::kRequest || s.paused) {
    s.fatal = HttpError{status, "connection closed inside a message"};
    return s.fatal;
  }
  const llhttp_errno_t rc = llhttp_finish(&s.parser);
  if ((rc == HPE_OK || rc == HPE_PAUSED) && !s.in_message) {
    s.paused = rc == HPE_PAUSED;
    return std::nullopt;
  }
  s.fatal = HttpError{status, "connection closed inside a message"};
  return s.fatal;
}

bool HttpParser::in_message() const { return impl_->in_message; }

}  // namespace mintgate::proxy
