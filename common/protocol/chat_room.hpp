// chat_room.hpp — ver.2's sessions: who is logged in under which id, and
// which frames each event produces (docs/protocol.md, ver.2, rules 1–5).
//
// Ideas shown:
//   * The rules live in a class that does no I/O. The server feeds it each
//     frame a client sent and gets back "send this frame to these clients,
//     then close the sender"; a fuzzer feeds it arbitrary frames the same way.
//   * The registry of ids is guarded by a CriticalSection, but a broadcast
//     takes only a copy-on-write snapshot of the members under it — one
//     pointer copy — and the delivery to every member happens after the lock
//     is released. Logins and logouts, which are rare, rebuild the snapshot.
//   * Each broadcast frame is encoded once; the server then copies its bytes
//     into every recipient's queue (copying 52 bytes is cheaper than a
//     reference count that every worker would fight over).
//   * A login is atomic: the LOGIN_RESPONSE is queued (through `reply`, which
//     only appends to the client's queue and never blocks) inside the same
//     critical section that makes the client a member. So no broadcast can
//     reach the client before its LOGIN_RESPONSE, and none that any member
//     could receive after it is missed.
//
// `Client` is whatever identifies a connection: the server uses
// std::shared_ptr<Connection> (so a snapshot keeps its members alive), the
// fuzzer plain numbers. It lives in common/ because ver.2's server and
// ver.3's nodes both keep their local clients' sessions in it.
#pragma once

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "common/protocol/packets.hpp"
#include "iocp_chat/shared_buffer.hpp"
#include "iocp_chat/sync.hpp"

namespace iocp_chat::v2 {

/// Encodes a packet once, into a buffer that many sends can share.
inline SharedBuffer encode_shared(const Packet& packet) {
  return std::make_shared<const std::vector<std::byte>>(encode(packet));
}

/// The session rules for every connection of one server.
template <typename Client>
class ChatRoom {
 public:
  // [effects]
  /// The logged-in clients at one moment; shared, never changed once made.
  using Members = std::shared_ptr<const std::vector<Client>>;

  /// One frame for a group of clients.
  struct Delivery {
    SharedBuffer frame;            ///< Encoded once.
    Members to;                    ///< The recipients.
    std::optional<Client> except;  ///< Skipped, if set (a join is not announced to the joiner).
  };

  /// What the server must do after an event, in order.
  struct Effects {
    std::vector<Delivery> deliveries;  ///< Frames to queue, in this order.
    bool close_sender = false;         ///< After its queued frames: close the connection.
    std::string log;                   ///< A line for the server log, or empty.
  };
  // [effects]

  ChatRoom() : members_(std::make_shared<const std::vector<Client>>()) {}

  /// Queues one frame for the client being answered; called with the room's
  /// lock held, so it must only append to a queue. False if the client is
  /// already leaving (dropped by another thread meanwhile): then a login
  /// does not happen, so no one who has left can come back as a ghost.
  using Reply = std::function<bool(const SharedBuffer&)>;

  // [on-frame]
  /// A complete frame (from a FrameAssembler) that `from` sent. `reply`
  /// queues the LOGIN_RESPONSE; everything else comes back as Effects.
  Effects on_frame(const Client& from, std::span<const std::byte> frame, const Reply& reply) {
    // Only the two client-to-server types are accepted; the others are
    // known, but a client has no business sending them.
    const std::uint16_t type = frame_type(frame);
    if (type != static_cast<std::uint16_t>(PacketType::login_request) &&
        type != static_cast<std::uint16_t>(PacketType::chat_request)) {
      return refuse(from, ErrorCode::unknown_type);
    }
    Decoded decoded = decode(frame);
    if (!decoded.packet) return refuse(from, decoded.error);
    if (auto* login = std::get_if<LoginRequest>(&*decoded.packet))
      return on_login(from, login->user_id, reply);
    return on_chat(from, std::get<ChatRequest>(*decoded.packet).message);
  }
  // [on-frame]

  /// The byte stream of `from` cannot be framed (a bad header): ERROR, then close.
  Effects on_bad_stream(const Client& from, ErrorCode code) { return refuse(from, code); }

  // [on-leave]
  /// The connection of `from` ended, for whatever reason: its id is released
  /// and every other member hears USER_LEFT.
  Effects on_leave(const Client& from) {
    Effects effects;
    const CriticalSectionLock lock(lock_);
    const auto found = sessions_.find(from);
    if (found == sessions_.end()) return effects;
    const std::string id = found->second;
    holder_of_.erase(id);
    sessions_.erase(found);
    rebuild_members_locked();
    effects.deliveries.push_back({encode_shared(UserLeft{id}), members_, std::nullopt});
    effects.log = "'" + id + "' left (" + std::to_string(sessions_.size()) + " logged in)";
    return effects;
  }
  // [on-leave]

  /// The id `client` is logged in under, if any.
  std::optional<std::string> id_of(const Client& client) {
    const CriticalSectionLock lock(lock_);
    const auto found = sessions_.find(client);
    if (found == sessions_.end()) return std::nullopt;
    return found->second;
  }

  /// The logged-in clients now (the snapshot), for frames that come from
  /// elsewhere: ver.3's other nodes.
  Members members() {
    const CriticalSectionLock lock(lock_);
    return members_;
  }

  /// How many clients are logged in.
  std::size_t logged_in() {
    const CriticalSectionLock lock(lock_);
    return sessions_.size();
  }

 private:
  // [refuse]
  /// Rule 5: ERROR with its code, then close this one connection.
  Effects refuse(const Client& from, ErrorCode code) {
    Effects effects;
    effects.deliveries.push_back({encode_shared(ErrorPacket{code}), only(from), std::nullopt});
    effects.close_sender = true;
    effects.log = std::string("protocol error ") + std::string(to_string(code));
    return effects;
  }
  // [refuse]

  // [on-login]
  /// Rule 1: LOGIN_RESPONSE, and USER_JOINED to the others on success.
  Effects on_login(const Client& from, const std::string& id, const Reply& reply) {
    Effects effects;
    const CriticalSectionLock lock(lock_);
    LoginStatus status = LoginStatus::ok;
    if (sessions_.contains(from)) {
      status = LoginStatus::already_logged_in;  // stays logged in under its first id
    } else if (!is_valid_user_id(id)) {
      status = LoginStatus::invalid_id;
    } else if (holder_of_.contains(id)) {
      status = LoginStatus::id_taken;
    }
    const bool still_here = reply(encode_shared(LoginResponse{status, id}));
    if (status != LoginStatus::ok || !still_here) return effects;

    sessions_.emplace(from, id);
    holder_of_.emplace(id, from);
    rebuild_members_locked();
    effects.deliveries.push_back({encode_shared(UserJoined{id}), members_, from});
    effects.log = "'" + id + "' logged in (" + std::to_string(sessions_.size()) + " logged in)";
    return effects;
  }
  // [on-login]

  // [on-chat]
  /// Rule 2: CHAT_BROADCAST to every member, the sender included.
  Effects on_chat(const Client& from, const std::string& message) {
    Members recipients;
    std::string id;
    {
      const CriticalSectionLock lock(lock_);
      const auto found = sessions_.find(from);
      if (found == sessions_.end()) return refuse(from, ErrorCode::not_logged_in);
      id = found->second;
      recipients = members_;  // the snapshot: one pointer copy under the lock
    }
    if (!is_valid_message(message)) return refuse(from, ErrorCode::invalid_text);
    Effects effects;
    effects.deliveries.push_back(
        {encode_shared(ChatBroadcast{id, message}), std::move(recipients), std::nullopt});
    return effects;
  }
  // [on-chat]

  /// A one-member group, for a reply.
  static Members only(const Client& client) { return std::make_shared<const std::vector<Client>>(1, client); }

  // [snapshot]
  /// Copy-on-write: a new snapshot for every login and logout.
  void rebuild_members_locked() REQUIRES(lock_) {
    auto members = std::make_shared<std::vector<Client>>();
    members->reserve(sessions_.size());
    for (const auto& entry : sessions_) members->push_back(entry.first);
    members_ = std::move(members);
  }
  // [snapshot]

  CriticalSection lock_;  ///< Guards the registry (the server's other critical section).
  std::map<Client, std::string> sessions_ GUARDED_BY(lock_);  ///< Logged-in client → its id.
  std::map<std::string, Client> holder_of_
      GUARDED_BY(lock_);               ///< Id → the client holding it (ids are unique, byte-exact).
  Members members_ GUARDED_BY(lock_);  ///< Snapshot of the logged-in clients.
};

}  // namespace iocp_chat::v2
