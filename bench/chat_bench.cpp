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
// time in steady-clock nanoseconds (16). Four wire protocols carry it, each
// described by one Wire (how a client joins, how a publish looks, how the
// incoming stream is cut):
//   * v2: a CHAT_REQUEST; clients log in first and receive CHAT_BROADCASTs;
//   * v1: the same 32 bytes raw; receivers cut the stream into 32-byte
//     records — exact only with one publisher, because ver.1 may interleave
//     another sender's run inside a record, so v1 accepts P = 1 only;
//   * redis: every client SUBSCRIBEs to "chat"; a subscribed RESP2
//     connection cannot PUBLISH, so each publisher has an extra connection
//     of its own that PUBLISHes and reads back the integer replies;
//   * nats: every client sends CONNECT and SUB, then PING — the PONG
//     confirms the subscription; clients 0..P-1 also PUB (echo on, so a
//     publisher receives its own messages, as in ver.2).
//
// With several ports (--port 42001,42002,42003: the nodes of a ver.3
// cluster) client i connects to the (i mod K)-th, so publisher p too; the
// checks still cover every (publisher, receiver) pair across the nodes.
//
// With --idle-memory it only connects N clients, lets each join, and prints
// how much the server's resident memory grew per idle connection.
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
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/protocol/packets.hpp"
#include "iocp_chat/command_line.hpp"
#include "iocp_chat/socket.hpp"

namespace iocp_chat::bench {
namespace {

using Clock = std::chrono::steady_clock;

/// Bytes of one message (the ver.2 message field, the ver.1 record, the redis/nats payload).
constexpr std::size_t kMessageBytes = 32;
/// Publisher number that marks a probe message (never a real publisher).
constexpr std::uint64_t kProbePublisher = 0xFFFF;
/// A gap in sequence numbers larger than this is counted, not remembered.
constexpr std::uint64_t kMaxRememberedGap = 100000;
/// Window used in rate mode: only a safety bound on messages in flight.
constexpr std::uint64_t kRateModeWindow = 1 << 16;
/// The redis channel and nats subject every client subscribes to.
constexpr std::string_view kChannel = "chat";

/// Nanoseconds on the steady clock (the timestamps carried in messages).
std::uint64_t now_ns() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count());
}

/// The command-line options.
struct Options {
  std::string host = "127.0.0.1";              ///< Server address.
  std::vector<std::uint16_t> ports = {42006};  ///< Server ports; client i connects to ports[i % K].
  std::string protocol = "v2";                 ///< "v1", "v2", "redis" or "nats".
  std::uint64_t clients = 10;                  ///< N: connected (and joined) clients, all receiving.
  std::uint64_t publishers = 1;                ///< P: publishing clients (redis: P extra connections).
  std::uint64_t window = 64;                   ///< Messages in flight per publisher (window mode).
  std::uint64_t rate = 0;                      ///< Offered deliveries/s in total; 0 = window mode.
  std::uint64_t warmup = 1;                    ///< Seconds before measuring.
  std::uint64_t duration = 5;                  ///< Seconds measured.
  std::uint64_t receivers = 1;                 ///< Receiver threads (1 or 2).
  std::vector<std::uint64_t> server_pids;      ///< Server PIDs for CPU use / RSS, summed; empty = unknown.
  std::string json;                            ///< Also write the results here as JSON.
  bool idle_memory = false;                    ///< Measure the server's RSS per idle joined client instead.
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

/// The value of each byte as a hex digit (lower case, as format_message writes),
/// or kNotHex. A table, so that a digit costs one load and no branch.
constexpr std::array<std::uint8_t, 256> kHexValue = [] {
  std::array<std::uint8_t, 256> table{};
  table.fill(0x10);
  for (int c = '0'; c <= '9'; ++c) table[static_cast<std::size_t>(c)] = static_cast<std::uint8_t>(c - '0');
  for (int c = 'a'; c <= 'f'; ++c)
    table[static_cast<std::size_t>(c)] = static_cast<std::uint8_t>(c - 'a' + 10);
  return table;
}();
/// kHexValue's mark for a byte that is not a hex digit (a bit no digit has).
constexpr std::uint8_t kNotHex = 0x10;

/// Reads `digits` hex digits into `value`; false if one is not a digit. The value
/// is built in a local (a register): this runs once per delivery, and a loop that
/// updates memory digit by digit waits for its own store on every digit.
bool parse_hex(const std::byte* in, int digits, std::uint64_t& value) {
  std::uint64_t result = 0;
  std::uint8_t marks = 0;
  for (int i = 0; i < digits; ++i) {
    const std::uint8_t digit = kHexValue[std::to_integer<std::size_t>(in[i])];
    marks |= digit;
    result = (result << 4) | (digit & 0xFu);
  }
  value = result;
  return (marks & kNotHex) == 0;
}

/// Reads a message written by format_message; false if the bytes are not one.
bool parse_message(const std::byte* in, Message& message) {
  return parse_hex(in, 4, message.publisher) && parse_hex(in + 4, 12, message.sequence) &&
         parse_hex(in + 16, 16, message.time);
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

// ---------------------------------------------------------------------------
// The wire protocols: what a decoder reports, and one decoder per protocol.

/// What a connection's decoder reports while it cuts the incoming stream.
class Events {
 public:
  /// Nothing to release; derived classes own their state.
  virtual ~Events() = default;
  /// A 32-byte chat message arrived (`text` points at its first byte).
  virtual void message(const std::byte* text) = 0;
  /// The server confirmed the join: LOGIN_RESPONSE OK, the subscribe reply, or the PONG after SUB.
  virtual void joined() = 0;
  /// The protocol requires sending `bytes` back at once (nats: PING → PONG).
  virtual void reply(std::string_view bytes) = 0;
  /// The connection is unusable (closed, garbage, a server error); the decoder stops.
  virtual void failure(const std::string& why) = 0;
};

/// Cuts one connection's byte stream into protocol values.
class Decoder {
 public:
  /// Nothing to release but what derived classes own.
  virtual ~Decoder() = default;
  /// Decodes the next piece of the stream (any size); false after a reported failure.
  virtual bool feed(std::span<const std::byte> bytes, Events& events) = 0;
};

/// The text of some bytes (RESP and the nats protocol are ASCII lines).
std::string_view as_text(std::span<const std::byte> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

/// The bytes of some text.
std::span<const std::byte> as_bytes(std::string_view text) {
  return std::as_bytes(std::span(text.data(), text.size()));
}

/// A whole decimal number, or false (empty, a sign, a non-digit, overflow).
bool parse_decimal(std::string_view text, std::size_t& value) {
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  return !text.empty() && error == std::errc{} && end == text.data() + text.size();
}

/// Cuts a stream for a parser that reads one value from the front of a contiguous buffer.
/// Values are read in place from each received buffer; only a value cut by the end of a
/// read is copied, and completed from the next read a few hundred bytes at a time.
class StreamCutter {
 public:
  /// What a parser returns for a broken stream (it has reported the failure).
  static constexpr std::size_t kBroken = ~std::size_t{0};
  /// The longest value accepted (a nats INFO line is the largest expected, ~1 KiB).
  static constexpr std::size_t kMaxValue = 64 * 1024;

  /// Feeds `bytes`; `parse(text)` returns the size of the value at the front of `text`,
  /// 0 if `text` holds only part of one, or kBroken. False once the stream is broken.
  template <typename Parse>
  bool feed(std::span<const std::byte> bytes, Events& events, Parse&& parse) {
    while (!tail_.empty() && !bytes.empty()) {  // finish the value cut by the last read
      const std::size_t kept = tail_.size();
      const std::size_t take = std::min<std::size_t>(bytes.size(), 256);
      tail_.insert(tail_.end(), bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(take));
      const std::size_t used = parse(as_text(tail_));
      if (used == kBroken) return false;
      if (used == 0) {
        bytes = bytes.subspan(take);
        if (tail_.size() > kMaxValue) return events.failure("a value longer than 64 KiB"), false;
        continue;
      }
      bytes = bytes.subspan(used - kept);  // the value ended inside the bytes just taken
      tail_.clear();
    }
    while (!bytes.empty()) {
      const std::size_t used = parse(as_text(bytes));
      if (used == kBroken) return false;
      if (used == 0) break;
      bytes = bytes.subspan(used);
    }
    tail_.insert(tail_.end(), bytes.begin(), bytes.end());
    return true;
  }

 private:
  std::vector<std::byte> tail_;  ///< The start of a value that did not fit in the last read.
};

/// ver.1: the stream is cut into 32-byte records.
class V1Decoder final : public Decoder {
 public:
  /// Cuts records; ver.1 sends nothing else.
  bool feed(std::span<const std::byte> bytes, Events& events) override {
    return cutter_.feed(bytes, events, [&events](std::string_view text) -> std::size_t {
      if (text.size() < kMessageBytes) return 0;
      events.message(reinterpret_cast<const std::byte*>(text.data()));
      return kMessageBytes;
    });
  }

 private:
  StreamCutter cutter_;  ///< An incomplete record.
};

/// ver.2: frames reassembled by the real v2_protocol FrameAssembler.
class V2Decoder final : public Decoder {
 public:
  /// CHAT_BROADCAST → message, LOGIN_RESPONSE OK → joined, ERROR or a refused login → failure.
  bool feed(std::span<const std::byte> bytes, Events& events) override {
    assembler_.feed(bytes);
    std::span<const std::byte> frame;
    v2::ErrorCode error{};
    for (;;) {
      const auto status = assembler_.next(frame, error);
      if (status == v2::FrameAssembler::Status::need_more) return true;
      if (status == v2::FrameAssembler::Status::error)
        return events.failure("malformed frame from the server"), false;
      const auto type = static_cast<v2::PacketType>((std::to_integer<unsigned>(frame[2]) << 8) |
                                                    std::to_integer<unsigned>(frame[3]));
      if (type == v2::PacketType::chat_broadcast) {
        events.message(frame.data() + v2::kHeaderSize + v2::kUserIdSize);
      } else if (type == v2::PacketType::login_response) {
        const auto decoded = v2::decode(frame);
        const auto* response = decoded.packet ? std::get_if<v2::LoginResponse>(&*decoded.packet) : nullptr;
        if (response == nullptr || response->status != v2::LoginStatus::ok)
          return events.failure("login refused"), false;
        events.joined();
      } else if (type == v2::PacketType::error) {
        const auto decoded = v2::decode(frame);
        const auto* packet = decoded.packet ? std::get_if<v2::ErrorPacket>(&*decoded.packet) : nullptr;
        return events.failure("ERROR " + std::string(packet ? v2::to_string(packet->code) : "?") +
                              " from the server"),
               false;
      }  // USER_JOINED / USER_LEFT: presence, ignored
    }
  }

 private:
  v2::FrameAssembler assembler_;  ///< Reassembles frames split across reads.
};

/// One line ending in CRLF at `at`: sets `line` (without the CRLF) and moves `at` past it.
/// False if the line is not complete yet.
bool next_line(std::string_view text, std::size_t& at, std::string_view& line) {
  const std::size_t end = text.find('\n', at);
  if (end == std::string_view::npos) return false;
  line = text.substr(at, end - at);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  at = end + 1;
  return true;
}

/// A text protocol (redis, nats): the stream is cut into values, split
/// across reads or not, and each one is parsed by the derived class.
class TextDecoder : public Decoder {
 public:
  /// Hands parse_value one value at a time.
  bool feed(std::span<const std::byte> bytes, Events& events) final {
    return cutter_.feed(bytes, events, [&](std::string_view text) { return parse_value(text, events); });
  }

 protected:
  /// The size of the value at the front of `text`, 0 if it holds only part of
  /// one, or StreamCutter::kBroken after reporting a failure.
  virtual std::size_t parse_value(std::string_view text, Events& events) const = 0;
  /// Reports a failure; returns StreamCutter::kBroken.
  static std::size_t broken(Events& events, const std::string& why) {
    events.failure(why);
    return StreamCutter::kBroken;
  }

 private:
  StreamCutter cutter_;  ///< A value cut by the end of a read.
};

/// redis (RESP2): `*3 $7 message $4 chat $32 <payload>` pushes, the subscribe
/// confirmation, PUBLISH's integer replies; `-ERR ...` is a failure.
class RedisDecoder final : public TextDecoder {
 private:
  /// Reads the RESP value at the front of `text` (see StreamCutter::feed for the result).
  std::size_t parse_value(std::string_view text, Events& events) const override {
    std::size_t at = 0;
    std::string_view line;
    if (!next_line(text, at, line)) return 0;
    if (line.empty()) return broken(events, "an empty RESP line");
    if (line[0] == ':' || line[0] == '+') return at;  // PUBLISH's receiver count; OK
    if (line[0] == '-') return broken(events, "redis error: " + std::string(line));
    std::size_t count = 0;
    if (line[0] != '*' || !parse_decimal(line.substr(1), count) || count > 16)
      return broken(events, "unexpected RESP value: " + std::string(line.substr(0, 40)));
    std::array<std::string_view, 3> items;
    for (std::size_t i = 0; i < count; ++i) {
      if (!next_line(text, at, line)) return 0;
      std::string_view item;
      std::size_t length = 0;
      if (!line.empty() && line[0] == ':') {
        item = line.substr(1);
      } else if (!line.empty() && line[0] == '$' && parse_decimal(line.substr(1), length)) {
        if (text.size() < at + length + 2) return 0;
        item = text.substr(at, length);
        at += length + 2;
      } else {
        return broken(events, "unexpected RESP array item: " + std::string(line.substr(0, 40)));
      }
      if (i < items.size()) items[i] = item;
    }
    if (items[0] == "message") {
      if (count != 3 || items[2].size() != kMessageBytes) return broken(events, "garbled redis message");
      events.message(reinterpret_cast<const std::byte*>(items[2].data()));
    } else if (items[0] == "subscribe") {
      events.joined();
    }
    return at;
  }
};

/// nats: `MSG chat 1 32\r\n<payload>\r\n`, INFO, +OK, PING (answered with PONG), the
/// PONG that confirms SUB; `-ERR ...` is a failure.
class NatsDecoder final : public TextDecoder {
 private:
  /// Reads the line (and payload) at the front of `text` (see StreamCutter::feed).
  std::size_t parse_value(std::string_view text, Events& events) const override {
    std::size_t at = 0;
    std::string_view line;
    if (!next_line(text, at, line)) return 0;
    if (line.starts_with("MSG ")) {  // MSG <subject> <sid> [reply-to] <#bytes>
      std::size_t length = 0;
      if (!parse_decimal(line.substr(line.rfind(' ') + 1), length))
        return broken(events, "bad MSG line: " + std::string(line));
      if (text.size() < at + length + 2) return 0;
      if (length != kMessageBytes) return broken(events, "garbled nats message");
      events.message(reinterpret_cast<const std::byte*>(text.data() + at));
      return at + length + 2;
    }
    if (line == "PING") {
      events.reply("PONG\r\n");
    } else if (line == "PONG") {
      events.joined();
    } else if (line.starts_with("-ERR")) {
      return broken(events, "nats error: " + std::string(line));
    } else if (line != "+OK" && !line.starts_with("INFO ")) {
      return broken(events, "unexpected nats line: " + std::string(line.substr(0, 40)));
    }
    return at;
  }
};

/// How one protocol is spoken: joining, publishing, and reading.
struct Wire {
  std::string name;                  ///< "v1", "v2", "redis", "nats".
  std::size_t delivery_bytes = 0;    ///< Wire bytes of one delivered message (for MB/s).
  std::string publish_prefix;        ///< Bytes before the 32-byte message in one publish command.
  std::string publish_suffix;        ///< Bytes after it.
  bool separate_publishers = false;  ///< Publishers get extra, non-receiving connections (redis).
  /// What receiving client `index` sends to join; "" = nothing to confirm (ver.1).
  std::function<std::string(std::uint64_t index)> join;
  /// A decoder for one connection's incoming bytes.
  std::function<std::unique_ptr<Decoder>()> decoder;
};

/// A RESP2 command: an array of bulk strings.
std::string resp_command(std::initializer_list<std::string_view> words) {
  std::string out = "*" + std::to_string(words.size()) + "\r\n";
  for (const auto word : words) {
    out += "$" + std::to_string(word.size()) + "\r\n";
    out += word;
    out += "\r\n";
  }
  return out;
}

/// The Wire of `protocol` (checked by the command line).
Wire make_wire(const std::string& protocol) {
  Wire wire;
  wire.name = protocol;
  if (protocol == "v1") {
    wire.delivery_bytes = kMessageBytes;
    wire.join = [](std::uint64_t) { return std::string(); };
    wire.decoder = [] { return std::make_unique<V1Decoder>(); };
  } else if (protocol == "v2") {
    wire.delivery_bytes = v2::kMaxFrameSize;  // CHAT_BROADCAST, 52 bytes
    const auto request = v2::encode(v2::ChatRequest{std::string(kMessageBytes, '0')});
    wire.publish_prefix.assign(reinterpret_cast<const char*>(request.data()), v2::kHeaderSize);
    const std::string id_prefix = "b" + std::to_string(getpid() % 100000) + "-";
    wire.join = [id_prefix](std::uint64_t index) {
      const auto frame = v2::encode(v2::LoginRequest{id_prefix + std::to_string(index)});
      return std::string(reinterpret_cast<const char*>(frame.data()), frame.size());
    };
    wire.decoder = [] { return std::make_unique<V2Decoder>(); };
  } else if (protocol == "redis") {
    const std::string publish = resp_command({"PUBLISH", kChannel, std::string(kMessageBytes, '0')});
    wire.publish_prefix = publish.substr(0, publish.size() - kMessageBytes - 2);
    wire.publish_suffix = "\r\n";
    wire.delivery_bytes = resp_command({"message", kChannel, std::string(kMessageBytes, '0')}).size();
    wire.separate_publishers = true;
    wire.join = [](std::uint64_t) { return resp_command({"SUBSCRIBE", kChannel}); };
    wire.decoder = [] { return std::make_unique<RedisDecoder>(); };
  } else {  // nats
    const std::string size = std::to_string(kMessageBytes);
    const std::string channel(kChannel);
    wire.publish_prefix = "PUB " + channel + " " + size + "\r\n";
    wire.publish_suffix = "\r\n";
    wire.delivery_bytes = ("MSG " + channel + " 1 " + size + "\r\n").size() + kMessageBytes + 2;
    wire.join = [channel](std::uint64_t) {
      return "CONNECT {\"verbose\":false,\"pedantic\":false,\"echo\":true}\r\nSUB " + channel +
             " 1\r\nPING\r\n";
    };
    wire.decoder = [] { return std::make_unique<NatsDecoder>(); };
  }
  return wire;
}

// ---------------------------------------------------------------------------
// The load generator: shared state, connections, receivers, publishers.

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
  /// W - 1 when W is a power of two (the default and rate mode's), so that finding a
  /// message's slot costs an AND rather than a division; 0 otherwise.
  const std::uint64_t window_mask = std::has_single_bit(window_size) ? window_size - 1 : 0;
  /// Per publisher, W counters: receivers of message s count in slot s % W.
  std::unique_ptr<std::atomic<std::uint32_t>[]> slots;
  /// Per publisher: every message below this has reached all N clients.
  std::unique_ptr<std::atomic<std::uint64_t>[]> delivered_upto;
  /// Per publisher: messages sent so far.
  std::unique_ptr<std::atomic<std::uint64_t>[]> published;
  std::atomic<std::uint64_t> joined{0};      ///< Clients whose join the server confirmed.
  std::atomic<std::uint64_t> probed{0};      ///< Clients that received a probe.
  std::atomic<std::uint64_t> deliveries{0};  ///< Messages received, all phases.
  std::atomic<std::uint64_t> failures{0};    ///< Closed connections, server errors, garbage.
  std::atomic<std::uint64_t> progress{0};    ///< Bumped by receivers; publishers wait on it.
  std::atomic<bool> publishing{false};       ///< Publishers run while true.
  std::atomic<bool> stop{false};             ///< Receivers run while false.
  std::atomic<std::uint64_t> measure_start{
      ~std::uint64_t{0}};                                     ///< Messages sent in [start, end) are measured.
  std::atomic<std::uint64_t> measure_end{~std::uint64_t{0}};  ///< See measure_start.

  /// Records that one receiver got message `sequence` of `publisher`.
  void count_delivery(std::uint64_t publisher, std::uint64_t sequence) {
    const std::uint64_t in_window = window_mask != 0 ? sequence & window_mask : sequence % window_size;
    auto& slot = slots[publisher * window_size + in_window];
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

/// What one non-blocking send of an Outbox did.
enum class FlushResult : std::uint8_t {
  sent,     ///< Some bytes left.
  idle,     ///< Nothing was waiting.
  blocked,  ///< The socket's send buffer is full (EAGAIN).
  broken,   ///< The connection failed.
};

/// Bytes waiting to leave on one socket that two threads may write: a publisher's
/// commands and a receiver's protocol replies (nats PONG). Whole commands are appended
/// under the lock, so a reply never lands inside a half-sent message.
class Outbox {
 public:
  /// Writes to `socket` (non-blocking; owned by the Client).
  explicit Outbox(NativeSocket socket) : socket_(socket) {}

  /// Guards bytes(); hold it while appending or flushing.
  std::mutex& mutex() { return mutex_; }
  /// The buffer to append whole commands to (under mutex()).
  std::vector<std::byte>& bytes() { return bytes_; }
  /// Bytes appended but not yet sent (under mutex()).
  std::size_t pending() const { return bytes_.size() - start_; }
  /// One non-blocking send of what is pending (under mutex()).
  FlushResult flush_locked() {
    if (pending() == 0) return FlushResult::idle;
    const ssize_t sent = ::send(socket_, bytes_.data() + start_, pending(), MSG_NOSIGNAL);
    if (sent < 0 && (errno == EAGAIN || errno == EINTR)) return FlushResult::blocked;
    if (sent <= 0) return FlushResult::broken;
    start_ += static_cast<std::size_t>(sent);
    if (start_ == bytes_.size()) {
      bytes_.clear();
      start_ = 0;
    }
    return FlushResult::sent;
  }
  /// Appends `extra` and sends until nothing is pending, sleeping (without the lock)
  /// while the socket is full; false on a broken connection or after `timeout`.
  bool send_all(std::span<const std::byte> extra, std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    {
      const std::lock_guard lock(mutex_);
      bytes_.insert(bytes_.end(), extra.begin(), extra.end());
    }
    for (;;) {
      {
        const std::lock_guard lock(mutex_);
        FlushResult result = FlushResult::sent;
        while (result == FlushResult::sent) result = flush_locked();
        if (result == FlushResult::idle) return true;
        if (result == FlushResult::broken) return false;
      }
      if (Clock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }

 private:
  std::mutex mutex_;              ///< Serialises writers of this socket.
  std::vector<std::byte> bytes_;  ///< [start_, end) not yet sent.
  std::size_t start_ = 0;         ///< First unsent byte.
  NativeSocket socket_;           ///< Borrowed.
};

/// One connection as its receiver thread sees it.
struct Client {
  /// Takes a connected non-blocking socket; `receiving` = one of the N receivers.
  Client(Socket connected, std::uint64_t number, bool receiving, std::unique_ptr<Decoder> stream_decoder)
      : socket(std::move(connected)),
        outbox(socket.native()),
        decoder(std::move(stream_decoder)),
        index(number),
        receives(receiving) {}
  Socket socket;                     ///< Non-blocking, TCP_NODELAY.
  Outbox outbox;                     ///< Everything sent on it (join, publishes, replies).
  std::unique_ptr<Decoder> decoder;  ///< Cuts what the server sends.
  std::uint64_t index = 0;           ///< Receivers 0..N-1 (below P they publish); redis publishers N..N+P-1.
  bool receives = true;              ///< One of the N receivers (false: a redis publishing connection).
  std::size_t row = 0;               ///< Receivers: position among its thread's receivers (pair rows).
  bool joined = false;               ///< The server confirmed the join.
  bool probed = false;               ///< A probe has arrived.
  bool closed = false;               ///< Broken: closed by the server or failed.
};

/// A receiver thread: its connections on one epoll, its own counts and histogram.
class ReceiverThread final : private Events {
 public:
  /// Registers nothing yet; add() connections, then start().
  explicit ReceiverThread(Shared& shared) : shared_(shared), epoll_(epoll_create1(0)) {}
  /// Joins the thread (if still running) and closes the epoll instance.
  ~ReceiverThread() override {
    join();
    ::close(epoll_);
  }
  ReceiverThread(const ReceiverThread&) = delete;
  ReceiverThread& operator=(const ReceiverThread&) = delete;

  /// Takes a connected client; it is read from this thread only.
  void add(std::unique_ptr<Client> client) {
    if (client->receives) client->row = receivers_++;
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u64 = clients_.size();
    epoll_ctl(epoll_, EPOLL_CTL_ADD, client->socket.native(), &event);
    clients_.push_back(std::move(client));
  }
  /// Starts reading.
  void start() {
    pairs_.resize(receivers_ * shared_.publishers);
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
        if (client.closed) continue;
        const ssize_t got = ::recv(client.socket.native(), buffer.data(), buffer.size(), 0);
        if (got > 0) {
          current_ = &client;
          received_at_ = now_ns();
          client.decoder->feed(std::span(buffer.data(), static_cast<std::size_t>(got)), *this);
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
  void fail(Client& client, const std::string& why) {
    if (client.closed) return;
    client.closed = true;
    epoll_ctl(epoll_, EPOLL_CTL_DEL, client.socket.native(), nullptr);
    shared_.failures.fetch_add(1);
    std::fprintf(stderr, "chat_bench: %s %llu: %s\n", client.receives ? "client" : "publishing connection",
                 static_cast<unsigned long long>(client.index), why.c_str());
  }

  // Events of the client being decoded (current_).
  /// A message for the current client: check, count and time it.
  void message(const std::byte* text) override {
    if (current_->closed) return;
    if (!current_->receives) return fail(*current_, "a message on a publishing-only connection");
    on_message(*current_, text);
  }
  /// The current client's join is confirmed (counted once).
  void joined() override {
    if (current_->joined) return;
    current_->joined = true;
    shared_.joined.fetch_add(1);
  }
  /// Sends a protocol reply on the current client's connection.
  void reply(std::string_view bytes) override {
    if (!current_->outbox.send_all(as_bytes(bytes), std::chrono::seconds(1)))
      fail(*current_, "cannot answer the server");
  }
  /// The current client's stream is broken.
  void failure(const std::string& why) override { fail(*current_, why); }

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
    PairState& pair = pairs_[client.row * shared_.publishers + message.publisher];
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
      histogram_.record(received_at_ > message.time ? received_at_ - message.time : 0);
    }
  }

  Shared& shared_;                                ///< Phase flags, windows, totals.
  int epoll_;                                     ///< This thread's epoll instance.
  std::vector<std::unique_ptr<Client>> clients_;  ///< Position = epoll data.
  std::size_t receivers_ = 0;                     ///< Receiving clients among clients_.
  Client* current_ = nullptr;                     ///< The client whose bytes are being decoded.
  /// When current_'s bytes were read: the arrival time of every message in them. One
  /// clock read per read() rather than per message is cheaper, and truer too — time
  /// spent decoding the earlier messages of a buffer is not the server's.
  std::uint64_t received_at_ = 0;
  std::vector<PairState> pairs_;        ///< [row * P + publisher].
  Histogram histogram_;                 ///< Latencies of measured messages.
  std::uint64_t measured_ = 0;          ///< Measured messages received.
  std::uint64_t batch_deliveries_ = 0;  ///< Added to shared_.deliveries per batch.
  std::thread thread_;                  ///< Runs run().
};

/// One publisher's sending state.
struct Publisher {
  Outbox* outbox = nullptr;  ///< Its connection's (a receiving client's, or its own for redis).
  std::uint64_t number = 0;  ///< 0..P-1.
  std::uint64_t next = 0;    ///< Next sequence to send.
};

/// Sends the publishers' messages until shared.publishing is false, then flushes.
class PublisherThread {
 public:
  /// Each publish is `wire.publish_prefix`, the 32-byte message, `wire.publish_suffix`.
  PublisherThread(Shared& shared, std::vector<Publisher> publishers, const Wire& wire,
                  std::uint64_t rate_per_publisher)
      : shared_(shared),
        publishers_(std::move(publishers)),
        prefix_(as_bytes(wire.publish_prefix)),
        suffix_(as_bytes(wire.publish_suffix)) {
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
    // Messages counted as published must leave, or they would be counted as lost.
    for (Publisher& publisher : publishers_) publisher.outbox->send_all({}, std::chrono::seconds(5));
  }

 private:
  /// Appends the messages this publisher may send now; true if any.
  bool fill(Publisher& publisher, std::uint64_t start, std::uint64_t& next_due) {
    const std::uint64_t limit =
        shared_.delivered_upto[publisher.number].load(std::memory_order_acquire) + shared_.window_size;
    const std::uint64_t now = now_ns();
    bool added = false;
    const std::lock_guard lock(publisher.outbox->mutex());
    std::vector<std::byte>& out = publisher.outbox->bytes();
    while (publisher.next < limit && publisher.outbox->pending() < 64 * 1024) {
      std::uint64_t stamp = now;
      if (interval_ns_ != 0) {
        stamp = start + publisher.next * interval_ns_;  // the scheduled time, not the actual one
        if (stamp > now) {
          next_due = std::min(next_due, stamp);
          break;
        }
      }
      out.insert(out.end(), prefix_.begin(), prefix_.end());
      const std::size_t at = out.size();
      out.resize(at + kMessageBytes);
      format_message(reinterpret_cast<char*>(out.data() + at), publisher.number, publisher.next, stamp);
      out.insert(out.end(), suffix_.begin(), suffix_.end());
      ++publisher.next;
      shared_.published[publisher.number].store(publisher.next, std::memory_order_relaxed);
      added = true;
    }
    return added;
  }
  /// Sends what is pending (non-blocking, one call); true if bytes left.
  static bool flush(Publisher& publisher) {
    FlushResult result;
    {
      const std::lock_guard lock(publisher.outbox->mutex());
      result = publisher.outbox->flush_locked();
    }
    if (result == FlushResult::blocked) std::this_thread::sleep_for(std::chrono::microseconds(100));
    return result == FlushResult::sent;
  }

  Shared& shared_;                     ///< Windows and phase.
  std::vector<Publisher> publishers_;  ///< The publishing connections.
  std::span<const std::byte> prefix_;  ///< Before each message (ver.2 header, PUBLISH/PUB head).
  std::span<const std::byte> suffix_;  ///< After each message (CRLF for redis and nats).
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

/// CPU seconds of several processes together; -1 if none given or one is unreadable.
double processes_cpu_seconds(const std::vector<std::uint64_t>& pids) {
  if (pids.empty()) return -1;
  double total = 0;
  for (const std::uint64_t pid : pids) {
    const double seconds = process_cpu_seconds(pid);
    if (seconds < 0) return -1;
    total += seconds;
  }
  return total;
}

/// Resident memory (VmRSS) of a process in bytes from /proc/PID/status; 0 if unreadable.
std::uint64_t process_rss_bytes(std::uint64_t pid) {
  std::ifstream file("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(file, line)) {
    if (!line.starts_with("VmRSS:")) continue;
    std::size_t kib = 0;
    std::string_view digits = std::string_view(line).substr(6);
    while (!digits.empty() && (digits.front() == ' ' || digits.front() == '\t')) digits.remove_prefix(1);
    digits = digits.substr(0, digits.find(' '));
    return parse_decimal(digits, kib) ? std::uint64_t{kib} * 1024 : 0;
  }
  return 0;
}

/// Resident memory of several processes together; 0 if one is unreadable.
std::uint64_t processes_rss_bytes(const std::vector<std::uint64_t>& pids) {
  std::uint64_t total = 0;
  for (const std::uint64_t pid : pids) {
    const std::uint64_t bytes = process_rss_bytes(pid);
    if (bytes == 0) return 0;
    total += bytes;
  }
  return total;
}

/// Parses "A,B,C" into numbers in [minimum, maximum]; returns an error message, or "" when accepted.
std::string parse_number_list(std::string_view text, std::uint64_t minimum, std::uint64_t maximum,
                              std::vector<std::uint64_t>& numbers) {
  numbers.clear();
  while (true) {
    const auto comma = text.find(',');
    std::size_t value = 0;
    if (!parse_decimal(text.substr(0, comma), value) || value < minimum || value > maximum)
      return "'" + std::string(text.substr(0, comma)) + "' is not a number from " + std::to_string(minimum) +
             " to " + std::to_string(maximum);
    numbers.push_back(value);
    if (comma == std::string_view::npos) return "";
    text.remove_prefix(comma + 1);
  }
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

/// The receiver threads and every connection they read; stops and joins them when destroyed.
struct Fleet {
  /// `threads` receiver threads, not started.
  Fleet(Shared& shared_state, std::uint64_t thread_count) : shared(shared_state) {
    for (std::uint64_t t = 0; t < thread_count; ++t)
      threads.push_back(std::make_unique<ReceiverThread>(shared));
  }
  /// Stops the receivers (if started) before the connections close.
  ~Fleet() { stop(); }
  Fleet(const Fleet&) = delete;
  Fleet& operator=(const Fleet&) = delete;
  /// Tells the receivers to stop and waits for them.
  void stop() {
    shared.stop = true;
    for (auto& thread : threads) thread->join();
  }

  Shared& shared;                                        ///< The receivers' stop flag.
  std::vector<std::unique_ptr<ReceiverThread>> threads;  ///< Connections are dealt round-robin.
  std::vector<Outbox*> receivers;                        ///< Receiver i's connection (owned by a thread).
  std::vector<Outbox*> publishers;                       ///< Publisher p's connection.
  std::uint64_t dealt = 0;                               ///< Connections dealt so far.
};

/// Connects the N receivers (and, with `publishing`, redis's separate publisher connections),
/// starts the receiver threads, sends every join and waits until the server confirmed all.
/// Returns 0, or 2 after printing why not.
int connect_and_join(const Options& options, const Wire& wire, Shared& shared, Fleet& fleet,
                     bool publishing) {
  // Client i (and redis's publisher connection p) goes to port i (p) mod K.
  auto connect = [&](std::uint64_t index, std::uint64_t port_index, bool receiving) -> Outbox* {
    Socket socket;
    try {
      socket = connect_to(options.host, options.ports[port_index % options.ports.size()]);
    } catch (const std::exception& error) {
      std::fprintf(stderr, "chat_bench: connection %llu cannot connect: %s\n",
                   static_cast<unsigned long long>(index), error.what());
      return nullptr;
    }
    set_no_delay(socket);
    fcntl(socket.native(), F_SETFL, fcntl(socket.native(), F_GETFL) | O_NONBLOCK);
    auto client = std::make_unique<Client>(std::move(socket), index, receiving, wire.decoder());
    Outbox* outbox = &client->outbox;
    fleet.threads[fleet.dealt++ % fleet.threads.size()]->add(std::move(client));
    return outbox;
  };
  for (std::uint64_t i = 0; i < options.clients; ++i) {
    fleet.receivers.push_back(connect(i, i, true));
    if (fleet.receivers.back() == nullptr) return 2;
  }
  for (std::uint64_t p = 0; publishing && p < options.publishers; ++p) {
    fleet.publishers.push_back(wire.separate_publishers ? connect(options.clients + p, p, false)
                                                        : fleet.receivers[p]);
    if (fleet.publishers.back() == nullptr) return 2;
  }
  for (auto& thread : fleet.threads) thread->start();

  // Join: log in (ver.2), SUBSCRIBE (redis), CONNECT + SUB + PING (nats); ver.1 has no join.
  if (wire.join(0).empty()) return 0;
  for (std::uint64_t i = 0; i < options.clients; ++i) {
    if (!fleet.receivers[i]->send_all(as_bytes(wire.join(i)), std::chrono::seconds(5))) {
      std::fprintf(stderr, "chat_bench: client %llu cannot send its join\n",
                   static_cast<unsigned long long>(i));
      return 2;
    }
  }
  // Many joins take a while (ver.2 tells everyone of every login): give up only
  // when no confirmation arrived for 30 s.
  std::uint64_t confirmed = 0;
  auto last_change = Clock::now();
  while (shared.joined.load() != options.clients && shared.failures.load() == 0 &&
         Clock::now() - last_change < std::chrono::seconds(30)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (shared.joined.load() != confirmed) confirmed = shared.joined.load(), last_change = Clock::now();
  }
  if (shared.joined.load() != options.clients || shared.failures.load() != 0) {
    std::fprintf(stderr, "chat_bench: the server confirmed only %llu of %llu joins\n",
                 static_cast<unsigned long long>(shared.joined.load()),
                 static_cast<unsigned long long>(options.clients));
    return 2;
  }
  return 0;
}

/// --idle-memory: the server's RSS before N clients connect and after all joined and
/// the server went quiet; prints the growth per connection. Returns the exit code.
int run_idle_memory(const Options& options) {
  NetworkSession network;
  const Wire wire = make_wire(options.protocol);
  Shared shared(options, 1);
  const std::uint64_t before = processes_rss_bytes(options.server_pids);
  if (before == 0) {
    std::fprintf(stderr, "chat_bench: cannot read VmRSS of every --server-pid\n");
    return 2;
  }
  const std::uint64_t start = now_ns();
  Fleet fleet(shared, options.receivers);
  if (const int code = connect_and_join(options, wire, shared, fleet, false); code != 0) return code;
  // Let the server finish what the joins caused (ver.2 sends USER_JOINED to everyone):
  // measure once nothing has arrived for a second.
  std::uint64_t seen = shared.progress.load();
  auto last_change = Clock::now();
  while (Clock::now() - last_change < std::chrono::seconds(1)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (shared.progress.load() != seen) seen = shared.progress.load(), last_change = Clock::now();
  }
  const std::uint64_t after = processes_rss_bytes(options.server_pids);
  const double seconds = static_cast<double>(now_ns() - start) / 1e9;
  const double per_client =
      (static_cast<double>(after) - static_cast<double>(before)) / static_cast<double>(options.clients);
  std::printf("chat_bench idle-memory %s clients=%llu (all joined, %.1f s)\n", options.protocol.c_str(),
              static_cast<unsigned long long>(options.clients), seconds);
  std::printf("server RSS before %.1f MiB, after %.1f MiB: %.0f bytes per idle connection\n",
              static_cast<double>(before) / 1048576.0, static_cast<double>(after) / 1048576.0, per_client);
  if (!options.json.empty()) {
    std::ofstream json(options.json);
    char text[512];
    std::snprintf(
        text, sizeof text,
        "{\"protocol\": \"%s\", \"clients\": %llu, \"rss_before_bytes\": %llu, \"rss_after_bytes\": "
        "%llu,\n \"bytes_per_connection\": %.1f, \"failures\": %llu}\n",
        options.protocol.c_str(), static_cast<unsigned long long>(options.clients),
        static_cast<unsigned long long>(before), static_cast<unsigned long long>(after), per_client,
        static_cast<unsigned long long>(shared.failures.load()));
    json << text;
  }
  return shared.failures.load() == 0 ? 0 : 1;
}

/// Runs the fan-out benchmark; returns the exit code.
int run(const Options& options) {
  NetworkSession network;
  const Wire wire = make_wire(options.protocol);
  const std::uint64_t window = options.rate != 0 ? kRateModeWindow : options.window;
  Shared shared(options, window);

  // 1. Connect every client (dealt round-robin to the receiver threads) and join.
  Fleet fleet(shared, options.receivers);
  if (const int code = connect_and_join(options, wire, shared, fleet, true); code != 0) return code;

  // 2. Prove every client receives: publisher 0 sends probes until all N saw one
  // (ver.1 has no join, so a probe may beat a connection's registration).
  bool all_probed = false;
  std::uint64_t probes = 0;  // probe messages sent (counted in the JSON's "sent")
  for (std::uint64_t attempt = 0; attempt < 50 && !all_probed; ++attempt, ++probes) {
    std::string probe = wire.publish_prefix + std::string(kMessageBytes, ' ') + wire.publish_suffix;
    format_message(probe.data() + wire.publish_prefix.size(), kProbePublisher, attempt, now_ns());
    if (!fleet.publishers[0]->send_all(as_bytes(probe), std::chrono::seconds(5))) break;
    all_probed =
        wait_until([&] { return shared.probed.load() == options.clients; }, std::chrono::milliseconds(200));
  }
  if (!all_probed) {
    std::fprintf(stderr, "chat_bench: only %llu of %llu clients received the probe\n",
                 static_cast<unsigned long long>(shared.probed.load()),
                 static_cast<unsigned long long>(options.clients));
    return 2;
  }

  // 3. Publish: warm-up, then the measured window, with a progress line each second.
  const std::uint64_t start = now_ns();
  const std::uint64_t measure_start = start + options.warmup * 1'000'000'000;
  shared.measure_end = measure_start + options.duration * 1'000'000'000;
  shared.measure_start = measure_start;
  std::vector<Publisher> publishers(options.publishers);
  for (std::uint64_t p = 0; p < options.publishers; ++p) {
    publishers[p].outbox = fleet.publishers[p];
    publishers[p].number = p;
  }
  const std::uint64_t rate_per_publisher =
      options.rate == 0 ? 0
                        : std::max<std::uint64_t>(1, options.rate / (options.clients * options.publishers));
  PublisherThread publisher(shared, std::move(publishers), wire, rate_per_publisher);
  shared.publishing = true;
  std::thread publisher_thread([&publisher] { publisher.run(); });
  double cpu_start = 0, server_cpu_start = 0;
  std::uint64_t last_deliveries = 0;
  bool measuring = false;
  if (options.warmup == 0) {  // the measured window starts now: so does the CPU count
    measuring = true;
    cpu_start = own_cpu_seconds();
    server_cpu_start = processes_cpu_seconds(options.server_pids);
  }
  for (std::uint64_t second = 1; second <= options.warmup + options.duration; ++second) {
    std::this_thread::sleep_until(
        Clock::time_point(std::chrono::nanoseconds(start + second * 1'000'000'000)));
    if (!measuring && now_ns() >= measure_start) {
      measuring = true;
      cpu_start = own_cpu_seconds();
      server_cpu_start = processes_cpu_seconds(options.server_pids);
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
  const double server_cpu_end = processes_cpu_seconds(options.server_pids);
  shared.publishing = false;
  shared.progress.fetch_add(1);
  shared.progress.notify_all();
  publisher_thread.join();

  // 4. Drain: wait until every sent message reached every client, or 5 s without progress.
  std::uint64_t sent_total = 0;
  for (std::uint64_t p = 0; p < options.publishers; ++p) sent_total += shared.published[p].load();
  std::uint64_t seen = shared.deliveries.load();
  auto last_change = Clock::now();
  while (shared.deliveries.load() < sent_total * options.clients &&
         Clock::now() - last_change < std::chrono::seconds(5)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (shared.deliveries.load() != seen) seen = shared.deliveries.load(), last_change = Clock::now();
  }
  fleet.stop();

  // 5. Report.
  Histogram latency;
  std::uint64_t delivered = 0, lost = 0, reordered = 0, duplicated = 0;
  for (auto& thread : fleet.threads) {
    latency.merge(thread->histogram());
    delivered += thread->measured();
    thread->add_integrity(lost, reordered, duplicated);
  }
  const double seconds = static_cast<double>(options.duration);
  // Published in the window: messages with a (scheduled) stamp in it, per publisher = N deliveries each.
  const double published_per_s =
      static_cast<double>(delivered) / static_cast<double>(options.clients) / seconds;
  const double delivered_per_s = static_cast<double>(delivered) / seconds;
  const double megabytes_per_s = delivered_per_s * static_cast<double>(wire.delivery_bytes) / 1e6;
  const double bench_cpu = 100.0 * cpu / wall;
  const double server_cpu =
      server_cpu_start < 0 || server_cpu_end < 0 ? -1 : 100.0 * (server_cpu_end - server_cpu_start) / wall;
  auto us = [](std::uint64_t ns) { return static_cast<double>(ns) / 1000.0; };
  std::printf("chat_bench %s clients=%llu publishers=%llu %s warmup=%llus duration=%llus%s\n",
              options.protocol.c_str(), static_cast<unsigned long long>(options.clients),
              static_cast<unsigned long long>(options.publishers),
              options.rate != 0 ? ("rate=" + std::to_string(options.rate) + "/s").c_str()
                                : ("window=" + std::to_string(options.window)).c_str(),
              static_cast<unsigned long long>(options.warmup),
              static_cast<unsigned long long>(options.duration),
              options.ports.size() > 1 ? (" ports=" + std::to_string(options.ports.size())).c_str() : "");
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
    char text[2048];
    std::snprintf(
        text, sizeof text,
        "{\"protocol\": \"%s\", \"clients\": %llu, \"ports\": %zu, \"publishers\": %llu, "
        "\"window\": %llu, \"rate\": %llu,\n"
        " \"warmup_s\": %llu, \"duration_s\": %llu, \"published_per_s\": %.1f, \"delivered_per_s\": %.1f,\n"
        " \"delivered\": %llu, \"sent\": %llu, \"delivery_bytes\": %zu, \"mb_per_s\": %.3f,\n"
        " \"latency_us\": {\"p50\": %.1f, \"p90\": %.1f, \"p99\": %.1f, \"p99_9\": %.1f, \"max\": %.1f},\n"
        " \"lost\": %llu, \"reordered\": %llu, \"duplicated\": %llu, \"failures\": %llu,\n"
        " \"bench_cpu_percent\": %.1f, \"server_cpu_percent\": %.1f}\n",
        options.protocol.c_str(), static_cast<unsigned long long>(options.clients), options.ports.size(),
        static_cast<unsigned long long>(options.publishers), static_cast<unsigned long long>(options.window),
        static_cast<unsigned long long>(options.rate), static_cast<unsigned long long>(options.warmup),
        static_cast<unsigned long long>(options.duration), published_per_s, delivered_per_s,
        static_cast<unsigned long long>(delivered), static_cast<unsigned long long>(sent_total + probes),
        wire.delivery_bytes, megabytes_per_s, us(latency.percentile(0.50)), us(latency.percentile(0.90)),
        us(latency.percentile(0.99)), us(latency.percentile(0.999)), us(latency.max()),
        static_cast<unsigned long long>(lost), static_cast<unsigned long long>(reordered),
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
      "fan-out load generator: N clients on a chat server (ver.1, ver.2, redis-server or nats-server), "
      "P publish 32-byte messages, all receive; reports throughput, latency, loss/reorder/duplication "
      "(exit 1 if any)",
      "Example: chat_bench --port 42006 --protocol v2 --clients 100 --duration 10 --server-pid $(pidof "
      "v2_server)\n"
      "         chat_bench --port 6379 --protocol redis --clients 100 --rate 50000\n"
      "         chat_bench --port 42001,42002,42003 --protocol v2 --clients 300 --rate 20000   (3 v3_server "
      "nodes)\n"
      "         chat_bench --port 4222 --protocol nats --clients 10000 --idle-memory --server-pid "
      "$(pidof nats-server)");
  command_line.text("--host", "ADDRESS", "server address (default 127.0.0.1)", options.host);
  command_line.custom("--port", "PORT[,PORT...]",
                      "server port (default 42006); several ports (a ver.3 cluster's nodes): client i "
                      "connects to the (i mod K)-th of the K ports, so do publishers",
                      [&options](std::string_view value) -> std::string {
                        std::vector<std::uint64_t> ports;
                        if (auto error = iocp_chat::bench::parse_number_list(value, 1, 65535, ports);
                            !error.empty())
                          return "--port: " + error;
                        options.ports.assign(ports.begin(), ports.end());
                        return "";
                      });
  command_line.custom(
      "--protocol", "v1|v2|redis|nats",
      "v1: raw 32-byte records (P = 1 only); v2: log in, CHAT_REQUEST/CHAT_BROADCAST (default); "
      "redis: SUBSCRIBE chat, each publisher PUBLISHes on an extra connection of its own; "
      "nats: CONNECT, SUB chat, PING/PONG to confirm, clients 0..P-1 PUB (echo on)",
      [&options](std::string_view value) -> std::string {
        if (value != "v1" && value != "v2" && value != "redis" && value != "nats")
          return "--protocol must be v1, v2, redis or nats";
        options.protocol = std::string(value);
        return "";
      });
  command_line.number("--clients", "N: connected clients, all receiving (default 10)", options.clients, 1,
                      100000);
  command_line.number("--publishers",
                      "P: the first P clients also publish (redis: P extra connections) (default 1)",
                      options.publishers, 1, 1000);
  command_line.number("--window", "messages not yet delivered to all, per publisher (default 64)",
                      options.window, 1, 1 << 20);
  command_line.number(
      "--rate", "offered deliveries/s in total, latency from the scheduled time (default 0 = window mode)",
      options.rate, 0, 1'000'000'000);
  command_line.number("--warmup", "seconds of warm-up, not measured (default 1)", options.warmup, 0, 3600);
  command_line.number("--duration", "seconds measured (default 5)", options.duration, 1, 3600);
  command_line.number("--receivers", "receiver threads, 1 or 2 (default 1)", options.receivers, 1, 2);
  command_line.custom(
      "--server-pid", "PID[,PID...]",
      "PID of the server, to report its CPU use (and, with --idle-memory, its RSS) from "
      "/proc; several are summed (a cluster's nodes and nats-server) (default: not reported)",
      [&options](std::string_view value) -> std::string {
        if (auto error = iocp_chat::bench::parse_number_list(value, 0, 1u << 30, options.server_pids);
            !error.empty())
          return "--server-pid: " + error;
        std::erase(options.server_pids, 0);  // 0 = unknown, as before
        return "";
      });
  command_line.flag("--idle-memory",
                    "only connect N clients, let each join (log in / subscribe) and print the server's RSS "
                    "growth per idle connection (needs --server-pid)",
                    options.idle_memory);
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
  if (options.idle_memory) {
    if (options.server_pids.empty()) {
      std::fprintf(stderr, "chat_bench: --idle-memory needs --server-pid\n");
      return 2;
    }
    return iocp_chat::bench::run_idle_memory(options);
  }
  return iocp_chat::bench::run(options);
}
