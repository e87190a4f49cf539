// framing_demo.cpp — v1_framing_demo: shows, with the real ver.1 server, that
// TCP does not keep messages apart.
//
// Why this program exists: TCP carries a stream of bytes, not messages. One
// send() is not one receive on the other side: two sends may come out of one
// receive (merged), one send may need several receives (split). ver.1 sends
// raw bytes, so its clients must find the messages again themselves. They
// cut the stream at "\n" (LineAssembler), which repairs merging and
// splitting. It cannot repair the third case shown here: the server forwards
// whatever bytes it has read. If it has read half of alice's line when bob's
// line arrives, carol receives half a line, then bob's line, then the rest.
//
// The program runs the real ChatServer in this process, on 127.0.0.1 and a
// free port, and connects three plain sockets: alice, bob and carol. Each
// scene waits until the bytes have really arrived in the reader's socket
// (FIONREAD) before it reads them. So the output is the same on every run,
// every backend and every OS, and the tutorial can show it. The chapter
// docs/ch05_why_framing.md shows expected_output.txt; tests/v1 checks that
// this program still prints exactly that.
//
// Usage: v1_framing_demo [--backend auto|iocp|uring|epoll]
// Exit status: 0 when every scene behaved as the text says, 1 otherwise.
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <exception>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include "chat_server.hpp"
#include "iocp_chat/command_line.hpp"
#include "iocp_chat/log.hpp"
#include "iocp_chat/socket.hpp"
#include "line_assembler.hpp"

#ifdef _WIN32
#include <fcntl.h>
#include <io.h>
#else
#include <sys/ioctl.h>
#endif

namespace iocp_chat::v1 {
namespace {

using Clock = std::chrono::steady_clock;

/// How long a scene waits for bytes before it calls the run a failure. A
/// deadline for a stuck run, not a speed limit: a normal run takes milliseconds.
constexpr auto kDeadline = std::chrono::seconds(20);

/// The receive buffer of v1_client and of the 2018 client: 1024 bytes.
constexpr std::size_t kClientBufferBytes = 1024;

/// The length of scene 2's one long line, "\n" included.
constexpr std::size_t kLongLineBytes = 1500;

/// Thrown when a scene does not behave as the text says; main prints it.
struct SceneFailed : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Prints one line of the demo's output.
void say(std::string_view text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fputc('\n', stdout);
}

/// `text` in double quotes, with "\n" written as the two characters \n.
std::string quoted(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out + "\"";
}

/// The first `keep` bytes of `text`, quoted, and "..." if there was more.
std::string preview(std::string_view text, std::size_t keep = 24) {
  if (text.size() <= keep) return quoted(text);
  return quoted(text.substr(0, keep)) + "...";
}

/// Bytes that have arrived in the socket and wait to be received (FIONREAD).
std::size_t bytes_waiting(const Socket& socket) {
#ifdef _WIN32
  u_long count = 0;
  if (::ioctlsocket(socket.native(), FIONREAD, &count) != 0) throw SceneFailed("FIONREAD failed");
#else
  int count = 0;
  if (::ioctl(socket.native(), FIONREAD, &count) != 0) throw SceneFailed("FIONREAD failed");
#endif
  return static_cast<std::size_t>(count);
}

// [wait-until-waiting]
/// Waits until at least `wanted` bytes wait in `socket`, so that the next
/// receive finds them all there.
void wait_until_waiting(const Socket& socket, std::size_t wanted, std::string_view who) {
  const auto deadline = Clock::now() + kDeadline;
  while (bytes_waiting(socket) < wanted) {
    if (Clock::now() > deadline) {
      throw SceneFailed(std::string(who) + " did not get " + std::to_string(wanted) + " bytes in time");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}
// [wait-until-waiting]

/// One receive() call with a buffer of `capacity` bytes, as a client makes it.
std::string receive_once(const Socket& socket, std::size_t capacity) {
  std::vector<std::byte> buffer(capacity);
  std::error_code error;
  const std::size_t count = receive_some(socket, buffer, error);
  if (error) throw SceneFailed("receive failed: " + error.message());
  return {reinterpret_cast<const char*>(buffer.data()), count};
}

/// Receives and drops `count` bytes: what a client got in earlier scenes.
void discard(const Socket& socket, std::size_t count) {
  wait_until_waiting(socket, count, "a client");
  while (count > 0) count -= receive_once(socket, std::min(count, kClientBufferBytes)).size();
}

/// Sends `text` with one send() call (send_all loops only if the OS takes fewer bytes).
void send_text(const Socket& socket, std::string_view text) {
  if (const std::error_code error = send_all(socket, text))
    throw SceneFailed("send failed: " + error.message());
}

/// Fails the scene unless `condition` holds.
void expect(bool condition, std::string_view what) {
  if (!condition) throw SceneFailed("unexpected: " + std::string(what));
}

// [scene-merged]
/// Scene 1: two sends from alice come out of one receive at bob.
std::size_t show_merged(const Socket& alice, const Socket& bob, std::vector<std::string>& bob_pieces) {
  say("1. Merged: two messages, one receive");
  const std::string first = "hi bob\n";
  const std::string second = "are you there?\n";
  send_text(alice, first);
  say("   alice sends " + quoted(first) + " with one send()");
  send_text(alice, second);
  say("   alice sends " + quoted(second) + " with another send()");

  // bob is busy for a moment (here: until both messages have arrived), as
  // any program sometimes is; then it reads.
  wait_until_waiting(bob, first.size() + second.size(), "bob");
  say("   bob is busy for a moment, as any program sometimes is; then it receives");
  const std::string received = receive_once(bob, kClientBufferBytes);
  say("   with a " + std::to_string(kClientBufferBytes) + "-byte buffer, and gets " +
      std::to_string(received.size()) + " bytes: " + quoted(received));
  say("   -> one receive is not one message: two messages arrived as one piece.");
  say("");
  expect(received == first + second, "bob's receive did not hold both messages");
  bob_pieces.push_back(received);
  return received.size();
}
// [scene-merged]

/// Scene 2: one send from alice needs two receives at bob.
std::size_t show_split(const Socket& alice, const Socket& bob, std::vector<std::string>& bob_pieces) {
  say("2. Split: one message, two receives");
  std::string line = "alice: ";
  for (int i = 0; line.size() < kLongLineBytes - 1; ++i) line.push_back(static_cast<char>('0' + i % 10));
  line.push_back('\n');
  send_text(alice, line);
  say("   alice sends one " + std::to_string(line.size()) + "-byte line with one send()");
  say("   bob receives with a " + std::to_string(kClientBufferBytes) +
      "-byte buffer, like v1_client and the 2018 client:");

  wait_until_waiting(bob, line.size(), "bob");
  std::string received;
  for (int number = 1; received.size() < line.size(); ++number) {
    const std::string piece = receive_once(bob, kClientBufferBytes);
    say("   receive " + std::to_string(number) + ": " + std::to_string(piece.size()) + " bytes, " +
        preview(piece));
    received += piece;
    bob_pieces.push_back(piece);
  }
  say("   -> one message arrived in two pieces.");
  say("");
  expect(received == line, "bob did not receive alice's line unchanged");
  return received.size();
}

/// Feeds bob's receives of scenes 1 and 2, piece by piece, to the ver.1
/// clients' LineAssembler: cutting at "\n" repairs merging and splitting.
void show_line_repair(const std::vector<std::string>& bob_pieces) {
  say("   The repair for 1 and 2: cut the stream at \"\\n\", as both ver.1 clients");
  say("   do (LineAssembler). Fed bob's three receives, it gives back alice's three lines:");
  LineAssembler assembler;
  std::vector<std::string> lines;
  for (const std::string& piece : bob_pieces) {
    for (std::string& line : assembler.feed(piece)) lines.push_back(std::move(line));
  }
  for (const std::string& line : lines) {
    say("     " + preview(line, 32) + " (" + std::to_string(line.size()) + " bytes)");
  }
  say("");
  expect(lines.size() == 3, "the LineAssembler did not give back three lines");
}

// [scene-interleaved]
/// Scene 3: alice's line reaches the server in two pieces, bob's line
/// arrives between them, and the server forwards all three as they come.
void show_interleaved(const Socket& alice, const Socket& bob, const Socket& carol) {
  say("3. Interleaved: half a line, another sender's line, the other half");
  say("   alice's line reaches the server in two pieces (a long line or a slow");
  say("   network does that; here, two send() calls), and bob's line comes between:");
  const std::string alice_start = "alice: hello every";
  const std::string bob_line = "bob: hi!\n";
  const std::string alice_end = "one\n";

  std::size_t expected = 0;
  send_text(alice, alice_start);
  say("   alice sends " + quoted(alice_start));
  wait_until_waiting(carol, expected += alice_start.size(), "carol");  // the server forwarded it
  send_text(bob, bob_line);
  say("   bob sends   " + quoted(bob_line));
  wait_until_waiting(carol, expected += bob_line.size(), "carol");
  send_text(alice, alice_end);
  say("   alice sends " + quoted(alice_end));
  wait_until_waiting(carol, expected += alice_end.size(), "carol");

  const std::string received = receive_once(carol, kClientBufferBytes);
  say("   carol receives " + std::to_string(received.size()) + " bytes: " + quoted(received));
  LineAssembler carol_lines;
  const std::vector<std::string> lines = carol_lines.feed(received);
  say("   carol's LineAssembler gives " + std::to_string(lines.size()) + " lines:");
  for (const std::string& line : lines) say("     " + quoted(line));
  say("   -> no reader can repair this: the server forwarded half of alice's line,");
  say("      then bob's. Only a server that knows where each message ends can");
  say("      forward whole messages: ver.2 puts every message in a frame that");
  say("      starts with its length, and forwards only complete frames.");
  expect(received == alice_start + bob_line + alice_end, "carol did not get the three pieces in order");
  expect(lines.size() == 2 && lines[0] == "alice: hello everybob: hi!",
         "carol's lines are not the mixed ones");
}
// [scene-interleaved]

/// Runs the three scenes against a server on `backend`.
void run_demo(Backend backend) {
  ServerConfig config;
  config.port = 0;  // any free port: the demo never collides with a running server
  config.backend = backend;
  config.threads = 2;
  ChatServer server(config);
  server.start();

  Socket alice = connect_to("127.0.0.1", server.port());
  Socket bob = connect_to("127.0.0.1", server.port());
  Socket carol = connect_to("127.0.0.1", server.port());
  // Everyone must be in the server's client list before the first message,
  // or a broadcast could miss someone who is still being admitted.
  const auto deadline = Clock::now() + kDeadline;
  while (server.client_count() < 3) {
    if (Clock::now() > deadline) throw SceneFailed("the server did not admit three clients in time");
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }

  say("ver.1 framing demo: the real ver.1 server and three clients, alice, bob and carol.");
  say("The server sends every byte it receives to every client.");
  say("");
  std::vector<std::string> bob_pieces;  // what each of bob's receives returned
  std::size_t broadcast_so_far = show_merged(alice, bob, bob_pieces);
  broadcast_so_far += show_split(alice, bob, bob_pieces);
  show_line_repair(bob_pieces);
  // carol received scenes 1 and 2 too (everyone does); scene 3 starts from an empty socket.
  discard(carol, broadcast_so_far);
  show_interleaved(alice, bob, carol);
  server.stop();
}

}  // namespace
}  // namespace iocp_chat::v1

int main(int argc, char** argv) {
  using namespace iocp_chat;
#ifdef _WIN32
  // Binary stdout: "\n" stays "\n", so the output is byte for byte the same
  // as on Linux and can be compared with expected_output.txt.
  _setmode(_fileno(stdout), _O_BINARY);
#endif
  Backend backend = Backend::automatic;
  CommandLine options("v1_framing_demo",
                      "shows that TCP merges and splits messages, with the real ver.1 server",
                      "Example: v1_framing_demo --backend epoll");
  options.custom("--backend", "NAME", "auto (default), iocp (Windows), uring or epoll (Linux)",
                 [&backend](std::string_view name) {
                   const auto parsed = parse_backend(name);
                   if (!parsed) return "expects auto, iocp, uring or epoll, got '" + std::string(name) + "'";
                   backend = *parsed;
                   return std::string();
                 });
  switch (options.parse(argc, argv)) {
    case ParseOutcome::help:
      return 0;
    case ParseOutcome::error:
      return 2;
    case ParseOutcome::run:
      break;
  }
  set_logging_enabled(false);  // server log lines carry times and ports: not the same twice
  try {
    const NetworkSession network;
    v1::run_demo(backend);
    std::fflush(stdout);
    return 0;
  } catch (const std::exception& error) {
    std::fflush(stdout);
    std::fprintf(stderr, "v1_framing_demo: %s\n", error.what());
    return 1;
  }
}
