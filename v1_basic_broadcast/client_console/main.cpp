// main.cpp — v1_client, the ver.1 console chat client (Linux and Windows).
//
// Idea: a chat client waits for two things at once — the keyboard and the
// network — and a blocking call waits for only one. This client gives each
// wait its own thread:
//
//   receiver  socket -> screen. Blocks on the socket, cuts the byte stream
//             into lines and prints each one as soon as it is complete,
//             counting them. TCP may cut a line in two or glue two together,
//             and ver.1 marks nothing on the wire but the "\n" at the end of
//             each line, so an unfinished line waits for the next receive
//             (LineAssembler, shared with the WinAPI client).
//   keyboard  stdin -> main. Blocks on the keyboard and hands each typed line
//             to the main thread. (Not started in scripted mode.)
//   main      the only thread that sends, and the one that decides when the
//             program ends: the user leaves, --expect is met or times out,
//             or the connection ends.
//
// The threads share one ChatState under a mutex; a condition variable wakes
// the main thread whenever it changes. The WinAPI client (client_win32/)
// solves the same problem without threads: WSAAsyncSelect turns "data
// arrived" into a window message, so one message loop waits for both.
//
// Wire format (docs/protocol.md, ver.1): each line goes out as its UTF-8
// bytes plus "\n"; whatever arrives is the server's unchanged copy of what
// some client sent — there is no sender name on the wire in ver.1.
#include <algorithm>
#include <array>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include "common/clients/console/console_io.hpp"
#include "common/clients/console/keyboard.hpp"
#include "common/clients/console/line_schedule.hpp"
#include "common/clients/console/options.hpp"
#include "iocp_chat/socket.hpp"
#include "line_assembler.hpp"

namespace iocp_chat::v1_client {
namespace {

// The terminal and the command line are shared with ver.2's client
// (common/clients/console/).
using console::ClientOptions;
using console::LineSchedule;
using console::write_error;
using console::write_output;

using Clock = std::chrono::steady_clock;

constexpr int kExitOk = 0;       ///< Left normally, or the server closed the connection.
constexpr int kExitFailure = 1;  ///< Could not connect, lost the connection, --expect failed.
constexpr int kExitUsage = 2;    ///< Bad command line.

/// Bytes asked for per receive: the original program's 1024-byte buffer.
constexpr std::size_t kReceiveBufferBytes = 1024;

/// How often the receiver looks up from the socket to see whether it must stop.
constexpr int kStopCheckMs = 100;

/// After leaving (half-close), how long to wait for the echo of the last lines.
constexpr auto kEchoWait = std::chrono::seconds(2);

/// ver.1's words for the shared command line (console::parse_options).
console::ClientProgram describe_program() {
  console::ClientProgram program;
  program.program = "v1_client";
  program.summary =
      "the ver.1 console chat client: sends each line you type, prints every line the server broadcasts";
  program.epilogue =
      R"(Interactive mode (no --send): type a line and press Enter to send it.
/quit, or the end of input (Ctrl+D; Ctrl+Z then Enter on Windows), leaves.
Every line received is printed as soon as its "\n" arrives, your own
lines too: the server sends every line to every client.

Exit codes: 0 left normally, or the server closed the connection;
            1 could not connect, lost the connection, or --expect failed;
            2 bad command line.

Examples:
  v1_client
  v1_client --host 127.0.0.1 --port 42006 --name alice
  v1_client --name bob --send "hi all" --send "bye" --delay 500 --expect 4)";
  program.name_option = "--name";
  program.name_value = "NAME";
  program.name_help = "print \"[NAME] \" before each line received, to tell clients apart";
  program.expect_help = "leave (exit 0) once N lines have arrived, echoes of your own included";
  return program;
}

/// What the threads share. Every field is guarded by `lock`, and `changed`
/// is notified after every change, so the main thread can sleep until
/// something happens.
struct ChatState {
  std::mutex lock;                      ///< Guards every field below.
  std::condition_variable changed;      ///< Wakes the main thread after a change.
  std::size_t lines_received = 0;       ///< Lines printed so far, own echoes included.
  bool connection_ended = false;        ///< The receiver saw the end of the stream or an error.
  std::error_code connection_error;     ///< Why it ended, if it was an error.
  std::deque<std::string> typed_lines;  ///< Keyboard -> main: lines waiting to be sent.
  bool input_ended = false;             ///< The keyboard reached the end of input.
  bool quit_requested = false;          ///< The user typed /quit.
};

/// Prints one received line, as "[name] line" when --name was given.
void print_line(const std::string& name, std::string_view line) {
  std::string text;
  if (!name.empty()) text = "[" + name + "] ";
  text.append(line);
  text.push_back('\n');
  write_output(text);
}

/// Prints a status or error message on standard error.
void print_status(const ClientOptions& options, std::string_view message) {
  std::string text = "v1_client";
  if (!options.name.empty()) text += " (" + options.name + ")";
  text += ": ";
  text.append(message);
  text.push_back('\n');
  write_error(text);
}

/// The receiver thread: prints every complete line as soon as it arrives,
/// until the connection ends or the main thread asks it to stop.
void receive_loop(const Socket& socket, ChatState& state, const std::string& name,
                  const std::stop_token& stop) {
  v1::LineAssembler assembler;
  std::array<std::byte, kReceiveBufferBytes> buffer{};
  std::error_code error;
  while (!stop.stop_requested()) {
    // Wait a little at a time instead of blocking in recv: closing a socket
    // from another thread does not reliably wake a recv on every OS, and
    // the main thread must be able to end this one when the program leaves.
    if (!wait_readable(socket, kStopCheckMs)) continue;
    const std::size_t count = receive_some(socket, buffer, error);
    if (error || count == 0) {
      // 0 bytes means the server closed its side: the end of the stream.
      // What is left of an unfinished last line is printed now, since no
      // "\n" can come for it any more.
      const std::string rest = assembler.take_rest();
      if (!rest.empty()) print_line(name, rest);
      const std::lock_guard guard(state.lock);
      if (!rest.empty()) ++state.lines_received;
      state.connection_ended = true;
      state.connection_error = error;
      state.changed.notify_all();
      return;
    }
    const auto lines = assembler.feed({reinterpret_cast<const char*>(buffer.data()), count});
    for (const std::string& line : lines) print_line(name, line);
    if (!lines.empty()) {
      const std::lock_guard guard(state.lock);
      state.lines_received += lines.size();
      state.changed.notify_all();
    }
  }
}

/// Says why the connection ended, and picks the exit code.
int report_connection_end(const ClientOptions& options, const ChatState& state) {
  if (state.connection_error) {
    print_status(options, "connection lost: " + state.connection_error.message());
    return kExitFailure;
  }
  if (options.expected_lines && state.lines_received < *options.expected_lines) {
    print_status(options, "server closed the connection after " + std::to_string(state.lines_received) +
                              " of " + std::to_string(*options.expected_lines) + " expected lines");
    return kExitFailure;
  }
  print_status(options, "server closed the connection");
  return kExitOk;
}

/// Leaves politely: a half-close, then a short wait for the echo of what
/// was sent last.
int leave(const ClientOptions& options, const Socket& socket, ChatState& state) {
  // shutdown(SD_SEND) tells the server "nothing more from me" but keeps this
  // side readable, so echoes still in flight arrive. The ver.1 server
  // answers the end of our stream by closing its side, which ends the wait.
  shutdown_send(socket);
  std::unique_lock guard(state.lock);
  state.changed.wait_for(guard, kEchoWait, [&] { return state.connection_ended; });
  if (state.connection_ended && state.connection_error) {
    print_status(options, "connection lost: " + state.connection_error.message());
    return kExitFailure;
  }
  return kExitOk;
}

/// The main thread's loop: sends lines when they are due and ends the chat
/// when one of the conditions in the file header is met.
int chat(const ClientOptions& options, const Socket& socket, ChatState& state) {
  const auto deadline = Clock::now() + options.timeout;  // only used with --expect
  LineSchedule schedule(options, Clock::now());

  std::unique_lock guard(state.lock);
  for (;;) {
    const auto now = Clock::now();
    if (options.expected_lines && state.lines_received >= *options.expected_lines) return kExitOk;
    if (state.connection_ended) return report_connection_end(options, state);
    if (options.expected_lines && now >= deadline) {
      print_status(options, "timed out after " + std::to_string(options.timeout.count()) + " ms: received " +
                                std::to_string(state.lines_received) + " of " +
                                std::to_string(*options.expected_lines) + " expected lines");
      return kExitFailure;
    }

    // The lines to send now: the next --send line once its delay is over,
    // or whatever the user has typed.
    const std::vector<std::string> outgoing = schedule.take_due(now, state.typed_lines);
    if (!outgoing.empty()) {
      // Never hold the lock across I/O: the receiver needs it to report lines.
      guard.unlock();
      for (const std::string& line : outgoing) {
        // One send per line, so each line leaves as one run of bytes.
        if (const std::error_code error = send_all(socket, line + "\n")) {
          print_status(options, "cannot send: " + error.message());
          return kExitFailure;
        }
      }
      guard.lock();
      continue;
    }

    // Lines typed before /quit have been sent by now; /quit leaves at once,
    // the end of input only when no --expect is waiting for more lines.
    if (state.quit_requested) break;
    if (schedule.finished(state.input_ended) && !options.expected_lines) break;  // nothing more to say: leave

    // Sleep until another thread changes the state, or the next timed event.
    const auto wake_at = schedule.wake_at(options.expected_lines ? std::optional(deadline) : std::nullopt);
    if (wake_at) {
      state.changed.wait_until(guard, *wake_at);
    } else {
      state.changed.wait(guard);
    }
  }
  guard.unlock();
  return leave(options, socket, state);
}

/// Connects, starts the threads, chats, and returns the exit code.
int run(const ClientOptions& options) {
  const NetworkSession network;  // WSAStartup on Windows
  Socket socket;
  try {
    socket = connect_to(options.host, options.port);
  } catch (const std::system_error& error) {
    print_status(options, error.what());  // e.g. "cannot connect to ...: Connection refused"
    return kExitFailure;
  }
  set_no_delay(socket);  // a chat line should leave at once, not wait for more bytes
  print_status(options, "connected to " + options.host + ":" + std::to_string(options.port) +
                            (options.scripted() ? "" : "; type a line and press Enter, /quit to leave"));

  const auto state = std::make_shared<ChatState>();
  // A jthread asks its function to stop and joins it when it goes out of
  // scope, so the receiver has ended before the socket is closed, on every
  // path out of this function.
  const std::jthread receiver(
      [&](const std::stop_token& stop) { receive_loop(socket, *state, options.name, stop); });
  if (!options.scripted()) std::thread(console::read_keyboard<ChatState>, state).detach();

  return chat(options, socket, *state);
}

}  // namespace
}  // namespace iocp_chat::v1_client

int main(int argc, char** argv) {
  using namespace iocp_chat::v1_client;
  iocp_chat::console::prepare_console();
  ClientOptions options;
  switch (iocp_chat::console::parse_options(iocp_chat::console::utf8_arguments(argc, argv),
                                            describe_program(), options)) {
    case iocp_chat::ParseOutcome::help:
      return kExitOk;
    case iocp_chat::ParseOutcome::error:
      return kExitUsage;
    case iocp_chat::ParseOutcome::run:
      break;
  }
  try {
    return run(options);
  } catch (const std::exception& error) {
    write_error(std::string("v1_client: ") + error.what() + "\n");
    return kExitFailure;
  }
}
