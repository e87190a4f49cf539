// main.cpp — v2_client, the ver.2 console chat client (Linux and Windows).
//
// Idea: packets turn a byte stream into a conversation. ver.1's client
// printed whatever bytes came; this one speaks the ver.2 protocol
// (docs/protocol.md): it logs in with an id, sends each typed line as
// CHAT_REQUEST packets, and reads the server's frames with a FrameAssembler,
// so a frame split across receives, or several frames in one receive, make
// no difference. What arrives now says who sent it:
//
//   CHAT_BROADCAST  ->  [alice] hello          (your own messages too)
//   USER_JOINED     ->  * bob joined
//   USER_LEFT       ->  * bob left
//   LOGIN_RESPONSE, ERROR  ->  plain words on standard error
//
// The session has two phases, both run by the main thread:
//
//   log in    send LOGIN_REQUEST (--id, or an id typed at the prompt) and
//             wait for LOGIN_RESPONSE. ID_TAKEN or INVALID_ID leave the
//             connection open: the client says why and asks for another id
//             (with --send it exits 1 instead: a script cannot answer).
//   converse  send each typed (or --send) line, cut into messages of at most
//             32 bytes between code points (chat_text.hpp), until /quit,
//             the end of input, --expect, or the end of the connection.
//
// The threads are ver.1's: a receiver (socket -> screen), a keyboard thread
// (stdin -> main) and the main thread, the only one that sends. They share
// one ChatState under a mutex, and a condition variable wakes the main
// thread whenever it changes — also when the receiver has a LOGIN_RESPONSE
// for it. The terminal code, the command line, the keyboard thread and the
// send schedule are shared with ver.1's client (common/clients/console/:
// console_io, options, keyboard.hpp and line_schedule).
#include <algorithm>
#include <array>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include "chat_text.hpp"
#include "common/clients/console/console_io.hpp"
#include "common/clients/console/keyboard.hpp"
#include "common/clients/console/line_schedule.hpp"
#include "common/clients/console/options.hpp"
#include "common/protocol/packets.hpp"
#include "iocp_chat/socket.hpp"

namespace iocp_chat::v2_client {
namespace {

using console::ClientOptions;
using console::LineSchedule;
using console::write_error;
using console::write_output;

using Clock = std::chrono::steady_clock;

constexpr int kExitOk = 0;       ///< Left normally, or the server closed the connection.
constexpr int kExitFailure = 1;  ///< No connection, no login (scripted), an ERROR, or --expect failed.
constexpr int kExitUsage = 2;    ///< Bad command line.

/// Bytes asked for per receive: the original program's 1024-byte buffer.
constexpr std::size_t kReceiveBufferBytes = 1024;

/// How often the receiver looks up from the socket to see whether it must stop.
constexpr int kStopCheckMs = 100;

/// After leaving (half-close), or after a failed send, how long to wait for
/// the server's last frames and its close.
constexpr auto kGoodbyeWait = std::chrono::seconds(2);

/// What the client asks when it needs an id from the keyboard (on stderr,
/// so standard output holds only the conversation).
constexpr std::string_view kIdPrompt = "v2_client: your id (1-16 bytes of UTF-8, no spaces): ";

/// ver.2's words for the shared command line (console::parse_options).
console::ClientProgram describe_program() {
  console::ClientProgram program;
  program.program = "v2_client";
  program.summary =
      "the ver.2 console chat client: logs in with an id, sends what you type as message packets, "
      "shows who said what";
  program.epilogue =
      R"(Logging in: give --id, or type an id when asked. An id is 1-16 bytes of
UTF-8 without spaces or control characters, and only one client at a time
may use it. If the server says it is taken or invalid, you are told why and
asked for another (with --send the client exits 1 instead).
There is no --name: the id on every line says who wrote it.

Interactive mode (no --send): type a message and press Enter to send it.
A message holds at most 32 bytes, so a longer line goes out as several,
cut between characters, and arrives as several lines. Empty lines are not
sent; a line that is not valid UTF-8 is refused with a message. /quit, or
the end of input (Ctrl+D; Ctrl+Z then Enter on Windows), leaves.

What you see: "[id] message" for each message, your own too (the server
sends every message to everyone logged in), and "* id joined" / "* id left"
when someone comes or goes. Status and errors go to standard error.
Scripted mode (--send, needs --id): --delay counts from the login.

Exit codes: 0 left normally, or the server closed the connection;
            1 could not connect, lost the connection, the server sent an
              ERROR, the login failed in scripted mode, or --expect failed;
            2 bad command line.

Examples:
  v2_client
  v2_client --host 127.0.0.1 --port 42006 --id alice
  v2_client --id bob --send "hi all" --send "bye" --delay 500 --expect 4)";
  program.name_option = "--id";
  program.name_value = "ID";
  program.name_help = "log in as ID at once instead of asking for it (scripted mode needs it)";
  program.expect_help =
      "leave (exit 0) once N \"[id] message\" or \"* id joined/left\" lines have been shown, your own "
      "messages included";
  return program;
}

/// Checks that only ver.2 has: scripted mode needs --id, and an --id must be
/// a valid id. Prints the problem; false for a bad command line.
bool check_v2_options(const ClientOptions& options) {
  std::string problem;
  if (options.scripted() && options.name.empty()) {
    problem = "scripted mode (--send) cannot answer the login prompt; give --id too";
  } else if (const std::string why = id_problem(options.name); !options.name.empty() && !why.empty()) {
    problem = "--id '" + printable(options.name) + "' is not a valid id: " + why;
  }
  if (problem.empty()) return true;
  write_error("v2_client: " + problem + " (try --help)\n");
  return false;
}

/// What the threads share. Every field is guarded by `lock`, and `changed`
/// is notified after every change, so the main thread can sleep until
/// something happens.
struct ChatState {
  std::mutex lock;                                ///< Guards every field below.
  std::condition_variable changed;                ///< Wakes the main thread after a change.
  std::size_t lines_shown = 0;                    ///< "[id] message" and "* id ..." lines printed so far.
  std::optional<v2::LoginResponse> login_answer;  ///< Receiver -> main: the answer to the last login.
  std::optional<v2::ErrorCode> server_error;      ///< The server sent ERROR; it closes the connection next.
  std::string broken_stream;                      ///< Why the server's bytes were not ver.2 frames, if so.
  bool connection_ended = false;        ///< The receiver stopped: end of stream, error or bad bytes.
  std::error_code connection_error;     ///< Why it ended, if it was a socket error.
  std::deque<std::string> typed_lines;  ///< Keyboard -> main: lines waiting to be used.
  bool input_ended = false;             ///< The keyboard reached the end of input.
  bool quit_requested = false;          ///< The user typed /quit.
  bool finished = false;                ///< The main thread is ending the chat: show nothing more.
};

/// Prints a status or error message on standard error.
void print_status(std::string_view message) {
  std::string text = "v2_client: ";
  text.append(message);
  text.push_back('\n');
  write_error(text);
}

/// Prints one line of the conversation and counts it for --expect. Printed
/// under the lock, so that once the main thread has decided to end (say,
/// --expect 3 is met) no fourth line slips out while the receiver stops.
void show_line(ChatState& state, const std::string& line) {
  const std::lock_guard guard(state.lock);
  if (state.finished) return;
  write_output(line + "\n");
  ++state.lines_shown;
  state.changed.notify_all();
}

/// Receiver: shows one packet from the server, or hands it to the main
/// thread (LOGIN_RESPONSE). False for a packet that only clients send.
bool take_packet(const v2::Packet& packet, ChatState& state) {
  if (const auto* chat = std::get_if<v2::ChatBroadcast>(&packet)) {
    show_line(state, "[" + printable(chat->user_id) + "] " + printable(chat->message));
  } else if (const auto* joined = std::get_if<v2::UserJoined>(&packet)) {
    show_line(state, "* " + printable(joined->user_id) + " joined");
  } else if (const auto* left = std::get_if<v2::UserLeft>(&packet)) {
    show_line(state, "* " + printable(left->user_id) + " left");
  } else if (const auto* answer = std::get_if<v2::LoginResponse>(&packet)) {
    const std::lock_guard guard(state.lock);
    state.login_answer = *answer;
    state.changed.notify_all();
  } else if (const auto* error = std::get_if<v2::ErrorPacket>(&packet)) {
    print_status(describe_error(error->code));  // at once: the close follows
    const std::lock_guard guard(state.lock);
    state.server_error = error->code;
    state.changed.notify_all();
  } else {
    return false;  // LOGIN_REQUEST or CHAT_REQUEST: the client -> server packets
  }
  return true;
}

/// Receiver: records why it stopped and wakes the main thread.
void end_connection(ChatState& state, std::error_code error, std::string broken_stream = {}) {
  const std::lock_guard guard(state.lock);
  state.connection_ended = true;
  state.connection_error = error;
  state.broken_stream = std::move(broken_stream);
  state.changed.notify_all();
}

// [receive-loop]
/// The receiver thread: reassembles frames from whatever each receive
/// brings and takes them one by one, until the connection ends, the server
/// sends something that is not ver.2, or the main thread asks it to stop.
void receive_loop(const Socket& socket, ChatState& state, const std::stop_token& stop) {
  v2::FrameAssembler assembler;
  std::array<std::byte, kReceiveBufferBytes> buffer{};
  std::error_code error;
  while (!stop.stop_requested()) {
    // Wait a little at a time instead of blocking in recv, so that the main
    // thread can end this one (see v1_client for why).
    if (!wait_readable(socket, kStopCheckMs)) continue;
    const std::size_t count = receive_some(socket, buffer, error);
    if (error || count == 0) {
      // 0 bytes: the server closed its side. Unlike ver.1 there is no "rest
      // of a line" to print: an unfinished frame is no packet at all.
      const bool cut_short = !error && assembler.buffered() > 0;
      end_connection(state, error,
                     cut_short ? "the server closed the connection in the middle of a frame" : "");
      return;
    }
    assembler.feed(std::span<const std::byte>(buffer.data(), count));
    std::span<const std::byte> frame;
    v2::ErrorCode bad_header = v2::ErrorCode::malformed_frame;
    for (;;) {
      const v2::FrameAssembler::Status status = assembler.next(frame, bad_header);
      if (status == v2::FrameAssembler::Status::need_more) break;
      if (status == v2::FrameAssembler::Status::error) {
        end_connection(state, {},
                       "the server sent bytes that are not a ver.2 frame (" +
                           std::string(v2::to_string(bad_header)) +
                           "); is it a ver.1 server, or another program?");
        return;
      }
      const v2::Decoded decoded = v2::decode(frame);
      if (!decoded.packet) {
        end_connection(state, {},
                       "the server sent a frame this client cannot read (" +
                           std::string(v2::to_string(decoded.error)) + "); is it another protocol version?");
        return;
      }
      if (!take_packet(*decoded.packet, state)) {
        end_connection(
            state, {},
            "the server sent a " + std::string(v2::to_string(v2::type_of(*decoded.packet))) +
                ", a packet only clients send; is it a ver.1 server, echoing this client's bytes?");
        return;
      }
    }
  }
}
// [receive-loop]

/// The main thread's side of one connection: logs in, then converses, and
/// decides when the program ends and with which exit code.
class ChatSession {
 public:
  /// A session over a connected socket; --expect's deadline starts now.
  ChatSession(const ClientOptions& options, const Socket& socket, ChatState& state)
      : options_(options), socket_(socket), state_(state), deadline_(Clock::now() + options.timeout) {}

  /// Logs in, chats, and returns the exit code.
  int run() {
    const std::optional<int> login_failed = log_in();
    const int exit_code = login_failed ? *login_failed : converse();
    const std::lock_guard guard(state_.lock);
    state_.finished = true;  // the receiver may still run a moment: it shows nothing more
    return exit_code;
  }

 private:
  /// Sends LOGIN_REQUESTs — with --id, then with ids typed at the prompt —
  /// until the server answers OK. std::nullopt once logged in; otherwise
  /// the exit code, when the client must end first.
  std::optional<int> log_in() {
    std::string id = options_.name;  // --id; empty: ask for one
    for (;;) {
      if (id.empty()) {
        write_error(kIdPrompt);
        std::unique_lock guard(state_.lock);
        if (!wait_for(guard, [&] {
              return !state_.typed_lines.empty() || state_.input_ended || state_.quit_requested;
            })) {
          return report_wait_end(guard);
        }
        if (state_.typed_lines.empty()) {
          if (state_.quit_requested) return kExitOk;
          print_status("the input ended before a login succeeded");
          return kExitFailure;
        }
        id = std::move(state_.typed_lines.front());
        state_.typed_lines.pop_front();
        if (id.empty()) continue;  // just Enter: ask again
      }
      // Checked here too (the server checks again): a wrong id costs no round trip.
      if (const std::string why = id_problem(id); !why.empty()) {
        print_status("'" + printable(id) + "' cannot be an id: " + why);
        id.clear();
        continue;
      }

      if (!send_frames(v2::encode(v2::LoginRequest{id}))) return report_send_failure();
      std::unique_lock guard(state_.lock);
      if (!wait_for(guard, [&] { return state_.login_answer.has_value(); })) return report_wait_end(guard);
      const v2::LoginStatus status = std::exchange(state_.login_answer, std::nullopt)->status;
      guard.unlock();

      if (status == v2::LoginStatus::ok) {
        print_status(describe_login(status, id) +
                     (options_.scripted() ? "" : "; type a message and press Enter, /quit to leave"));
        return std::nullopt;
      }
      print_status(describe_login(status, id));
      if (status == v2::LoginStatus::already_logged_in) return std::nullopt;  // still logged in: go on
      if (options_.scripted()) return kExitFailure;  // ID_TAKEN or INVALID_ID; nobody to ask
      id.clear();                                    // ask for another
    }
  }

  /// Sends lines when they are due and ends the chat when one of the
  /// conditions in the file header is met.
  int converse() {
    LineSchedule schedule(options_, Clock::now());  // the first --delay counts from the login

    std::unique_lock guard(state_.lock);
    for (;;) {
      const auto now = Clock::now();
      if (options_.expected_lines && state_.lines_shown >= *options_.expected_lines) {
        state_.finished = true;  // exactly N lines: decided under the lock the receiver prints under
        return kExitOk;
      }
      if (state_.connection_ended) return report_end(guard);
      if (options_.expected_lines && now >= deadline_) return report_timeout(guard);

      // The lines to send now: the next --send line once its delay is over,
      // or whatever the user has typed.
      const std::vector<std::string> outgoing = schedule.take_due(now, state_.typed_lines);
      if (!outgoing.empty()) {
        // Never hold the lock across I/O: the receiver needs it to report lines.
        guard.unlock();
        for (const std::string& line : outgoing) {
          if (!send_line(line)) return report_send_failure();
        }
        guard.lock();
        continue;
      }

      // Lines typed before /quit have been sent by now; /quit leaves at once,
      // the end of input only when no --expect is waiting for more lines.
      if (state_.quit_requested) break;
      if (schedule.finished(state_.input_ended) && !options_.expected_lines) break;  // nothing more to say

      // Sleep until another thread changes the state, or the next timed event.
      const auto wake_at =
          schedule.wake_at(options_.expected_lines ? std::optional(deadline_) : std::nullopt);
      if (wake_at) {
        state_.changed.wait_until(guard, *wake_at);
      } else {
        state_.changed.wait(guard);
      }
    }
    guard.unlock();
    return leave();
  }

  // [send-line]
  /// Sends one line as CHAT_REQUESTs, or refuses it with a message; an empty
  /// line is not sent. False if the connection failed.
  bool send_line(const std::string& line) {
    if (line.empty()) return true;
    if (const std::string why = line_problem(line); !why.empty()) {
      print_status("not sent: " + why);
      return true;
    }
    // All the pieces of a line in one send: the frames say where each
    // message ends, so the server takes them apart again.
    std::vector<std::byte> frames;
    for (std::string& message : split_message(line)) v2::encode(v2::ChatRequest{std::move(message)}, frames);
    return send_frames(frames);
  }
  // [send-line]

  /// Sends whole frames; false (and send_error_ set) if the connection failed.
  bool send_frames(const std::vector<std::byte>& frames) {
    send_error_ = send_all(socket_, frames);
    return !send_error_;
  }

  /// Sleeps until `ready` holds, the connection ends or --expect's deadline
  /// passes; returns whether `ready` holds.
  template <class Ready>
  bool wait_for(std::unique_lock<std::mutex>& guard, Ready ready) {
    const auto done = [&] { return ready() || state_.connection_ended; };
    if (options_.expected_lines) {
      state_.changed.wait_until(guard, deadline_, done);
    } else {
      state_.changed.wait(guard, done);
    }
    return ready();
  }

  /// Leaves politely: a half-close, then a short wait for the echo of what
  /// was sent last and for the server to close its side.
  int leave() {
    // shutdown(SD_SEND) tells the server "nothing more from me" but keeps
    // this side readable, so broadcasts still in flight arrive.
    shutdown_send(socket_);
    std::unique_lock guard(state_.lock);
    state_.changed.wait_for(guard, kGoodbyeWait, [&] { return state_.connection_ended; });
    const bool went_wrong = state_.connection_error || state_.server_error || !state_.broken_stream.empty();
    if (state_.connection_ended && went_wrong) return report_end(guard);
    return kExitOk;
  }

  /// A send failed: the connection is gone, and the server may have said
  /// why (an ERROR) before it closed. Let the receiver read that first.
  int report_send_failure() {
    std::unique_lock guard(state_.lock);
    state_.changed.wait_for(guard, kGoodbyeWait, [&] { return state_.connection_ended; });
    if (state_.server_error || !state_.broken_stream.empty()) return report_end(guard);
    print_status("cannot send: " + send_error_.message());
    return kExitFailure;
  }

  /// After a wait that ended without what it waited for: the connection
  /// ended, or --expect's time ran out.
  int report_wait_end(std::unique_lock<std::mutex>& guard) {
    return state_.connection_ended ? report_end(guard) : report_timeout(guard);
  }

  /// Says why the connection ended, and picks the exit code. Lock held.
  int report_end(std::unique_lock<std::mutex>& /*guard*/) {
    if (!state_.broken_stream.empty()) {
      print_status(state_.broken_stream);
      return kExitFailure;
    }
    if (state_.server_error) {  // its explanation is printed already
      print_status("the server closed the connection");
      return kExitFailure;
    }
    if (state_.connection_error) {
      print_status("connection lost: " + state_.connection_error.message());
      return kExitFailure;
    }
    if (options_.expected_lines && state_.lines_shown < *options_.expected_lines) {
      print_status("the server closed the connection after " + std::to_string(state_.lines_shown) + " of " +
                   std::to_string(*options_.expected_lines) + " expected lines");
      return kExitFailure;
    }
    print_status("the server closed the connection");
    return kExitOk;
  }

  /// --expect's time ran out. Lock held.
  int report_timeout(std::unique_lock<std::mutex>& /*guard*/) {
    print_status("timed out after " + std::to_string(options_.timeout.count()) + " ms: shown " +
                 std::to_string(state_.lines_shown) + " of " + std::to_string(*options_.expected_lines) +
                 " expected lines");
    return kExitFailure;
  }

  const ClientOptions& options_;  ///< The command line.
  const Socket& socket_;          ///< The connection; only this thread sends on it.
  ChatState& state_;              ///< Shared with the receiver and keyboard threads.
  Clock::time_point deadline_;    ///< When --expect gives up.
  std::error_code send_error_;    ///< Why the last send failed, if it did.
};

/// Connects, starts the threads, runs the session, and returns the exit code.
int run(const ClientOptions& options) {
  const NetworkSession network;  // WSAStartup on Windows
  Socket socket;
  try {
    socket = connect_to(options.host, options.port);
  } catch (const std::system_error& error) {
    print_status(error.what());  // e.g. "cannot connect to ...: Connection refused"
    return kExitFailure;
  }
  set_no_delay(socket);  // a chat message should leave at once, not wait for more bytes
  print_status("connected to " + options.host + ":" + std::to_string(options.port));

  const auto state = std::make_shared<ChatState>();
  // A jthread asks its function to stop and joins it when it goes out of
  // scope, so the receiver has ended before the socket is closed, on every
  // path out of this function.
  const std::jthread receiver([&](const std::stop_token& stop) { receive_loop(socket, *state, stop); });
  if (!options.scripted()) std::thread(console::read_keyboard<ChatState>, state).detach();

  ChatSession session(options, socket, *state);
  return session.run();
}

}  // namespace
}  // namespace iocp_chat::v2_client

int main(int argc, char** argv) {
  using namespace iocp_chat::v2_client;
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
  if (!check_v2_options(options)) return kExitUsage;
  try {
    return run(options);
  } catch (const std::exception& error) {
    write_error(std::string("v2_client: ") + error.what() + "\n");
    return kExitFailure;
  }
}
