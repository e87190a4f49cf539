// line_assembler.hpp — turns the received byte stream back into lines.
//
// Why it is needed: ver.1 has no framing. TCP delivers a byte stream, so one
// recv may return half a line, or the end of one line and the start of the
// next — and the cut may fall inside a multi-byte UTF-8 character (a Korean
// syllable is three bytes). Converting each recv to UTF-16 on its own would
// show broken characters (U+FFFD) where a character was split. The client
// therefore keeps the bytes until a "\n" arrives and converts whole lines
// only: the byte 0x0A never occurs inside a UTF-8 sequence, so a line cut at
// "\n" never cuts a character.
//
// ver.1's own: both ver.1 clients (console and WinAPI) and the framing demo
// use it (iocp_chat::v1_line_assembler); ver.2 cuts frames instead. Plain
// C++ with no Win32 call, so it lives in the portable client's folder and is
// tested on its own (tests/win32/line_assembler_test.cpp).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace iocp_chat::v1 {

/// Collects received bytes and hands out complete lines.
class LineAssembler {
 public:
  /// A "line" longer than this without a "\n" is handed out anyway, so a
  /// peer that never sends "\n" cannot make the buffer grow without bound.
  static constexpr std::size_t kDefaultMaxLineBytes = 16 * 1024;

  /// An empty assembler; a line longer than `max_line_bytes` is handed out in pieces.
  explicit LineAssembler(std::size_t max_line_bytes = kDefaultMaxLineBytes);

  /// Appends `bytes` and returns every line they complete, in order, each
  /// without its "\n" (and without a "\r" before it). Bytes after the last
  /// "\n" stay buffered for the next call.
  std::vector<std::string> feed(std::string_view bytes);

  /// Returns the unfinished last line (at the end of the stream) and empties
  /// the buffer; empty if nothing is pending.
  std::string take_rest();

  /// Bytes received but not yet handed out.
  std::size_t pending_bytes() const noexcept { return pending_.size(); }

 private:
  std::string pending_;         ///< Bytes after the last "\n" seen so far.
  std::size_t max_line_bytes_;  ///< Hand out an over-long line at this size.
};

/// The length of the longest prefix of `bytes` that does not end inside a
/// UTF-8 sequence: cutting there never splits a character. Bytes that are
/// not valid UTF-8 at all count as complete (the converter shows them as
/// U+FFFD).
std::size_t complete_utf8_prefix(std::string_view bytes) noexcept;

}  // namespace iocp_chat::v1
