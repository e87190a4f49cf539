// main.cpp — v1_step1 … v1_step4: the programs of ver.1's four steps from
// the 2018 server to ver.1 (see ../README.md, "The steps to ver.1"). This
// file is built four times; IOCP_CHAT_STEP (1 to 4) picks the header, and so
// the server, that the program runs.
//
// IOCP idea: the main thread only sets up and tears down; all I/O happens on
// the worker threads. It starts the server, waits for Ctrl+C, and stops it.
#include <cstdio>
#include <exception>
#include <string>

#include "iocp_chat/command_line.hpp"
#include "iocp_chat/shutdown_signal.hpp"
#if IOCP_CHAT_STEP == 1
#include "step1_one_write_in_flight.hpp"
namespace step = iocp_chat::step1;
constexpr const char* kSummary = "ver.1 step 1: one write in flight per client, no blocking send";
#elif IOCP_CHAT_STEP == 2
#include "step2_safe_close.hpp"
namespace step = iocp_chat::step2;
constexpr const char* kSummary = "ver.1 step 2: a client is freed only after its last completion";
#elif IOCP_CHAT_STEP == 3
#include "step3_bounded_queues.hpp"
namespace step = iocp_chat::step3;
constexpr const char* kSummary = "ver.1 step 3: a client whose queue is full is dropped alone";
#else
#include "step4_batching.hpp"
namespace step = iocp_chat::step4;
constexpr const char* kSummary = "ver.1 step 4: completions in batches, one send per client per batch";
#endif

int main(int argc, char** argv) {
  using namespace iocp_chat;
  step::ServerConfig config;
  const std::string program = "v1_step" + std::to_string(IOCP_CHAT_STEP);
  std::uint64_t port = config.port;
  std::uint64_t threads = config.threads;
  CommandLine options(
      program, kSummary,
      "Example: " + program + ", then in other terminals: v1_client --port 42006\nStop with Ctrl+C.");
  options.number("--port", "TCP port to listen on (default 42006; 0 = any free port)", port, 0, 65535);
  options.custom("--backend", "NAME", "auto (default), iocp (Windows), uring or epoll (Linux)",
                 [&](std::string_view name) {
                   config.backend = parse_backend(name).value_or(config.backend);
                   return std::string(parse_backend(name) ? "" : "expects auto, iocp, uring or epoll");
                 });
  options.number("--threads", "worker threads (default 0 = 2 x hardware threads)", threads, 0, 1024);
#if IOCP_CHAT_STEP >= 3
  std::uint64_t max_queue = config.max_queue_bytes;
  options.number("--max-queue-bytes", "a client whose queue would pass this is dropped (default 8 MiB)",
                 max_queue, 1, std::uint64_t{1} << 40);
#endif
  const ParseOutcome outcome = options.parse(argc, argv);
  if (outcome != ParseOutcome::run) return outcome == ParseOutcome::help ? 0 : 2;
  config.port = static_cast<std::uint16_t>(port);
  config.threads = static_cast<unsigned>(threads);
#if IOCP_CHAT_STEP >= 3
  config.max_queue_bytes = static_cast<std::size_t>(max_queue);
#endif

  prepare_shutdown_signal();  // before any thread starts, so every thread inherits it
  try {
    NetworkSession network;
    step::ChatServer server(config);
    server.start();
    wait_for_shutdown_signal();
    server.stop();
    return 0;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "%s: %s\n", program.c_str(), error.what());
    return 1;
  }
}
