// fanout_server.cpp — a measuring instrument, not a teaching server: the
// smallest fan-out server that batches, so that chat_bench can be measured
// against the best this machine's loopback allows.
//
// Idea shown (the one idea here that is not IOCP): the loopback ceiling. One
// thread, epoll (level-triggered), non-blocking sockets, no rules — no login,
// no framing, no limits but one — and batching everywhere it is free:
//   1. epoll_wait returns every ready socket;
//   2. each ready client is read until EAGAIN (at most kReadBudget bytes), and
//      what all of them sent is gathered into one batch, in arrival order;
//   3. the batch is appended to every client's output buffer, the sender's
//      too (ver.1's raw broadcast: every chunk to every client);
//   4. each client with unsent bytes gets one send() per loop iteration;
//      EPOLLOUT is armed only while a client still has unsent bytes.
// So N clients cost N sends per batch however many messages the batch holds.
// If chat_bench measures this server at a multiple of redis-server in the
// same run, the load generator is not what limits the comparison; if not,
// no server can be shown ahead of redis by more than that ratio here.
//
// It speaks what `chat_bench --protocol v1` drives: raw bytes, echoed to the
// sender (chat_bench's publisher is client 0 and counts its own copy), so
// with one publisher the 32-byte records stay whole. Its only bound: a client
// with more than kMaxOutputBytes unsent is dropped, so a reader that stops
// cannot make it eat memory. Linux only; SIGTERM or Ctrl+C end it at once.
//
// Two faults can be switched on, to test the tester: --lose-record K delivers
// the K-th 32-byte record to nobody, --garble-record K spoils its first byte;
// chat_bench must then report the loss or the garbled message and exit 1
// (the ctest cases bench.chat_bench_notices_*).
//
// Run: fanout_server --port 42010 &
//      chat_bench --port 42010 --protocol v1 --clients 100 --server-pid $!
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "iocp_chat/command_line.hpp"

namespace {

/// Unsent bytes one client may hold before it is dropped (the same 8 MiB as ver.1/ver.2 and redis here).
constexpr std::size_t kMaxOutputBytes = std::size_t{8} << 20;
/// Bytes read from one client per loop iteration at most, so one fast sender cannot starve the rest.
constexpr std::size_t kReadBudget = std::size_t{256} << 10;
/// Bytes asked for in one recv().
constexpr std::size_t kReadChunk = std::size_t{64} << 10;
/// Ready sockets taken from one epoll_wait.
constexpr int kMaxEvents = 256;

/// One connected client: its socket and the bytes it has still to be sent.
struct Client {
  int fd = -1;                  ///< The non-blocking socket (closed by the server).
  std::vector<char> output;     ///< [sent, size) not yet sent.
  std::size_t sent = 0;         ///< Bytes of `output` already sent.
  bool writable_armed = false;  ///< EPOLLOUT is registered (only while bytes are unsent).
  bool closed = false;          ///< EOF, an error or the bound: removed at the end of the iteration.

  /// Bytes appended but not yet sent.
  std::size_t pending() const { return output.size() - sent; }
};

/// Faults to inject, to prove that chat_bench notices them (its checks must be able to
/// fail). Record K (counted from 1) is stream bytes [32(K-1), 32K) of everything the
/// clients sent, in arrival order: with one sender (chat_bench --protocol v1), its K-th message.
struct Faults {
  std::uint64_t lose_record = 0;    ///< K: deliver record K to nobody (0 = no fault).
  std::uint64_t garble_record = 0;  ///< K: overwrite the first byte of record K (0 = no fault).
};

/// The server: listener, epoll set, clients, and the batch of one iteration.
class FanoutServer {
 public:
  /// Listens on address:port (port 0 = any free port) and prints the ready line.
  FanoutServer(const std::string& address, std::uint16_t port, Faults faults);
  /// Closes every socket.
  ~FanoutServer();
  FanoutServer(const FanoutServer&) = delete;
  FanoutServer& operator=(const FanoutServer&) = delete;

  /// Runs the loop until the process is killed; returns only on a fatal epoll error.
  int run();

 private:
  /// Accepts every pending connection.
  void accept_all();
  /// Reads what `client` sent (up to kReadBudget) into batch_.
  void read_from(Client& client);
  /// Appends batch_ to every open client's output, dropping one past kMaxOutputBytes.
  void broadcast_batch();
  /// One send() of what `client` has unsent; arms or disarms EPOLLOUT to match.
  void flush(Client& client);
  /// Removes the clients marked closed.
  void sweep();
  /// Applies faults_ to batch_, which holds stream bytes [bytes_in_, bytes_in_ + size).
  void inject_faults();

  int listener_ = -1;                             ///< The listening socket (epoll data.ptr = nullptr).
  int epoll_ = -1;                                ///< The epoll set.
  std::vector<std::unique_ptr<Client>> clients_;  ///< Every open client (epoll data.ptr = the Client).
  std::vector<char> batch_;                       ///< What every ready client sent in this iteration.
  Faults faults_;                                 ///< Faults to inject (none by default).
  std::uint64_t bytes_in_ = 0;                    ///< Stream bytes received before batch_.
};

FanoutServer::FanoutServer(const std::string& address, std::uint16_t port, Faults faults) : faults_(faults) {
  listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (listener_ < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  const int one = 1;
  ::setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in where{};
  where.sin_family = AF_INET;
  where.sin_port = htons(port);
  if (::inet_pton(AF_INET, address.c_str(), &where.sin_addr) != 1)
    throw std::runtime_error("not an IPv4 address: " + address);
  if (::bind(listener_, reinterpret_cast<const sockaddr*>(&where), sizeof where) != 0 ||
      ::listen(listener_, SOMAXCONN) != 0)
    throw std::runtime_error(std::string("bind/listen: ") + std::strerror(errno));
  socklen_t length = sizeof where;
  ::getsockname(listener_, reinterpret_cast<sockaddr*>(&where), &length);
  epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_ < 0) throw std::runtime_error(std::string("epoll_create1: ") + std::strerror(errno));
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.ptr = nullptr;
  ::epoll_ctl(epoll_, EPOLL_CTL_ADD, listener_, &event);
  // The same ready line as our servers, which run_matrix.sh and the smoke test wait for.
  std::fprintf(stderr, "fanout_server listening on %s:%u\n", address.c_str(),
               static_cast<unsigned>(ntohs(where.sin_port)));
}

FanoutServer::~FanoutServer() {
  for (const auto& client : clients_) ::close(client->fd);
  if (epoll_ >= 0) ::close(epoll_);
  if (listener_ >= 0) ::close(listener_);
}

int FanoutServer::run() {
  std::array<epoll_event, kMaxEvents> events{};
  for (;;) {
    const int ready = ::epoll_wait(epoll_, events.data(), kMaxEvents, -1);
    if (ready < 0) {
      if (errno == EINTR) continue;
      std::perror("fanout_server: epoll_wait");
      return 1;
    }
    batch_.clear();
    bool writable = false;
    for (int i = 0; i < ready; ++i) {
      auto* client = static_cast<Client*>(events[static_cast<std::size_t>(i)].data.ptr);
      if (client == nullptr) {
        accept_all();
        continue;
      }
      const std::uint32_t what = events[static_cast<std::size_t>(i)].events;
      if ((what & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0) read_from(*client);
      if ((what & EPOLLOUT) != 0) writable = true;
    }
    if (faults_.lose_record != 0 || faults_.garble_record != 0) inject_faults();
    if (!batch_.empty()) broadcast_batch();
    // Once per iteration, every client with unsent bytes: one send each.
    if (!batch_.empty() || writable) {
      for (const auto& client : clients_)
        if (!client->closed && client->pending() != 0) flush(*client);
    }
    sweep();
  }
}

void FanoutServer::accept_all() {
  for (;;) {
    const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;  // EAGAIN: no more; anything else (EMFILE ...): try again on the next event.
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    auto client = std::make_unique<Client>();
    client->fd = fd;
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.ptr = client.get();
    if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &event) != 0) {
      ::close(fd);
      continue;
    }
    clients_.push_back(std::move(client));
  }
}

void FanoutServer::read_from(Client& client) {
  if (client.closed) return;
  std::size_t taken = 0;
  while (taken < kReadBudget) {
    const std::size_t at = batch_.size();
    batch_.resize(at + kReadChunk);
    const ssize_t got = ::recv(client.fd, batch_.data() + at, kReadChunk, 0);
    batch_.resize(at + (got > 0 ? static_cast<std::size_t>(got) : 0));
    if (got > 0) {
      taken += static_cast<std::size_t>(got);
      if (static_cast<std::size_t>(got) < kReadChunk) return;  // the socket is empty now
      continue;
    }
    if (got < 0 && (errno == EAGAIN || errno == EINTR)) return;
    client.closed = true;  // EOF or an error
    return;
  }
}

void FanoutServer::broadcast_batch() {
  for (const auto& client : clients_) {
    if (client->closed) continue;
    if (client->pending() + batch_.size() > kMaxOutputBytes) {
      std::fprintf(stderr, "fanout_server: dropping a client with %zu bytes unsent\n", client->pending());
      client->closed = true;
      continue;
    }
    client->output.insert(client->output.end(), batch_.begin(), batch_.end());
  }
}

void FanoutServer::flush(Client& client) {
  const ssize_t sent = ::send(client.fd, client.output.data() + client.sent, client.pending(), MSG_NOSIGNAL);
  if (sent < 0 && errno != EAGAIN && errno != EINTR) {
    client.closed = true;
    return;
  }
  if (sent > 0) client.sent += static_cast<std::size_t>(sent);
  if (client.pending() == 0) {
    client.output.clear();
    client.sent = 0;
  } else if (client.sent > client.output.size() / 2) {
    // Keep the buffer from growing at the front: move the unsent tail down.
    client.output.erase(client.output.begin(),
                        client.output.begin() + static_cast<std::ptrdiff_t>(client.sent));
    client.sent = 0;
  }
  const bool want_writable = client.pending() != 0;
  if (want_writable != client.writable_armed) {
    epoll_event event{};
    event.events = EPOLLIN | (want_writable ? EPOLLOUT : 0u);
    event.data.ptr = &client;
    ::epoll_ctl(epoll_, EPOLL_CTL_MOD, client.fd, &event);
    client.writable_armed = want_writable;
  }
}

void FanoutServer::inject_faults() {
  constexpr std::uint64_t kRecord = 32;  // chat_bench's message size
  const std::uint64_t begin = bytes_in_;
  const std::uint64_t end = begin + batch_.size();
  bytes_in_ = end;
  if (faults_.garble_record != 0) {
    const std::uint64_t at = (faults_.garble_record - 1) * kRecord;
    if (at >= begin && at < end) batch_[at - begin] = '!';
  }
  if (faults_.lose_record != 0) {
    // The part of the record inside this batch (a record may span two batches).
    const std::uint64_t from = std::max(begin, (faults_.lose_record - 1) * kRecord);
    const std::uint64_t to = std::min(end, faults_.lose_record * kRecord);
    if (from < to)
      batch_.erase(batch_.begin() + static_cast<std::ptrdiff_t>(from - begin),
                   batch_.begin() + static_cast<std::ptrdiff_t>(to - begin));
  }
}

void FanoutServer::sweep() {
  const auto gone = std::remove_if(clients_.begin(), clients_.end(), [](const std::unique_ptr<Client>& c) {
    if (!c->closed) return false;
    ::close(c->fd);  // also removes it from the epoll set
    return true;
  });
  clients_.erase(gone, clients_.end());
}

}  // namespace

int main(int argc, char** argv) {
  std::uint64_t port = 42010;
  std::string address = "127.0.0.1";
  iocp_chat::CommandLine options(
      "fanout_server",
      "measuring instrument: a one-thread, batching epoll fan-out server with no rules (every byte "
      "any client sends goes to every client, the sender too) — the loopback ceiling for chat_bench "
      "--protocol v1",
      "Example: fanout_server --port 42010 &  chat_bench --port 42010 --protocol v1 --clients 100");
  options.number("--port", "TCP port to listen on (default 42010; 0 = any free port)", port, 0, 65535);
  options.text("--bind", "ADDRESS", "IPv4 address to listen on (default 127.0.0.1)", address);
  Faults faults;
  options.number("--lose-record",
                 "a fault, to test chat_bench: deliver the K-th 32-byte record to nobody (default 0 = none)",
                 faults.lose_record, 0, std::uint64_t{1} << 40);
  options.number(
      "--garble-record",
      "a fault, to test chat_bench: overwrite the first byte of the K-th record (default 0 = none)",
      faults.garble_record, 0, std::uint64_t{1} << 40);
  switch (options.parse(argc, argv)) {
    case iocp_chat::ParseOutcome::help:
      return 0;
    case iocp_chat::ParseOutcome::error:
      return 2;
    case iocp_chat::ParseOutcome::run:
      break;
  }
  try {
    FanoutServer server(address, static_cast<std::uint16_t>(port), faults);
    return server.run();
  } catch (const std::exception& error) {
    std::fprintf(stderr, "fanout_server: %s\n", error.what());
    return 1;
  }
}
