// ch05_length_framer.hpp — exercise 5.1, yours to write: framing by a length
// prefix, the repair chapter 5 shows and ver.2 uses, in its smallest form.
//
// The wire: each message is a 2-byte big-endian length (the body's size,
// 1 to max_body), then the body. The framer does no I/O: feed it whatever a
// receive returned — half a header, three messages and a bit — and take out
// zero or more whole bodies. "Not enough bytes yet" is the normal case, not
// an error; a length of 0 or past max_body is an error (a peer that lies
// about a length could otherwise make the reader wait, or allocate, for ever).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace iocp_chat::exercises {

/// Cuts a byte stream into length-prefixed messages.
class LengthFramer {
 public:
  /// What next() found.
  enum class Status {
    message,    ///< A whole body was taken out.
    need_more,  ///< No whole message yet: feed more bytes.
    error       ///< A length of 0 or more than max_body: the stream cannot be trusted.
  };

  /// Accepts bodies of 1 to `max_body` bytes.
  explicit LengthFramer(std::size_t max_body = 1024) : max_body_(max_body) {}

  /// Appends what a receive returned.
  void feed(std::string_view bytes);

  /// Takes out the next whole body into `body`, or says why not.
  Status next(std::string& body);

 private:
  std::string pending_;   ///< Bytes fed and not yet taken out.
  std::size_t max_body_;  ///< The largest body accepted.
};

}  // namespace iocp_chat::exercises
