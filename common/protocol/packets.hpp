// packets.hpp — ver.2's wire format: the seven packets, their byte layout,
// and the text rules for user ids and messages (docs/protocol.md, ver.2).
// It lives in common/ because ver.2's server and clients and ver.3's nodes
// all speak it (a ver.3 client is a ver.2 client).
//
// Idea shown: framing. TCP delivers a byte stream, so ver.1's lines could
// arrive merged or split. Here every packet is a frame that says its own
// length first:
//
//   offset 0  length u16  total frame size, header included (big-endian)
//   offset 2  type   u16  which packet (big-endian)
//   offset 4  body        length - 4 bytes, laid out per type
//
// Fields are written one by one in network byte order, never by copying a
// C++ struct onto the wire (padding, alignment and byte order would leak
// into the protocol). The original's 128-bit user id and 256-bit message
// become 16- and 32-byte UTF-8 fields padded with NUL bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace iocp_chat::v2 {

// [sizes]
/// Bytes of the length and type fields.
inline constexpr std::size_t kHeaderSize = 4;
/// Bytes of a user id field (the original's 128 bits).
inline constexpr std::size_t kUserIdSize = 16;
/// Bytes of a message field (the original's 256 bits).
inline constexpr std::size_t kMessageSize = 32;
/// The largest frame of any type (CHAT_BROADCAST).
inline constexpr std::size_t kMaxFrameSize = kHeaderSize + kUserIdSize + kMessageSize;
// [sizes]

// [packet-types]
/// The packet types (the frame's type field).
enum class PacketType : std::uint16_t {
  login_request = 0x0001,   ///< C→S: user_id[16]; 20 bytes.
  login_response = 0x0002,  ///< S→C: status u16, user_id[16]; 22 bytes.
  chat_request = 0x0003,    ///< C→S: message[32]; 36 bytes.
  chat_broadcast = 0x0004,  ///< S→C: user_id[16] of the sender, message[32]; 52 bytes.
  user_joined = 0x0005,     ///< S→C: user_id[16]; 20 bytes.
  user_left = 0x0006,       ///< S→C: user_id[16]; 20 bytes.
  error = 0x0007,           ///< S→C: code u16; 6 bytes.
};
// [packet-types]

/// LOGIN_RESPONSE's status.
enum class LoginStatus : std::uint16_t {
  ok = 0,                 ///< Logged in under the id.
  id_taken = 1,           ///< Another connection holds the id; try another.
  invalid_id = 2,         ///< The id breaks the rules (empty, too long, control, space, bad UTF-8).
  already_logged_in = 3,  ///< This connection is logged in already; it keeps its first id.
  try_later = 4,          ///< ver.3: the cluster cannot check the id now (its messaging is unreachable).
};

/// ERROR's code. After an ERROR the server closes the connection.
enum class ErrorCode : std::uint16_t {
  malformed_frame = 1,  ///< length < 4, or not the size of its type.
  unknown_type = 2,     ///< The type field names no packet.
  not_logged_in = 3,    ///< CHAT_REQUEST before a successful login.
  invalid_text = 4,     ///< A message that breaks the rules.
  slow_consumer = 5,    ///< The client did not read fast enough.
  server_full = 6,      ///< The server is at its client limit.
};

/// The whole frame size of a type, or std::nullopt for a type that does not exist.
std::optional<std::size_t> frame_size(std::uint16_t type) noexcept;

/// The type field of a frame's header; the frame holds at least kHeaderSize bytes.
std::uint16_t frame_type(std::span<const std::byte> frame) noexcept;

/// The spec's name of a packet type: "LOGIN_REQUEST" ... "ERROR".
std::string_view to_string(PacketType type) noexcept;
/// "OK", "ID_TAKEN", "INVALID_ID" or "ALREADY_LOGGED_IN".
std::string_view to_string(LoginStatus status) noexcept;
/// "MALFORMED_FRAME", ... "SERVER_FULL".
std::string_view to_string(ErrorCode code) noexcept;

/// C→S: log in as user_id.
struct LoginRequest {
  std::string user_id;  ///< As received: the field up to its trailing NULs (not yet validated).
  /// Equal when every field is (the tests compare decoded packets).
  friend bool operator==(const LoginRequest&, const LoginRequest&) = default;
};
/// S→C: the answer to a LoginRequest.
struct LoginResponse {
  LoginStatus status = LoginStatus::ok;  ///< The verdict.
  std::string user_id;                   ///< The id asked for (empty if it could not be read).
  /// Equal when every field is (the tests compare decoded packets).
  friend bool operator==(const LoginResponse&, const LoginResponse&) = default;
};
/// C→S: one chat message.
struct ChatRequest {
  std::string message;  ///< As received: the field up to its trailing NULs (not yet validated).
  /// Equal when every field is (the tests compare decoded packets).
  friend bool operator==(const ChatRequest&, const ChatRequest&) = default;
};
// [chat-broadcast]
/// S→C: a message from user_id, sent to every logged-in client.
struct ChatBroadcast {
  std::string user_id;  ///< The sender.
  std::string message;  ///< What it said.
  /// Equal when every field is (the tests compare decoded packets).
  friend bool operator==(const ChatBroadcast&, const ChatBroadcast&) = default;
};
// [chat-broadcast]
/// S→C: user_id logged in.
struct UserJoined {
  std::string user_id;  ///< Who.
  /// Equal when every field is (the tests compare decoded packets).
  friend bool operator==(const UserJoined&, const UserJoined&) = default;
};
/// S→C: user_id left (disconnected or dropped).
struct UserLeft {
  std::string user_id;  ///< Who.
  /// Equal when every field is (the tests compare decoded packets).
  friend bool operator==(const UserLeft&, const UserLeft&) = default;
};
/// S→C: the client broke a rule; the server closes the connection next.
struct ErrorPacket {
  ErrorCode code = ErrorCode::malformed_frame;  ///< Which rule.
  /// Equal when every field is (the tests compare decoded packets).
  friend bool operator==(const ErrorPacket&, const ErrorPacket&) = default;
};

/// Any one packet.
using Packet =
    std::variant<LoginRequest, LoginResponse, ChatRequest, ChatBroadcast, UserJoined, UserLeft, ErrorPacket>;

/// The type field of a packet.
PacketType type_of(const Packet& packet) noexcept;

/// True if `text` is valid UTF-8 as a whole: no overlong forms, no
/// surrogates (U+D800–U+DFFF), nothing above U+10FFFF, no cut sequence.
bool is_valid_utf8(std::string_view text) noexcept;

/// A valid user id: 1–16 bytes, valid UTF-8, no NUL, no ASCII control
/// character (0x00–0x1F, 0x7F) and no space.
bool is_valid_user_id(std::string_view id) noexcept;

/// A valid message: 1–32 bytes, valid UTF-8, no NUL.
bool is_valid_message(std::string_view message) noexcept;

/// Appends the frame of `packet` to `out`. Text fields longer than their
/// size throw std::invalid_argument (the caller validates first); text is
/// otherwise written as given, padded with NULs.
void encode(const Packet& packet, std::vector<std::byte>& out);

/// The frame of `packet` as a new buffer.
std::vector<std::byte> encode(const Packet& packet);

/// The result of decoding one frame: a packet, or the ERROR code that the
/// frame deserves.
struct Decoded {
  std::optional<Packet> packet;                  ///< Set on success.
  ErrorCode error = ErrorCode::malformed_frame;  ///< Meaningful only without a packet.
};

/// Decodes one complete frame (`frame.size()` bytes; normally from a
/// FrameAssembler). Checks the length against the type's size before reading
/// anything else. Text fields are returned up to their trailing NULs and not
/// validated: a LOGIN_REQUEST with a bad id is answered with INVALID_ID, a
/// bad CHAT_REQUEST with ERROR INVALID_TEXT, so the caller decides.
Decoded decode(std::span<const std::byte> frame);

// [frame-assembler]
/// Reassembles frames from a byte stream; does no I/O. Feed it whatever
/// arrived — a piece of a frame, several frames — and take frames out until
/// it has no more. It checks each header as soon as the 4 header bytes are
/// there, so a bad length is refused at once and never waited for, and its
/// buffer never holds more than one frame plus what was fed.
class FrameAssembler {
 public:
  /// What next() found.
  enum class Status : std::uint8_t {
    frame,      ///< `frame` holds one complete frame.
    need_more,  ///< Everything fed so far is a prefix of a frame.
    error,      ///< A bad header; `error` says which code; the stream is unusable.
  };

  /// Appends received bytes.
  void feed(std::span<const std::byte> bytes);

  /// Takes the next complete frame into `frame` (valid until the next feed or next).
  Status next(std::span<const std::byte>& frame, ErrorCode& error);

  /// Bytes fed but not yet taken.
  std::size_t buffered() const noexcept { return buffer_.size() - start_; }

 private:
  std::vector<std::byte> buffer_;  ///< Bytes fed; [start_, end) not yet taken.
  std::size_t start_ = 0;          ///< First byte not yet taken.
  bool failed_ = false;            ///< A bad header was seen: every later next() is an error.
  ErrorCode failure_ = ErrorCode::malformed_frame;  ///< Which.
};
// [frame-assembler]

}  // namespace iocp_chat::v2
