// line_assembler_test.cpp — the WinAPI client's line assembly, byte by byte.
//
// Idea under test: ver.1 has no framing, so the client rebuilds lines from
// whatever pieces recv returns — a piece may end inside a line or inside a
// UTF-8 character ("안" is EC 95 88), and several lines may come in one
// piece. These cases are hard to provoke through a real socket on demand,
// so LineAssembler is fed them directly here.
#include "line_assembler.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace iocp_chat::v1 {
namespace {

using Lines = std::vector<std::string>;

TEST(LineAssembler, WholeLineInOnePiece) {
  LineAssembler lines;
  EXPECT_EQ(lines.feed("hello\n"), Lines{"hello"});
  EXPECT_EQ(lines.pending_bytes(), 0u);
}

TEST(LineAssembler, SeveralLinesInOnePiece) {
  LineAssembler lines;
  EXPECT_EQ(lines.feed("one\ntwo\nthr"), (Lines{"one", "two"}));
  EXPECT_EQ(lines.feed("ee\n"), Lines{"three"});
}

TEST(LineAssembler, LineSplitInsideAKoreanCharacter) {
  const std::string text = "안녕\n";  // EC 95 88 EB 85 95 0A
  LineAssembler lines;
  EXPECT_TRUE(lines.feed(text.substr(0, 1)).empty());
  EXPECT_TRUE(lines.feed(text.substr(1, 3)).empty());
  EXPECT_EQ(lines.feed(text.substr(4)), Lines{"안녕"});
}

TEST(LineAssembler, EveryByteSeparately) {
  const std::string text = "a 안녕하세요 b\nc\n";
  LineAssembler lines;
  Lines all;
  for (char byte : text) {
    for (std::string& line : lines.feed(std::string(1, byte))) all.push_back(std::move(line));
  }
  EXPECT_EQ(all, (Lines{"a 안녕하세요 b", "c"}));
}

TEST(LineAssembler, CarriageReturnBeforeNewlineIsDropped) {
  LineAssembler lines;
  EXPECT_EQ(lines.feed("telnet\r\n"), Lines{"telnet"});
}

TEST(LineAssembler, EmptyLinesAreLines) {
  LineAssembler lines;
  EXPECT_EQ(lines.feed("\n\n"), (Lines{"", ""}));
}

TEST(LineAssembler, RestAtEndOfStream) {
  LineAssembler lines;
  EXPECT_TRUE(lines.feed("no newline").empty());
  EXPECT_EQ(lines.take_rest(), "no newline");
  EXPECT_EQ(lines.pending_bytes(), 0u);
  EXPECT_EQ(lines.take_rest(), "");
}

TEST(LineAssembler, OverlongLineIsCutBetweenCharacters) {
  // A limit of 4 bytes falls inside the second "안" (bytes 3..5): the first
  // piece handed out is the one whole character, never half of the next.
  LineAssembler lines(4);
  EXPECT_EQ(lines.feed("안안"), Lines{"안"});
  EXPECT_EQ(lines.pending_bytes(), 3u);
  EXPECT_EQ(lines.feed("\n"), Lines{"안"});
}

TEST(CompleteUtf8Prefix, CutsBeforeAnUnfinishedCharacter) {
  const std::string text = "ab안";  // 61 62 EC 95 88
  EXPECT_EQ(complete_utf8_prefix(text), 5u);
  EXPECT_EQ(complete_utf8_prefix(text.substr(0, 4)), 2u);
  EXPECT_EQ(complete_utf8_prefix(text.substr(0, 3)), 2u);
  EXPECT_EQ(complete_utf8_prefix("ab"), 2u);
  EXPECT_EQ(complete_utf8_prefix(""), 0u);
  EXPECT_EQ(complete_utf8_prefix("\xF0\x9F\x98"), 0u);      // 3 of the 4 bytes of an emoji
  EXPECT_EQ(complete_utf8_prefix("\xF0\x9F\x98\x80"), 4u);  // all 4
}

}  // namespace
}  // namespace iocp_chat::v1
