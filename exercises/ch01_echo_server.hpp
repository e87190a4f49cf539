// ch01_echo_server.hpp — exercises 1.1 to 1.3: the smallest server on the
// completion port, written by you. It sends every byte a client sends back
// to that client (an echo), with one worker thread.
//
// IOCP ideas it makes you use: associate each socket with the port and a
// completion key; start an accept, a receive, a send, each with its own
// operation object (the OVERLAPPED idiom) that lives until its completion;
// one worker looping on wait (GetQueuedCompletionStatus); post
// (PostQueuedCompletionStatus) to tell it to stop; and free a connection
// only when none of its operations is outstanding. Only
// iocp_chat/completion_port.hpp and iocp_chat/socket.hpp are needed: not the
// server core.
#pragma once

#include <cstdint>
#include <memory>

#include "iocp_chat/completion_port.hpp"

namespace iocp_chat::exercises {

/// An echo server on one completion port and one worker thread.
class EchoServer {
 public:
  /// Prepares; nothing is opened until start().
  explicit EchoServer(Backend backend);
  /// Calls stop().
  ~EchoServer();
  EchoServer(const EchoServer&) = delete;
  EchoServer& operator=(const EchoServer&) = delete;

  /// Opens the port and a listener on 127.0.0.1, port 0 (any free port),
  /// starts the worker and an accept. Returns the port listened on.
  std::uint16_t start();

  /// Stops the worker with a posted completion, after every connection's
  /// operations have completed; closes everything. Safe to call twice.
  void stop();

 private:
  struct State;                   ///< Yours to define in ch01_echo_server.cpp.
  std::unique_ptr<State> state_;  ///< The port, the listener, the worker, the connections.
  Backend backend_;               ///< As given.
};

}  // namespace iocp_chat::exercises
