// frame_client.hpp — a test client that speaks ver.2 frames over a real
// socket: it encodes packets, and reassembles what the server sends with the
// same FrameAssembler the server uses, however TCP cut or merged it.
//
// Test idea: the server's tests judge it only by the frames a real client
// receives on 127.0.0.1 — no mock of the network and no peek inside the
// server. Shared by tests/v2 and tests/reliability (header only; link
// iocp_chat::test_frame_client for the protocol library and the include path).
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <typeinfo>
#include <variant>
#include <vector>

#include "common/protocol/packets.hpp"
#include "iocp_chat/socket.hpp"

namespace iocp_chat::test {

/// A client that sends and receives ver.2 frames; every wait has a deadline.
class FrameClient {
 public:
  /// How long next() waits for a frame before it calls the wait a failure:
  /// generous, only to stop a stuck test, never a speed limit.
  static constexpr std::chrono::seconds kDeadline{30};

  /// Connects to 127.0.0.1:port (blocking); throws std::system_error on failure.
  explicit FrameClient(std::uint16_t port) : socket_(connect_to("127.0.0.1", port)) {}

  /// Sends one packet, encoded as the spec says.
  void send(const v2::Packet& packet) {
    const std::vector<std::byte> frame = v2::encode(packet);
    ASSERT_FALSE(send_all(socket_, std::span<const std::byte>(frame)));
  }

  /// Sends raw bytes: a frame cut anywhere, several frames, or garbage.
  void send_raw(std::string_view bytes) { ASSERT_FALSE(send_all(socket_, bytes)); }

  /// The next packet, or std::nullopt at the end of the stream (or after `deadline`).
  std::optional<v2::Packet> next(std::chrono::milliseconds deadline = kDeadline) {
    const auto until = std::chrono::steady_clock::now() + deadline;
    for (;;) {
      std::span<const std::byte> frame;
      v2::ErrorCode error = v2::ErrorCode::malformed_frame;
      const auto status = assembler_.next(frame, error);
      if (status == v2::FrameAssembler::Status::frame) {
        v2::Decoded decoded = v2::decode(frame);
        EXPECT_TRUE(decoded.packet.has_value()) << "the server sent an undecodable frame";
        return decoded.packet;
      }
      EXPECT_NE(status, v2::FrameAssembler::Status::error) << "the server sent a bad frame header";
      if (status == v2::FrameAssembler::Status::error || ended_ || std::chrono::steady_clock::now() > until) {
        return std::nullopt;
      }
      if (!wait_readable(socket_, 100)) continue;
      std::byte buffer[4096];
      std::error_code failure;
      const std::size_t count = receive_some(socket_, buffer, failure);
      if (failure || count == 0) {
        ended_ = true;  // a reset or the end: what is already buffered is still handed out
        continue;
      }
      assembler_.feed(std::span(buffer, count));
    }
  }

  /// The next packet, which must be of type T (a test failure otherwise).
  template <typename T>
  T expect() {
    const auto packet = next();
    if (!packet) {
      ADD_FAILURE() << "connection ended while waiting for " << typeid(T).name();
      return T{};
    }
    if (!std::holds_alternative<T>(*packet)) {
      ADD_FAILURE() << "expected " << typeid(T).name() << ", got type "
                    << static_cast<int>(v2::type_of(*packet));
      return T{};
    }
    return std::get<T>(*packet);
  }

  /// Logs in and returns the status.
  v2::LoginStatus login(const std::string& id) {
    send(v2::LoginRequest{id});
    return expect<v2::LoginResponse>().status;
  }

  /// Reads (and drops) frames until the server closes the connection; false
  /// if it is still open after `deadline`.
  bool sees_close(std::chrono::milliseconds deadline = kDeadline) {
    const auto until = std::chrono::steady_clock::now() + deadline;
    while (std::chrono::steady_clock::now() < until) {
      if (!next(std::chrono::duration_cast<std::chrono::milliseconds>(until -
                                                                      std::chrono::steady_clock::now())))
        return ended_;
    }
    return false;
  }

  /// True once the server's end of the stream (or a reset) was seen.
  bool ended() const noexcept { return ended_; }

  /// The socket, for a half-close or a reset.
  Socket& socket() { return socket_; }

 private:
  Socket socket_;                 ///< Connected to the server.
  v2::FrameAssembler assembler_;  ///< Frames from the bytes received so far.
  bool ended_ = false;            ///< The stream ended (end of stream or an error).
};

/// A new client of the server on `port`, logged in as `id` (a test failure if not OK).
inline std::unique_ptr<FrameClient> logged_in_client(std::uint16_t port, const std::string& id) {
  auto client = std::make_unique<FrameClient>(port);
  EXPECT_EQ(client->login(id), v2::LoginStatus::ok) << id;
  return client;
}

}  // namespace iocp_chat::test
