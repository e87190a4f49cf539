// port_bench.cpp — what one completion costs on each backend (Google Benchmark):
//   * post → wait: PostQueuedCompletionStatus then GetQueuedCompletionStatus
//     on one thread — the bare price of the queue;
//   * loopback send → receive completion: a 64-byte message written by a
//     client and received through the port — the price of one real I/O
//     completion, system calls included.
// Run: build/linux/bench/port_bench  (numbers go in the docs, never in tests)
#include <benchmark/benchmark.h>

#include <string>
#include <system_error>

#include "iocp_chat/completion_port.hpp"
#include "iocp_chat/socket.hpp"

namespace iocp_chat {
namespace {

/// Opens the backend numbered `index` in compiled_backends(), or explains why not.
std::unique_ptr<CompletionPort> open_or_skip(benchmark::State& state) {
  const auto backends = compiled_backends();
  const auto index = static_cast<std::size_t>(state.range(0));
  try {
    auto port = open_completion_port(backends.at(index));
    state.SetLabel(std::string(to_string(port->backend())));
    return port;
  } catch (const std::system_error& error) {
    state.SkipWithError(error.what());
    return nullptr;
  }
}

void post_then_wait(benchmark::State& state) {
  NetworkSession network;
  auto port = open_or_skip(state);
  if (!port) return;
  for (auto _ : state) {
    port->post(1);
    benchmark::DoNotOptimize(port->wait(kWaitForever));
  }
  state.SetItemsProcessed(state.iterations());
}

void loopback_receive_completion(benchmark::State& state) {
  NetworkSession network;
  auto port = open_or_skip(state);
  if (!port) return;
  Socket listener = open_listener("127.0.0.1", 0);
  port->associate(listener, 1);
  AcceptOperation accept;
  port->start_accept(listener, accept);
  Socket client = connect_to("127.0.0.1", local_port(listener));
  set_no_delay(client);
  Socket server = port->wait(kWaitForever) ? accept.take_socket() : Socket();
  port->associate(server, 2);
  const std::string message(64, 'x');
  ReceiveOperation receive;
  for (auto _ : state) {
    port->start_receive(server, receive);
    (void)send_all(client, message);
    std::size_t got = port->wait(kWaitForever)->bytes;
    while (got < message.size()) {  // TCP may deliver it in two pieces
      port->start_receive(server, receive);
      got += port->wait(kWaitForever)->bytes;
    }
  }
  state.SetItemsProcessed(state.iterations());
  port->close(server);
  port->close(listener);
}

void each_backend(benchmark::internal::Benchmark* bench) {
  for (std::size_t i = 0; i < compiled_backends().size(); ++i) bench->Arg(static_cast<std::int64_t>(i));
}

BENCHMARK(post_then_wait)->Apply(each_backend);
BENCHMARK(loopback_receive_completion)->Apply(each_backend);

}  // namespace
}  // namespace iocp_chat

BENCHMARK_MAIN();
