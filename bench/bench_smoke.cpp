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
//
// PROTOCOL v3 is the ver.3 cluster: a nats-server (JetStream, a token in a
// credentials file, as the v3 tests start it) and two v3_server nodes, and
// chat_bench --protocol v2 with its clients spread over both nodes' ports.
// Without nats-server that test is skipped (exit 77), not failed: ver.3 is
// optional, and its own tests say what is missing.
// The tool's own checks are tested the same way: bench's fanout_server can
// lose or garble one message on purpose (--lose-record, --garble-record), and
// with --expect-failure TEXT the test passes only if chat_bench then exits 1
// and says TEXT — a checker that cannot fail would pass every server.
// Usage: bench_smoke SERVER CHAT_BENCH PROTOCOL [--server-option ARG]... [--expect-failure TEXT]
//                    [chat_bench options...]
//        (PROTOCOL v1 or v2: SERVER is ours — or bench's fanout_server, which
//        speaks v1 —; redis or nats: SERVER is redis-server or nats-server)
//        bench_smoke V3_SERVER CHAT_BENCH v3 NATS_SERVER [chat_bench options...]
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
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

/// Exit code that CTest reads as "skipped" (SKIP_RETURN_CODE).
constexpr int kSkipped = 77;

/// Runs chat_bench with `arguments` (for at most a minute) and prints what it said.
iocp_chat::test::ProcessResult run_chat_bench(const std::string& chat_bench,
                                              const std::vector<std::string>& arguments) {
  using namespace std::chrono_literals;
  auto result = iocp_chat::test::run_process(chat_bench, arguments, 60s);
  std::printf("%s%s", result.output.c_str(), result.errors.c_str());
  return result;
}

/// Runs chat_bench with `arguments`; passes (0) if it exits 1 and says `failure`.
int check_chat_bench_fails(const std::string& chat_bench, const std::vector<std::string>& arguments,
                           const std::string& failure) {
  const auto result = run_chat_bench(chat_bench, arguments);
  if (result.timed_out || result.exit_code != 1 || result.errors.find(failure) == std::string::npos) {
    std::fprintf(stderr, "bench_smoke: expected chat_bench to exit 1 saying \"%s\"; it exited %d%s\n",
                 failure.c_str(), result.exit_code, result.timed_out ? " (timed out)" : "");
    return 1;
  }
  std::printf("bench_smoke: passed (chat_bench noticed the fault)\n");
  return 0;
}

/// Runs chat_bench with `arguments`; passes (0) if it exits 0 and its JSON file reports deliveries.
int check_chat_bench(const std::string& chat_bench, const std::vector<std::string>& arguments,
                     const std::string& json) {
  const auto result = run_chat_bench(chat_bench, arguments);
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

/// A temporary directory, removed with everything in it when this goes.
struct TemporaryDirectory {
  /// Creates a fresh directory under the system's temporary directory.
  TemporaryDirectory() {
    std::string pattern = (std::filesystem::temp_directory_path() / "bench_smoke_v3.XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr)
      throw std::system_error(errno, std::generic_category(), "mkdtemp");
    path = pattern;
  }
  /// Removes the directory.
  ~TemporaryDirectory() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
  TemporaryDirectory(const TemporaryDirectory&) = delete;
  TemporaryDirectory& operator=(const TemporaryDirectory&) = delete;
  std::filesystem::path path;  ///< The directory.
};

/// Writes `text` to `path`, readable by this user only (it holds the token).
void write_private_file(const std::filesystem::path& path, const std::string& text) {
  const mode_t previous = ::umask(077);
  std::ofstream(path) << text;
  ::umask(previous);
}

/// The ver.3 cluster: nats-server with JetStream and a token, two v3_server nodes, and
/// chat_bench's clients spread over both. Returns the exit code (kSkipped without nats-server).
int run_cluster(const std::string& v3_server, const std::string& chat_bench, const std::string& nats_server,
                const std::vector<std::string>& options) {
  using namespace std::chrono_literals;
  if (nats_server.ends_with("NOTFOUND") || ::access(nats_server.c_str(), X_OK) != 0) {
    std::printf(
        "bench_smoke: SKIPPED: nats-server is not installed (looked for '%s'); install it with "
        "`sudo apt-get install nats-server` or scripts/setup.sh, then re-run cmake\n",
        nats_server.c_str());
    return kSkipped;
  }
  TemporaryDirectory directory;
  const std::filesystem::path credentials = directory.path / "node.creds";
  write_private_file(credentials, "token = bench-smoke-token\n");
  StartedServer nats;
  for (int attempt = 0; attempt < 3 && !nats.process; ++attempt) {
    nats.port = std::to_string(iocp_chat::test::free_port());
    write_private_file(directory.path / "nats.conf",
                       "listen: \"127.0.0.1:" + nats.port +
                           "\"\nauthorization { token: \"bench-smoke-token\" }\n"
                           "jetstream {\n  store_dir: \"" +
                           (directory.path / "jetstream").string() + "\"\n}\n");
    nats.process = std::make_unique<iocp_chat::test::ChildProcess>(
        nats_server, std::vector<std::string>{"-c", (directory.path / "nats.conf").string()});
    if (!nats.process->wait_for_errors_containing("Server is ready", 10s)) {
      nats.log += nats.process->errors();
      nats.process.reset();
    }
  }
  if (!nats.process) {
    std::fprintf(stderr, "bench_smoke: nats-server did not start: %s\n", nats.log.c_str());
    return 1;
  }
  // Two nodes, each waited for until it has heard the other.
  std::vector<StartedServer> nodes;
  for (const std::string name : {"n1", "n2"}) {
    nodes.push_back(
        iocp_chat::test::start_server(v3_server,
                                      {"--nats", "nats://127.0.0.1:" + nats.port, "--node", name,
                                       "--nats-credentials", credentials.string(), "--threads", "2"},
                                      10s));
    if (!nodes.back().process) {
      std::fprintf(stderr, "bench_smoke: v3_server %s did not start: %s\n", name.c_str(),
                   nodes.back().log.c_str());
      return 1;
    }
  }
  for (std::size_t node = 0; node < nodes.size(); ++node) {
    const std::string other = node == 0 ? "n2" : "n1";
    if (!nodes[node].process->wait_for_errors_containing("node " + other + " is up", 10s)) {
      std::fprintf(stderr, "bench_smoke: node n%zu did not hear %s: %s\n", node + 1, other.c_str(),
                   nodes[node].process->errors().c_str());
      return 1;
    }
  }
  const std::string json = "bench_smoke_v3_cluster.json";
  std::vector<std::string> arguments = {
      "--port", nodes[0].port + "," + nodes[1].port, "--protocol", "v2", "--json", json};
  arguments.insert(arguments.end(), options.begin(), options.end());
  const int code = check_chat_bench(chat_bench, arguments, json);
  for (auto& node : nodes) node.process->terminate();
  for (auto& node : nodes) node.process->wait(10s);
  nats.process->terminate();
  nats.process->wait(10s);
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr,
                 "usage: bench_smoke SERVER CHAT_BENCH PROTOCOL [--server-option ARG]... "
                 "[--expect-failure TEXT] [chat_bench options...]\n");
    return 2;
  }
  using namespace std::chrono_literals;
  const std::string program = argv[1];
  const std::string protocol = argv[3];
  if (protocol == "v3") {
    if (argc < 5) {
      std::fprintf(stderr,
                   "usage: bench_smoke V3_SERVER CHAT_BENCH v3 NATS_SERVER [chat_bench options...]\n");
      return 2;
    }
    iocp_chat::NetworkSession network;
    return run_cluster(program, argv[2], argv[4], std::vector<std::string>(argv + 5, argv + argc));
  }
  const bool outside = protocol == "redis" || protocol == "nats";
  if (outside && (program.ends_with("NOTFOUND") || ::access(program.c_str(), X_OK) != 0)) {
    const char* package = protocol == "redis" ? "redis-server" : "nats-server";
    std::fprintf(stderr,
                 "bench_smoke: FAILED: %s is not installed (looked for '%s'); install it with "
                 "`sudo apt-get install %s` or scripts/setup.sh, then re-run cmake\n",
                 package, program.c_str(), package);
    return 1;
  }
  // bench_smoke's own options come first; the rest go to chat_bench.
  std::vector<std::string> server_options;
  std::string expected_failure;
  int first = 4;
  for (; first + 1 < argc; first += 2) {
    const std::string option = argv[first];
    if (option == "--server-option") {
      server_options.emplace_back(argv[first + 1]);
    } else if (option == "--expect-failure") {
      expected_failure = argv[first + 1];
    } else {
      break;
    }
  }
  iocp_chat::NetworkSession network;
  auto server = outside ? start_outside_server(program, protocol, 10s)
                        : iocp_chat::test::start_server(program, server_options, 10s);
  if (!server.process) {
    std::fprintf(stderr, "bench_smoke: the server did not start: %s\n", server.log.c_str());
    return 1;
  }
  // Named after the server too: two tests of one protocol (v1_server, fanout_server) may run at once,
  // and a fault test (which never reads its file) must not overwrite the passing test's.
  const std::string json = "bench_smoke_" + protocol + "_" + program.substr(program.find_last_of("/\\") + 1) +
                           (expected_failure.empty() ? "" : "_fault") + ".json";
  std::vector<std::string> arguments = {"--port", server.port, "--protocol", protocol, "--json", json};
  for (int i = first; i < argc; ++i) arguments.emplace_back(argv[i]);
  const int code = expected_failure.empty() ? check_chat_bench(argv[2], arguments, json)
                                            : check_chat_bench_fails(argv[2], arguments, expected_failure);
  server.process->terminate();
  server.process->wait(10s);
  return code;
}
