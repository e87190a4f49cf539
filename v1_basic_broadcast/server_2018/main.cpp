// main.cpp — v1_server_2018: step one, the 2018 original (server_2018.hpp
// says what it does and what its flaw is).
//
// IOCP idea: the main thread only sets up and tears down; all I/O happens on
// the worker threads. It starts the server, waits for Ctrl+C, and stops it.
#include <cstdio>
#include <exception>
#include <string>

#include "iocp_chat/command_line.hpp"
#include "iocp_chat/shutdown_signal.hpp"
#include "server_2018.hpp"

int main(int argc, char** argv) {
  using namespace iocp_chat;
  original::ServerConfig config;
  std::uint64_t port = config.port;
  std::uint64_t threads = config.threads;
  CommandLine options(
      "v1_server_2018", "step one, the 2018 original: one client that stops reading freezes the chat",
      "Example: v1_server_2018, then in other terminals: v1_client --port 42006\nStop with Ctrl+C.");
  options.number("--port", "TCP port to listen on (default 42006; 0 = any free port)", port, 0, 65535);
  options.custom("--backend", "NAME", "auto (default), iocp (Windows), uring or epoll (Linux)",
                 [&](std::string_view name) {
                   config.backend = parse_backend(name).value_or(config.backend);
                   return std::string(parse_backend(name) ? "" : "expects auto, iocp, uring or epoll");
                 });
  options.number("--threads", "worker threads (default 0 = 2 x hardware threads)", threads, 0, 1024);
  const ParseOutcome outcome = options.parse(argc, argv);
  if (outcome != ParseOutcome::run) return outcome == ParseOutcome::help ? 0 : 2;
  config.port = static_cast<std::uint16_t>(port);
  config.threads = static_cast<unsigned>(threads);

  prepare_shutdown_signal();  // before any thread starts, so every thread inherits it
  try {
    NetworkSession network;
    original::ChatServer server(config);
    server.start();
    wait_for_shutdown_signal();
    server.stop();
    return 0;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "v1_server_2018: %s\n", error.what());
    return 1;
  }
}
