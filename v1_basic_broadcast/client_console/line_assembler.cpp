// line_assembler.cpp — splitting a byte stream at "\n" without splitting a
// UTF-8 character; see line_assembler.hpp for why the client needs it.
#include "line_assembler.hpp"

namespace iocp_chat::v1 {
namespace {

/// A line without its terminator: "abc\r" (from a CRLF sender) becomes "abc".
std::string without_carriage_return(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return std::string(line);
}

/// How many bytes the UTF-8 sequence starting with `lead` has (1 for ASCII
/// and for bytes that cannot start a sequence).
std::size_t utf8_sequence_length(unsigned char lead) noexcept {
  if (lead >= 0xF0 && lead <= 0xF4) return 4;
  if (lead >= 0xE0) return lead <= 0xEF ? 3 : 1;
  if (lead >= 0xC2) return 2;
  return 1;
}

}  // namespace

LineAssembler::LineAssembler(std::size_t max_line_bytes)
    : max_line_bytes_(max_line_bytes == 0 ? 1 : max_line_bytes) {}

std::vector<std::string> LineAssembler::feed(std::string_view bytes) {
  pending_.append(bytes);

  std::vector<std::string> lines;
  std::size_t start = 0;
  for (std::size_t end = pending_.find('\n'); end != std::string::npos; end = pending_.find('\n', start)) {
    lines.push_back(without_carriage_return(std::string_view(pending_).substr(start, end - start)));
    start = end + 1;
  }
  pending_.erase(0, start);

  // No "\n" for too long: hand out what we have, cut where no character is
  // split, and keep the (at most 3) bytes of an unfinished character.
  while (pending_.size() >= max_line_bytes_) {
    std::size_t cut = complete_utf8_prefix(std::string_view(pending_).substr(0, max_line_bytes_));
    if (cut == 0) cut = max_line_bytes_;  // a tiny limit: never loop forever
    lines.push_back(pending_.substr(0, cut));
    pending_.erase(0, cut);
  }
  return lines;
}

std::string LineAssembler::take_rest() {
  std::string rest = without_carriage_return(pending_);
  pending_.clear();
  return rest;
}

std::size_t complete_utf8_prefix(std::string_view bytes) noexcept {
  // Only the last three bytes can belong to an unfinished sequence: look
  // back for the lead byte of the last sequence and see if it is complete.
  const std::size_t size = bytes.size();
  for (std::size_t back = 1; back <= 4 && back <= size; ++back) {
    const auto byte = static_cast<unsigned char>(bytes[size - back]);
    const bool continuation = (byte & 0xC0) == 0x80;
    if (continuation) continue;
    const std::size_t needed = utf8_sequence_length(byte);
    return needed > back ? size - back : size;  // cut before an unfinished sequence
  }
  return size;  // only continuation bytes: not a sequence we can complete
}

}  // namespace iocp_chat::v1
