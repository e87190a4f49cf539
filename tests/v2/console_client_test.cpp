// console_client_test.cpp — the ver.2 console client: its text rules alone,
// then end to end, with the real v2_server and v2_client as child processes
// talking over loopback.
//
// Idea: what ver.2 promises a user is observable from outside. A message
// says who sent it; people see each other come and go; a line longer than a
// 32-byte message arrives as several, cut between characters; a taken id is
// explained and another can be typed in; every ERROR the server can send
// becomes plain words and a non-zero exit. So the tests start the programs
// as a user would and judge them only by what they print and how they exit.
// A few tests play the server themselves, to send exactly the frames they
// want — split where they want, and the ERRORs a correct client never earns.
//
// Ordering without sleeps: a client is on the server's list once it has
// printed "logged in as ..." (the server answers LOGIN_RESPONSE OK after
// registering it), and from then on it receives every broadcast and
// presence frame. So a test waits for that line before making others talk,
// and waits for a printed line before it sends what must come after it.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <vector>

#include "chat_text.hpp"
#include "common/protocol/packets.hpp"
#include "iocp_chat/socket.hpp"
#include "process.hpp"
#include "program_checks.hpp"
#include "server_process.hpp"

#ifndef _WIN32
#include <sys/socket.h>  // accept
#endif

namespace {

using namespace std::chrono_literals;
using iocp_chat::test::ChildProcess;
using iocp_chat::test::ProcessResult;
using iocp_chat::test::run_process;
namespace v2 = iocp_chat::v2;
namespace client = iocp_chat::v2_client;

/// The programs under test, as built by this build tree (set by CMake).
constexpr const char* kServerProgram = IOCP_CHAT_V2_SERVER;
constexpr const char* kClientProgram = IOCP_CHAT_V2_CLIENT;

/// Limits for things that take milliseconds when all is well. They are
/// generous because a program's first start under Wine can take seconds;
/// they are only reached when something is broken.
constexpr auto kStartTimeout = 20s;
constexpr auto kRunTimeout = 30s;

/// A 70-byte line of Korean and ASCII. Cut blindly every 32 bytes, the
/// second piece would end with the first byte of "니" (EB 8B 88), so the
/// second message stops one byte short, where that code point starts. The pieces were worked out by
/// hand, byte by byte, not by the code under test.
constexpr char kLongLine[] = "안녕하세요 여러분! A message holds 32 bytes, 이건 깁니다.";
static_assert(sizeof kLongLine - 1 == 70, "this file must be compiled as UTF-8");
const std::vector<std::string> kLongLinePieces = {
    "안녕하세요 여러분! A mes",      // 15 + 1 + 9 + 7 = 32 bytes
    "sage holds 32 bytes, 이건 깁",  // 21 + 6 + 1 + 3 = 31 bytes: 32 would cut into "니"
    "니다.",                         // 6 + 1 = 7 bytes
};

/// The id prompt of v2_client, as far as the tests rely on it.
constexpr std::string_view kIdPrompt = "your id";

/// The text of lines, each with its "\n": what a client prints.
std::string as_output(const std::vector<std::string>& lines) {
  std::string text;
  for (const std::string& line : lines) text += line + "\n";
  return text;
}

/// Every piece of the long line, as `sender` shows them.
std::vector<std::string> long_line_as_shown(const std::string& sender) {
  std::vector<std::string> lines;
  for (const std::string& piece : kLongLinePieces) lines.push_back("[" + sender + "] " + piece);
  return lines;
}

// --- the text rules alone (chat_text.hpp) -------------------------------------

TEST(ChatText, ALongLineIsCutBetweenCodePointsIntoAsFewMessagesAsPossible) {
  EXPECT_EQ(client::split_message(kLongLine), kLongLinePieces);
  for (const std::string& piece : client::split_message(kLongLine)) {
    EXPECT_TRUE(v2::is_valid_message(piece)) << piece;
  }
}

TEST(ChatText, ShortLinesStayWholeAndBoundariesAreExact) {
  EXPECT_EQ(client::split_message(""), std::vector<std::string>{});
  EXPECT_EQ(client::split_message("hi"), std::vector<std::string>{"hi"});
  const std::string exactly_32(32, 'x');
  EXPECT_EQ(client::split_message(exactly_32), std::vector<std::string>{exactly_32});
  EXPECT_EQ(client::split_message(exactly_32 + "y"), (std::vector<std::string>{exactly_32, "y"}));
  // 4-byte code points: 9 of them are 36 bytes; 8 fit in a message.
  std::string faces;
  for (int index = 0; index < 9; ++index) faces += "\xF0\x9F\x98\x80";  // U+1F600
  const auto pieces = client::split_message(faces);
  ASSERT_EQ(pieces.size(), 2U);
  EXPECT_EQ(pieces[0].size(), 32U);
  EXPECT_EQ(pieces[1], "\xF0\x9F\x98\x80");
}

TEST(ChatText, LinesThatNoCutCanMakeValidAreRefused) {
  EXPECT_EQ(client::line_problem("fine"), "");
  EXPECT_EQ(client::line_problem(kLongLine), "");
  EXPECT_EQ(client::line_problem("tab\tand \x1b escape"), "");  // only NUL is banned in a message
  for (const std::string& bad : {std::string("\xFF"), std::string("cut \xEC\x95"), std::string("\xC0\xAF"),
                                 std::string("\xED\xA0\x80"), std::string("\xF4\x90\x80\x80")}) {
    EXPECT_NE(client::line_problem(bad).find("not valid UTF-8"), std::string::npos) << bad;
  }
  EXPECT_NE(client::line_problem(std::string("a\0b", 3)).find("NUL"), std::string::npos);
}

TEST(ChatText, IdProblemsAreNamed) {
  EXPECT_EQ(client::id_problem("alice"), "");
  EXPECT_EQ(client::id_problem("민수"), "");
  EXPECT_EQ(client::id_problem("sixteen-bytes-id"), "");
  EXPECT_EQ(client::id_problem(""), "it is empty");
  EXPECT_NE(client::id_problem("seventeen-bytes-x").find("17 bytes long"), std::string::npos);
  EXPECT_NE(client::id_problem("가나다라마바").find("18 bytes long"), std::string::npos);  // 6 syllables
  EXPECT_EQ(client::id_problem("a b"), "it contains a space");
  EXPECT_EQ(client::id_problem("a\tb"), "it contains a control character");
  EXPECT_EQ(client::id_problem("del\x7F"), "it contains a control character");
  EXPECT_EQ(client::id_problem("\xFF"), "it is not valid UTF-8 text");
}

TEST(ChatText, ControlCharactersFromTheNetworkAreNotPrintedRaw) {
  EXPECT_EQ(client::printable("plain 한글\ttab"), "plain 한글\ttab");
  EXPECT_EQ(client::printable("\x1b[2Jfake\nline"), "\xEF\xBF\xBD[2Jfake\xEF\xBF\xBDline");
}

TEST(ChatText, EveryErrorCodeAndLoginStatusHasItsOwnWords) {
  const v2::ErrorCode codes[] = {v2::ErrorCode::malformed_frame, v2::ErrorCode::unknown_type,
                                 v2::ErrorCode::not_logged_in,   v2::ErrorCode::invalid_text,
                                 v2::ErrorCode::slow_consumer,   v2::ErrorCode::server_full};
  for (const v2::ErrorCode code : codes) {
    const std::string words = client::describe_error(code);
    EXPECT_NE(words.find(v2::to_string(code)), std::string::npos) << words;
  }
  EXPECT_NE(client::describe_error(static_cast<v2::ErrorCode>(99)).find("unknown code 99"),
            std::string::npos);
  EXPECT_EQ(client::describe_login(v2::LoginStatus::ok, "alice"), "logged in as alice");
  EXPECT_NE(client::describe_login(v2::LoginStatus::id_taken, "alice").find("'alice' is taken"),
            std::string::npos);
  EXPECT_NE(client::describe_login(v2::LoginStatus::invalid_id, "a b").find("contains a space"),
            std::string::npos);
  EXPECT_NE(client::describe_login(v2::LoginStatus::already_logged_in, "x").find("ALREADY_LOGGED_IN"),
            std::string::npos);
  EXPECT_NE(client::describe_login(v2::LoginStatus::try_later, "x").find("TRY_LATER"), std::string::npos);
}

// --- end to end, with the real v2_server ------------------------------------------

/// Every test of this fixture talks to a real v2_server, started fresh on a
/// free loopback port with server_options().
class V2ConsoleClientTest : public testing::Test {
 protected:
  /// Extra command-line options for the server; none by default.
  virtual std::vector<std::string> server_options() const { return {}; }

  void SetUp() override {
    auto started = iocp_chat::test::start_server(kServerProgram, server_options(), kStartTimeout);
    ASSERT_TRUE(started.process) << "v2_server did not start; it said:\n" << started.log;
    server_ = std::move(started.process);
    port_ = started.port;
  }

  /// Starts a client against the test's server, with more options.
  std::unique_ptr<ChildProcess> start_client(std::vector<std::string> options) const {
    options.insert(options.begin(), {"--port", port_});
    return std::make_unique<ChildProcess>(kClientProgram, options);
  }

  /// Starts an interactive client with --id and waits until it is logged in.
  std::unique_ptr<ChildProcess> logged_in_client(const std::string& id) const {
    auto started = start_client({"--id", id});
    EXPECT_TRUE(started->wait_for_errors_containing("logged in as " + id, kStartTimeout))
        << started->errors();
    return started;
  }

  /// Runs a client against the test's server to its end, with `input` on stdin.
  ProcessResult run_client(std::vector<std::string> options, std::string_view input = {}) const {
    options.insert(options.begin(), {"--port", port_});
    return run_process(kClientProgram, options, kRunTimeout, input);
  }

  /// What the server has logged so far, for failure messages.
  std::string server_log() const { return "\n--- v2_server log ---\n" + server_->errors(); }

  iocp_chat::NetworkSession network_;     ///< Winsock for free_port.
  std::string port_;                      ///< The server's port, as text for command lines.
  std::unique_ptr<ChildProcess> server_;  ///< The running v2_server.
};

TEST_F(V2ConsoleClientTest, TwoClientsLogInAndChatAndEachLineSaysWhoWroteIt) {
  const auto alice = logged_in_client("alice");
  const auto bob = logged_in_client("bob");
  ASSERT_TRUE(alice->wait_for_output_containing("* bob joined\n", kRunTimeout)) << alice->output();

  // Each line is waited for by both before the next event. The server keeps
  // each sender's order (docs/protocol.md, session rule 3), not the order of
  // events between clients: it sends a message to one client after another,
  // so alice's answer could reach bob before his own "hi alice" does, and a
  // "* bob left" could overtake "hi bob" on its way to alice.
  bob->write_input("hi alice\n");
  ASSERT_TRUE(alice->wait_for_output_containing("[bob] hi alice\n", kRunTimeout)) << alice->output();
  ASSERT_TRUE(bob->wait_for_output_containing("[bob] hi alice\n", kRunTimeout)) << bob->output();
  alice->write_input("hi bob\n");
  ASSERT_TRUE(alice->wait_for_output_containing("[alice] hi bob\n", kRunTimeout)) << alice->output();
  ASSERT_TRUE(bob->wait_for_output_containing("[alice] hi bob\n", kRunTimeout)) << bob->output();
  bob->write_input("/quit\n");

  const ProcessResult bob_saw = bob->wait(kRunTimeout);
  EXPECT_EQ(bob_saw.exit_code, 0) << bob_saw.errors;
  // No "* bob joined" for bob himself: a client is not told of its own join.
  EXPECT_EQ(bob_saw.output, "[bob] hi alice\n[alice] hi bob\n");

  ASSERT_TRUE(alice->wait_for_output_containing("* bob left\n", kRunTimeout))
      << alice->output() << bob_saw.errors << server_log();
  alice->close_input();  // the end of input: alice leaves too
  const ProcessResult alice_saw = alice->wait(kRunTimeout);
  EXPECT_EQ(alice_saw.exit_code, 0) << alice_saw.errors;
  EXPECT_EQ(alice_saw.output, "* bob joined\n[bob] hi alice\n[alice] hi bob\n* bob left\n");
}

TEST_F(V2ConsoleClientTest, ASeventyByteLineArrivesAsThreeMessagesCutAtCodePoints) {
  // A scripted speaker: it leaves once it has seen its three messages.
  const auto listener = logged_in_client("listener");
  const auto speaker = start_client({"--id", "speaker", "--send", kLongLine, "--expect", "3"});
  const ProcessResult spoken = speaker->wait(kRunTimeout);
  EXPECT_EQ(spoken.exit_code, 0) << spoken.errors;
  EXPECT_EQ(spoken.output, as_output(long_line_as_shown("speaker")));

  // The listener gets the same three, and sees the speaker come and go. The
  // speaker's leaving is not ordered with its messages to others (see the
  // test above), so "* speaker left" may come before the last piece.
  ASSERT_TRUE(listener->wait_for_output_containing("* speaker left\n", kRunTimeout))
      << listener->output() << server_log();
  ASSERT_TRUE(listener->wait_for_output_containing(long_line_as_shown("speaker").back(), kRunTimeout))
      << listener->output();
  listener->close_input();
  const ProcessResult heard = listener->wait(kRunTimeout);
  EXPECT_EQ(heard.exit_code, 0) << heard.errors;
  std::vector<std::string> lines = iocp_chat::test::lines_of(heard.output);
  const auto left = std::find(lines.begin(), lines.end(), "* speaker left");
  ASSERT_NE(left, lines.end()) << heard.output;
  lines.erase(left);
  std::vector<std::string> expected{"* speaker joined"};
  for (const std::string& line : long_line_as_shown("speaker")) expected.push_back(line);
  EXPECT_EQ(lines, expected) << heard.output;
}

TEST_F(V2ConsoleClientTest, ATakenIdIsExplainedAndAnotherCanBeTypedIn) {
  const auto holder = logged_in_client("alice");

  // A second "alice", interactive: told why, asked again; a bad id is
  // refused without a round trip; "carol" works.
  const auto second = start_client({"--id", "alice"});
  ASSERT_TRUE(second->wait_for_errors_containing("the id 'alice' is taken", kStartTimeout))
      << second->errors();
  ASSERT_TRUE(second->wait_for_errors_containing(kIdPrompt, kRunTimeout)) << second->errors();
  second->write_input("bad id\n");
  ASSERT_TRUE(
      second->wait_for_errors_containing("'bad id' cannot be an id: it contains a space", kRunTimeout))
      << second->errors();
  second->write_input("carol\n");
  ASSERT_TRUE(second->wait_for_errors_containing("logged in as carol", kRunTimeout)) << second->errors();

  ASSERT_TRUE(holder->wait_for_output_containing("* carol joined\n", kRunTimeout)) << holder->output();
  second->write_input("hello from carol\n");
  ASSERT_TRUE(second->wait_for_output_containing("[carol] hello from carol\n", kRunTimeout))
      << second->errors();
  ASSERT_TRUE(holder->wait_for_output_containing("[carol] hello from carol\n", kRunTimeout))
      << holder->output();
  second->write_input("/quit\n");
  const ProcessResult carol = second->wait(kRunTimeout);
  EXPECT_EQ(carol.exit_code, 0) << carol.errors;
  EXPECT_EQ(carol.output, "[carol] hello from carol\n");

  ASSERT_TRUE(holder->wait_for_output_containing("* carol left\n", kRunTimeout))
      << holder->output() << carol.errors << server_log();
  holder->close_input();  // the end of input: alice leaves too
  const ProcessResult alice = holder->wait(kRunTimeout);
  EXPECT_EQ(alice.exit_code, 0) << alice.errors;
  // Nothing at all for the failed login as "alice": no presence frame.
  EXPECT_EQ(alice.output, "* carol joined\n[carol] hello from carol\n* carol left\n");
}

TEST_F(V2ConsoleClientTest, AScriptedClientWithATakenIdExitsOneWithTheReason) {
  const auto holder = logged_in_client("alice");
  const ProcessResult result = run_client({"--id", "alice", "--send", "hi, I am alice too"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_EQ(result.output, "");
  EXPECT_NE(result.errors.find("the id 'alice' is taken: someone else is logged in with it (ID_TAKEN)"),
            std::string::npos)
      << result.errors;
}

TEST_F(V2ConsoleClientTest, EmptyAndInvalidLinesAreNotSentAndTheClientStaysConnected) {
  // Sent as they are, the invalid lines would get this client disconnected
  // (ERROR INVALID_TEXT); the client refuses them itself and carries on.
  const auto dora = logged_in_client("dora");
  dora->write_input("\n");
  dora->write_input("bad \xFF\xFE bytes\n");
  dora->write_input(std::string("nul \0 inside\n", 13));
  dora->write_input("fine\n");
  ASSERT_TRUE(dora->wait_for_output_containing("[dora] fine\n", kRunTimeout)) << dora->errors();
  dora->close_input();
  const ProcessResult result = dora->wait(kRunTimeout);
  EXPECT_EQ(result.exit_code, 0) << result.errors;
  EXPECT_EQ(result.output, "[dora] fine\n");
  EXPECT_NE(result.errors.find("not sent: it is not valid UTF-8"), std::string::npos) << result.errors;
  EXPECT_NE(result.errors.find("not sent: it contains a NUL byte"), std::string::npos) << result.errors;
}

TEST_F(V2ConsoleClientTest, ExpectTimesOutWithANonZeroExitAndAMessage) {
  const ProcessResult result = run_client({"--id", "eve", "--expect", "3", "--timeout", "300"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.errors.find("timed out after 300 ms: shown 0 of 3 expected lines"), std::string::npos)
      << result.errors;
}

TEST_F(V2ConsoleClientTest, ServerClosingTheConnectionIsReportedAndEndsTheClient) {
  const auto client = logged_in_client("frank");
  server_->terminate();
  server_->wait(kRunTimeout);

  const ProcessResult result = client->wait(kRunTimeout);
  ASSERT_FALSE(result.timed_out) << "the client kept waiting for the keyboard";
#ifdef _WIN32
  // TerminateProcess is no graceful stop: Windows may reset the connection.
  EXPECT_TRUE(result.errors.find("the server closed the connection") != std::string::npos ||
              (result.exit_code == 1 && result.errors.find("connection lost: ") != std::string::npos))
      << result.errors;
#else
  // SIGTERM is the server's orderly shutdown: it closes every connection.
  EXPECT_EQ(result.exit_code, 0) << result.errors;
  EXPECT_NE(result.errors.find("the server closed the connection"), std::string::npos) << result.errors;
#endif
}

/// A server that admits one client at a time.
class OneSeatServerTest : public V2ConsoleClientTest {
 protected:
  std::vector<std::string> server_options() const override { return {"--max-clients", "1"}; }
};

TEST_F(OneSeatServerTest, AClientTurnedAwayByAFullServerSaysSo) {
  const auto holder = logged_in_client("alice");  // takes the only seat

  // One waits at the id prompt (it sends nothing), one logs in with --id.
  const auto prompting = start_client({});
  const ProcessResult scripted = run_client({"--id", "bob", "--send", "hi"});
  const ProcessResult waiting = prompting->wait(kRunTimeout);
  for (const ProcessResult* result : {&waiting, &scripted}) {
    EXPECT_EQ(result->exit_code, 1) << result->errors;
    EXPECT_EQ(result->output, "");
    EXPECT_NE(result->errors.find("the server is full (ERROR SERVER_FULL)"), std::string::npos)
        << result->errors;
  }
}

// --- the test plays the server ---------------------------------------------------

/// The server's side of one connection, played by the test: it decides
/// exactly which frames go out and where the byte stream is cut.
class FakeServer {
 public:
  FakeServer() : listener_(iocp_chat::open_listener("127.0.0.1", 0)) {}

  /// The listening port, as text for the client's command line.
  std::string port() const { return std::to_string(iocp_chat::local_port(listener_)); }

  /// Accepts the client's connection; false if none came in time.
  bool accept() {
    if (!iocp_chat::wait_readable(listener_, static_cast<int>(kStartTimeout / 1ms))) return false;
    connection_ = iocp_chat::Socket(::accept(listener_.native(), nullptr, nullptr));
    iocp_chat::set_no_delay(connection_);
    return connection_.is_open();
  }

  /// Reads the client's next packet; std::nullopt if none came in time.
  std::optional<v2::Packet> read_packet() {
    std::span<const std::byte> frame;
    v2::ErrorCode error{};
    while (assembler_.next(frame, error) == v2::FrameAssembler::Status::need_more) {
      if (!iocp_chat::wait_readable(connection_, static_cast<int>(kRunTimeout / 1ms))) return std::nullopt;
      std::byte buffer[256];
      std::error_code receive_error;
      const std::size_t count = iocp_chat::receive_some(connection_, buffer, receive_error);
      if (count == 0) return std::nullopt;
      assembler_.feed(std::span<const std::byte>(buffer, count));
    }
    return v2::decode(frame).packet;
  }

  /// Sends raw bytes: whole frames, pieces of frames, or anything else.
  void send(std::span<const std::byte> bytes) { ASSERT_FALSE(iocp_chat::send_all(connection_, bytes)); }

  /// Closes our side: the client reads the end of the stream.
  void close() { connection_.close(); }

 private:
  iocp_chat::NetworkSession network_;  ///< Winsock on Windows.
  iocp_chat::Socket listener_;         ///< Where the client connects.
  iocp_chat::Socket connection_;       ///< The accepted client.
  v2::FrameAssembler assembler_;       ///< The client's frames.
};

/// Frames joined into one byte run.
std::vector<std::byte> frames_of(const std::vector<v2::Packet>& packets) {
  std::vector<std::byte> bytes;
  for (const v2::Packet& packet : packets) v2::encode(packet, bytes);
  return bytes;
}

TEST(V2ConsoleClient, EveryErrorCodeIsExplainedAndEndsTheClientAfterSplitFramesArrived) {
  struct Case {
    v2::ErrorCode code;
    std::string words;
  };
  const std::vector<Case> cases = {
      {v2::ErrorCode::malformed_frame, "could not read a packet from this client (ERROR MALFORMED_FRAME"},
      {v2::ErrorCode::unknown_type, "does not know a packet type this client sent (ERROR UNKNOWN_TYPE)"},
      {v2::ErrorCode::not_logged_in, "before this client had logged in (ERROR NOT_LOGGED_IN)"},
      {v2::ErrorCode::invalid_text, "refused a message as invalid text (ERROR INVALID_TEXT"},
      {v2::ErrorCode::slow_consumer, "dropped this client for reading too slowly (ERROR SLOW_CONSUMER)"},
      {v2::ErrorCode::server_full, "the server is full (ERROR SERVER_FULL)"},
  };
  for (const Case& error : cases) {
    SCOPED_TRACE(std::string(v2::to_string(error.code)));
    FakeServer server;
    ChildProcess zoe(kClientProgram, {"--port", server.port(), "--id", "zoe"});
    ASSERT_TRUE(server.accept()) << zoe.errors();
    ASSERT_EQ(server.read_packet(), v2::Packet(v2::LoginRequest{"zoe"}));

    // The login answer and a join together, then a broadcast cut in two:
    // the second half goes out only once the client has shown the join, so
    // it has read the first half and must keep it until the rest comes.
    const std::vector<std::byte> first =
        frames_of({v2::LoginResponse{v2::LoginStatus::ok, "zoe"}, v2::UserJoined{"amy"}});
    const std::vector<std::byte> chat = frames_of({v2::ChatBroadcast{"amy", "hi zoe"}});
    std::vector<std::byte> opening = first;
    opening.insert(opening.end(), chat.begin(), chat.begin() + 10);
    server.send(opening);
    ASSERT_TRUE(zoe.wait_for_output_containing("* amy joined\n", kRunTimeout)) << zoe.errors();
    std::vector<std::byte> rest(chat.begin() + 10, chat.end());
    const std::vector<std::byte> error_frame = frames_of({v2::ErrorPacket{error.code}});
    rest.insert(rest.end(), error_frame.begin(), error_frame.end());
    server.send(rest);
    server.close();  // after an ERROR the server closes the connection

    const ProcessResult result = zoe.wait(kRunTimeout);
    EXPECT_EQ(result.exit_code, 1) << result.errors;
    EXPECT_EQ(result.output, "* amy joined\n[amy] hi zoe\n");
    EXPECT_NE(result.errors.find(error.words), std::string::npos) << result.errors;
    EXPECT_NE(result.errors.find("the server closed the connection"), std::string::npos) << result.errors;
  }
}

TEST(V2ConsoleClient, InvalidIdAndAlreadyLoggedInAnswersAreExplained) {
  // A server with stricter id rules than the client's says INVALID_ID: the
  // client explains and asks again. ALREADY_LOGGED_IN means the connection
  // is logged in after all: the client says so and goes on to chat.
  FakeServer server;
  ChildProcess zoe(kClientProgram, {"--port", server.port(), "--id", "zoe"});
  ASSERT_TRUE(server.accept()) << zoe.errors();
  ASSERT_EQ(server.read_packet(), v2::Packet(v2::LoginRequest{"zoe"}));
  server.send(frames_of({v2::LoginResponse{v2::LoginStatus::invalid_id, "zoe"}}));
  ASSERT_TRUE(zoe.wait_for_errors_containing(
      "refused the id 'zoe' (INVALID_ID): it breaks the server's rules", kRunTimeout))
      << zoe.errors();
  ASSERT_TRUE(zoe.wait_for_errors_containing(kIdPrompt, kRunTimeout)) << zoe.errors();
  zoe.write_input("zed\n");
  ASSERT_EQ(server.read_packet(), v2::Packet(v2::LoginRequest{"zed"}));
  server.send(frames_of({v2::LoginResponse{v2::LoginStatus::already_logged_in, "zed"}}));
  ASSERT_TRUE(zoe.wait_for_errors_containing("(ALREADY_LOGGED_IN)", kRunTimeout)) << zoe.errors();
  zoe.write_input("hello\n");
  EXPECT_EQ(server.read_packet(), v2::Packet(v2::ChatRequest{"hello"}));
  server.close();

  const ProcessResult result = zoe.wait(kRunTimeout);
  EXPECT_EQ(result.exit_code, 0) << result.errors;
  EXPECT_NE(result.errors.find("the server closed the connection"), std::string::npos) << result.errors;
}

TEST(V2ConsoleClient, AServerThatDoesNotSpeakVer2IsRecognised) {
  struct Case {
    std::string name;
    std::vector<std::byte> reply;  ///< What the "server" sends after the login request.
    std::string words;
  };
  // A ver.1 server sends every client's bytes back, the login request too.
  const std::vector<std::byte> echoed_login = frames_of({v2::LoginRequest{"zoe"}});
  const std::string text = "hello\n";  // a ver.1 line: length 0x6865, type 0x6C6C
  std::vector<std::byte> text_bytes;
  for (const char character : text) text_bytes.push_back(static_cast<std::byte>(character));
  // And a frame that the end of the stream cuts short.
  std::vector<std::byte> half_answer = frames_of({v2::LoginResponse{v2::LoginStatus::ok, "zoe"}});
  half_answer.resize(11);
  const std::vector<Case> cases = {
      {"echo", echoed_login, "a LOGIN_REQUEST, a packet only clients send; is it a ver.1 server"},
      {"text", text_bytes, "bytes that are not a ver.2 frame"},
      {"cut", half_answer, "the server closed the connection in the middle of a frame"},
  };
  for (const Case& bad : cases) {
    SCOPED_TRACE(bad.name);
    FakeServer server;
    ChildProcess zoe(kClientProgram, {"--port", server.port(), "--id", "zoe"});
    ASSERT_TRUE(server.accept()) << zoe.errors();
    ASSERT_TRUE(server.read_packet());
    server.send(bad.reply);
    server.close();
    const ProcessResult result = zoe.wait(kRunTimeout);
    EXPECT_EQ(result.exit_code, 1) << result.errors;
    EXPECT_EQ(result.output, "");
    EXPECT_NE(result.errors.find(bad.words), std::string::npos) << result.errors;
  }
}

TEST(V2ConsoleClient, ConnectionRefusedExitsOneWithTheOsMessage) {
  const iocp_chat::NetworkSession network;
  const std::string port = std::to_string(iocp_chat::test::free_port());  // nobody listens there now
  const ProcessResult result = run_process(kClientProgram, {"--port", port, "--id", "alice"}, kRunTimeout);
  iocp_chat::test::expect_connection_refused_exit(result, port);
}

TEST(V2ConsoleClient, BadCommandLinesExitTwoWithAMessage) {
  const std::vector<iocp_chat::test::BadCommandLine> cases = {
      {{"--bogus"}, "unknown option '--bogus'"},
      {{"--name", "alice"}, "unknown option '--name'"},
      {{"--port", "70000"}, "--port expects a whole number from 1 to 65535, got '70000'"},
      {{"--send", "hi"}, "give --id too"},
      {{"--id", "a b"}, "--id 'a b' is not a valid id: it contains a space"},
      {{"--id", "seventeen-bytes-x"}, "it is 17 bytes long"},
      {{"--id", "x", "--delay", "100"}, "give at least one --send"},
      {{"--id", "x", "--timeout", "100"}, "give --expect too"},
      {{"--expect", "0"}, "--expect expects a whole number from 1"},
  };
  iocp_chat::test::expect_each_rejected(kClientProgram, cases, kRunTimeout);
}

TEST(V2ConsoleClient, HelpNamesEveryOptionAndAnExample) {
  const ProcessResult result = run_process(kClientProgram, {"--help"}, kRunTimeout);
  EXPECT_EQ(result.exit_code, 0);
  for (const char* option :
       {"--host", "--port", "--id", "--send", "--delay", "--expect", "--timeout", "--help", "/quit",
        "32 bytes", "There is no --name", "Examples:", "v2_client --id bob --send"}) {
    EXPECT_NE(result.output.find(option), std::string::npos) << option;
  }
}

}  // namespace
