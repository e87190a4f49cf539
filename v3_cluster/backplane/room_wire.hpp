// room_wire.hpp — the messages that the nodes of a ver.3 cluster send each
// other over NATS, byte by byte, and the names (subjects, bucket, keys) they
// use. No I/O here: the backplane publishes what `encode` returns and hands
// what arrives to `decode`.
//
// Idea shown: a cluster needs its own small protocol on top of the messaging
// system, for the same reason ver.2 needed frames on top of TCP. NATS carries
// opaque payloads; what a payload means is ours to define and check. Like
// ver.2's packets, every field is written one by one, integers big-endian,
// never by copying a struct.
//
// Every message starts with the same header:
//
//   offset  size  field
//   0       1     version       kWireVersion (1); any other value is refused
//   1       1     kind          MessageKind
//   2       1     node length   n, 1..kMaxNodeNameSize
//   3       n     node          the publisher's node name
//   3+n     8     incarnation   random per process start: tells a restarted node from the old one
//   11+n    8     sequence      see below
//
// then the body of its kind:
//
//   chat            id length u8, id, text length u8, text
//   joined, left    id length u8, id
//   roster          flags u8 (1 first part, 2 last part), count u16, count × (id length u8, id)
//   heartbeat       (no body)
//   goodbye         (no body)
//   sync_request    target length u8 (0 = every node), target
//   declared_dead   target length u8, target, target incarnation u64
//
// The sequence number: each node numbers its *room stream* — chat, joined,
// left and roster, the messages whose loss changes what a client sees —
// 1, 2, 3, ... per incarnation. A room-stream message carries its own
// number; the other kinds (node messages) carry the last number used, so a
// receiver also notices when the tail of a stream was lost. A receiver that
// sees the numbers of one node go up by one knows it missed nothing from
// it, and since every client's messages leave through its node's stream,
// that is also the per-sender order of docs/protocol.md (ver.3).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace iocp_chat::v3 {

/// The first byte of every message; a receiver refuses any other.
inline constexpr std::uint8_t kWireVersion = 1;
/// Longest node name (bytes); names are [A-Za-z0-9_-]+ so they fit a NATS subject token.
inline constexpr std::size_t kMaxNodeNameSize = 32;
/// Longest room name (bytes), same characters as a node name.
inline constexpr std::size_t kMaxRoomNameSize = 32;
/// Longest user id (bytes): ver.2's 16-byte field.
inline constexpr std::size_t kMaxUserIdSize = 16;
/// Longest chat text (bytes): ver.2's 32-byte field.
inline constexpr std::size_t kMaxTextSize = 32;
/// Most ids in one roster part: keeps a part far below NATS's 1 MiB payload limit (≈ 34 KB).
inline constexpr std::size_t kMaxRosterPart = 2000;

/// What a message is. The first four form a node's numbered room stream.
enum class MessageKind : std::uint8_t {
  chat = 1,           ///< A chat line of one of the publisher's clients.
  joined = 2,         ///< One of the publisher's clients logged in.
  left = 3,           ///< One of the publisher's clients left (or lost its id).
  roster = 4,         ///< One part of the publisher's full member list (answers sync_request).
  heartbeat = 5,      ///< "I am alive", every heartbeat interval.
  goodbye = 6,        ///< "I am stopping": released my ids, my members are gone.
  sync_request = 7,   ///< "Send your roster" (to one node, or to all).
  declared_dead = 8,  ///< "I declared you dead": the target must renew its ids.
};

/// Flags of a roster part.
inline constexpr std::uint8_t kRosterFirstPart = 1;
/// Flags of a roster part.
inline constexpr std::uint8_t kRosterLastPart = 2;

/// True for the kinds that take the next sequence number of the room stream.
bool is_room_stream(MessageKind kind) noexcept;

/// The printable name of a kind, for logs.
std::string_view kind_name(MessageKind kind) noexcept;

/// One decoded message. Only the fields of its kind are meaningful.
struct RoomMessage {
  MessageKind kind = MessageKind::heartbeat;  ///< What it is.
  std::string node;                           ///< Publisher's node name.
  std::uint64_t incarnation = 0;              ///< Publisher's incarnation.
  std::uint64_t sequence = 0;                 ///< Its number (room stream) or the last number used.
  std::string user_id;                        ///< chat, joined, left: whose.
  std::string text;                           ///< chat: the line.
  std::uint8_t roster_flags = 0;              ///< roster: kRosterFirstPart / kRosterLastPart.
  std::vector<std::string> members;           ///< roster: the ids of this part.
  std::string target;                         ///< sync_request ("" = all), declared_dead.
  std::uint64_t target_incarnation = 0;       ///< declared_dead: which life of the target.

  /// Field by field (tests compare decoded messages).
  bool operator==(const RoomMessage&) const = default;
};

/// The bytes of `message`. Throws std::invalid_argument if a field breaks
/// the limits above (a bug in the caller: the backplane checks first).
std::string encode(const RoomMessage& message);

/// The message in `bytes`, or nothing if they are not a well-formed message
/// of this version (wrong version, unknown kind, a length past the end or
/// past its limit, bytes left over). Never throws on bad input.
std::optional<RoomMessage> decode(std::span<const std::uint8_t> bytes);

/// Node and room names: 1..32 of [A-Za-z0-9_-], so a name is one NATS
/// subject token and part of a bucket name.
bool is_valid_name(std::string_view name, std::size_t max_size) noexcept;

/// A user id the backplane carries: 1..16 bytes, no NUL. (The full ver.2
/// rules — UTF-8, no control or space — are checked by the server that
/// accepted the login; nodes trust each other, see README "who may publish".)
bool is_valid_user_id(std::string_view id) noexcept;

/// A chat text the backplane carries: 1..32 bytes, no NUL.
bool is_valid_text(std::string_view text) noexcept;

// [subjects]
/// The subjects of one room. A node subscribes to `all` (one subscription,
/// so everything one node publishes reaches it on one thread, in order).
struct RoomSubjects {
  std::string chat;      ///< `iocp-chat.<room>.chat`: chat.
  std::string presence;  ///< `iocp-chat.<room>.presence`: joined, left, roster.
  std::string node;      ///< `iocp-chat.<room>.node`: heartbeat, goodbye, sync_request, declared_dead.
  std::string all;       ///< `iocp-chat.<room>.>`: all three.
};
// [subjects]

/// The subjects of `room` (a valid name).
RoomSubjects room_subjects(std::string_view room);

/// The subject a message of `kind` is published on.
const std::string& subject_for(const RoomSubjects& subjects, MessageKind kind) noexcept;

/// The JetStream key-value bucket that holds the room's ids: `iocp-chat-ids-<room>`.
std::string id_bucket_name(std::string_view room);

/// The key of a user id in the bucket: its bytes in lowercase hex (a KV key
/// allows only [-/_=.a-zA-Z0-9], and ids are any UTF-8).
std::string id_key(std::string_view user_id);

/// The user id of a key made by id_key, or nothing if `key` is not one.
std::optional<std::string> user_id_of_key(std::string_view key);

}  // namespace iocp_chat::v3
