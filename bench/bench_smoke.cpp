// bench_smoke.cpp — the CTest smoke test of chat_bench: start a real chat
// server on a free loopback port, run a short chat_bench against it, and pass
// only if the tool exits 0 (no loss, reordering, duplication or broken
// client) and reports deliveries > 0.
//
// Test idea: the load generator is itself checked end to end, the way a user
// runs it; there is no threshold on speed, so a slow machine cannot fail it.
// Usage: bench_smoke SERVER CHAT_BENCH PROTOCOL [chat_bench options...]
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "iocp_chat/socket.hpp"
#include "server_process.hpp"

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: bench_smoke SERVER CHAT_BENCH PROTOCOL [chat_bench options...]\n");
    return 2;
  }
  using namespace std::chrono_literals;
  iocp_chat::NetworkSession network;
  auto server = iocp_chat::test::start_server(argv[1], {}, 10s);
  if (!server.process) {
    std::fprintf(stderr, "bench_smoke: the server did not start: %s\n", server.log.c_str());
    return 1;
  }
  const std::string json = std::string("bench_smoke_") + argv[3] + ".json";
  std::vector<std::string> arguments = {"--port", server.port, "--protocol", argv[3], "--json", json};
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
