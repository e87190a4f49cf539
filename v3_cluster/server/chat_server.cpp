// chat_server.cpp — ver.3's chat server: ver.2's (the shared server core with
// a FrameAssembler and a ChatRoom in the receive path) plus the backplane.
//
// Read it in this order: on_bytes and handle_frames (frames to the room, the
// room's answers to the queues, a chat published, a login claimed), the
// claim's answer (on_claimed), answer and apply, then what happens when a
// client goes (on_depart: USER_LEFT at once, here and on the other nodes),
// the login timeout (login_answered, on_sweep), and last the events from the other nodes: queued by
// the backplane's threads, run by a worker (queue_event, on_posted).
//
// Lines such as `// [name]` mark the listings the tutorial shows.
#include "chat_server.hpp"

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "iocp_chat/log.hpp"

namespace iocp_chat::v3 {
namespace {

using Room = ChatRoom<std::shared_ptr<Connection>>;

/// Bytes a client may send while its login is being claimed (they wait in
/// its assembler); past this it is closed. A claim takes a NATS round trip
/// (at most the request timeout, 2 s), and a client that waits for its
/// LOGIN_RESPONSE sends nothing meanwhile.
constexpr std::size_t kMaxHeldBytes = 64 * 1024;

/// The user id and text of a CHAT_BROADCAST the room made, to publish it.
std::optional<ChatBroadcast> chat_of(const Room::Effects& effects) {
  if (effects.deliveries.size() != 1 || effects.close_sender) return std::nullopt;
  Decoded decoded = v2::decode(*effects.deliveries.front().frame);
  if (!decoded.packet || !std::holds_alternative<ChatBroadcast>(*decoded.packet)) return std::nullopt;
  return std::get<ChatBroadcast>(*decoded.packet);
}

}  // namespace

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

void ChatServer::start() {
  ServerCore::start();
  try {
    backplane_.start();
  } catch (...) {
    ServerCore::stop();
    throw;
  }
}

// The room first: its ids are released and the others hear goodbye while
// the clients are still connected; then the core closes them.
void ChatServer::stop() {
  backplane_.stop();
  ServerCore::stop();
}

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
  const std::lock_guard frames(session.frames_lock);
  session.assembler.feed(bytes);
  if (session.claiming && session.assembler.buffered() > kMaxHeldBytes) {
    close_if_open(from, "sent too much while its login was being claimed");
    return nullptr;
  }
  return handle_frames(session);
}

// The frames waiting in a session's assembler, with its frames_lock held.
std::shared_ptr<Connection> ChatServer::handle_frames(Session& session) {
  const auto self = session.shared_from_this();
  // The room queues a LOGIN_RESPONSE itself, under its lock: append only.
  const auto reply = [this, &session](const SharedBuffer& response) {
    return append_only(session, *response);
  };
  Answers answers;
  while (is_open(session) && !session.claiming) {  // while claiming, frames wait
    std::span<const std::byte> frame;
    ErrorCode error = ErrorCode::malformed_frame;
    const FrameAssembler::Status status = session.assembler.next(frame, error);
    if (status == FrameAssembler::Status::need_more) break;
    if (status == FrameAssembler::Status::error) {
      answer(session, room_.on_bad_stream(self, error), answers);
    } else if (frame_type(frame) == static_cast<std::uint16_t>(PacketType::chat_request)) {
      const auto effects = room_.on_frame(self, frame, reply);
      // One NATS message per line, whatever the number of receivers.
      if (const auto line = chat_of(effects)) backplane_.publish_chat(line->user_id, line->message);
      if (!answers.join(effects)) answer(session, effects, answers);
    } else {
      deliver_run(answers);  // the room may answer the sender at once: its chat so far goes first
      if (start_claim(session, frame)) break;  // a login the room would accept: claimed cluster-wide first
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

// [claim]
// A LOGIN_REQUEST with a valid id from a client not logged in yet: the id is
// claimed in the cluster's bucket (a NATS round trip, on the backplane's
// registry thread), and the answer comes back to a worker as a posted
// completion. False if the room can answer this frame alone.
bool ChatServer::start_claim(Session& session, std::span<const std::byte> frame) {
  if (frame_type(frame) != static_cast<std::uint16_t>(PacketType::login_request)) return false;
  Decoded decoded = v2::decode(frame);
  if (!decoded.packet) return false;
  const std::string id = std::get<LoginRequest>(*decoded.packet).user_id;
  if (!v2::is_valid_user_id(id) || room_.id_of(session.shared_from_this())) return false;
  session.claiming = true;
  set_answer_owed(session, true);  // a FIN that comes meanwhile waits for the answer
  auto client = std::static_pointer_cast<Session>(session.shared_from_this());
  auto request = std::vector<std::byte>(frame.begin(), frame.end());
  backplane_.claim(id, [this, client, request = std::move(request)](const ClaimResult& result) {
    queue_event([this, client, request, result] { on_claimed(*client, request, result); });
  });
  return true;
}

// The claim's answer, on a worker. Claimed: the room logs the client in as
// ver.2's would (LOGIN_RESPONSE, USER_JOINED to the local members; the other
// nodes heard it from the backplane). Otherwise ID_TAKEN or TRY_LATER, and
// the connection stays open. Then the frames that waited go on.
void ChatServer::on_claimed(Session& session, const std::vector<std::byte>& frame,
                            const ClaimResult& result) {
  const auto self = session.shared_from_this();
  const std::string id = std::get<LoginRequest>(*v2::decode(frame).packet).user_id;
  const std::lock_guard frames(session.frames_lock);
  session.claiming = false;
  if (result.status == ClaimStatus::claimed) {
    const auto reply = [this, &session](const SharedBuffer& response) {
      return append_only(session, *response);
    };
    const auto effects = room_.on_frame(self, frame, reply);
    if (room_.id_of(self) != id) backplane_.release(id);  // it left meanwhile: the id goes back
    apply(session, effects);
  } else {
    const bool taken = result.status == ClaimStatus::taken;
    if (!taken)
      log_line("client " + session.name + ": login '" + id + "' answered TRY_LATER: " + result.error);
    deliver(session,
            *encode_shared(LoginResponse{taken ? LoginStatus::id_taken : LoginStatus::try_later, id}));
  }
  login_answered(session);
  if (is_open(session)) handle_frames(session);
  set_answer_owed(session, session.claiming);  // answered (unless another claim began): a FIN may now end it
}
// [claim]

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
  const auto id = room_.id_of(connection.shared_from_this());
  auto left = room_.on_leave(connection.shared_from_this());
  if (id) backplane_.release(*id);  // the other nodes hear USER_LEFT, the id is free cluster-wide
  if (!left.log.empty())
    log_line("client " + connection.name + ": " + left.log + ": " + reason_of(connection));
  left.log.clear();  // said above, with the reason
  apply(connection, left);
}
// [depart]

// The room answered a LOGIN_REQUEST (or the cluster refused its id):
// logged in, the client has no login timer any more; refused, its timer
// starts again (time to retype an id).
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
// logging in at once on the epoll backend). A login being claimed is being
// answered: no timeout meanwhile.
void ChatServer::on_sweep(Connection& connection, std::chrono::steady_clock::time_point now) {
  auto& session = static_cast<Session&>(connection);
  {
    const CriticalSectionLock lock(session.lock);
    if (login_timeout_.count() == 0 || session.logged_in || session.phase != Phase::open) return;
  }
  {
    const std::lock_guard frames(session.frames_lock);
    if (session.claiming) return;
  }
  {
    const CriticalSectionLock lock(session.lock);
    if (session.phase != Phase::open || now - session.login_timer < login_timeout_) return;
    if (unread_bytes(session.socket) > 0) {
      session.login_timer = now;
      return;
    }
  }
  close_if_open(connection, "login timeout");  // no frame is owed to it
}
// [login-timeout]

// [events]
// The backplane's callbacks run on NATS's threads (never two at a time, in
// the order NATS delivered): they only queue the event. The first event in
// an empty queue posts one completion (PostQueuedCompletionStatus); the
// worker that takes it runs every queued event, in order, until the queue
// is empty — so one sender's lines reach the local members in its order.
void ChatServer::queue_event(std::function<void()> event) {
  bool wake = false;
  {
    const std::lock_guard lock(events_lock_);
    events_.push_back(std::move(event));
    wake = !events_posted_;
    events_posted_ = true;
  }
  if (wake) post(0);
}

void ChatServer::on_posted(std::size_t) {
  for (;;) {
    std::deque<std::function<void()>> batch;
    {
      const std::lock_guard lock(events_lock_);
      if (events_.empty()) {
        events_posted_ = false;
        return;
      }
      batch.swap(events_);
    }
    for (auto& event : batch) {
      try {
        event();
      } catch (const std::exception& error) {
        log_line(std::string("internal error while handling a cluster event: ") + error.what());
      }
    }
  }
}

/// One frame, encoded once, for every local member.
void ChatServer::to_members(const Packet& packet) {
  const SharedBuffer frame = encode_shared(packet);
  // Held in a variable: in `for (x : *room_.members())` the snapshot would be
  // a temporary, freed before the loop runs if a login or a departure
  // replaced it meanwhile (found as a crash when 300 clients left at once).
  const Room::Members members = room_.members();
  for (const auto& member : *members) deliver(*member, *frame);
}

void ChatServer::on_chat(const RemoteChat& chat) {
  queue_event([this, chat] { to_members(ChatBroadcast{chat.user_id, chat.text}); });
}

void ChatServer::on_member_joined(const std::string&, const std::string& user_id) {
  queue_event([this, user_id] { to_members(UserJoined{user_id}); });
}

void ChatServer::on_member_left(const std::string&, const std::string& user_id) {
  queue_event([this, user_id] { to_members(UserLeft{user_id}); });
}

void ChatServer::on_node_down(const std::string& node, NodeDownReason reason,
                              const std::vector<std::string>& members) {
  log_line("node " + node + " is gone (" + reason_name(reason) + "): USER_LEFT for its " +
           std::to_string(members.size()) + " clients");
  queue_event([this, members] {
    for (const auto& user_id : members) to_members(UserLeft{user_id});
  });
}

// This node was declared dead while cut off, and another node's client took
// these ids meanwhile: their clients here go (USER_LEFT for them locally).
void ChatServer::on_ids_revoked(const std::vector<std::string>& user_ids) {
  queue_event([this, user_ids] {
    for (const auto& connection : connections()) {
      const auto id = room_.id_of(connection);
      if (id && std::find(user_ids.begin(), user_ids.end(), *id) != user_ids.end())
        leave(*connection, "its id '" + *id + "' was taken on another node while this one was cut off",
              nullptr);
    }
  });
}

void ChatServer::on_connection_lost() {
  log_line(
      "lost NATS: local clients chat on; logins are answered TRY_LATER, and other nodes' lines are "
      "missed, until it is back");
}

void ChatServer::on_connection_back(const std::string& url) {
  log_line("NATS is back (" + url + "): logins are claimed again");
}
// [events]

}  // namespace iocp_chat::v3
