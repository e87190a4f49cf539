// server_process.cpp — a chat server as a child process on a free port
// (see server_process.hpp).
#include "server_process.hpp"

#include <random>
#include <system_error>

#include "iocp_chat/socket.hpp"

namespace iocp_chat::test {

std::uint16_t free_port() {
  // Port 0 would give a port of the ephemeral range (Linux 32768-60999,
  // Windows 49152-65535), where any connect() may take it for its local end
  // between this probe and the server's bind; a test then fails with
  // "address already in use". Below that range only an explicit bind takes a
  // port, so a random free one there stays free until the server binds it.
  constexpr std::uint16_t kLowest = 20000;
  constexpr std::uint16_t kHighest = 32767;
  static thread_local std::mt19937 random{std::random_device{}()};
  std::uniform_int_distribution<int> pick(kLowest, kHighest);
  for (int attempt = 0; attempt < 100; ++attempt) {
    const auto port = static_cast<std::uint16_t>(pick(random));
    try {
      const Socket probe = open_listener("127.0.0.1", port);
      return port;
    } catch (const std::system_error&) {
      // taken: try another
    }
  }
  const Socket probe = open_listener("127.0.0.1", 0);
  return local_port(probe);
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start < text.size()) {
    const std::size_t end = text.find('\n', start);
    if (end == std::string::npos) {
      lines.push_back(text.substr(start));
      break;
    }
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

StartedServer start_server(const std::string& program, const std::vector<std::string>& extra_arguments,
                           std::chrono::milliseconds timeout) {
  StartedServer server;
  for (int attempt = 0; attempt < 3 && !server.process; ++attempt) {
    server.port = std::to_string(free_port());
    std::vector<std::string> arguments{"--port", server.port, "--bind", "127.0.0.1"};
    arguments.insert(arguments.end(), extra_arguments.begin(), extra_arguments.end());
    try {
      server.process = std::make_unique<ChildProcess>(program, arguments);
    } catch (const std::system_error& error) {
      server.log += std::string(error.what()) + "\n";
      continue;
    }
    if (!server.process->wait_for_errors_containing("listening on 127.0.0.1:" + server.port, timeout)) {
      server.log += server.process->errors();
      server.process.reset();
    }
  }
  return server;
}

}  // namespace iocp_chat::test
