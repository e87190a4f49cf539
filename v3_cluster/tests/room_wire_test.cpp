// room_wire_test.cpp — the nodes' messages byte for byte: a golden message
// written by hand from room_wire.hpp's table, every kind through encode and
// decode, and every way a payload can be refused.
#include "room_wire.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace iocp_chat::v3 {
namespace {

std::vector<std::uint8_t> bytes_of(const std::string& text) { return {text.begin(), text.end()}; }

std::optional<RoomMessage> decode_text(const std::string& text) {
  const std::vector<std::uint8_t> bytes = bytes_of(text);
  return decode(bytes);
}

RoomMessage base(MessageKind kind) {
  RoomMessage message;
  message.kind = kind;
  message.node = "node-1";
  message.incarnation = 1712345678901234;
  message.sequence = 42;
  return message;
}

TEST(RoomWire, ChatMatchesTheTableByteForByte) {
  RoomMessage chat = base(MessageKind::chat);
  chat.node = "a";
  chat.incarnation = 0x0102030405060708;
  chat.sequence = 5;
  chat.user_id = "bob";
  chat.text = "hi";
  const std::string expected = std::string(
                                   "\x01\x01\x01"
                                   "a",
                                   4) +
                               std::string("\x01\x02\x03\x04\x05\x06\x07\x08", 8) +
                               std::string("\x00\x00\x00\x00\x00\x00\x00\x05", 8) +
                               "\x03"
                               "bob"
                               "\x02"
                               "hi";
  EXPECT_EQ(encode(chat), expected);
  EXPECT_EQ(decode_text(expected), chat);
}

TEST(RoomWire, EveryKindSurvivesTheRoundTrip) {
  std::vector<RoomMessage> messages;
  RoomMessage chat = base(MessageKind::chat);
  chat.user_id = "민수";  // UTF-8, 6 bytes
  chat.text = std::string(kMaxTextSize, 'x');
  messages.push_back(chat);
  RoomMessage joined = base(MessageKind::joined);
  joined.user_id = std::string(kMaxUserIdSize, 'j');
  messages.push_back(joined);
  RoomMessage left = base(MessageKind::left);
  left.user_id = "l";
  messages.push_back(left);
  RoomMessage roster = base(MessageKind::roster);
  roster.roster_flags = kRosterFirstPart | kRosterLastPart;
  roster.members = {"alice", "bob", "민수"};
  messages.push_back(roster);
  RoomMessage empty_roster = base(MessageKind::roster);
  empty_roster.roster_flags = kRosterFirstPart | kRosterLastPart;
  messages.push_back(empty_roster);
  messages.push_back(base(MessageKind::heartbeat));
  messages.push_back(base(MessageKind::goodbye));
  RoomMessage sync_all = base(MessageKind::sync_request);
  messages.push_back(sync_all);
  RoomMessage sync_one = base(MessageKind::sync_request);
  sync_one.target = "node-2";
  messages.push_back(sync_one);
  RoomMessage dead = base(MessageKind::declared_dead);
  dead.target = "node-3";
  dead.target_incarnation = 77;
  messages.push_back(dead);
  for (const RoomMessage& message : messages) {
    SCOPED_TRACE(std::string(kind_name(message.kind)));
    EXPECT_EQ(decode_text(encode(message)), message);
  }
}

TEST(RoomWire, ALargestRosterPartStaysFarBelowTheNatsPayloadLimit) {
  RoomMessage roster = base(MessageKind::roster);
  roster.roster_flags = kRosterFirstPart;
  roster.members.assign(kMaxRosterPart, std::string(kMaxUserIdSize, 'z'));
  const std::string payload = encode(roster);
  EXPECT_LT(payload.size(), 64u * 1024u);
  EXPECT_EQ(decode_text(payload), roster);
  roster.members.push_back("one-too-many");
  EXPECT_THROW(encode(roster), std::invalid_argument);
}

TEST(RoomWire, EveryTruncationAndEveryExtraByteIsRefused) {
  RoomMessage chat = base(MessageKind::chat);
  chat.user_id = "alice";
  chat.text = "hello";
  const std::string payload = encode(chat);
  for (std::size_t size = 0; size < payload.size(); ++size) {
    EXPECT_FALSE(decode_text(payload.substr(0, size))) << "cut at " << size;
  }
  EXPECT_FALSE(decode_text(payload + "x"));
}

TEST(RoomWire, BadHeadersAreRefused) {
  std::string payload = encode(base(MessageKind::heartbeat));
  std::string wrong_version = payload;
  wrong_version[0] = 2;
  EXPECT_FALSE(decode_text(wrong_version));
  for (char kind : {'\x00', '\x09', '\x7f'}) {
    std::string wrong_kind = payload;
    wrong_kind[1] = kind;
    EXPECT_FALSE(decode_text(wrong_kind));
  }
  std::string bad_node = payload;
  bad_node[3] = '.';  // "node-1" -> ".ode-1": not a subject token
  EXPECT_FALSE(decode_text(bad_node));
  std::string empty_node = std::string("\x01\x05\x00", 3) + std::string(16, '\0');
  EXPECT_FALSE(decode_text(empty_node));
}

TEST(RoomWire, FieldsPastTheirLimitsAreRefused) {
  // An id of 17 bytes and a text of 33, written by hand (encode refuses them).
  const std::string header = std::string(
                                 "\x01\x01\x01"
                                 "a",
                                 4) +
                             std::string(16, '\0');
  EXPECT_FALSE(decode_text(header + "\x11" + std::string(17, 'i') +
                           "\x01"
                           "t"));
  EXPECT_FALSE(decode_text(header +
                           "\x01"
                           "i"
                           "\x21" +
                           std::string(33, 't')));
  EXPECT_FALSE(decode_text(header + std::string("\x00\x01t", 3)));      // empty id
  EXPECT_FALSE(decode_text(header + std::string("\x01\x00\x01t", 4)));  // NUL id
  EXPECT_TRUE(decode_text(header + "\x01"
                                   "i"
                                   "\x01"
                                   "t"));

  const std::string roster_header = std::string(
                                        "\x01\x04\x01"
                                        "a",
                                        4) +
                                    std::string(16, '\0');
  EXPECT_FALSE(decode_text(roster_header + std::string("\x04\x00\x00", 3)));       // unknown flag
  EXPECT_FALSE(decode_text(roster_header + std::string("\x03\x07\xd1", 3)));       // 2001 ids
  EXPECT_FALSE(decode_text(roster_header + std::string("\x03\x00\x02\x01x", 5)));  // 2 announced, 1 given
  EXPECT_TRUE(decode_text(roster_header + std::string("\x03\x00\x01\x01x", 5)));

  const std::string sync_header = std::string(
                                      "\x01\x07\x01"
                                      "a",
                                      4) +
                                  std::string(16, '\0');
  EXPECT_FALSE(decode_text(sync_header + "\x03"
                                         "a b"));
  const std::string dead_header = std::string(
                                      "\x01\x08\x01"
                                      "a",
                                      4) +
                                  std::string(16, '\0');
  EXPECT_FALSE(decode_text(dead_header + std::string("\x00", 1) + std::string(8, '\0')));  // no target
}

TEST(RoomWire, EncodeRefusesWhatDecodeWouldRefuse) {
  RoomMessage chat = base(MessageKind::chat);
  chat.user_id = "";
  chat.text = "t";
  EXPECT_THROW(encode(chat), std::invalid_argument);
  chat.user_id = std::string(kMaxUserIdSize + 1, 'i');
  EXPECT_THROW(encode(chat), std::invalid_argument);
  chat.user_id = "i";
  chat.text = std::string(kMaxTextSize + 1, 't');
  EXPECT_THROW(encode(chat), std::invalid_argument);
  RoomMessage heartbeat = base(MessageKind::heartbeat);
  heartbeat.node = "has space";
  EXPECT_THROW(encode(heartbeat), std::invalid_argument);
}

TEST(RoomWire, NamesAreSubjectTokens) {
  EXPECT_TRUE(is_valid_name("node-1_A", kMaxNodeNameSize));
  EXPECT_FALSE(is_valid_name("", kMaxNodeNameSize));
  EXPECT_FALSE(is_valid_name(std::string(33, 'n'), kMaxNodeNameSize));
  for (const char* bad : {"a.b", "a*", "a>", "a b", "ä"})
    EXPECT_FALSE(is_valid_name(bad, kMaxNodeNameSize)) << bad;
}

TEST(RoomWire, SubjectsAndBucketOfARoom) {
  const RoomSubjects subjects = room_subjects("lobby");
  EXPECT_EQ(subjects.chat, "iocp-chat.lobby.chat");
  EXPECT_EQ(subjects.presence, "iocp-chat.lobby.presence");
  EXPECT_EQ(subjects.node, "iocp-chat.lobby.node");
  EXPECT_EQ(subjects.all, "iocp-chat.lobby.>");
  EXPECT_EQ(subject_for(subjects, MessageKind::chat), subjects.chat);
  EXPECT_EQ(subject_for(subjects, MessageKind::roster), subjects.presence);
  EXPECT_EQ(subject_for(subjects, MessageKind::heartbeat), subjects.node);
  EXPECT_EQ(id_bucket_name("lobby"), "iocp-chat-ids-lobby");
}

TEST(RoomWire, IdKeysAreHexAndReversible) {
  EXPECT_EQ(id_key("Ab"), "4162");
  EXPECT_EQ(id_key("민"), "ebafbc");
  for (const char* id : {"alice", "민수", "a-b_c.d", "~!@#$%"}) EXPECT_EQ(user_id_of_key(id_key(id)), id);
  EXPECT_FALSE(user_id_of_key(""));
  EXPECT_FALSE(user_id_of_key("abc"));
  EXPECT_FALSE(user_id_of_key("4G"));
  EXPECT_FALSE(user_id_of_key("4A"));  // upper case is not what id_key writes
}

}  // namespace
}  // namespace iocp_chat::v3
