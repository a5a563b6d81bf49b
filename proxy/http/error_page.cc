#include "proxy/http/error_page.h"

namespace mintgate::proxy {

std::string EscapeHtml(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        // Reasons may quote network input: keep control bytes out of the page.
        out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
    }
  }
  return out;
}

std::string_view StatusText(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 422:
      return "Unprocessable Entity";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "Error";
  }
}

std::string ErrorResponse(int status, std::string_view reason, bool close) {
  const std::string title = std::to_string(status) + " " + std::string(StatusText(status));
  const std::string body = "<!DOCTYPE html>\n<html><head><title>" + title +
                           "</title></head>\n<body><h1>" + title + "</h1>\n<p>" +
                           EscapeHtml(reason) + "</p>\n<hr><p>mintgate</p></body></html>\n";
  std::string out = "HTTP/1.1 " + title + "\r\n";
  out += "Content-Type: text/html; charset=utf-8\r\n";
  out += "Cache-Control: no-store\r\n";
  out += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  if (close) out += "Connection: close\r\n";
  out += "\r\n";
  out += body;
  return out;
}

}  // namespace mintgate::proxy
