// chat_bench.cpp — the fan-out load generator: N clients on a chat server,
// P of them publishing 32-byte messages, every client receiving every one.
//
// Idea shown: measuring a pub/sub fan-out honestly. A chat room turns one
// message into N deliveries; this tool counts them per (publisher, receiver)
// pair and checks the server's promises — nothing lost, nothing reordered,
// nothing duplicated — while it measures throughput and latency:
//   * window mode (default): each publisher keeps at most W messages that
//     have not yet reached every client, and sends as fast as that allows;
//   * rate mode (--rate R): messages leave on a fixed schedule for R
//     deliveries/s in total, and latency is measured from the *scheduled*
//     send time, so a server that falls behind is not flattered (no
//     coordinated omission).
// Receivers are non-blocking sockets on epoll, one or two threads, read in
// batches. Linux only.
//
// Each message is 32 ASCII hex digits: publisher (4), sequence (12), send
// time in steady-clock nanoseconds (16). ver.2 carries it as a CHAT_REQUEST;
// ver.1 sends the same 32 bytes raw and receivers cut the stream into 32-byte
// records — exact only with one publisher, because ver.1 may interleave
// another sender's run inside a record, so --protocol v1 accepts P = 1 only.
//
// Run: chat_bench --port 42006 --protocol v2 --clients 100 --duration 10
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "iocp_chat/command_line.hpp"
#include "iocp_chat/socket.hpp"
#include "packets.hpp"

namespace iocp_chat::bench {
namespace {

using Clock = std::chrono::steady_clock;

/// Bytes of one message (the ver.2 message field, the ver.1 record).
constexpr std::size_t kMessageBytes = 32;
/// Publisher number that marks a probe message (never a real publisher).
constexpr std::uint64_t kProbePublisher = 0xFFFF;
/// A gap in sequence numbers larger than this is counted, not remembered.
constexpr std::uint64_t kMaxRememberedGap = 100000;
/// Window used in rate mode: only a safety bound on messages in flight.
constexpr std::uint64_t kRateModeWindow = 1 << 16;

/// Nanoseconds on the steady clock (the timestamps carried in messages).
std::uint64_t now_ns() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count());
}

/// The command-line options.
struct Options {
  std::string host = "127.0.0.1";               ///< Server address.
  std::uint64_t port = 42006;                   ///< Server port.
  std::string protocol = "v2";                  ///< "v1" or "v2".
  std::uint64_t clients = 10;                   ///< N: connected (and logged-in) clients.
  std::uint64_t publishers = 1;                 ///< P: clients 0..P-1 also publish.
  std::uint64_t window = 64;                    ///< Messages in flight per publisher (window mode).
  std::uint64_t rate = 0;                       ///< Offered deliveries/s in total; 0 = window mode.
  std::uint64_t warmup = 1;                     ///< Seconds before measuring.
  std::uint64_t duration = 5;                   ///< Seconds measured.
  std::uint64_t receivers = 1;                  ///< Receiver threads (1 or 2).
  std::uint64_t server_pid = 0;                 ///< Server's process id for its CPU use; 0 = unknown.
  std::string json;                             ///< Also write the results here as JSON.
  bool v2() const { return protocol == "v2"; }  ///< True for ver.2 packets.
};

/// Writes the 32-byte message text for (publisher, sequence, time).
void format_message(char* out, std::uint64_t publisher, std::uint64_t sequence, std::uint64_t time) {
  static constexpr char kHex[] = "0123456789abcdef";
  auto put = [&out](std::uint64_t value, int digits) {
    for (int i = digits - 1; i >= 0; --i) *out++ = kHex[(value >> (4 * i)) & 0xF];
  };
  put(publisher, 4);
  put(sequence, 12);
  put(time, 16);
}

/// A decoded message: who sent it, its number, when it was (scheduled to be) sent.
struct Message {
  std::uint64_t publisher = 0;  ///< Publisher number, or kProbePublisher.
  std::uint64_t sequence = 0;   ///< 0, 1, 2 ... per publisher.
  std::uint64_t time = 0;       ///< Send time, steady-clock ns.
};

/// Reads a message written by format_message; false if the bytes are not one.
bool parse_message(const std::byte* in, Message& message) {
  std::uint64_t values[3] = {0, 0, 0};
  constexpr int kDigits[3] = {4, 12, 16};
  std::size_t at = 0;
  for (int field = 0; field < 3; ++field) {
    for (int i = 0; i < kDigits[field]; ++i) {
      const auto c = static_cast<unsigned char>(in[at++]);
      std::uint64_t digit = 0;
      if (c >= '0' && c <= '9') {
        digit = c - '0';
      } else if (c >= 'a' && c <= 'f') {
        digit = c - 'a' + 10u;
      } else {
        return false;
      }
      values[field] = (values[field] << 4) | digit;
    }
  }
  message = {values[0], values[1], values[2]};
  return true;
}

/// Latency histogram: log-linear buckets (32 per power of two, ~3 % wide).
class Histogram {
 public:
  /// Counts one latency in nanoseconds.
  void record(std::uint64_t value) {
    ++counts_[index_of(value)];
    ++total_;
    max_ = std::max(max_, value);
  }
  /// Adds another histogram's counts.
  void merge(const Histogram& other) {
    for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
    total_ += other.total_;
    max_ = std::max(max_, other.max_);
  }
  /// The value below which `fraction` of the samples lie (bucket upper bound).
  std::uint64_t percentile(double fraction) const {
    if (total_ == 0) return 0;
    const auto wanted = static_cast<std::uint64_t>(fraction * static_cast<double>(total_));
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i];
      if (seen > wanted) return std::min(upper_bound_of(i), max_);
    }
    return max_;
  }
  /// The largest sample.
  std::uint64_t max() const { return max_; }
  /// How many samples.
  std::uint64_t total() const { return total_; }

 private:
  /// Sub-buckets per power of two.
  static constexpr std::uint64_t kSub = 32;
  /// The bucket of a value: exact below 2*kSub, then kSub per power of two.
  static std::size_t index_of(std::uint64_t value) {
    if (value < 2 * kSub) return static_cast<std::size_t>(value);
    const auto shift = static_cast<std::uint64_t>(std::bit_width(value)) - 6;  // value >> shift in [32, 64)
    return static_cast<std::size_t>(2 * kSub + (shift - 1) * kSub + ((value >> shift) - kSub));
  }
  /// The largest value that falls in bucket `index`.
  static std::uint64_t upper_bound_of(std::size_t index) {
    if (index < 2 * kSub) return index;
    const std::uint64_t shift = (index - 2 * kSub) / kSub + 1;
    const std::uint64_t sub = (index - 2 * kSub) % kSub + kSub;
    return ((sub + 1) << shift) - 1;
  }
  std::array<std::uint64_t, 2 * kSub + 58 * kSub> counts_{};  ///< Enough for any 64-bit value.
  std::uint64_t total_ = 0;                                   ///< Sum of counts_.
  std::uint64_t max_ = 0;                                     ///< Exact maximum.
};

/// What every thread shares: the phase, the windows, the totals.
struct Shared {
  /// Sets up the per-publisher windows.
  Shared(const Options& options, std::uint64_t window)
      : clients(options.clients), publishers(options.publishers), window_size(window) {
    slots = std::make_unique<std::atomic<std::uint32_t>[]>(publishers * window_size);
    delivered_upto = std::make_unique<std::atomic<std::uint64_t>[]>(publishers);
    published = std::make_unique<std::atomic<std::uint64_t>[]>(publishers);
  }
  const std::uint64_t clients;      ///< N.
  const std::uint64_t publishers;   ///< P.
  const std::uint64_t window_size;  ///< W: messages in flight per publisher.
  /// Per publisher, W counters: receivers of message s count in slot s % W.
  std::unique_ptr<std::atomic<std::uint32_t>[]> slots;
  /// Per publisher: every message below this has reached all N clients.
  std::unique_ptr<std::atomic<std::uint64_t>[]> delivered_upto;
  /// Per publisher: messages sent so far.
  std::unique_ptr<std::atomic<std::uint64_t>[]> published;
  std::atomic<std::uint64_t> logged_in{0};   ///< Clients with LOGIN_RESPONSE OK.
  std::atomic<std::uint64_t> probed{0};      ///< Clients that received a probe.
  std::atomic<std::uint64_t> deliveries{0};  ///< Messages received, all phases.
  std::atomic<std::uint64_t> failures{0};    ///< Closed connections, ERROR frames, garbage.
  std::atomic<std::uint64_t> progress{0};    ///< Bumped by receivers; publishers wait on it.
  std::atomic<bool> publishing{false};       ///< Publishers run while true.
  std::atomic<bool> stop{false};             ///< Receivers run while false.
  std::atomic<std::uint64_t> measure_start{
      ~std::uint64_t{0}};                                     ///< Messages sent in [start, end) are measured.
  std::atomic<std::uint64_t> measure_end{~std::uint64_t{0}};  ///< See measure_start.

  /// Records that one receiver got message `sequence` of `publisher`.
  void count_delivery(std::uint64_t publisher, std::uint64_t sequence) {
    auto& slot = slots[publisher * window_size + sequence % window_size];
    if (slot.fetch_add(1, std::memory_order_acq_rel) + 1 != clients) return;
    slot.store(0, std::memory_order_relaxed);
    auto& upto = delivered_upto[publisher];
    std::uint64_t seen = upto.load(std::memory_order_relaxed);
    while (seen < sequence + 1 &&
           !upto.compare_exchange_weak(seen, sequence + 1, std::memory_order_release)) {
    }
  }
};

/// Sequence checking for one (publisher, receiver) pair.
struct PairState {
  std::uint64_t next = 0;            ///< The sequence expected next.
  std::uint64_t untracked_lost = 0;  ///< Lost in gaps too big to remember.
  std::uint64_t reordered = 0;       ///< Arrived after a later one.
  std::uint64_t duplicated = 0;      ///< Arrived twice.
  std::set<std::uint64_t> missing;   ///< Skipped sequences (empty for a correct server).
};

/// One connected client as its receiver thread sees it.
struct Client {
  Socket socket;                   ///< Non-blocking, TCP_NODELAY.
  std::uint64_t index = 0;         ///< 0..N-1; below P it also publishes.
  v2::FrameAssembler assembler;    ///< ver.2: reassembles frames.
  std::vector<std::byte> pending;  ///< ver.1: an incomplete 32-byte record.
  bool logged_in = false;          ///< ver.2: LOGIN_RESPONSE OK seen.
  bool probed = false;             ///< A probe has arrived.
  bool closed = false;             ///< The server closed it.
};

/// A receiver thread: its clients on one epoll, its own counts and histogram.
class ReceiverThread {
 public:
  /// Registers nothing yet; add() clients, then start().
  ReceiverThread(Shared& shared, bool v2) : shared_(shared), v2_(v2), epoll_(epoll_create1(0)) {}
  /// Joins the thread (if still running) and closes the epoll instance.
  ~ReceiverThread() {
    if (thread_.joinable()) thread_.join();
    ::close(epoll_);
  }
  ReceiverThread(const ReceiverThread&) = delete;
  ReceiverThread& operator=(const ReceiverThread&) = delete;

  /// Takes a connected client; it is read from this thread only.
  void add(std::unique_ptr<Client> client) {
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u64 = clients_.size();
    epoll_ctl(epoll_, EPOLL_CTL_ADD, client->socket.native(), &event);
    clients_.push_back(std::move(client));
  }
  /// Starts reading.
  void start() {
    pairs_.resize(clients_.size() * shared_.publishers);
    thread_ = std::thread([this] { run(); });
  }
  /// Waits for the thread to end (after shared.stop).
  void join() {
    if (thread_.joinable()) thread_.join();
  }
  /// The latency samples of measured messages.
  const Histogram& histogram() const { return histogram_; }
  /// Measured messages received.
  std::uint64_t measured() const { return measured_; }
  /// Adds this thread's loss, reordering and duplication to the totals.
  void add_integrity(std::uint64_t& lost, std::uint64_t& reordered, std::uint64_t& duplicated) const {
    for (std::size_t i = 0; i < pairs_.size(); ++i) {
      const PairState& pair = pairs_[i];
      const std::uint64_t sent = shared_.published[i % shared_.publishers].load();
      lost += pair.missing.size() + pair.untracked_lost + (sent > pair.next ? sent - pair.next : 0);
      reordered += pair.reordered;
      duplicated += pair.duplicated;
    }
  }

 private:
  /// Reads ready sockets in batches until told to stop.
  void run() {
    std::array<epoll_event, 256> events{};
    std::vector<std::byte> buffer(64 * 1024);
    while (!shared_.stop.load(std::memory_order_relaxed)) {
      const int ready = epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), 50);
      for (int i = 0; i < ready; ++i) {
        Client& client = *clients_[events[static_cast<std::size_t>(i)].data.u64];
        const ssize_t got = ::recv(client.socket.native(), buffer.data(), buffer.size(), 0);
        if (got > 0) {
          consume(client, std::span(buffer.data(), static_cast<std::size_t>(got)));
        } else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
          fail(client, "connection closed by the server");
        }
      }
      if (ready > 0) {
        shared_.deliveries.fetch_add(batch_deliveries_, std::memory_order_relaxed);
        batch_deliveries_ = 0;
        shared_.progress.fetch_add(1, std::memory_order_release);
        shared_.progress.notify_all();
      }
    }
  }

  /// Marks a client broken (once) and says why.
  void fail(Client& client, const char* why) {
    if (client.closed) return;
    client.closed = true;
    epoll_ctl(epoll_, EPOLL_CTL_DEL, client.socket.native(), nullptr);
    shared_.failures.fetch_add(1);
    std::fprintf(stderr, "chat_bench: client %llu: %s\n", static_cast<unsigned long long>(client.index), why);
  }

  /// Splits received bytes into messages (ver.2 frames or ver.1 records).
  void consume(Client& client, std::span<const std::byte> bytes) {
    if (!v2_) {
      std::size_t at = 0;
      if (!client.pending.empty()) {  // finish the record cut by the last read
        const std::size_t take = std::min(kMessageBytes - client.pending.size(), bytes.size());
        client.pending.insert(client.pending.end(), bytes.begin(), bytes.begin() + static_cast<long>(take));
        at = take;
        if (client.pending.size() < kMessageBytes) return;
        on_message(client, client.pending.data());
        client.pending.clear();
      }
      for (; at + kMessageBytes <= bytes.size(); at += kMessageBytes) on_message(client, bytes.data() + at);
      client.pending.assign(bytes.begin() + static_cast<long>(at), bytes.end());
      return;
    }
    client.assembler.feed(bytes);
    std::span<const std::byte> frame;
    v2::ErrorCode error{};
    for (;;) {
      const auto status = client.assembler.next(frame, error);
      if (status == v2::FrameAssembler::Status::need_more) return;
      if (status == v2::FrameAssembler::Status::error) return fail(client, "malformed frame from the server");
      const auto type = static_cast<v2::PacketType>((std::to_integer<unsigned>(frame[2]) << 8) |
                                                    std::to_integer<unsigned>(frame[3]));
      if (type == v2::PacketType::chat_broadcast) {
        on_message(client, frame.data() + v2::kHeaderSize + v2::kUserIdSize);
      } else if (type == v2::PacketType::login_response) {
        const auto decoded = v2::decode(frame);
        const auto* response = decoded.packet ? std::get_if<v2::LoginResponse>(&*decoded.packet) : nullptr;
        if (response == nullptr || response->status != v2::LoginStatus::ok)
          return fail(client, "login refused");
        if (!client.logged_in) {
          client.logged_in = true;
          shared_.logged_in.fetch_add(1);
        }
      } else if (type == v2::PacketType::error) {
        return fail(client, "ERROR frame from the server");
      }  // USER_JOINED / USER_LEFT: presence, ignored
    }
  }

  /// Checks one message's sequence, counts it and times it.
  void on_message(Client& client, const std::byte* text) {
    Message message;
    if (!parse_message(text, message)) return fail(client, "garbled message");
    if (message.publisher == kProbePublisher) {
      if (!client.probed) {
        client.probed = true;
        shared_.probed.fetch_add(1);
      }
      return;
    }
    if (message.publisher >= shared_.publishers) return fail(client, "message from an unknown publisher");
    PairState& pair = pairs_[client_slot(client) * shared_.publishers + message.publisher];
    if (message.sequence < pair.next) {
      if (pair.missing.erase(message.sequence) != 0) {
        ++pair.reordered;
      } else {
        ++pair.duplicated;
      }
      return;
    }
    const std::uint64_t gap = message.sequence - pair.next;
    if (gap > kMaxRememberedGap) {
      pair.untracked_lost += gap;
    } else {
      for (std::uint64_t s = pair.next; s < message.sequence; ++s) pair.missing.insert(s);
    }
    pair.next = message.sequence + 1;
    ++batch_deliveries_;
    shared_.count_delivery(message.publisher, message.sequence);
    if (message.time >= shared_.measure_start.load(std::memory_order_relaxed) &&
        message.time < shared_.measure_end.load(std::memory_order_relaxed)) {
      ++measured_;
      const std::uint64_t now = now_ns();
      histogram_.record(now > message.time ? now - message.time : 0);
    }
  }

  /// The client's position in this thread's list (its pair rows).
  std::size_t client_slot(const Client& client) const {
    return static_cast<std::size_t>(client.index / threads_stride_);
  }

 public:
  std::uint64_t threads_stride_ = 1;  ///< Clients are dealt round-robin: index / stride = position.

 private:
  Shared& shared_;                                ///< Phase flags, windows, totals.
  const bool v2_;                                 ///< ver.2 frames or ver.1 records.
  int epoll_;                                     ///< This thread's epoll instance.
  std::vector<std::unique_ptr<Client>> clients_;  ///< Position = epoll data.
  std::vector<PairState> pairs_;                  ///< [position * P + publisher].
  Histogram histogram_;                           ///< Latencies of measured messages.
  std::uint64_t measured_ = 0;                    ///< Measured messages received.
  std::uint64_t batch_deliveries_ = 0;            ///< Added to shared_.deliveries per batch.
  std::thread thread_;                            ///< Runs run().
};

/// One publishing client's sending state (the socket is also read by a receiver).
struct Publisher {
  NativeSocket socket = kInvalidSocket;  ///< Borrowed from its Client.
  std::uint64_t number = 0;              ///< 0..P-1.
  std::uint64_t next = 0;                ///< Next sequence to send.
  std::vector<std::byte> out;            ///< Bytes not yet taken by send().
  std::size_t out_start = 0;             ///< First unsent byte of out.
};

/// Sends the publishers' messages until shared.publishing is false.
class PublisherThread {
 public:
  /// `frame` is the bytes before the message text (ver.2 header) — empty for ver.1.
  PublisherThread(Shared& shared, std::vector<Publisher> publishers, std::vector<std::byte> prefix,
                  std::uint64_t rate_per_publisher)
      : shared_(shared), publishers_(std::move(publishers)), prefix_(std::move(prefix)) {
    if (rate_per_publisher != 0) interval_ns_ = 1'000'000'000 / rate_per_publisher;
  }
  /// Runs the loop on this thread.
  void run() {
    const std::uint64_t start = now_ns();
    while (shared_.publishing.load(std::memory_order_relaxed)) {
      const std::uint64_t seen_progress = shared_.progress.load(std::memory_order_acquire);
      bool moved = false;
      std::uint64_t next_due = ~std::uint64_t{0};
      for (Publisher& publisher : publishers_) {
        moved |= fill(publisher, start, next_due);
        moved |= flush(publisher);
      }
      if (moved) continue;
      if (interval_ns_ != 0 && next_due != ~std::uint64_t{0}) {
        const std::uint64_t now = now_ns();
        if (next_due > now)
          std::this_thread::sleep_for(
              std::chrono::nanoseconds(std::min<std::uint64_t>(next_due - now, 1'000'000)));
      } else {
        shared_.progress.wait(seen_progress, std::memory_order_acquire);
      }
    }
  }

 private:
  /// Appends the messages this publisher may send now; true if any.
  bool fill(Publisher& publisher, std::uint64_t start, std::uint64_t& next_due) {
    const std::uint64_t limit =
        shared_.delivered_upto[publisher.number].load(std::memory_order_acquire) + shared_.window_size;
    const std::uint64_t now = now_ns();
    bool added = false;
    while (publisher.next < limit && publisher.out.size() - publisher.out_start < 64 * 1024) {
      std::uint64_t stamp = now;
      if (interval_ns_ != 0) {
        stamp = start + publisher.next * interval_ns_;  // the scheduled time, not the actual one
        if (stamp > now) {
          next_due = std::min(next_due, stamp);
          break;
        }
      }
      const std::size_t at = publisher.out.size();
      publisher.out.insert(publisher.out.end(), prefix_.begin(), prefix_.end());
      publisher.out.resize(at + prefix_.size() + kMessageBytes);
      format_message(reinterpret_cast<char*>(publisher.out.data() + at + prefix_.size()), publisher.number,
                     publisher.next, stamp);
      ++publisher.next;
      shared_.published[publisher.number].store(publisher.next, std::memory_order_relaxed);
      added = true;
    }
    return added;
  }
  /// Sends what is pending (non-blocking, one call); true if bytes left.
  static bool flush(Publisher& publisher) {
    if (publisher.out_start == publisher.out.size()) return false;
    const ssize_t sent = ::send(publisher.socket, publisher.out.data() + publisher.out_start,
                                publisher.out.size() - publisher.out_start, MSG_NOSIGNAL);
    if (sent <= 0) {
      if (sent < 0 && errno == EAGAIN) std::this_thread::sleep_for(std::chrono::microseconds(100));
      return false;
    }
    publisher.out_start += static_cast<std::size_t>(sent);
    if (publisher.out_start == publisher.out.size()) {
      publisher.out.clear();
      publisher.out_start = 0;
    }
    return true;
  }

  Shared& shared_;                     ///< Windows and phase.
  std::vector<Publisher> publishers_;  ///< The publishing clients.
  std::vector<std::byte> prefix_;      ///< ver.2 CHAT_REQUEST header; empty for ver.1.
  std::uint64_t interval_ns_ = 0;      ///< Rate mode: ns between one publisher's messages; 0 = window mode.
};

/// CPU seconds (user + system) this process has used.
double own_cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

/// CPU seconds (utime + stime) of another process from /proc/PID/stat; -1 if unreadable.
double process_cpu_seconds(std::uint64_t pid) {
  if (pid == 0) return -1;
  std::ifstream file("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  const auto paren = text.rfind(')');  // the command name may contain spaces
  if (paren == std::string::npos) return -1;
  std::vector<std::string> fields;
  std::size_t at = paren + 2;
  while (at < text.size()) {
    const auto space = text.find(' ', at);
    fields.push_back(text.substr(at, space - at));
    if (space == std::string::npos) break;
    at = space + 1;
  }
  if (fields.size() < 13) return -1;  // fields[0] is field 3 (state); utime = 14, stime = 15
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  return (std::stod(fields[11]) + std::stod(fields[12])) / ticks;
}

/// Sends every byte on a non-blocking socket (set-up phase only).
bool send_blocking(NativeSocket socket, std::span<const std::byte> bytes) {
  while (!bytes.empty()) {
    const ssize_t sent = ::send(socket, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (sent < 0 && errno == EAGAIN) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      continue;
    }
    if (sent <= 0) return false;
    bytes = bytes.subspan(static_cast<std::size_t>(sent));
  }
  return true;
}

/// Polls `done` every 10 ms until it is true or `timeout` passes.
template <typename Done>
bool wait_until(Done done, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!done()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

/// Runs the benchmark; returns the exit code.
int run(const Options& options) {
  NetworkSession network;
  const bool v2 = options.v2();
  const std::uint64_t window = options.rate != 0 ? kRateModeWindow : options.window;
  Shared shared(options, window);
  std::vector<std::unique_ptr<ReceiverThread>> threads;
  for (std::uint64_t t = 0; t < options.receivers; ++t) {
    threads.push_back(std::make_unique<ReceiverThread>(shared, v2));
    threads.back()->threads_stride_ = options.receivers;
  }

  // 1. Connect every client; they are dealt round-robin to the receiver threads.
  std::vector<NativeSocket> sockets;
  for (std::uint64_t i = 0; i < options.clients; ++i) {
    auto client = std::make_unique<Client>();
    try {
      client->socket = connect_to(options.host, static_cast<std::uint16_t>(options.port));
    } catch (const std::exception& error) {
      std::fprintf(stderr, "chat_bench: client %llu cannot connect: %s\n", static_cast<unsigned long long>(i),
                   error.what());
      return 2;
    }
    set_no_delay(client->socket);
    fcntl(client->socket.native(), F_SETFL, fcntl(client->socket.native(), F_GETFL) | O_NONBLOCK);
    client->index = i;
    sockets.push_back(client->socket.native());
    threads[i % options.receivers]->add(std::move(client));
  }
  for (auto& thread : threads) thread->start();
  auto stop_receivers = [&] {
    shared.stop = true;
    for (auto& thread : threads) thread->join();
  };

  // 2. ver.2: log every client in under a unique id and wait for every OK.
  if (v2) {
    const std::string prefix = "b" + std::to_string(getpid() % 100000) + "-";
    for (std::uint64_t i = 0; i < options.clients; ++i) {
      const auto frame = v2::encode(v2::LoginRequest{prefix + std::to_string(i)});
      if (!send_blocking(sockets[i], frame)) return stop_receivers(), 2;
    }
    if (!wait_until([&] { return shared.logged_in.load() == options.clients || shared.failures.load() != 0; },
                    std::chrono::seconds(30)) ||
        shared.failures.load() != 0) {
      std::fprintf(stderr, "chat_bench: only %llu of %llu clients logged in\n",
                   static_cast<unsigned long long>(shared.logged_in.load()),
                   static_cast<unsigned long long>(options.clients));
      return stop_receivers(), 2;
    }
  }

  // 3. Prove every client receives: client 0 sends probes until all N saw one
  // (ver.1 has no login, so a probe may beat a connection's registration).
  std::vector<std::byte> prefix;
  if (v2) {
    prefix = v2::encode(v2::ChatRequest{std::string(kMessageBytes, '0')});
    prefix.resize(v2::kHeaderSize);
  }
  bool all_probed = false;
  for (std::uint64_t attempt = 0; attempt < 50 && !all_probed; ++attempt) {
    std::vector<std::byte> probe = prefix;
    probe.resize(prefix.size() + kMessageBytes);
    format_message(reinterpret_cast<char*>(probe.data() + prefix.size()), kProbePublisher, attempt, now_ns());
    if (!send_blocking(sockets[0], probe)) break;
    all_probed =
        wait_until([&] { return shared.probed.load() == options.clients; }, std::chrono::milliseconds(200));
  }
  if (!all_probed) {
    std::fprintf(stderr, "chat_bench: only %llu of %llu clients received the probe\n",
                 static_cast<unsigned long long>(shared.probed.load()),
                 static_cast<unsigned long long>(options.clients));
    return stop_receivers(), 2;
  }

  // 4. Publish: warm-up, then the measured window, with a progress line each second.
  const std::uint64_t start = now_ns();
  const std::uint64_t measure_start = start + options.warmup * 1'000'000'000;
  shared.measure_end = measure_start + options.duration * 1'000'000'000;
  shared.measure_start = measure_start;
  std::vector<Publisher> publishers(options.publishers);
  for (std::uint64_t p = 0; p < options.publishers; ++p) {
    publishers[p].socket = sockets[p];
    publishers[p].number = p;
  }
  const std::uint64_t rate_per_publisher =
      options.rate == 0 ? 0
                        : std::max<std::uint64_t>(1, options.rate / (options.clients * options.publishers));
  PublisherThread publisher(shared, std::move(publishers), prefix, rate_per_publisher);
  shared.publishing = true;
  std::thread publisher_thread([&publisher] { publisher.run(); });
  double cpu_start = 0, server_cpu_start = 0;
  std::uint64_t last_deliveries = 0;
  bool measuring = false;
  for (std::uint64_t second = 1; second <= options.warmup + options.duration; ++second) {
    std::this_thread::sleep_until(
        Clock::time_point(std::chrono::nanoseconds(start + second * 1'000'000'000)));
    if (!measuring && now_ns() >= measure_start) {
      measuring = true;
      cpu_start = own_cpu_seconds();
      server_cpu_start = process_cpu_seconds(options.server_pid);
    }
    const std::uint64_t deliveries = shared.deliveries.load();
    std::fprintf(stderr, "\r[%3llus %s] delivered/s %10llu  failures %llu   ",
                 static_cast<unsigned long long>(second), second <= options.warmup ? "warm-up " : "measured",
                 static_cast<unsigned long long>(deliveries - last_deliveries),
                 static_cast<unsigned long long>(shared.failures.load()));
    last_deliveries = deliveries;
  }
  std::fprintf(stderr, "\n");
  const double wall = static_cast<double>(now_ns() - measure_start) / 1e9;
  const double cpu = own_cpu_seconds() - cpu_start;
  const double server_cpu_end = process_cpu_seconds(options.server_pid);
  shared.publishing = false;
  shared.progress.fetch_add(1);
  shared.progress.notify_all();
  publisher_thread.join();

  // 5. Drain: wait until every sent message reached every client, or 5 s without progress.
  std::uint64_t sent_total = 0;
  for (std::uint64_t p = 0; p < options.publishers; ++p) sent_total += shared.published[p].load();
  std::uint64_t seen = shared.deliveries.load();
  auto last_change = Clock::now();
  while (shared.deliveries.load() < sent_total * options.clients &&
         Clock::now() - last_change < std::chrono::seconds(5)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (shared.deliveries.load() != seen) seen = shared.deliveries.load(), last_change = Clock::now();
  }
  stop_receivers();

  // 6. Report.
  Histogram latency;
  std::uint64_t delivered = 0, lost = 0, reordered = 0, duplicated = 0;
  for (auto& thread : threads) {
    latency.merge(thread->histogram());
    delivered += thread->measured();
    thread->add_integrity(lost, reordered, duplicated);
  }
  const double seconds = static_cast<double>(options.duration);
  // Published in the window: messages with a (scheduled) stamp in it, per publisher = N deliveries each.
  const double published_per_s =
      static_cast<double>(delivered) / static_cast<double>(options.clients) / seconds;
  const double delivered_per_s = static_cast<double>(delivered) / seconds;
  const double frame_bytes = static_cast<double>(v2 ? v2::kMaxFrameSize : kMessageBytes);
  const double megabytes_per_s = delivered_per_s * frame_bytes / 1e6;
  const double bench_cpu = 100.0 * cpu / wall;
  const double server_cpu =
      server_cpu_start < 0 || server_cpu_end < 0 ? -1 : 100.0 * (server_cpu_end - server_cpu_start) / wall;
  auto us = [](std::uint64_t ns) { return static_cast<double>(ns) / 1000.0; };
  std::printf(
      "chat_bench %s clients=%llu publishers=%llu %s warmup=%llus duration=%llus\n", options.protocol.c_str(),
      static_cast<unsigned long long>(options.clients), static_cast<unsigned long long>(options.publishers),
      options.rate != 0 ? ("rate=" + std::to_string(options.rate) + "/s").c_str()
                        : ("window=" + std::to_string(options.window)).c_str(),
      static_cast<unsigned long long>(options.warmup), static_cast<unsigned long long>(options.duration));
  std::printf("%12s %12s %8s %9s %9s %9s %9s %9s %8s %9s %8s %8s %8s\n", "published/s", "delivered/s", "MB/s",
              "p50 us", "p90 us", "p99 us", "p99.9 us", "max us", "lost", "reordered", "dup", "bench %",
              "server %");
  std::printf("%12.0f %12.0f %8.2f %9.1f %9.1f %9.1f %9.1f %9.1f %8llu %9llu %8llu %8.0f %8s\n",
              published_per_s, delivered_per_s, megabytes_per_s, us(latency.percentile(0.50)),
              us(latency.percentile(0.90)), us(latency.percentile(0.99)), us(latency.percentile(0.999)),
              us(latency.max()), static_cast<unsigned long long>(lost),
              static_cast<unsigned long long>(reordered), static_cast<unsigned long long>(duplicated),
              bench_cpu, server_cpu < 0 ? "-" : std::to_string(static_cast<int>(server_cpu + 0.5)).c_str());
  if (!options.json.empty()) {
    std::ofstream json(options.json);
    char text[1024];
    std::snprintf(
        text, sizeof text,
        "{\"protocol\": \"%s\", \"clients\": %llu, \"publishers\": %llu, \"window\": %llu, \"rate\": %llu,\n"
        " \"warmup_s\": %llu, \"duration_s\": %llu, \"published_per_s\": %.1f, \"delivered_per_s\": %.1f,\n"
        " \"delivered\": %llu, \"mb_per_s\": %.3f, \"latency_us\": {\"p50\": %.1f, \"p90\": %.1f, \"p99\": "
        "%.1f,"
        " \"p99_9\": %.1f, \"max\": %.1f},\n \"lost\": %llu, \"reordered\": %llu, \"duplicated\": %llu,"
        " \"failures\": %llu, \"bench_cpu_percent\": %.1f, \"server_cpu_percent\": %.1f}\n",
        options.protocol.c_str(), static_cast<unsigned long long>(options.clients),
        static_cast<unsigned long long>(options.publishers), static_cast<unsigned long long>(options.window),
        static_cast<unsigned long long>(options.rate), static_cast<unsigned long long>(options.warmup),
        static_cast<unsigned long long>(options.duration), published_per_s, delivered_per_s,
        static_cast<unsigned long long>(delivered), megabytes_per_s, us(latency.percentile(0.50)),
        us(latency.percentile(0.90)), us(latency.percentile(0.99)), us(latency.percentile(0.999)),
        us(latency.max()), static_cast<unsigned long long>(lost), static_cast<unsigned long long>(reordered),
        static_cast<unsigned long long>(duplicated), static_cast<unsigned long long>(shared.failures.load()),
        bench_cpu, server_cpu);
    json << text;
  }
  if (lost + reordered + duplicated + shared.failures.load() != 0) {
    std::fprintf(
        stderr, "chat_bench: FAILED: lost %llu, reordered %llu, duplicated %llu, broken clients %llu\n",
        static_cast<unsigned long long>(lost), static_cast<unsigned long long>(reordered),
        static_cast<unsigned long long>(duplicated), static_cast<unsigned long long>(shared.failures.load()));
    return 1;
  }
  if (delivered == 0) {
    std::fprintf(stderr, "chat_bench: FAILED: nothing was delivered in the measured window\n");
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace iocp_chat::bench

int main(int argc, char** argv) {
  using iocp_chat::bench::Options;
  Options options;
  iocp_chat::CommandLine command_line(
      "chat_bench",
      "fan-out load generator: N clients on a chat server, P publish 32-byte messages, all receive; "
      "reports throughput, latency, loss/reorder/duplication (exit 1 if any)",
      "Example: chat_bench --port 42006 --protocol v2 --clients 100 --duration 10 --server-pid $(pidof "
      "v2_server)");
  command_line.text("--host", "ADDRESS", "server address (default 127.0.0.1)", options.host);
  command_line.number("--port", "server port (default 42006)", options.port, 1, 65535);
  command_line.custom("--protocol", "v1|v2", "ver.1 raw records (P = 1 only) or ver.2 packets (default v2)",
                      [&options](std::string_view value) -> std::string {
                        if (value != "v1" && value != "v2") return "--protocol must be v1 or v2";
                        options.protocol = std::string(value);
                        return "";
                      });
  command_line.number("--clients", "N: connected clients, all receiving (default 10)", options.clients, 1,
                      100000);
  command_line.number("--publishers", "P: the first P clients also publish (default 1)", options.publishers,
                      1, 1000);
  command_line.number("--window", "messages not yet delivered to all, per publisher (default 64)",
                      options.window, 1, 1 << 20);
  command_line.number(
      "--rate", "offered deliveries/s in total, latency from the scheduled time (default 0 = window mode)",
      options.rate, 0, 1'000'000'000);
  command_line.number("--warmup", "seconds of warm-up, not measured (default 1)", options.warmup, 0, 3600);
  command_line.number("--duration", "seconds measured (default 5)", options.duration, 1, 3600);
  command_line.number("--receivers", "receiver threads, 1 or 2 (default 1)", options.receivers, 1, 2);
  command_line.number("--server-pid",
                      "PID of the server, to report its CPU use from /proc (default: not reported)",
                      options.server_pid, 0, 1u << 30);
  command_line.text("--json", "FILE", "also write the results as JSON to FILE", options.json);
  const auto outcome = command_line.parse(argc, argv);
  if (outcome == iocp_chat::ParseOutcome::help) return 0;
  if (outcome == iocp_chat::ParseOutcome::error) return 2;
  if (options.protocol == "v1" && options.publishers != 1) {
    std::fprintf(stderr,
                 "chat_bench: --protocol v1 supports --publishers 1 only (ver.1 may interleave senders)\n");
    return 2;
  }
  if (options.publishers > options.clients) {
    std::fprintf(stderr, "chat_bench: --publishers must not exceed --clients\n");
    return 2;
  }
  return iocp_chat::bench::run(options);
}
