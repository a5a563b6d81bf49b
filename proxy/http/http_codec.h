// HTTP/1.1 message framing for both legs of the proxy, on llhttp. Parses request or response
// heads into HttpHead, streams bodies in chunks, stops after each message (so pipelined
// requests are answered in order and the caller controls backpressure), and refuses what a
// gateway must not pass on: smuggling vectors and oversized heads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mintgate::proxy {

struct HttpHeader {
  std::string name;  // as received
  std::string value;
};

struct HttpHead {
  // Requests.
  std::string method;
  std::string target;  // absolute-form "http://host:port/path?q", origin-form, or authority
  // Responses.
  int status = 0;
  std::string reason;
  // Both.
  int version_major = 1;
  int version_minor = 1;
  std::vector<HttpHeader> headers;
  bool keep_alive = true;  // llhttp's verdict after Connection and version
  bool chunked = false;    // Transfer-Encoding: chunked
  std::optional<std::uint64_t> content_length;
  bool upgrade = false;          // Connection: upgrade + Upgrade (or CONNECT for requests)
  bool expect_continue = false;  // Expect: 100-continue
  const HttpHeader* Find(std::string_view name) const;  // case-insensitive, first match
};

// Why a message was refused; `status` is what the client should get (400, 414, 431; for a bad
// upstream response the caller answers 502).
struct HttpError {
  int status = 400;
  std::string reason;  // short, for the error page and the log
};

class HttpParser {
 public:
  enum class Kind { kRequest, kResponse };
  struct Limits {
    std::size_t max_head_bytes = 64 * 1024;   // request line + headers -> 431
    std::size_t max_target_bytes = 8 * 1024;  // request target -> 414
  };
  // Receives the parts of each message, in order. Pointers are valid only during the call.
  class Handler {
   public:
    virtual ~Handler() = default;
    virtual void OnHead(HttpHead& head) = 0;                      // may move from `head`
    virtual void OnBody(const char* data, std::size_t size) = 0;  // de-chunked payload
    virtual void OnMessageComplete() = 0;
  };

  HttpParser(Kind kind, Handler& handler, Limits limits);
  HttpParser(Kind kind, Handler& handler);
  ~HttpParser();
  HttpParser(const HttpParser&) = delete;
  HttpParser& operator=(const HttpParser&) = delete;

  struct FeedResult {
    std::size_t consumed = 0;        // bytes used; the rest must be fed again after Resume()
    bool paused = false;             // a message just completed: call Resume() to parse the next
    std::optional<HttpError> error;  // fatal: answer (requests) and close
  };
  // Feeds bytes. Stops right after OnMessageComplete (paused), so a pipelined next request
  // stays unconsumed until the caller is ready for it.
  FeedResult Feed(const char* data, std::size_t size);
  void Resume();

  // Responses only: the request was HEAD (or the response must have no body), so the next
  // response's body is empty whatever its headers say. Call before feeding that response.
  void SetNextResponseHasNoBody(bool no_body);
  // Responses only: the peer closed; completes a close-delimited body. Returns an error if a
  // message was cut short (e.g. inside a chunked or content-length body).
  std::optional<HttpError> FeedEof();

  // True when a message has started but not completed.
  bool in_message() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Serialises a head for the next hop. Requests: origin-form target `path`, hop-by-hop headers
// dropped (Connection and the headers it lists, Proxy-Connection, Keep-Alive, TE, Trailer,
// Upgrade unless `keep_upgrade`, Proxy-Authorization), `Host` always set to `host` (the URL's
// authority the rules saw, RFC 7230 §5.4: the client's own Host is dropped), and the
// framing headers (Content-Length / Transfer-Encoding) kept. Responses: the same hop-by-hop
// removal. `extra` headers are appended as given (e.g. "Connection: close").
std::string SerializeRequestHead(const HttpHead& head, std::string_view path, std::string_view host,
                                 bool keep_upgrade, const std::vector<HttpHeader>& extra);
std::string SerializeResponseHead(const HttpHead& head, bool keep_upgrade,
                                  const std::vector<HttpHeader>& extra);
// One chunk of a chunked body (size in hex, the data, CRLF); empty data is the last chunk
// ("0", no trailers).
std::string SerializeChunk(std::string_view data);

// An absolute-form http:// target split into its parts; nullopt if it is not one.
// The host is canonical (rules::CanonicalizeHost): whatever spelling the client used for an
// address, what rules, the destination check and the resolver see is that address.
struct HttpUrl {
  std::string host;  // canonical: lower-case name, dotted quad, or IPv6 without brackets
  std::uint16_t port = 80;
  std::string path;  // origin-form, at least "/"
};
std::optional<HttpUrl> ParseAbsoluteHttpUrl(std::string_view target, std::string* error = nullptr);
// "host:port" of a CONNECT request (host canonical as above); nullopt if malformed, with the
// reason in *error.
std::optional<std::pair<std::string, std::uint16_t>> ParseAuthority(std::string_view target,
                                                                    std::string* error = nullptr);

}  // namespace mintgate::proxy
