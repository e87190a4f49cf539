// bench_smoke.cpp — the CTest smoke test of chat_bench: start a real chat
// server on a free loopback port — ours (v1_server, v2_server) or an outside
// one (redis-server, nats-server) — run a short chat_bench against it, and
// pass only if the tool exits 0 (no loss, reordering, duplication or broken
// client) and reports deliveries > 0.
//
// Test idea: the load generator is itself checked end to end, the way a user
// runs it; there is no threshold on speed, so a slow machine cannot fail it.
// An outside server that is not installed fails the test with a message that
// says how to install it — a skipped comparison would go unnoticed.
// Usage: bench_smoke SERVER CHAT_BENCH PROTOCOL [chat_bench options...]
//        (PROTOCOL v1 or v2: SERVER is ours — or bench's fanout_server, which
//        speaks v1 —; redis or nats: SERVER is redis-server or nats-server)
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "iocp_chat/socket.hpp"
#include "server_process.hpp"

namespace {

using iocp_chat::test::StartedServer;

/// How an outside server is started on `port` and what it prints once it accepts clients.
struct OutsideServer {
  std::vector<std::string> arguments;  ///< Its command line after the program.
  std::string ready;                   ///< The log text that says it is ready.
  bool ready_on_stdout = false;        ///< redis logs to stdout, nats to stderr.
};

/// redis-server without persistence, with the same 8 MiB per-subscriber bound as ours;
/// nats-server with its defaults.
OutsideServer outside_server(const std::string& protocol, const std::string& port) {
  if (protocol == "redis")
    return {{"--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--client-output-buffer-limit", "pubsub 8mb 8mb 0"},
            "Ready to accept connections",
            true};
  return {{"-a", "127.0.0.1", "-p", port}, "Server is ready", false};
}

/// Starts redis-server or nats-server on a free port (three tries, like start_server).
StartedServer start_outside_server(const std::string& program, const std::string& protocol,
                                   std::chrono::milliseconds timeout) {
  StartedServer server;
  for (int attempt = 0; attempt < 3 && !server.process; ++attempt) {
    server.port = std::to_string(iocp_chat::test::free_port());
    const OutsideServer how = outside_server(protocol, server.port);
    try {
      server.process = std::make_unique<iocp_chat::test::ChildProcess>(program, how.arguments);
    } catch (const std::system_error& error) {
      server.log += std::string(error.what()) + "\n";
      continue;
    }
    const bool ready = how.ready_on_stdout ? server.process->wait_for_output_containing(how.ready, timeout)
                                           : server.process->wait_for_errors_containing(how.ready, timeout);
    if (!ready) {
      server.log += server.process->output() + server.process->errors();
      server.process.reset();
    }
  }
  return server;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: bench_smoke SERVER CHAT_BENCH PROTOCOL [chat_bench options...]\n");
    return 2;
  }
  using namespace std::chrono_literals;
  const std::string program = argv[1];
  const std::string protocol = argv[3];
  const bool outside = protocol == "redis" || protocol == "nats";
  if (outside && (program.ends_with("NOTFOUND") || ::access(program.c_str(), X_OK) != 0)) {
    const char* package = protocol == "redis" ? "redis-server" : "nats-server";
    std::fprintf(stderr,
                 "bench_smoke: FAILED: %s is not installed (looked for '%s'); install it with "
                 "`sudo apt-get install %s` or scripts/setup.sh, then re-run cmake\n",
                 package, program.c_str(), package);
    return 1;
  }
  iocp_chat::NetworkSession network;
  auto server = outside ? start_outside_server(program, protocol, 10s)
                        : iocp_chat::test::start_server(program, {}, 10s);
  if (!server.process) {
    std::fprintf(stderr, "bench_smoke: the server did not start: %s\n", server.log.c_str());
    return 1;
  }
  // Named after the server too: two tests of one protocol (v1_server, fanout_server) may run at once.
  const std::string json =
      "bench_smoke_" + protocol + "_" + program.substr(program.find_last_of("/\\") + 1) + ".json";
  std::vector<std::string> arguments = {"--port", server.port, "--protocol", protocol, "--json", json};
  for (int i = 4; i < argc; ++i) arguments.emplace_back(argv[i]);
  const auto result = iocp_chat::test::run_process(argv[2], arguments, 60s);
  std::printf("%s%s", result.output.c_str(), result.errors.c_str());
  server.process->terminate();
  server.process->wait(10s);
  if (result.timed_out || result.exit_code != 0) {
    std::fprintf(stderr, "bench_smoke: chat_bench exited %d%s\n", result.exit_code,
                 result.timed_out ? " (timed out)" : "");
    return 1;
  }
  std::ifstream file(json);
  const std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  const auto at = text.find("\"delivered\": ");
  if (at == std::string::npos || std::stoull(text.substr(at + 13)) == 0) {
    std::fprintf(stderr, "bench_smoke: no deliveries reported in %s\n", json.c_str());
    return 1;
  }
  std::printf("bench_smoke: passed\n");
  return 0;
}
