// room_fuzz.cpp — libFuzzer target over ver.2's whole receive path with
// sessions: several clients' arbitrary bytes, in arbitrary pieces, through
// each client's FrameAssembler and the ChatRoom (the session state machine),
// with disconnects at arbitrary moments — exactly what the server does with
// every byte it receives, minus the sockets.
//
// Besides "no crash, leak or undefined behaviour", it checks the session
// rules of docs/protocol.md that must hold whatever the clients send:
//   - every frame the room produces decodes, and only server-to-client types;
//   - an id is held by at most one client, and a client answered
//     LOGIN_RESPONSE OK is then logged in under exactly that id;
//   - CHAT_BROADCAST goes only to logged-in clients, the sender included,
//     and carries the sender's id; USER_JOINED never goes to the joiner;
//   - ERROR closes the sender (the target then disconnects it, as the server does).
//
// Input layout: a sequence of records [control][length][length bytes]. The
// control byte's low 2 bits pick one of four clients; its top bit means
// "this client disconnects" (no bytes follow).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "common/protocol/chat_room.hpp"
#include "common/protocol/packets.hpp"

namespace {

using namespace iocp_chat::v2;
using Room = ChatRoom<int>;

constexpr int kClients = 4;

[[noreturn]] void violated(const char* rule) {
  std::fprintf(stderr, "session rule violated: %s\n", rule);
  std::abort();
}

/// Decodes a frame the room produced; it must be a valid server-to-client packet.
Packet decode_output(const iocp_chat::SharedBuffer& frame) {
  Decoded decoded = decode(*frame);
  if (!decoded.packet) violated("the room produced an undecodable frame");
  const auto type = type_of(*decoded.packet);
  if (type == PacketType::login_request || type == PacketType::chat_request) {
    violated("the room produced a client-to-server packet");
  }
  return *decoded.packet;
}

/// Checks one event's deliveries against the room's state right after it.
void check_effects(Room& room, int sender, const Room::Effects& effects) {
  for (const auto& delivery : effects.deliveries) {
    const Packet packet = decode_output(delivery.frame);
    for (const int recipient : *delivery.to) {
      if (delivery.except && *delivery.except == recipient) continue;
      if (const auto* chat = std::get_if<ChatBroadcast>(&packet)) {
        if (!room.id_of(recipient)) violated("CHAT_BROADCAST to a client that is not logged in");
        if (room.id_of(sender) != chat->user_id) violated("CHAT_BROADCAST without the sender's id");
      }
      if (std::holds_alternative<UserJoined>(packet) && recipient == sender) {
        violated("USER_JOINED sent to the joiner");
      }
    }
    if (std::holds_alternative<ChatBroadcast>(packet)) {
      bool sender_included = false;
      for (const int recipient : *delivery.to) {
        sender_included = sender_included || (recipient == sender && delivery.except != sender);
      }
      if (!sender_included) violated("CHAT_BROADCAST did not include the sender");
    }
    if (std::holds_alternative<ErrorPacket>(packet) && !effects.close_sender) {
      violated("ERROR without closing the sender");
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Room room;
  FrameAssembler assemblers[kClients];
  bool closed[kClients] = {};

  auto disconnect = [&](int client) {
    check_effects(room, client, room.on_leave(client));
    if (room.id_of(client)) violated("an id outlived its connection");
    assemblers[client] = FrameAssembler();
    closed[client] = false;  // the same number now stands for a new connection
  };

  std::size_t at = 0;
  while (at + 2 <= size) {
    const std::uint8_t control = data[at];
    const int client = control & 3;
    if ((control & 0x80) != 0) {
      disconnect(client);
      at += 1;
      continue;
    }
    const std::size_t length = std::min<std::size_t>(data[at + 1], size - at - 2);
    const auto piece = std::as_bytes(std::span(data + at + 2, length));
    at += 2 + length;
    if (closed[client]) continue;  // the server reads nothing more from it

    assemblers[client].feed(piece);
    for (;;) {
      std::span<const std::byte> frame;
      ErrorCode error = ErrorCode::malformed_frame;
      const auto status = assemblers[client].next(frame, error);
      if (status == FrameAssembler::Status::need_more) break;

      std::optional<LoginResponse> answer;
      const Room::Reply reply = [&](const iocp_chat::SharedBuffer& response) {
        answer = std::get<LoginResponse>(decode_output(response));
        return true;  // the fuzzer's clients never leave in the middle of a login
      };
      const auto effects = status == FrameAssembler::Status::frame ? room.on_frame(client, frame, reply)
                                                                   : room.on_bad_stream(client, error);
      if (answer && answer->status == LoginStatus::ok) {
        if (room.id_of(client) != answer->user_id)
          violated("LOGIN_RESPONSE OK but not logged in under the id");
        for (int other = 0; other < kClients; ++other) {
          if (other != client && room.id_of(other) == answer->user_id) violated("two clients hold one id");
        }
      }
      check_effects(room, client, effects);
      if (effects.close_sender) {
        closed[client] = true;
        break;
      }
    }
  }
  for (int client = 0; client < kClients; ++client) disconnect(client);
  if (room.logged_in() != 0) violated("sessions left after everyone disconnected");
  return 0;
}
