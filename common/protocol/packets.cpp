// packets.cpp — ver.2's codec: frames written and read field by field in
// network byte order, the text rules, and the FrameAssembler that cuts a TCP
// byte stream back into frames (the API and the byte layout: packets.hpp).
//
// Idea shown: framing. A receiver never trusts the stream: it reads the
// 4-byte header first, checks the length against the size the type demands
// before reading anything else, and only then touches the body. Nothing here
// casts a pointer to a struct or copies a struct onto the wire: every u16 is
// two bytes, most significant first, and every text field is its bytes
// followed by NUL padding.
#include "common/protocol/packets.hpp"

#include <stdexcept>
#include <type_traits>
#include <utility>

namespace iocp_chat::v2 {
namespace {

/// The number an enum stands for on the wire (C++23's std::to_underlying).
template <typename Enum>
constexpr std::underlying_type_t<Enum> wire_value(Enum value) noexcept {
  return static_cast<std::underlying_type_t<Enum>>(value);
}

// [read-u16]
/// Reads a two-byte big-endian integer at `offset` (the caller checked the size).
std::uint16_t read_u16(std::span<const std::byte> bytes, std::size_t offset) noexcept {
  const auto high = std::to_integer<unsigned>(bytes[offset]);
  const auto low = std::to_integer<unsigned>(bytes[offset + 1]);
  return static_cast<std::uint16_t>((high << 8) | low);
}
// [read-u16]

// [header-error]
/// Why a frame header is bad, or std::nullopt if the frame may follow. The
/// one check shared by decode() and FrameAssembler, in the spec's order:
/// length < 4, then an unknown type, then a length that is not the type's size.
std::optional<ErrorCode> header_error(std::uint16_t length, std::uint16_t type) noexcept {
  if (length < kHeaderSize) return ErrorCode::malformed_frame;
  const std::optional<std::size_t> expected = frame_size(type);
  if (!expected) return ErrorCode::unknown_type;
  if (length != *expected) return ErrorCode::malformed_frame;
  return std::nullopt;
}
// [header-error]

/// Writes one frame's fields, in order, at the end of a buffer.
class FieldWriter {
 public:
  /// Appends to `out`.
  explicit FieldWriter(std::vector<std::byte>& out) : out_(out) {}

  // [write-u16]
  /// Two bytes, most significant first (network byte order).
  void u16(std::uint16_t value) {
    out_.push_back(static_cast<std::byte>(value >> 8));
    out_.push_back(static_cast<std::byte>(value & 0xFFu));
  }
  // [write-u16]

  /// `text` and then NULs up to `size` bytes; throws if `text` does not fit.
  void text(std::string_view text, std::size_t size, const char* field) {
    if (text.size() > size) {
      throw std::invalid_argument(std::string(field) + " is " + std::to_string(text.size()) +
                                  " bytes; the field holds " + std::to_string(size));
    }
    for (const char c : text) out_.push_back(static_cast<std::byte>(c));
    out_.insert(out_.end(), size - text.size(), std::byte{0});
  }

 private:
  std::vector<std::byte>& out_;  ///< The frame being built.
};

/// Reads one frame's body, field by field, front to back. decode() checked
/// the frame's size against its type first, so every field is there.
class FieldReader {
 public:
  /// Reads `body`.
  explicit FieldReader(std::span<const std::byte> body) : rest_(body) {}

  /// Two bytes, most significant first.
  std::uint16_t u16() noexcept {
    const std::uint16_t value = read_u16(rest_, 0);
    rest_ = rest_.subspan(2);
    return value;
  }

  // [read-text]
  /// A NUL-padded text field of `size` bytes: everything before the trailing
  /// NULs. A NUL followed by other bytes stays in, so the text rules reject
  /// it; an all-NUL field is the empty string.
  std::string text(std::size_t size) {
    std::span<const std::byte> field = rest_.first(size);
    rest_ = rest_.subspan(size);
    while (!field.empty() && field.back() == std::byte{0}) field = field.first(field.size() - 1);

    std::string text;
    text.reserve(field.size());
    for (const std::byte b : field) text.push_back(static_cast<char>(b));
    return text;
  }
  // [read-text]

 private:
  std::span<const std::byte> rest_;  ///< The fields not yet read.
};

/// The status field of a LOGIN_RESPONSE, if it names one.
std::optional<LoginStatus> to_login_status(std::uint16_t value) noexcept {
  switch (static_cast<LoginStatus>(value)) {
    case LoginStatus::ok:
    case LoginStatus::id_taken:
    case LoginStatus::invalid_id:
    case LoginStatus::already_logged_in:
    case LoginStatus::try_later:
      return static_cast<LoginStatus>(value);
  }
  return std::nullopt;
}

/// The code field of an ERROR, if it names one.
std::optional<ErrorCode> to_error_code(std::uint16_t value) noexcept {
  switch (static_cast<ErrorCode>(value)) {
    case ErrorCode::malformed_frame:
    case ErrorCode::unknown_type:
    case ErrorCode::not_logged_in:
    case ErrorCode::invalid_text:
    case ErrorCode::slow_consumer:
    case ErrorCode::server_full:
      return static_cast<ErrorCode>(value);
  }
  return std::nullopt;
}

// [body-writer]
/// The body of each packet, written in the order of the spec's table.
class BodyWriter {
 public:
  /// Writes through `fields`.
  explicit BodyWriter(FieldWriter& fields) : fields_(fields) {}

  /// user_id[16].
  void operator()(const LoginRequest& p) const { fields_.text(p.user_id, kUserIdSize, "user id"); }
  /// status u16, user_id[16].
  void operator()(const LoginResponse& p) const {
    fields_.u16(wire_value(p.status));
    fields_.text(p.user_id, kUserIdSize, "user id");
  }
  /// message[32].
  void operator()(const ChatRequest& p) const { fields_.text(p.message, kMessageSize, "message"); }
  /// user_id[16], message[32].
  void operator()(const ChatBroadcast& p) const {
    fields_.text(p.user_id, kUserIdSize, "user id");
    fields_.text(p.message, kMessageSize, "message");
  }
  /// user_id[16].
  void operator()(const UserJoined& p) const { fields_.text(p.user_id, kUserIdSize, "user id"); }
  /// user_id[16].
  void operator()(const UserLeft& p) const { fields_.text(p.user_id, kUserIdSize, "user id"); }
  /// code u16.
  void operator()(const ErrorPacket& p) const { fields_.u16(wire_value(p.code)); }

 private:
  FieldWriter& fields_;  ///< Where the fields go.
};
// [body-writer]

/// The packet type of each alternative of Packet.
struct TypeOf {
  /// LOGIN_REQUEST.
  PacketType operator()(const LoginRequest&) const noexcept { return PacketType::login_request; }
  /// LOGIN_RESPONSE.
  PacketType operator()(const LoginResponse&) const noexcept { return PacketType::login_response; }
  /// CHAT_REQUEST.
  PacketType operator()(const ChatRequest&) const noexcept { return PacketType::chat_request; }
  /// CHAT_BROADCAST.
  PacketType operator()(const ChatBroadcast&) const noexcept { return PacketType::chat_broadcast; }
  /// USER_JOINED.
  PacketType operator()(const UserJoined&) const noexcept { return PacketType::user_joined; }
  /// USER_LEFT.
  PacketType operator()(const UserLeft&) const noexcept { return PacketType::user_left; }
  /// ERROR.
  PacketType operator()(const ErrorPacket&) const noexcept { return PacketType::error; }
};

/// What the first byte of a UTF-8 sequence says about the character.
struct Utf8Lead {
  std::size_t length;  ///< Bytes in the sequence, 1 to 4.
  char32_t bits;       ///< The code point bits that the lead byte carries.
  char32_t smallest;   ///< The least code point that needs `length` bytes.
};

/// Reads a lead byte: 0xxxxxxx, 110xxxxx, 1110xxxx or 11110xxx. A
/// continuation byte (10xxxxxx) or F8..FF cannot start a character.
std::optional<Utf8Lead> utf8_lead(unsigned char byte) noexcept {
  if (byte < 0x80u) return Utf8Lead{1, byte, 0};
  if ((byte & 0xE0u) == 0xC0u) return Utf8Lead{2, byte & 0x1Fu, 0x80};
  if ((byte & 0xF0u) == 0xE0u) return Utf8Lead{3, byte & 0x0Fu, 0x800};
  if ((byte & 0xF8u) == 0xF0u) return Utf8Lead{4, byte & 0x07u, 0x10000};
  return std::nullopt;
}

/// A Decoded that carries no packet, only the ERROR code the frame deserves.
Decoded rejected(ErrorCode code) { return Decoded{std::nullopt, code}; }

}  // namespace

std::optional<std::size_t> frame_size(std::uint16_t type) noexcept {
  switch (static_cast<PacketType>(type)) {
    case PacketType::login_request:
      return kHeaderSize + kUserIdSize;  // 20
    case PacketType::login_response:
      return kHeaderSize + 2 + kUserIdSize;  // 22
    case PacketType::chat_request:
      return kHeaderSize + kMessageSize;  // 36
    case PacketType::chat_broadcast:
      return kHeaderSize + kUserIdSize + kMessageSize;  // 52
    case PacketType::user_joined:
      return kHeaderSize + kUserIdSize;  // 20
    case PacketType::user_left:
      return kHeaderSize + kUserIdSize;  // 20
    case PacketType::error:
      return kHeaderSize + 2;  // 6
  }
  return std::nullopt;
}

std::uint16_t frame_type(std::span<const std::byte> frame) noexcept { return read_u16(frame, 2); }

std::string_view to_string(PacketType type) noexcept {
  switch (type) {
    case PacketType::login_request:
      return "LOGIN_REQUEST";
    case PacketType::login_response:
      return "LOGIN_RESPONSE";
    case PacketType::chat_request:
      return "CHAT_REQUEST";
    case PacketType::chat_broadcast:
      return "CHAT_BROADCAST";
    case PacketType::user_joined:
      return "USER_JOINED";
    case PacketType::user_left:
      return "USER_LEFT";
    case PacketType::error:
      return "ERROR";
  }
  return "(unknown packet type)";
}

std::string_view to_string(LoginStatus status) noexcept {
  switch (status) {
    case LoginStatus::ok:
      return "OK";
    case LoginStatus::id_taken:
      return "ID_TAKEN";
    case LoginStatus::invalid_id:
      return "INVALID_ID";
    case LoginStatus::already_logged_in:
      return "ALREADY_LOGGED_IN";
    case LoginStatus::try_later:
      return "TRY_LATER";
  }
  return "(unknown login status)";
}

std::string_view to_string(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::malformed_frame:
      return "MALFORMED_FRAME";
    case ErrorCode::unknown_type:
      return "UNKNOWN_TYPE";
    case ErrorCode::not_logged_in:
      return "NOT_LOGGED_IN";
    case ErrorCode::invalid_text:
      return "INVALID_TEXT";
    case ErrorCode::slow_consumer:
      return "SLOW_CONSUMER";
    case ErrorCode::server_full:
      return "SERVER_FULL";
  }
  return "(unknown error code)";
}

PacketType type_of(const Packet& packet) noexcept { return std::visit(TypeOf{}, packet); }

// [utf8]
// UTF-8, one character at a time: the lead byte says how many bytes the
// character has and gives its first bits; each continuation byte (10xxxxxx)
// adds six more. Then the three ways a well-shaped sequence can still be wrong:
//   overlong    — a code point written with more bytes than it needs
//                 (C0 AF is '/' in two bytes: a classic filter bypass);
//   surrogate   — U+D800..U+DFFF belong to UTF-16 and are not characters;
//   too large   — Unicode ends at U+10FFFF.
bool is_valid_utf8(std::string_view text) noexcept {
  std::size_t i = 0;
  while (i < text.size()) {
    const std::optional<Utf8Lead> lead = utf8_lead(static_cast<unsigned char>(text[i]));
    if (!lead) return false;                           // a stray continuation byte, or F8..FF
    if (text.size() - i < lead->length) return false;  // cut before its end

    char32_t code_point = lead->bits;
    for (std::size_t k = 1; k < lead->length; ++k) {
      const auto byte = static_cast<unsigned char>(text[i + k]);
      if ((byte & 0xC0u) != 0x80u) return false;  // not a continuation byte
      code_point = (code_point << 6) | (byte & 0x3Fu);
    }
    if (code_point < lead->smallest) return false;                   // overlong
    if (code_point >= 0xD800 && code_point <= 0xDFFF) return false;  // surrogate
    if (code_point > 0x10FFFF) return false;                         // beyond Unicode
    i += lead->length;
  }
  return true;
}
// [utf8]

// [text-rules]
bool is_valid_user_id(std::string_view id) noexcept {
  if (id.empty() || id.size() > kUserIdSize) return false;
  for (const char c : id) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte <= 0x1F || byte == 0x7F) return false;  // NUL and the other ASCII controls, DEL
    if (byte == ' ') return false;
  }
  return is_valid_utf8(id);
}

bool is_valid_message(std::string_view message) noexcept {
  if (message.empty() || message.size() > kMessageSize) return false;
  if (message.find('\0') != std::string_view::npos) return false;
  return is_valid_utf8(message);
}
// [text-rules]

// [encode]
void encode(const Packet& packet, std::vector<std::byte>& out) {
  const PacketType type = type_of(packet);
  const std::size_t size = *frame_size(wire_value(type));
  const std::size_t begin = out.size();
  try {
    FieldWriter fields(out);
    fields.u16(static_cast<std::uint16_t>(size));
    fields.u16(wire_value(type));
    std::visit(BodyWriter(fields), packet);
  } catch (...) {
    out.resize(begin);  // a text too long: leave `out` as it was
    throw;
  }
}
// [encode]

std::vector<std::byte> encode(const Packet& packet) {
  std::vector<std::byte> out;
  encode(packet, out);
  return out;
}

// [decode]
Decoded decode(std::span<const std::byte> frame) {
  // The header, and nothing else, until the length is known to be right.
  if (frame.size() < kHeaderSize) return rejected(ErrorCode::malformed_frame);
  const std::uint16_t length = read_u16(frame, 0);
  const std::uint16_t type = read_u16(frame, 2);
  if (const std::optional<ErrorCode> error = header_error(length, type)) return rejected(*error);
  if (frame.size() != length) return rejected(ErrorCode::malformed_frame);

  FieldReader fields(frame.subspan(kHeaderSize));
  switch (static_cast<PacketType>(type)) {
    case PacketType::login_request:
      return Decoded{LoginRequest{fields.text(kUserIdSize)}};
    case PacketType::login_response: {
      const std::optional<LoginStatus> status = to_login_status(fields.u16());
      if (!status) return rejected(ErrorCode::malformed_frame);
      return Decoded{LoginResponse{*status, fields.text(kUserIdSize)}};
    }
    case PacketType::chat_request:
      return Decoded{ChatRequest{fields.text(kMessageSize)}};
    case PacketType::chat_broadcast: {
      std::string user_id = fields.text(kUserIdSize);  // the fields in wire order
      return Decoded{ChatBroadcast{std::move(user_id), fields.text(kMessageSize)}};
    }
    case PacketType::user_joined:
      return Decoded{UserJoined{fields.text(kUserIdSize)}};
    case PacketType::user_left:
      return Decoded{UserLeft{fields.text(kUserIdSize)}};
    case PacketType::error: {
      const std::optional<ErrorCode> code = to_error_code(fields.u16());
      if (!code) return rejected(ErrorCode::malformed_frame);
      return Decoded{ErrorPacket{*code}};
    }
  }
  return rejected(ErrorCode::unknown_type);  // not reached: header_error() knows every type
}
// [decode]

// [assembler]
void FrameAssembler::feed(std::span<const std::byte> bytes) {
  if (failed_) return;  // the stream is unusable; keep nothing more of it

  // Compact first: drop the frames already taken, so the buffer holds at
  // most the start of one frame plus what arrives now. (Frames handed out by
  // next() pointed into the old bytes; the API says they expire here.)
  buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<std::ptrdiff_t>(start_));
  start_ = 0;
  buffer_.insert(buffer_.end(), bytes.begin(), bytes.end());
}

FrameAssembler::Status FrameAssembler::next(std::span<const std::byte>& frame, ErrorCode& error) {
  if (failed_) {
    error = failure_;
    return Status::error;
  }
  const std::span<const std::byte> pending = std::span<const std::byte>(buffer_).subspan(start_);
  if (pending.size() < kHeaderSize) return Status::need_more;

  // Judge the header the moment it is complete: a peer that sends length
  // 0xFFFF or an unknown type is refused now, not after we have waited for
  // (and stored) the bytes it promised.
  const std::uint16_t length = read_u16(pending, 0);
  const std::uint16_t type = read_u16(pending, 2);
  if (const std::optional<ErrorCode> bad = header_error(length, type)) {
    failed_ = true;
    failure_ = *bad;
    error = *bad;
    return Status::error;
  }
  if (pending.size() < length) return Status::need_more;

  frame = pending.first(length);
  start_ += length;
  return Status::frame;
}
// [assembler]

}  // namespace iocp_chat::v2
