// main.cpp — v2_server: the ver.2 chat server (login ids, message packets).
//
// IOCP idea: the main thread only sets up and tears down. It starts the
// server (port, listener, pre-posted accepts, worker threads), then waits for
// Ctrl+C / SIGTERM and runs the ordered shutdown; all I/O happens on the
// worker threads.
#include <chrono>
#include <cstdio>
#include <exception>
#include <string>

#include "chat_server.hpp"
#include "iocp_chat/command_line.hpp"
#include "iocp_chat/heap.hpp"
#include "iocp_chat/log.hpp"
#include "iocp_chat/shutdown_signal.hpp"

int main(int argc, char** argv) {
  using namespace iocp_chat;
  v2::ServerConfig config;
  std::uint64_t port = config.port;
  std::uint64_t threads = config.threads;
  std::uint64_t max_clients = config.max_clients;
  std::uint64_t max_queue_bytes = config.max_queue_bytes;
  std::uint64_t max_total_queue_bytes = config.max_total_queue_bytes;
  std::uint64_t stall_limit_ms = static_cast<std::uint64_t>(config.stall_limit.count());
  std::uint64_t login_timeout_ms = static_cast<std::uint64_t>(config.login_timeout.count());

  CommandLine options("v2_server", "ver.2 chat server: clients log in with an id and exchange packets",
                      "Example: v2_server --port 42006\n"
                      "Then connect clients with: v2_client --port 42006 --id alice\n"
                      "Stop with Ctrl+C (or SIGTERM): clients are closed, workers joined, exit 0.");
  options.number("--port", "TCP port to listen on (default 42006; 0 = any free port)", port, 0, 65535);
  options.text("--bind", "ADDRESS",
               "address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 opens the server "
               "to the network, as the original did — do that only on a network you trust)",
               config.bind_address);
  options.custom("--backend", "NAME", "auto (default), iocp (Windows), uring or epoll (Linux)",
                 [&config](std::string_view name) {
                   const auto backend = parse_backend(name);
                   if (!backend) return "expects auto, iocp, uring or epoll, got '" + std::string(name) + "'";
                   config.backend = *backend;
                   return std::string();
                 });
  options.number("--threads", "worker threads (default 0 = 2 x hardware threads)", threads, 0, 1024);
  options.number("--max-clients", "clients at once; the next one gets ERROR SERVER_FULL (default 10000)",
                 max_clients, 1, 1000000);
  options.number("--max-queue-bytes",
                 "bytes waiting for one client before ERROR SLOW_CONSUMER and a drop (default 8 MiB)",
                 max_queue_bytes, 1024, std::uint64_t{1} << 32);
  options.number("--login-timeout",
                 "milliseconds a connection may stay without logging in, counted from its connect "
                 "and again from each answered login; then it is closed (default 30000: time to "
                 "retype an id; 0 = never)",
                 login_timeout_ms, 0, 86400000);
  options.number("--max-total-queue-bytes",
                 "bytes waiting for all clients together; past it the largest queues are dropped first "
                 "(default: a quarter of this machine's memory, 64 MiB to 1 GiB)",
                 max_total_queue_bytes, 1 << 20, std::uint64_t{1} << 40);
  options.number("--stall-limit",
                 "milliseconds a client's queue may stay congested (a quarter of --max-queue-bytes, "
                 "its senders held back meanwhile) before it is dropped as stuck (default 2000)",
                 stall_limit_ms, 100, 600000);
  switch (options.parse(argc, argv)) {
    case ParseOutcome::help:
      return 0;
    case ParseOutcome::error:
      return 2;
    case ParseOutcome::run:
      break;
  }
  config.port = static_cast<std::uint16_t>(port);
  config.threads = static_cast<unsigned>(threads);
  config.max_clients = static_cast<std::size_t>(max_clients);
  config.max_queue_bytes = static_cast<std::size_t>(max_queue_bytes);
  config.max_total_queue_bytes = static_cast<std::size_t>(max_total_queue_bytes);
  config.stall_limit = std::chrono::milliseconds(stall_limit_ms);
  config.login_timeout = std::chrono::milliseconds(login_timeout_ms);

  // [main-run]
  prepare_shutdown_signal();  // before any thread starts, so every thread inherits it
  // Outbound buffers of a page or more go back to the OS once sent, so a
  // burst does not leave the server large (see iocp_chat/heap.hpp).
  allocate_large_blocks_from_os(4096);
  try {
    NetworkSession network;
    v2::ChatServer server(config);
    server.start();
    wait_for_shutdown_signal();
    log_line("shutting down");
    server.stop();
    return 0;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "v2_server: %s\n", error.what());
    return 1;
  }
  // [main-run]
}
