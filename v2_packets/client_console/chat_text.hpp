// chat_text.hpp — the ver.2 client's text rules: what it may send, how it
// cuts a long line into messages, how it prints what arrives, and the plain
// words it uses for every answer of the server.
//
// Idea: a fixed-size field meets free-form typing. A ver.2 message is at
// most 32 bytes of UTF-8 (the original's 256 bits), but people type longer
// lines. So the client cuts a line into pieces of at most 32 bytes, and cuts
// only between code points: a Korean syllable is 3 bytes, and a piece that
// ended inside one would be invalid UTF-8, which the server refuses (and
// disconnects for). Bytes that no cutting can make valid — invalid UTF-8, a
// NUL — are refused here, before they reach the wire. Checking first is
// cheaper than being disconnected, and the server stays the authority: it
// checks everything again.
//
// No I/O here: the console client and its tests use these functions alone.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/protocol/packets.hpp"

namespace iocp_chat::v2_client {

/// Why `id` cannot be a user id, in plain words ("it contains a space");
/// empty if it can (v2::is_valid_user_id says the same, without the why).
std::string id_problem(std::string_view id);

/// Why a typed line can never be sent, in plain words ("it is not valid
/// UTF-8"); empty if it can be, once cut with split_message. An empty line
/// has no problem: it is simply not sent.
std::string line_problem(std::string_view line);

/// Cuts a line (valid UTF-8, no NUL: see line_problem) into messages of at
/// most v2::kMessageSize bytes, only between code points, each as long as
/// it can be. An empty line gives no message.
std::vector<std::string> split_message(std::string_view line);

/// Text from the network made safe for a terminal: control characters
/// (other than tab) become U+FFFD. A message may hold any character but
/// NUL, so a sender could otherwise move the cursor or fake a line with
/// ESC or "\n".
std::string printable(std::string_view text);

/// Plain words for an ERROR packet's code: what happened and, where it
/// helps, what to do. Unknown codes are named by number.
std::string describe_error(v2::ErrorCode code);

/// Plain words for a LOGIN_RESPONSE that did not log `id` in (ID_TAKEN,
/// INVALID_ID, ALREADY_LOGGED_IN; OK gives "logged in as ID").
std::string describe_login(v2::LoginStatus status, std::string_view id);

}  // namespace iocp_chat::v2_client
