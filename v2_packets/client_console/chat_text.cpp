// chat_text.cpp — the ver.2 client's text rules and plain words (see
// chat_text.hpp for why the client checks and cuts before it sends).
#include "chat_text.hpp"

#include <algorithm>
#include <cstddef>

namespace iocp_chat::v2_client {
namespace {

/// U+FFFD REPLACEMENT CHARACTER in UTF-8: what printable() shows instead of
/// a control character.
constexpr std::string_view kReplacement = "\xEF\xBF\xBD";

/// True for the bytes that continue a UTF-8 sequence (10xxxxxx): a cut may
/// never fall just before one of them.
bool is_continuation_byte(char byte) { return (static_cast<unsigned char>(byte) & 0xC0U) == 0x80U; }

/// True for the ASCII control characters, 0x00-0x1F and 0x7F (DEL).
bool is_control(char byte) {
  const auto value = static_cast<unsigned char>(byte);
  return value < 0x20U || value == 0x7FU;
}

/// `text` in quotes for a message, made printable.
std::string quoted(std::string_view text) { return "'" + printable(text) + "'"; }

}  // namespace

std::string id_problem(std::string_view id) {
  if (id.empty()) return "it is empty";
  if (id.size() > v2::kUserIdSize) {
    return "it is " + std::to_string(id.size()) + " bytes long, and an id holds at most " +
           std::to_string(v2::kUserIdSize) + " bytes of UTF-8 (16 English letters, 5 Korean syllables)";
  }
  if (!v2::is_valid_utf8(id)) return "it is not valid UTF-8 text";
  if (id.find(' ') != std::string_view::npos) return "it contains a space";
  if (std::any_of(id.begin(), id.end(), is_control)) return "it contains a control character";
  if (!v2::is_valid_user_id(id)) return "it breaks the id rules";  // a rule this list does not know yet
  return {};
}

std::string line_problem(std::string_view line) {
  if (line.find('\0') != std::string_view::npos) return "it contains a NUL byte, which no message may hold";
  if (!v2::is_valid_utf8(line)) return "it is not valid UTF-8 text (typed or piped in another encoding?)";
  return {};
}

// [split-message]
std::vector<std::string> split_message(std::string_view line) {
  std::vector<std::string> messages;
  while (!line.empty()) {
    // As many bytes as fit, then back to the start of the code point that
    // would be cut. A code point has at most 4 bytes, so `cut` stays > 0.
    std::size_t cut = std::min(line.size(), v2::kMessageSize);
    while (cut < line.size() && cut > 0 && is_continuation_byte(line[cut])) --cut;
    if (cut == 0) cut = std::min(line.size(), v2::kMessageSize);  // not UTF-8: line_problem's job
    messages.emplace_back(line.substr(0, cut));
    line.remove_prefix(cut);
  }
  return messages;
}
// [split-message]

std::string printable(std::string_view text) {
  std::string result;
  result.reserve(text.size());
  for (const char byte : text) {
    if (is_control(byte) && byte != '\t') {
      result.append(kReplacement);
    } else {
      result.push_back(byte);
    }
  }
  return result;
}

std::string describe_error(v2::ErrorCode code) {
  // The first four are answers to frames this client never sends; if one
  // comes, client and server disagree about the protocol.
  constexpr std::string_view kNotOurs =
      "; this client never sends that, so client and server may not speak "
      "the same protocol version";
  switch (code) {
    case v2::ErrorCode::malformed_frame:
      return "the server could not read a packet from this client (ERROR MALFORMED_FRAME: a frame's length "
             "did not fit its type)" +
             std::string(kNotOurs);
    case v2::ErrorCode::unknown_type:
      return "the server does not know a packet type this client sent (ERROR UNKNOWN_TYPE)" +
             std::string(kNotOurs);
    case v2::ErrorCode::not_logged_in:
      return "the server got a message before this client had logged in (ERROR NOT_LOGGED_IN)" +
             std::string(kNotOurs);
    case v2::ErrorCode::invalid_text:
      return "the server refused a message as invalid text (ERROR INVALID_TEXT: a message is 1 to 32 bytes "
             "of UTF-8 without NUL)" +
             std::string(kNotOurs);
    case v2::ErrorCode::slow_consumer:
      return "the server dropped this client for reading too slowly (ERROR SLOW_CONSUMER): messages for it "
             "piled up past the server's limit, and the server does not let one slow reader hold up the "
             "others";
    case v2::ErrorCode::server_full:
      return "the server is full (ERROR SERVER_FULL): it already has as many clients as it accepts; try "
             "again later";
  }
  return "the server reported an error with the unknown code " + std::to_string(static_cast<unsigned>(code)) +
         " (ERROR)";
}

std::string describe_login(v2::LoginStatus status, std::string_view id) {
  switch (status) {
    case v2::LoginStatus::ok:
      return "logged in as " + printable(id);
    case v2::LoginStatus::id_taken:
      return "the id " + quoted(id) + " is taken: someone else is logged in with it (ID_TAKEN)";
    case v2::LoginStatus::invalid_id: {
      const std::string why = id_problem(id);
      return "the server refused the id " + quoted(id) +
             " (INVALID_ID): " + (why.empty() ? "it breaks the server's rules" : why) +
             "; an id is 1 to 16 bytes of UTF-8 without spaces or control characters";
    }
    case v2::LoginStatus::already_logged_in:
      return "the server says this connection is logged in already (ALREADY_LOGGED_IN); it keeps the id it "
             "logged in with first";
    case v2::LoginStatus::try_later:
      return "the server cannot check right now whether " + quoted(id) +
             " is free in its cluster (TRY_LATER); try again in a moment";
  }
  return "the server answered the login of " + quoted(id) + " with the unknown status " +
         std::to_string(static_cast<unsigned>(status));
}

}  // namespace iocp_chat::v2_client
