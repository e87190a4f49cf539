// chat_server.cpp — ver.2's chat server: the shared server core with a
// FrameAssembler and a ChatRoom in the receive path.
//
// Read it in this order: on_bytes, answer and apply (frames to the room, its
// answers to the queues), on_depart (USER_LEFT at once), the login timeout.
//
// Lines such as `// [name]` mark the listings the tutorial shows.
#include "chat_server.hpp"

#include <string>
#include <utility>
#include <vector>

#include "iocp_chat/log.hpp"

namespace iocp_chat::v2 {

// [broadcast-run]
/// What the frames of one receive produced, delivered in the order they
/// came. Consecutive CHAT_BROADCASTs to the same members are gathered into a
/// run, copied back to back: each recipient's lock is taken once for all of
/// them instead of once per message.
struct ChatServer::Answers {
  Room::Members run_to;                   ///< The members every frame of the run goes to.
  std::vector<std::byte> run;             ///< The run's encoded frames, in order.
  std::shared_ptr<Connection> congested;  ///< The first recipient whose queue became congested.

  /// Appends a lone broadcast to the run if it goes to the run's members;
  /// false if it cannot join (the caller delivers the run, then these effects).
  bool join(const Room::Effects& effects) {
    if (effects.deliveries.size() != 1 || effects.close_sender || !effects.log.empty()) return false;
    const Room::Delivery& delivery = effects.deliveries.front();
    if (delivery.except || (!run.empty() && run_to != delivery.to)) return false;
    run_to = delivery.to;
    run.insert(run.end(), delivery.frame->begin(), delivery.frame->end());
    return true;
  }
  /// Keeps the first congested recipient: the core holds the sender back for it.
  void note(std::shared_ptr<Connection> full) {
    if (!congested) congested = std::move(full);
  }
};
// [broadcast-run]

std::shared_ptr<Connection> ChatServer::make_connection(Socket socket, OutboundTotal& total) {
  return std::make_shared<Session>(std::move(socket), total);
}

// What a dropped client is told before it goes (best effort).
SharedBuffer ChatServer::farewell(Farewell why) {
  return encode_shared(
      ErrorPacket{why == Farewell::server_full ? ErrorCode::server_full : ErrorCode::slow_consumer});
}

// [handle-frames]
// Every complete frame goes to the room; the room's answers are delivered in
// order. Returns a recipient whose queue is now congested, if any.
std::shared_ptr<Connection> ChatServer::on_bytes(Connection& from, std::span<const std::byte> bytes) {
  auto& session = static_cast<Session&>(from);  // every connection of this server is one (make_connection)
  session.assembler.feed(bytes);
  const auto self = from.shared_from_this();
  // The room queues a LOGIN_RESPONSE itself, under its lock: append only.
  const auto reply = [this, &from](const SharedBuffer& response) { return append_only(from, *response); };
  Answers answers;
  while (is_open(from)) {
    std::span<const std::byte> frame;
    ErrorCode error = ErrorCode::malformed_frame;
    const FrameAssembler::Status status = session.assembler.next(frame, error);
    if (status == FrameAssembler::Status::need_more) break;
    if (status == FrameAssembler::Status::error) {
      answer(session, room_.on_bad_stream(self, error), answers);
    } else if (frame_type(frame) == static_cast<std::uint16_t>(PacketType::chat_request)) {
      const auto effects = room_.on_frame(self, frame, reply);
      if (!answers.join(effects)) answer(session, effects, answers);
    } else {
      deliver_run(answers);  // the room may answer the sender at once: its chat so far goes first
      answer(session, room_.on_frame(self, frame, reply), answers);
      if (frame_type(frame) == static_cast<std::uint16_t>(PacketType::login_request)) login_answered(session);
    }
  }
  deliver_run(answers);
  return answers.congested;
}
// [handle-frames]

// Delivers the run gathered so far, each recipient's lock taken once.
void ChatServer::deliver_run(Answers& answers) {
  if (answers.run.empty()) return;
  for (const auto& recipient : *answers.run_to) {
    if (deliver(*recipient, answers.run)) answers.note(recipient);
  }
  answers.run.clear();
}

// Effects that did not join the run, after the run; a refusal ends with
// `leave`: the client hears its ERROR, then goes.
void ChatServer::answer(Session& session, const Room::Effects& effects, Answers& answers) {
  deliver_run(answers);
  answers.note(apply(session, effects));
  if (effects.close_sender) leave(session, effects.log, nullptr);  // after its ERROR
}

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

// The room answered a LOGIN_REQUEST: logged in, the client has no login
// timer any more; refused, its timer starts again (time to retype an id).
void ChatServer::login_answered(Session& session) {
  const bool logged_in = room_.id_of(session.shared_from_this()).has_value();  // the room's lock first
  const CriticalSectionLock lock(session.lock);
  session.logged_in = logged_in;
  session.login_timer = std::chrono::steady_clock::now();
}

// [login-timeout]
// The login timeout: a connection that has not logged in within
// login_timeout of its accept, or of the last LOGIN_REQUEST the room
// answered, is closed without an ERROR (docs/protocol.md has no code for
// it). One question to its socket first: bytes the server has not read yet
// mean the server is behind, not the client (seen with 10,000 clients
// logging in at once on the epoll backend).
void ChatServer::on_sweep(Connection& connection, std::chrono::steady_clock::time_point now) {
  auto& session = static_cast<Session&>(connection);
  {
    const CriticalSectionLock lock(session.lock);
    if (login_timeout_.count() == 0 || session.logged_in || session.phase != Phase::open) return;
    if (now - session.login_timer < login_timeout_) return;
    if (unread_bytes(session.socket) > 0) {
      session.login_timer = now;
      return;
    }
  }
  close_if_open(connection, "login timeout");  // no frame is owed to it
}
// [login-timeout]

}  // namespace iocp_chat::v2
