// server_process.hpp — start a chat server (v1_server, v2_server) as a child
// process on a free loopback port, and the small helpers the end-to-end
// tests of every stage need around it.
//
// Test idea: "start the real program the way a user would, and wait for it
// to say it is ready" — never a fixed sleep. A server is ready once its log
// says "listening on 127.0.0.1:PORT".
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "process.hpp"

namespace iocp_chat::test {

/// A TCP port that is free right now, chosen below the OS's ephemeral range
/// so no outgoing connection takes it before a server binds it.
/// (Needs a NetworkSession alive on Windows.)
std::uint16_t free_port();

/// The lines of a program's output, without their "\n".
std::vector<std::string> lines_of(const std::string& text);

/// A server started by start_server: the running child and its port.
struct StartedServer {
  std::unique_ptr<ChildProcess> process;  ///< The running server; empty if it did not start.
  std::string port;                       ///< Its port, as text for command lines.
  std::string log;                        ///< What failed attempts printed (for the assertion message).
};

/// Starts `program --port P --bind 127.0.0.1 extra_arguments...` on a free
/// port and waits until it logs "listening on 127.0.0.1:P". A port may be
/// taken between the look and the bind, and Wine rarely fails a process
/// start, so it tries three times. On failure `process` is empty and `log`
/// says why. (Needs a NetworkSession alive on Windows.)
StartedServer start_server(const std::string& program, const std::vector<std::string>& extra_arguments,
                           std::chrono::milliseconds timeout);

}  // namespace iocp_chat::test
