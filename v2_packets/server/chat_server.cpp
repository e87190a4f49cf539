// chat_server.cpp — ver.2's chat server: the shared server core with a
// FrameAssembler and a ChatRoom in the receive path.
//
// Read it in this order: on_bytes (frames to the room, the room's answers
// to the queues), apply, then what ver.2 does when a client goes (on_depart:
// USER_LEFT at once) and the login timeout (on_sweep).
//
// Lines such as `// [name]` mark the listings the tutorial shows.
#include "chat_server.hpp"

#include <string>
#include <utility>
#include <vector>

#include "iocp_chat/log.hpp"

namespace iocp_chat::v2 {
namespace {

using Room = ChatRoom<std::shared_ptr<Connection>>;

// [broadcast-run]
/// Consecutive CHAT_BROADCASTs of one receive that go to the same members,
/// copied back to back: each recipient's lock is taken once for all of them
/// instead of once per message.
struct BroadcastRun {
  Room::Members to;               ///< The members every frame of the run goes to.
  std::vector<std::byte> frames;  ///< The encoded frames, in order.
};

/// Appends a lone broadcast to `run` if it goes to the run's members; false
/// if it cannot join (the caller delivers the run, then these effects).
bool join_run(BroadcastRun& run, const Room::Effects& effects) {
  if (effects.deliveries.size() != 1 || effects.close_sender || !effects.log.empty()) return false;
  const Room::Delivery& delivery = effects.deliveries.front();
  if (delivery.except || (!run.frames.empty() && run.to != delivery.to)) return false;
  run.to = delivery.to;
  run.frames.insert(run.frames.end(), delivery.frame->begin(), delivery.frame->end());
  return true;
}
// [broadcast-run]

}  // namespace

std::shared_ptr<Connection> ChatServer::make_connection(Socket socket, OutboundTotal& total) {
  return std::make_shared<Session>(std::move(socket), total);
}

// What a dropped client is told before it goes (best effort).
SharedBuffer ChatServer::farewell(Farewell why) {
  return encode_shared(
      ErrorPacket{why == Farewell::server_full ? ErrorCode::server_full : ErrorCode::slow_consumer});
}

// [handle-frames]
// Every complete frame goes to the room, and its answer is applied in order.
// Chat messages that go to the same members are gathered into a run and
// delivered together. Returns a recipient whose queue is now congested, if any.
std::shared_ptr<Connection> ChatServer::on_bytes(Connection& from, std::span<const std::byte> bytes) {
  auto& session = static_cast<Session&>(from);  // every connection of this server is one (make_connection)
  session.assembler.feed(bytes);
  const auto self = from.shared_from_this();
  // The room queues a LOGIN_RESPONSE itself, under its lock: append only.
  const auto reply = [this, &from](const SharedBuffer& response) { return append_only(from, *response); };
  std::shared_ptr<Connection> congested;
  BroadcastRun run;
  const auto deliver_run = [this, &run, &congested] {
    if (run.frames.empty()) return;
    for (const auto& recipient : *run.to) {
      if (deliver(*recipient, run.frames) && !congested) congested = recipient;
    }
    run.frames.clear();
  };
  while (is_open(from)) {
    std::span<const std::byte> frame;
    ErrorCode error = ErrorCode::malformed_frame;
    const FrameAssembler::Status status = session.assembler.next(frame, error);
    if (status == FrameAssembler::Status::need_more) break;
    const bool chat = status == FrameAssembler::Status::frame &&
                      frame_type(frame) == static_cast<std::uint16_t>(PacketType::chat_request);
    // Anything else may answer the sender at once (a login's reply), so
    // the run goes out first: the sender hears everything in order.
    if (!chat) deliver_run();
    const auto effects = status == FrameAssembler::Status::frame ? room_.on_frame(self, frame, reply)
                                                                 : room_.on_bad_stream(self, error);
    if (chat && join_run(run, effects)) continue;
    deliver_run();
    if (auto full = apply(from, effects); full && !congested) congested = std::move(full);
    if (effects.close_sender) leave(from, effects.log, nullptr);  // after its ERROR
  }
  deliver_run();
  return congested;
}
// [handle-frames]

// [apply]
// Delivers the room's frames, in order, without holding any room lock: each
// delivery carries its own snapshot of the recipients. Returns a recipient
// whose queue is now congested, if any.
std::shared_ptr<Connection> ChatServer::apply(Connection& sender, const Room::Effects& effects) {
  if (!effects.log.empty() && !effects.close_sender) log_line("client " + sender.name + ": " + effects.log);
  std::shared_ptr<Connection> congested;
  for (const auto& delivery : effects.deliveries) {
    for (const auto& recipient : *delivery.to) {
      if (delivery.except && *delivery.except == recipient) continue;
      if (deliver(*recipient, *delivery.frame) && !congested) congested = recipient;
    }
  }
  return congested;
}
// [apply]

// [depart]
// Out of the room the moment it starts leaving, whatever is left to do with
// its socket: its id is free again and the others hear USER_LEFT now.
void ChatServer::on_depart(Connection& connection) {
  auto left = room_.on_leave(connection.shared_from_this());
  if (!left.log.empty())
    log_line("client " + connection.name + ": " + left.log + ": " + reason_of(connection));
  left.log.clear();  // said above, with the reason
  apply(connection, left);
}
// [depart]

// [login-timeout]
// The login timeout: a connection that has not logged in within
// login_timeout of its accept, or of the last LOGIN_REQUEST the room
// answered, is closed without an ERROR (docs/protocol.md has no code for
// it). The room knows who is logged in and how many logins it answered; the
// sweep notices a new answer at most one sweep late, which only lengthens
// the time allowed. Bytes the server has not read yet also restart the timer.
void ChatServer::on_sweep(Connection& connection, std::chrono::steady_clock::time_point now) {
  if (login_timeout_.count() == 0) return;
  auto& session = static_cast<Session&>(connection);
  {
    const CriticalSectionLock lock(session.lock);
    if (session.logged_in || session.phase != Phase::open) return;
  }
  const auto progress = room_.login_progress(connection.shared_from_this());
  bool overdue = false;
  {
    const CriticalSectionLock lock(session.lock);
    if (session.phase != Phase::open) return;
    if (progress.logged_in) {
      session.logged_in = true;
    } else if (progress.answered != session.logins_answered) {
      session.logins_answered = progress.answered;
      session.login_timer = now;
    } else if (unread_bytes(session.socket) > 0) {
      // Its bytes wait in the socket: the server is behind, not the client
      // (seen with 10,000 clients logging in at once on the epoll backend).
      session.login_timer = now;
    } else {
      overdue = now - session.login_timer >= login_timeout_;
    }
  }
  if (overdue) close_if_open(connection, "login timeout");  // no frame is owed to it
}
// [login-timeout]

}  // namespace iocp_chat::v2
