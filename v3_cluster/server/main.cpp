// main.cpp — v3_server: one node of a ver.3 cluster (ver.2's chat server whose
// room is shared with the other nodes over NATS).
//
// IOCP idea: the main thread only sets up and tears down. It starts the
// server (port, listener, pre-posted accepts, worker threads), joins the
// room over NATS, then waits for Ctrl+C / SIGTERM and runs the ordered
// shutdown (leave the room, then close); all I/O happens on the worker
// threads, and what NATS brings reaches them as posted completions.
//
// NATS credentials come from a file (--nats-credentials FILE, or the file
// named by IOCP_CHAT_NATS_CREDENTIALS_FILE) or from the environment
// (IOCP_CHAT_NATS_TOKEN, or IOCP_CHAT_NATS_USER and IOCP_CHAT_NATS_PASSWORD),
// never from the command line: see v3_cluster/backplane/credentials.hpp.
#include <chrono>
#include <cstdio>
#include <exception>
#include <string>
#include <string_view>
#include <vector>

#include <unistd.h>

#include "chat_server.hpp"
#include "iocp_chat/command_line.hpp"
#include "iocp_chat/heap.hpp"
#include "iocp_chat/log.hpp"
#include "iocp_chat/shutdown_signal.hpp"

namespace {

/// The default node name: this host's name and the process id, in the
/// characters a node name may hold.
std::string default_node_name() {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  std::string name;
  for (const char* c = host; *c != '\0' && name.size() < 20; ++c) {
    const bool allowed = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
                         *c == '-' || *c == '_';
    name += allowed ? *c : '-';
  }
  if (name.empty()) name = "node";
  return name + "-" + std::to_string(::getpid());
}

/// The URLs of a comma-separated list.
std::vector<std::string> split_urls(std::string_view list) {
  std::vector<std::string> urls;
  while (!list.empty()) {
    const std::size_t comma = list.find(',');
    if (const auto url = list.substr(0, comma); !url.empty()) urls.emplace_back(url);
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
  }
  return urls;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace iocp_chat;
  v3::ServerConfig config;
  config.backplane.node = default_node_name();
  std::uint64_t port = config.port;
  std::uint64_t threads = config.threads;
  std::uint64_t max_clients = config.max_clients;
  std::uint64_t max_queue_bytes = config.max_queue_bytes;
  std::uint64_t max_total_queue_bytes = config.max_total_queue_bytes;
  std::uint64_t stall_limit_ms = static_cast<std::uint64_t>(config.stall_limit.count());
  std::uint64_t login_timeout_ms = static_cast<std::uint64_t>(config.login_timeout.count());

  CommandLine options("v3_server",
                      "ver.3 chat server: one node of a cluster that shares one ver.2 room over NATS",
                      "Example: v3_server --nats nats://127.0.0.1:4222 --node a --port 42006\n"
                      "Then connect ver.2 clients with: v2_client --port 42006 --id alice\n"
                      "NATS credentials: --nats-credentials FILE, IOCP_CHAT_NATS_CREDENTIALS_FILE, "
                      "IOCP_CHAT_NATS_TOKEN or IOCP_CHAT_NATS_USER + IOCP_CHAT_NATS_PASSWORD (never the "
                      "command line).\n"
                      "Stop with Ctrl+C (or SIGTERM): the room is left (ids released), clients are closed, "
                      "workers joined, exit 0.");
  options.custom("--nats", "URL[,URL...]", "the NATS servers (nats:// or tls://), a failover list; required",
                 [&config](std::string_view list) {
                   config.backplane.urls = split_urls(list);
                   if (config.backplane.urls.empty()) return std::string("expects at least one URL");
                   return std::string();
                 });
  options.text("--node", "NAME",
               "this node's name in the room, unique among the nodes: 1 to 32 of A-Z a-z 0-9 _ - "
               "(default: host name and process id)",
               config.backplane.node);
  options.text("--room", "NAME", "the room's name on NATS (default lobby)", config.backplane.room);
  options.text("--nats-credentials", "FILE",
               "a file holding 'token = ...' or 'user = ...' and 'password = ...' (mode 600)",
               config.backplane.credentials_file);
  options.text("--nats-ca", "FILE", "CA certificate(s) for tls:// URLs", config.backplane.tls_ca_file);
  std::uint64_t id_replicas = static_cast<std::uint64_t>(config.backplane.registry.replicas);
  options.number("--id-replicas",
                 "copies of the id bucket in a NATS cluster, set by the node that creates it (default 1; 3 "
                 "on a three-node NATS cluster survives the loss of one NATS node)",
                 id_replicas, 1, 5);
  options.flag("--nats-only-listed",
               "connect only to the --nats URLs, not to the other servers a NATS cluster announces (to "
               "pin a node to some servers, as the cut-off test does)",
               config.backplane.ignore_discovered_servers);
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
  if (config.backplane.urls.empty()) {
    std::fprintf(stderr, "v3_server: --nats URL is required (see --help)\n");
    return 2;
  }
  config.port = static_cast<std::uint16_t>(port);
  config.threads = static_cast<unsigned>(threads);
  config.max_clients = static_cast<std::size_t>(max_clients);
  config.max_queue_bytes = static_cast<std::size_t>(max_queue_bytes);
  config.max_total_queue_bytes = static_cast<std::size_t>(max_total_queue_bytes);
  config.stall_limit = std::chrono::milliseconds(stall_limit_ms);
  config.login_timeout = std::chrono::milliseconds(login_timeout_ms);
  config.backplane.registry.replicas = static_cast<int>(id_replicas);

  // [main-run]
  prepare_shutdown_signal();  // before any thread starts, so every thread inherits it
  // Outbound buffers of a page or more go back to the OS once sent, so a
  // burst does not leave the server large (see iocp_chat/heap.hpp).
  allocate_large_blocks_from_os(4096);
  try {
    NetworkSession network;
    v3::ChatServer server(config);
    server.start();
    log_line("node " + config.backplane.node + " ready");
    wait_for_shutdown_signal();
    log_line("shutting down");
    server.stop();
    return 0;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "v3_server: %s\n", error.what());
    return 1;
  }
  // [main-run]
}
