// ch05_exercises_test.cpp — the checks of chapter 5's exercises: 5.1 the
// length-prefix framer you write in ch05_length_framer.cpp, fed the way TCP
// delivers (cut anywhere, merged), with no socket at all; 5.2 ver.1's server
// forwarding whole lines only, in-process on 127.0.0.1, once per backend.
//
// Ideas checked: framing is a class that does no I/O — feed bytes, take out
// zero or more messages; split and merged input give the same messages; a
// length that cannot be right is refused before anything waits for it. And
// every reader must reassemble, the server included: a server that forwards
// whatever it read interleaves one sender's half line with another's line.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "ch05_length_framer.hpp"
#include "chat_server.hpp"
#include "exercise_support.hpp"
#include "port_fixture.hpp"

namespace iocp_chat::exercises {
namespace {

/// The wire form of `body`: 2-byte big-endian length, then the body.
std::string framed(const std::string& body) {
  std::string out;
  out.push_back(static_cast<char>((body.size() >> 8) & 0xFF));
  out.push_back(static_cast<char>(body.size() & 0xFF));
  return out + body;
}

/// Feeds `stream` in pieces of `step` bytes and collects every message.
std::vector<std::string> cut_every(const std::string& stream, std::size_t step, bool& error) {
  LengthFramer framer(1024);
  std::vector<std::string> messages;
  error = false;
  for (std::size_t at = 0; at < stream.size(); at += step) {
    framer.feed(std::string_view(stream).substr(at, step));
    std::string body;
    for (;;) {
      const auto status = framer.next(body);
      if (status == LengthFramer::Status::need_more) break;
      if (status == LengthFramer::Status::error) {
        error = true;
        return messages;
      }
      messages.push_back(body);
    }
  }
  return messages;
}

// Exercise 5.1: the same messages however the stream is cut.
TEST(Exercise5_1, EveryCutGivesTheSameMessages) {
  const std::vector<std::string> sent = {"hi", std::string(300, 'x'), "안녕하세요", std::string(1024, 'y'),
                                         "!"};
  std::string stream;
  for (const auto& body : sent) stream += framed(body);
  for (std::size_t step = 1; step <= stream.size(); step = step < 8 ? step + 1 : step * 2) {
    bool error = false;
    EXPECT_EQ(cut_every(stream, step, error), sent)
        << "exercise 5.1: fed " << step << " bytes at a time (a cut may fall inside the header)";
    EXPECT_FALSE(error) << "exercise 5.1: lengths of 1 to max_body are fine";
  }
  bool error = false;
  EXPECT_EQ(cut_every(stream, stream.size(), error), sent)
      << "exercise 5.1: all messages merged in one receive";
}

// Exercise 5.1: lengths that cannot be right are refused at once.
TEST(Exercise5_1, ZeroAndOversizedLengthsAreErrors) {
  bool error = false;
  cut_every(framed("ok") + std::string("\0\0", 2), 1, error);
  EXPECT_TRUE(error) << "exercise 5.1: a length of 0 is an error";
  LengthFramer framer(1024);
  framer.feed(std::string("\x04\x01", 2));  // 1025: one more than max_body; no body follows
  std::string body;
  EXPECT_EQ(framer.next(body), LengthFramer::Status::error)
      << "exercise 5.1: a length past max_body is an error as soon as the header is here, "
         "without waiting for a body that may never come";
}

/// ver.1's server on the parameter's backend.
using V1Exercise = testing_support::ServerTest<v1::ChatServer, v1::ServerConfig>;

// Exercise 5.2: half of alice's line, then bob's whole line, then the rest
// of alice's: carol must see two whole lines, never "hello, bob...".
TEST_P(V1Exercise, Exercise5_2_TheServerForwardsWholeLinesOnly) {
  start_server();
  Socket alice = connect_to("127.0.0.1", server_->port());
  Socket bob = connect_to("127.0.0.1", server_->port());
  Socket carol = connect_to("127.0.0.1", server_->port());
  ASSERT_TRUE(testing_support::eventually([&] { return server_->client_count() == 3; }));
  ASSERT_FALSE(send_all(alice, "hello, "));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // let the server read it first
  ASSERT_FALSE(send_all(bob, "bob's line\n"));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  ASSERT_FALSE(send_all(alice, "world\n"));
  const std::string heard = read_text(carol, 24);
  EXPECT_EQ(heard, "bob's line\nhello, world\n")
      << "exercise 5.2: ver.1's server should keep each sender's bytes until its \"\\n\" and "
         "broadcast whole lines only (a LineAssembler per connection, in ChatServer::on_bytes)";
}

INSTANTIATE_TEST_SUITE_P(Backends, V1Exercise, ::testing::ValuesIn(compiled_backends()),
                         testing_support::backend_name);

}  // namespace
}  // namespace iocp_chat::exercises
