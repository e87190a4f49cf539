// console_client_test.cpp — the ver.1 console client, end to end: the real
// v1_server and v1_client run as child processes and talk over loopback.
//
// Idea: what ver.1 promises a user is observable from outside — every line
// any client sends comes back to every client, the sender included,
// byte for byte; a line cut in two by TCP is still printed whole; a refused
// connection or a silent server gives a clear message and a non-zero exit.
// So each test starts the programs as a user would and judges them only by
// what they print and how they exit. One test plays the server itself, to
// cut the byte stream exactly where it wants.
//
// Ordering without sleeps: a line reaches only the clients that the server
// has already put on its list. A client's own "connected to ..." does not
// prove that (the TCP handshake completes before the server accepts), but
// the echo of its own first line does. So a test first has each receiver
// say a line and waits for the echo, then makes the others send.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

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
using iocp_chat::test::free_port;
using iocp_chat::test::lines_of;
using iocp_chat::test::ProcessResult;
using iocp_chat::test::run_process;

/// The programs under test, as built by this build tree (set by CMake).
constexpr const char* kServerProgram = IOCP_CHAT_V1_SERVER;
constexpr const char* kClientProgram = IOCP_CHAT_V1_CLIENT;

/// Limits for things that take milliseconds when all is well. They are
/// generous because a program's first start under Wine can take seconds;
/// they are only reached when something is broken.
constexpr auto kStartTimeout = 20s;
constexpr auto kRunTimeout = 30s;

/// "Hello, everyone!" in Korean: 27 bytes of UTF-8. The static_assert makes
/// sure the compiler kept the source's UTF-8 bytes as they are.
constexpr char kKoreanGreeting[] = "안녕하세요, 여러분!";
static_assert(sizeof kKoreanGreeting - 1 == 27, "this file must be compiled as UTF-8");

/// True if `first` appears before `second` in `lines` (both present).
bool appears_before(const std::vector<std::string>& lines, const std::string& first,
                    const std::string& second) {
  const auto first_at = std::find(lines.begin(), lines.end(), first);
  const auto second_at = std::find(lines.begin(), lines.end(), second);
  return first_at != lines.end() && second_at != lines.end() && first_at < second_at;
}

/// Makes an interactive client say `line` and waits for its echo: once it
/// is back, the server has the client on its list and will pass it every
/// line sent from now on.
bool has_joined(ChildProcess& client, const std::string& line) {
  client.write_input(line + "\n");
  return client.wait_for_output_containing(line + "\n", kStartTimeout);
}

/// Every test here except the command-line ones talks to a real v1_server,
/// started fresh on a free loopback port.
class ConsoleClientTest : public testing::Test {
 protected:
  void SetUp() override {
    // The port is free when we look but could be taken before the server
    // binds it; a few tries make that race harmless. (Wine also, rarely,
    // fails a CreateProcessW with "Internal error"; the next try works.)
    for (int attempt = 0; attempt < 3 && !server_; ++attempt) {
      port_ = std::to_string(free_port());
      try {
        server_ = std::make_unique<ChildProcess>(
            kServerProgram, std::vector<std::string>{"--port", port_, "--bind", "127.0.0.1"});
      } catch (const std::system_error& error) {
        server_log_ += std::string(error.what()) + "\n";
        continue;
      }
      if (!server_->wait_for_errors_containing("listening on 127.0.0.1:" + port_, kStartTimeout)) {
        server_log_ += server_->errors();
        server_.reset();
      }
    }
    ASSERT_TRUE(server_) << "v1_server did not start; it said:\n" << server_log_;
  }

  /// Starts a client against the test's server, with more options.
  std::unique_ptr<ChildProcess> start_client(std::vector<std::string> options) const {
    options.insert(options.begin(), {"--port", port_});
    return std::make_unique<ChildProcess>(kClientProgram, options);
  }

  /// Runs a client against the test's server to its end, with `input` on stdin.
  ProcessResult run_client(std::vector<std::string> options, std::string_view input = {}) const {
    options.insert(options.begin(), {"--port", port_});
    return run_process(kClientProgram, options, kRunTimeout, input);
  }

  iocp_chat::NetworkSession network_;     ///< Winsock for free_port and raw sockets.
  std::string port_;                      ///< The server's port, as text for command lines.
  std::unique_ptr<ChildProcess> server_;  ///< The running v1_server.
  std::string server_log_;                ///< What failed start attempts printed.
};

TEST_F(ConsoleClientTest, ScriptedAndTypingClientsEachSeeEveryLineInOrder) {
  // The typing client joins first, so it hears all of the scripted client's
  // lines; the scripted one has joined once its first line comes back, and
  // only then does the typing client send.
  const auto typing = start_client({"--name", "typing", "--expect", "5"});
  ASSERT_TRUE(has_joined(*typing, "typing is here")) << typing->errors();
  const auto scripted = start_client(
      {"--name", "scripted", "--send", "script line 1", "--send", "script line 2", "--expect", "4"});
  ASSERT_TRUE(scripted->wait_for_output_containing("[scripted] script line 1\n", kStartTimeout))
      << scripted->errors();
  typing->write_input("typed line 1\ntyped line 2\n");

  const std::pair<ChildProcess*, std::size_t> clients[] = {{typing.get(), 5}, {scripted.get(), 4}};
  for (const auto& [client, expected_lines] : clients) {
    const std::string name = client == typing.get() ? "typing" : "scripted";
    SCOPED_TRACE(name);
    const ProcessResult result = client->wait(kRunTimeout);
    EXPECT_EQ(result.exit_code, 0) << result.errors;
    const std::string prefix = "[" + name + "] ";
    const auto lines = lines_of(result.output);
    ASSERT_EQ(lines.size(), expected_lines) << result.output;
    // Everyone sees all four lines, each sender's in the order it sent them;
    // lines of different senders may interleave either way.
    EXPECT_TRUE(appears_before(lines, prefix + "script line 1", prefix + "script line 2")) << result.output;
    EXPECT_TRUE(appears_before(lines, prefix + "typed line 1", prefix + "typed line 2")) << result.output;
  }
}

TEST_F(ConsoleClientTest, KoreanTextArrivesByteIdentical) {
  const auto listener = start_client({"--expect", "2"});
  ASSERT_TRUE(has_joined(*listener, "ready")) << listener->errors();

  const ProcessResult speaker = run_client({"--send", kKoreanGreeting, "--expect", "1"});
  EXPECT_EQ(speaker.exit_code, 0) << speaker.errors;
  EXPECT_EQ(speaker.output, std::string(kKoreanGreeting) + "\n");  // its own echo

  const ProcessResult heard = listener->wait(kRunTimeout);
  EXPECT_EQ(heard.exit_code, 0) << heard.errors;
  EXPECT_EQ(heard.output, "ready\n" + std::string(kKoreanGreeting) + "\n");
}

TEST_F(ConsoleClientTest, TypedLinesAreEchoedBeforeTheClientLeavesAtEndOfInput) {
  // End of input: the client half-closes and still prints the echoes.
  const ProcessResult result = run_client({}, "first line\nsecond line\n");
  EXPECT_EQ(result.exit_code, 0) << result.errors;
  EXPECT_FALSE(result.timed_out);
  EXPECT_EQ(result.output, "first line\nsecond line\n");
}

TEST_F(ConsoleClientTest, QuitLeavesWithoutSendingItOrWhatFollows) {
  // The client waits for the echo of all it sent before it leaves, so a sent
  // "/quit" or "after quit" would show up in its own output.
  const ProcessResult result = run_client({}, "before quit\n/quit\nafter quit\n");
  EXPECT_EQ(result.exit_code, 0) << result.errors;
  EXPECT_EQ(result.output, "before quit\n");
}

TEST_F(ConsoleClientTest, ServerClosingTheConnectionIsReportedAndEndsTheClient) {
  // An interactive client whose keyboard then stays silent (stdin open).
  const auto client = start_client({});
  ASSERT_TRUE(has_joined(*client, "hello")) << client->errors();
  server_->terminate();
  server_->wait(kRunTimeout);

  const ProcessResult result = client->wait(kRunTimeout);
  ASSERT_FALSE(result.timed_out) << "the client kept waiting for the keyboard";
#ifdef _WIN32
  // TerminateProcess is no graceful stop: Windows may reset the server's
  // connections instead of closing them, which the client reports as an error.
  EXPECT_TRUE(result.errors.find("server closed the connection") != std::string::npos ||
              (result.exit_code == 1 && result.errors.find("connection lost: ") != std::string::npos))
      << result.errors;
#else
  // SIGTERM is the server's orderly shutdown: it closes every connection.
  EXPECT_EQ(result.exit_code, 0) << result.errors;
  EXPECT_NE(result.errors.find("server closed the connection"), std::string::npos) << result.errors;
#endif
}

TEST_F(ConsoleClientTest, ExpectTimesOutWithANonZeroExitAndAMessage) {
  const ProcessResult result = run_client({"--expect", "3", "--timeout", "300"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.errors.find("timed out after 300 ms: received 0 of 3 expected lines"), std::string::npos)
      << result.errors;
}

TEST(ConsoleClient, LinesCutAnywhereArePrintedWholeAndTheTailAtTheEndOfTheStream) {
  // Here the test plays the server, so it decides exactly where the stream
  // is cut: inside a line, and inside a Korean character (3 bytes in UTF-8).
  const iocp_chat::NetworkSession network;
  const iocp_chat::Socket listener = iocp_chat::open_listener("127.0.0.1", 0);
  const std::string port = std::to_string(iocp_chat::local_port(listener));
  ChildProcess client(kClientProgram, {"--port", port, "--name", "L"});
  ASSERT_TRUE(iocp_chat::wait_readable(listener, static_cast<int>(kStartTimeout / 1ms))) << client.errors();
  const iocp_chat::Socket connection(::accept(listener.native(), nullptr, nullptr));
  ASSERT_TRUE(connection.is_open());
  iocp_chat::set_no_delay(connection);

  // Each step ends with a complete line, and the test waits until the client
  // has printed it: so the client has read the unfinished tail that followed
  // before the next piece is sent, and must keep it until its "\n" comes.
  const std::string korean = "안";  // EC 95 88
  ASSERT_FALSE(iocp_chat::send_all(connection, "first\nsplit li"));
  ASSERT_TRUE(client.wait_for_output_containing("[L] first\n", kRunTimeout)) << client.output();
  ASSERT_FALSE(iocp_chat::send_all(connection, "ne\n" + korean.substr(0, 2)));
  ASSERT_TRUE(client.wait_for_output_containing("[L] split line\n", kRunTimeout)) << client.output();
  ASSERT_FALSE(iocp_chat::send_all(connection, korean.substr(2) + " tail"));
  // The end of the stream: the client prints the unfinished last line.
  iocp_chat::shutdown_send(connection);

  const ProcessResult result = client.wait(kRunTimeout);
  EXPECT_EQ(result.exit_code, 0) << result.errors;
  EXPECT_EQ(result.output, "[L] first\n[L] split line\n[L] " + korean + " tail\n");
  EXPECT_NE(result.errors.find("server closed the connection"), std::string::npos) << result.errors;
}

TEST(ConsoleClient, ConnectionRefusedExitsOneWithTheOsMessage) {
  const iocp_chat::NetworkSession network;
  const std::string port = std::to_string(free_port());  // nobody listens there now
  const ProcessResult result = run_process(kClientProgram, {"--port", port}, kRunTimeout);
  iocp_chat::test::expect_connection_refused_exit(result, port);
}

TEST(ConsoleClient, BadCommandLinesExitTwoWithAMessage) {
  const std::vector<iocp_chat::test::BadCommandLine> cases = {
      {{"--bogus"}, "unknown option '--bogus'"},
      {{"localhost"}, "unknown option 'localhost'"},
      {{"--port", "abc"}, "--port expects a whole number from 1 to 65535, got 'abc'"},
      {{"--port", "70000"}, "got '70000'"},
      {{"--port", "0"}, "got '0'"},
      {{"--port=12x"}, "got '12x'"},
      {{"--port"}, "--port needs a value"},
      {{"--expect", "0"}, "--expect expects a whole number from 1"},
      {{"--delay", "100"}, "give at least one --send"},
      {{"--expect", "1", "--timeout", "-5"}, "--timeout expects a whole number"},
      {{"--timeout", "100"}, "give --expect too"},
      {{"--host", ""}, "--host needs an address"},
  };
  iocp_chat::test::expect_each_rejected(kClientProgram, cases, kRunTimeout);
}

TEST(ConsoleClient, HelpNamesEveryOptionAndAnExample) {
  const ProcessResult result = run_process(kClientProgram, {"--help"}, kRunTimeout);
  EXPECT_EQ(result.exit_code, 0);
  for (const char* option : {"--host", "--port", "--name", "--send", "--delay", "--expect", "--timeout",
                             "--help", "/quit", "Examples:", "v1_client --name bob --send"}) {
    EXPECT_NE(result.output.find(option), std::string::npos) << option;
  }
}

}  // namespace
