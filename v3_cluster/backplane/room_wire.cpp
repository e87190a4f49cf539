// room_wire.cpp — encode and decode the cluster's messages, field by field.
// The decoder checks every length against the bytes left and against its
// limit before it reads, and refuses leftovers, so a stray or truncated
// payload is dropped whole instead of half understood.
#include "room_wire.hpp"

#include <stdexcept>

namespace iocp_chat::v3 {
namespace {

/// Appends fields to a payload, big-endian.
class Writer {
 public:
  void u8(std::uint8_t value) { bytes_.push_back(static_cast<char>(value)); }
  void u16(std::uint16_t value) {
    u8(static_cast<std::uint8_t>(value >> 8));
    u8(static_cast<std::uint8_t>(value & 0xFF));
  }
  void u64(std::uint64_t value) {
    for (int shift = 56; shift >= 0; shift -= 8) u8(static_cast<std::uint8_t>((value >> shift) & 0xFF));
  }
  /// A length byte, then the bytes.
  void short_text(std::string_view text) {
    u8(static_cast<std::uint8_t>(text.size()));
    bytes_.append(text);
  }
  std::string take() { return std::move(bytes_); }

 private:
  std::string bytes_;  ///< The payload so far.
};

/// Reads fields from a payload; every read fails (returns false) past the end.
class Reader {
 public:
  explicit Reader(std::span<const std::uint8_t> bytes) : bytes_(bytes) {}
  bool u8(std::uint8_t& value) {
    if (left() < 1) return false;
    value = bytes_[offset_++];
    return true;
  }
  bool u16(std::uint16_t& value) {
    std::uint8_t high = 0, low = 0;
    if (!u8(high) || !u8(low)) return false;
    value = static_cast<std::uint16_t>((high << 8) | low);
    return true;
  }
  bool u64(std::uint64_t& value) {
    if (left() < 8) return false;
    value = 0;
    for (int i = 0; i < 8; ++i) value = (value << 8) | bytes_[offset_++];
    return true;
  }
  /// A length byte (at most `max_size`; at least `min_size`), then that many bytes.
  bool short_text(std::string& text, std::size_t min_size, std::size_t max_size) {
    std::uint8_t size = 0;
    if (!u8(size) || size < min_size || size > max_size || left() < size) return false;
    text.assign(reinterpret_cast<const char*>(bytes_.data() + offset_), size);
    offset_ += size;
    return true;
  }
  std::size_t left() const noexcept { return bytes_.size() - offset_; }

 private:
  std::span<const std::uint8_t> bytes_;  ///< The whole payload.
  std::size_t offset_ = 0;               ///< Where the next field starts.
};

bool is_name_char(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

bool has_no_nul(std::string_view text) noexcept { return text.find('\0') == std::string_view::npos; }

void require(bool condition, const char* what) {
  if (!condition) throw std::invalid_argument(std::string("room message: ") + what);
}

}  // namespace

bool is_room_stream(MessageKind kind) noexcept {
  return kind == MessageKind::chat || kind == MessageKind::joined || kind == MessageKind::left ||
         kind == MessageKind::roster;
}

std::string_view kind_name(MessageKind kind) noexcept {
  switch (kind) {
    case MessageKind::chat:
      return "chat";
    case MessageKind::joined:
      return "joined";
    case MessageKind::left:
      return "left";
    case MessageKind::roster:
      return "roster";
    case MessageKind::heartbeat:
      return "heartbeat";
    case MessageKind::goodbye:
      return "goodbye";
    case MessageKind::sync_request:
      return "sync_request";
    case MessageKind::declared_dead:
      return "declared_dead";
  }
  return "unknown";
}

bool is_valid_name(std::string_view name, std::size_t max_size) noexcept {
  if (name.empty() || name.size() > max_size) return false;
  for (char c : name) {
    if (!is_name_char(c)) return false;
  }
  return true;
}

bool is_valid_user_id(std::string_view id) noexcept {
  return !id.empty() && id.size() <= kMaxUserIdSize && has_no_nul(id);
}

bool is_valid_text(std::string_view text) noexcept {
  return !text.empty() && text.size() <= kMaxTextSize && has_no_nul(text);
}

std::string encode(const RoomMessage& message) {
  require(is_valid_name(message.node, kMaxNodeNameSize), "bad node name");
  Writer out;
  out.u8(kWireVersion);
  out.u8(static_cast<std::uint8_t>(message.kind));
  out.short_text(message.node);
  out.u64(message.incarnation);
  out.u64(message.sequence);
  switch (message.kind) {
    case MessageKind::chat:
      require(is_valid_user_id(message.user_id) && is_valid_text(message.text), "bad chat");
      out.short_text(message.user_id);
      out.short_text(message.text);
      break;
    case MessageKind::joined:
    case MessageKind::left:
      require(is_valid_user_id(message.user_id), "bad user id");
      out.short_text(message.user_id);
      break;
    case MessageKind::roster:
      require(message.members.size() <= kMaxRosterPart, "roster part too large");
      out.u8(message.roster_flags);
      out.u16(static_cast<std::uint16_t>(message.members.size()));
      for (const std::string& id : message.members) {
        require(is_valid_user_id(id), "bad roster id");
        out.short_text(id);
      }
      break;
    case MessageKind::heartbeat:
    case MessageKind::goodbye:
      break;
    case MessageKind::sync_request:
      require(message.target.empty() || is_valid_name(message.target, kMaxNodeNameSize), "bad target");
      out.short_text(message.target);
      break;
    case MessageKind::declared_dead:
      require(is_valid_name(message.target, kMaxNodeNameSize), "bad target");
      out.short_text(message.target);
      out.u64(message.target_incarnation);
      break;
    default:
      require(false, "unknown kind");
  }
  return out.take();
}

std::optional<RoomMessage> decode(std::span<const std::uint8_t> bytes) {
  Reader in(bytes);
  RoomMessage message;
  std::uint8_t version = 0, kind = 0;
  if (!in.u8(version) || version != kWireVersion || !in.u8(kind)) return std::nullopt;
  if (kind < static_cast<std::uint8_t>(MessageKind::chat) ||
      kind > static_cast<std::uint8_t>(MessageKind::declared_dead)) {
    return std::nullopt;
  }
  message.kind = static_cast<MessageKind>(kind);
  if (!in.short_text(message.node, 1, kMaxNodeNameSize) || !is_valid_name(message.node, kMaxNodeNameSize) ||
      !in.u64(message.incarnation) || !in.u64(message.sequence)) {
    return std::nullopt;
  }
  switch (message.kind) {
    case MessageKind::chat:
      if (!in.short_text(message.user_id, 1, kMaxUserIdSize) ||
          !in.short_text(message.text, 1, kMaxTextSize) || !has_no_nul(message.user_id) ||
          !has_no_nul(message.text)) {
        return std::nullopt;
      }
      break;
    case MessageKind::joined:
    case MessageKind::left:
      if (!in.short_text(message.user_id, 1, kMaxUserIdSize) || !has_no_nul(message.user_id))
        return std::nullopt;
      break;
    case MessageKind::roster: {
      std::uint16_t count = 0;
      if (!in.u8(message.roster_flags) || message.roster_flags > (kRosterFirstPart | kRosterLastPart) ||
          !in.u16(count) || count > kMaxRosterPart) {
        return std::nullopt;
      }
      message.members.resize(count);
      for (std::string& id : message.members) {
        if (!in.short_text(id, 1, kMaxUserIdSize) || !has_no_nul(id)) return std::nullopt;
      }
      break;
    }
    case MessageKind::heartbeat:
    case MessageKind::goodbye:
      break;
    case MessageKind::sync_request:
      if (!in.short_text(message.target, 0, kMaxNodeNameSize) ||
          (!message.target.empty() && !is_valid_name(message.target, kMaxNodeNameSize))) {
        return std::nullopt;
      }
      break;
    case MessageKind::declared_dead:
      if (!in.short_text(message.target, 1, kMaxNodeNameSize) ||
          !is_valid_name(message.target, kMaxNodeNameSize) || !in.u64(message.target_incarnation)) {
        return std::nullopt;
      }
      break;
  }
  if (in.left() != 0) return std::nullopt;
  return message;
}

RoomSubjects room_subjects(std::string_view room) {
  const std::string prefix = "iocp-chat." + std::string(room) + ".";
  return RoomSubjects{prefix + "chat", prefix + "presence", prefix + "node", prefix + ">"};
}

const std::string& subject_for(const RoomSubjects& subjects, MessageKind kind) noexcept {
  switch (kind) {
    case MessageKind::chat:
      return subjects.chat;
    case MessageKind::joined:
    case MessageKind::left:
    case MessageKind::roster:
      return subjects.presence;
    default:
      return subjects.node;
  }
}

std::string id_bucket_name(std::string_view room) { return "iocp-chat-ids-" + std::string(room); }

std::string id_key(std::string_view user_id) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string key;
  key.reserve(user_id.size() * 2);
  for (char c : user_id) {
    const auto byte = static_cast<unsigned char>(c);
    key.push_back(kHex[byte >> 4]);
    key.push_back(kHex[byte & 0x0F]);
  }
  return key;
}

std::optional<std::string> user_id_of_key(std::string_view key) {
  if (key.empty() || key.size() % 2 != 0) return std::nullopt;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  std::string id;
  for (std::size_t i = 0; i < key.size(); i += 2) {
    const int high = nibble(key[i]), low = nibble(key[i + 1]);
    if (high < 0 || low < 0) return std::nullopt;
    id.push_back(static_cast<char>((high << 4) | low));
  }
  return id;
}

}  // namespace iocp_chat::v3
