// protocol_test.cpp — the ver.2 wire format against docs/protocol.md, byte for byte.
//
// Idea under test: framing. The golden vectors below were written by hand
// from the spec's tables, not produced by the encoder, so a mistake in
// encode() and the same mistake in decode() cannot cancel out. Then every
// way a frame can be refused (a bad length, an unknown type, text that
// breaks the rules), and the FrameAssembler fed the same stream in every
// cut — one byte at a time, all at once, random pieces — which must give
// the same frames.
#include "common/protocol/packets.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace iocp_chat::v2 {
namespace {

using Bytes = std::vector<std::byte>;

/// Bytes from hex pairs separated by spaces: "00 14 00 01".
Bytes hex(std::string_view text) {
  Bytes bytes;
  for (std::size_t i = 0; i < text.size();) {
    if (text[i] == ' ') {
      ++i;
      continue;
    }
    bytes.push_back(static_cast<std::byte>(std::stoul(std::string(text.substr(i, 2)), nullptr, 16)));
    i += 2;
  }
  return bytes;
}

/// `count` NUL bytes: the padding of a text field.
Bytes nuls(std::size_t count) { return Bytes(count, std::byte{0}); }

/// The bytes of `text`, as they go on the wire.
Bytes raw(std::string_view text) {
  Bytes bytes;
  for (const char c : text) bytes.push_back(static_cast<std::byte>(c));
  return bytes;
}

/// `a` then `b` (and so on): builds a frame from its fields.
Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes bytes;
  for (const Bytes& part : parts) bytes.insert(bytes.end(), part.begin(), part.end());
  return bytes;
}

/// The packet decode() finds in `frame`; fails the test if it finds none.
Packet decoded_packet(const Bytes& frame) {
  const Decoded result = decode(frame);
  EXPECT_TRUE(result.packet.has_value()) << "refused with " << to_string(result.error);
  return result.packet.value_or(Packet{});
}

/// The ERROR code decode() gives `frame`, or "(accepted)" if it takes it.
std::string refusal(const Bytes& frame) {
  const Decoded result = decode(frame);
  return result.packet ? std::string("(accepted)") : std::string(to_string(result.error));
}

// --- the spec's tables -------------------------------------------------------

TEST(FrameSize, EveryTypeHasTheSizeInTheSpec) {
  EXPECT_EQ(frame_size(0x0001), 20u);  // LOGIN_REQUEST
  EXPECT_EQ(frame_size(0x0002), 22u);  // LOGIN_RESPONSE
  EXPECT_EQ(frame_size(0x0003), 36u);  // CHAT_REQUEST
  EXPECT_EQ(frame_size(0x0004), 52u);  // CHAT_BROADCAST
  EXPECT_EQ(frame_size(0x0005), 20u);  // USER_JOINED
  EXPECT_EQ(frame_size(0x0006), 20u);  // USER_LEFT
  EXPECT_EQ(frame_size(0x0007), 6u);   // ERROR
  EXPECT_EQ(kMaxFrameSize, 52u);
}

TEST(FrameSize, UnknownTypesHaveNone) {
  EXPECT_EQ(frame_size(0x0000), std::nullopt);
  EXPECT_EQ(frame_size(0x0008), std::nullopt);
  EXPECT_EQ(frame_size(0x0100), std::nullopt);  // 1 in the wrong byte order
  EXPECT_EQ(frame_size(0xFFFF), std::nullopt);
}

TEST(ToString, NamesAreTheSpecs) {
  EXPECT_EQ(to_string(PacketType::login_request), "LOGIN_REQUEST");
  EXPECT_EQ(to_string(PacketType::login_response), "LOGIN_RESPONSE");
  EXPECT_EQ(to_string(PacketType::chat_request), "CHAT_REQUEST");
  EXPECT_EQ(to_string(PacketType::chat_broadcast), "CHAT_BROADCAST");
  EXPECT_EQ(to_string(PacketType::user_joined), "USER_JOINED");
  EXPECT_EQ(to_string(PacketType::user_left), "USER_LEFT");
  EXPECT_EQ(to_string(PacketType::error), "ERROR");
  EXPECT_EQ(to_string(LoginStatus::ok), "OK");
  EXPECT_EQ(to_string(LoginStatus::id_taken), "ID_TAKEN");
  EXPECT_EQ(to_string(LoginStatus::invalid_id), "INVALID_ID");
  EXPECT_EQ(to_string(LoginStatus::already_logged_in), "ALREADY_LOGGED_IN");
  EXPECT_EQ(to_string(LoginStatus::try_later), "TRY_LATER");
  EXPECT_EQ(to_string(ErrorCode::malformed_frame), "MALFORMED_FRAME");
  EXPECT_EQ(to_string(ErrorCode::unknown_type), "UNKNOWN_TYPE");
  EXPECT_EQ(to_string(ErrorCode::not_logged_in), "NOT_LOGGED_IN");
  EXPECT_EQ(to_string(ErrorCode::invalid_text), "INVALID_TEXT");
  EXPECT_EQ(to_string(ErrorCode::slow_consumer), "SLOW_CONSUMER");
  EXPECT_EQ(to_string(ErrorCode::server_full), "SERVER_FULL");
}

TEST(TypeOf, EachPacketKnowsItsType) {
  EXPECT_EQ(type_of(LoginRequest{}), PacketType::login_request);
  EXPECT_EQ(type_of(LoginResponse{}), PacketType::login_response);
  EXPECT_EQ(type_of(ChatRequest{}), PacketType::chat_request);
  EXPECT_EQ(type_of(ChatBroadcast{}), PacketType::chat_broadcast);
  EXPECT_EQ(type_of(UserJoined{}), PacketType::user_joined);
  EXPECT_EQ(type_of(UserLeft{}), PacketType::user_left);
  EXPECT_EQ(type_of(ErrorPacket{}), PacketType::error);
}

// --- golden vectors, written by hand from the spec ---------------------------
// Each pair: the packet, and its frame as the spec lays it out. Both
// directions are checked: encode(packet) == frame and decode(frame) == packet.

struct Golden {
  const char* name;  ///< For the failure message.
  Packet packet;     ///< What the frame means.
  Bytes frame;       ///< The frame, from the spec's tables.
};

std::vector<Golden> golden_vectors() {
  return {
      {"LOGIN_REQUEST alice", LoginRequest{"alice"},
       cat({hex("00 14  00 01"), hex("61 6c 69 63 65"), nuls(11)})},
      {"LOGIN_RESPONSE ID_TAKEN bob", LoginResponse{LoginStatus::id_taken, "bob"},
       cat({hex("00 16  00 02  00 01"), hex("62 6f 62"), nuls(13)})},
      {"LOGIN_RESPONSE ALREADY_LOGGED_IN", LoginResponse{LoginStatus::already_logged_in, "bob"},
       cat({hex("00 16  00 02  00 03"), hex("62 6f 62"), nuls(13)})},
      {"LOGIN_RESPONSE TRY_LATER (ver.3)", LoginResponse{LoginStatus::try_later, "bob"},
       cat({hex("00 16  00 02  00 04"), hex("62 6f 62"), nuls(13)})},
      {"CHAT_REQUEST hi there", ChatRequest{"hi there"},
       cat({hex("00 24  00 03"), hex("68 69 20 74 68 65 72 65"), nuls(24)})},
      {"CHAT_BROADCAST alice: hi", ChatBroadcast{"alice", "hi"},
       cat({hex("00 34  00 04"), hex("61 6c 69 63 65"), nuls(11), hex("68 69"), nuls(30)})},
      {"USER_JOINED 민수", UserJoined{"민수"},  // U+BBFC U+C218
       cat({hex("00 14  00 05"), hex("eb af bc ec 88 98"), nuls(10)})},
      {"USER_LEFT carol", UserLeft{"carol"}, cat({hex("00 14  00 06"), hex("63 61 72 6f 6c"), nuls(11)})},
      {"ERROR SLOW_CONSUMER", ErrorPacket{ErrorCode::slow_consumer}, hex("00 06  00 07  00 05")},
      {"ERROR SERVER_FULL", ErrorPacket{ErrorCode::server_full}, hex("00 06  00 07  00 06")},
  };
}

TEST(Golden, EncodeWritesTheSpecsBytes) {
  for (const Golden& golden : golden_vectors()) {
    EXPECT_EQ(encode(golden.packet), golden.frame) << golden.name;
  }
}

TEST(Golden, DecodeReadsTheSpecsBytes) {
  for (const Golden& golden : golden_vectors()) {
    EXPECT_EQ(decoded_packet(golden.frame), golden.packet) << golden.name;
  }
}

TEST(Golden, EveryTypeIsCovered) {
  std::vector<bool> seen(8, false);
  for (const Golden& golden : golden_vectors()) seen[static_cast<std::size_t>(type_of(golden.packet))] = true;
  for (std::size_t type = 1; type <= 7; ++type)
    EXPECT_TRUE(seen[type]) << "no golden vector for type " << type;
}

TEST(Golden, EncodeAppendsToWhatIsThere) {
  Bytes out = hex("aa bb");
  encode(ErrorPacket{ErrorCode::not_logged_in}, out);
  EXPECT_EQ(out, hex("aa bb  00 06 00 07 00 03"));
}

// --- round trips -------------------------------------------------------------

TEST(RoundTrip, EveryTypeWithFullFields) {
  const std::string id16 = "0123456789abcdef";              // exactly 16 bytes
  const std::string message32 = "안녕, 여러분! 반가워요!";  // exactly 32 bytes
  ASSERT_EQ(id16.size(), 16u);
  ASSERT_EQ(message32.size(), 32u);

  const std::vector<Packet> packets = {
      LoginRequest{id16},
      LoginResponse{LoginStatus::ok, id16},
      LoginResponse{LoginStatus::invalid_id, ""},
      ChatRequest{message32},
      ChatBroadcast{id16, message32},
      UserJoined{"민수"},
      UserLeft{id16},
      ErrorPacket{ErrorCode::malformed_frame},
      ErrorPacket{ErrorCode::unknown_type},
      ErrorPacket{ErrorCode::invalid_text},
  };
  for (const Packet& packet : packets) {
    const Bytes frame = encode(packet);
    EXPECT_EQ(frame.size(), frame_size(static_cast<std::uint16_t>(type_of(packet))));
    EXPECT_EQ(decoded_packet(frame), packet) << to_string(type_of(packet));
  }
}

TEST(Encode, TextTooLongForItsFieldThrowsAndWritesNothing) {
  Bytes out = hex("01 02");
  EXPECT_THROW(encode(LoginRequest{std::string(17, 'a')}, out), std::invalid_argument);
  EXPECT_THROW(encode(ChatRequest{std::string(33, 'a')}, out), std::invalid_argument);
  EXPECT_THROW(encode(ChatBroadcast{"ok", std::string(33, 'a')}, out), std::invalid_argument);
  EXPECT_EQ(out, hex("01 02"));
}

// --- decode: the header ------------------------------------------------------

TEST(DecodeHeader, FewerThanFourBytesIsMalformed) {
  for (std::size_t size = 0; size < 4; ++size) {
    EXPECT_EQ(refusal(nuls(size)), "MALFORMED_FRAME") << size << " bytes";
  }
}

TEST(DecodeHeader, LengthBelowFourIsMalformed) {
  for (unsigned length = 0; length < 4; ++length) {
    const Bytes frame = cat({hex("00"), Bytes{static_cast<std::byte>(length)}, hex("00 01"), nuls(16)});
    EXPECT_EQ(refusal(frame), "MALFORMED_FRAME") << "length " << length;
  }
}

TEST(DecodeHeader, UnknownTypes) {
  EXPECT_EQ(refusal(hex("00 04  00 00")), "UNKNOWN_TYPE");
  EXPECT_EQ(refusal(hex("00 04  00 08")), "UNKNOWN_TYPE");
  EXPECT_EQ(refusal(hex("00 04  ff ff")), "UNKNOWN_TYPE");
  EXPECT_EQ(refusal(cat({hex("00 14  01 00"), nuls(16)})), "UNKNOWN_TYPE");  // type 1, little-endian
}

TEST(DecodeHeader, LengthBelowFourBeatsUnknownType) {
  EXPECT_EQ(refusal(hex("00 02  00 09")), "MALFORMED_FRAME");
}

TEST(DecodeHeader, LoginRequestOf21BytesIsMalformed) {
  // A 17-byte id cannot be smuggled in a longer frame.
  EXPECT_EQ(refusal(cat({hex("00 15  00 01"), raw("abcdefghijklmnopq")})), "MALFORMED_FRAME");
}

TEST(DecodeHeader, ChatRequestOf37BytesIsMalformed) {
  // Nor a 33-byte message.
  EXPECT_EQ(refusal(cat({hex("00 25  00 03"), raw(std::string(33, 'm'))})), "MALFORMED_FRAME");
}

TEST(DecodeHeader, LengthFFFFIsMalformed) {
  EXPECT_EQ(refusal(cat({hex("ff ff  00 01"), nuls(16)})), "MALFORMED_FRAME");
  EXPECT_EQ(refusal(cat({hex("ff ff  00 04"), nuls(48)})), "MALFORMED_FRAME");
}

TEST(DecodeHeader, EveryTypeOneByteShortOrLongIsMalformed) {
  for (std::uint16_t type = 1; type <= 7; ++type) {
    const std::size_t size = frame_size(type).value();
    for (const std::size_t wrong : {size - 1, size + 1}) {
      Bytes frame = {std::byte{0}, static_cast<std::byte>(wrong), std::byte{0}, static_cast<std::byte>(type)};
      frame.resize(wrong);  // the length field agrees with the span: only the type's size is wrong
      EXPECT_EQ(refusal(frame), "MALFORMED_FRAME") << "type " << type << ", length " << wrong;
    }
  }
}

TEST(DecodeHeader, LengthFieldMustMatchTheBytesGiven) {
  Bytes frame = encode(ErrorPacket{ErrorCode::slow_consumer});
  frame.push_back(std::byte{0});  // header says 6, span holds 7
  EXPECT_EQ(refusal(frame), "MALFORMED_FRAME");
  frame.resize(5);  // header says 6, span holds 5
  EXPECT_EQ(refusal(frame), "MALFORMED_FRAME");
}

TEST(DecodeHeader, UnknownStatusOrCodeInAServerFrameIsMalformed) {
  EXPECT_EQ(refusal(cat({hex("00 16  00 02  00 05"), raw("bob"), nuls(13)})),
            "MALFORMED_FRAME");  // 4 is TRY_LATER
  EXPECT_EQ(refusal(cat({hex("00 16  00 02  ff ff"), raw("bob"), nuls(13)})), "MALFORMED_FRAME");
  EXPECT_EQ(refusal(hex("00 06  00 07  00 00")), "MALFORMED_FRAME");
  EXPECT_EQ(refusal(hex("00 06  00 07  00 07")), "MALFORMED_FRAME");
  EXPECT_EQ(refusal(hex("00 06  00 07  01 00")), "MALFORMED_FRAME");  // 1, little-endian
}

// --- decode: text fields -----------------------------------------------------

TEST(DecodeText, TrailingNulsAreStripped) {
  const Packet packet = decoded_packet(cat({hex("00 14  00 01"), raw("alice"), nuls(11)}));
  EXPECT_EQ(std::get<LoginRequest>(packet).user_id, "alice");
}

TEST(DecodeText, FullFieldWithoutNulIsSixteenBytes) {
  const Packet packet = decoded_packet(cat({hex("00 14  00 01"), raw("abcdefghijklmnop")}));
  EXPECT_EQ(std::get<LoginRequest>(packet).user_id, "abcdefghijklmnop");
  EXPECT_TRUE(is_valid_user_id(std::get<LoginRequest>(packet).user_id));
}

TEST(DecodeText, EmbeddedNulIsKeptSoTheRulesRejectIt) {
  const Packet login = decoded_packet(cat({hex("00 14  00 01"), raw("ab"), nuls(1), raw("cd"), nuls(11)}));
  const std::string& id = std::get<LoginRequest>(login).user_id;
  EXPECT_EQ(id, std::string("ab\0cd", 5));
  EXPECT_FALSE(is_valid_user_id(id));

  const Packet chat = decoded_packet(cat({hex("00 24  00 03"), raw("hi"), nuls(1), raw("x"), nuls(28)}));
  const std::string& message = std::get<ChatRequest>(chat).message;
  EXPECT_EQ(message, std::string("hi\0x", 4));
  EXPECT_FALSE(is_valid_message(message));
}

TEST(DecodeText, AllNulFieldIsEmptyHenceInvalid) {
  const Packet login = decoded_packet(cat({hex("00 14  00 01"), nuls(16)}));
  EXPECT_EQ(std::get<LoginRequest>(login).user_id, "");
  EXPECT_FALSE(is_valid_user_id(""));

  const Packet chat = decoded_packet(cat({hex("00 24  00 03"), nuls(32)}));
  EXPECT_EQ(std::get<ChatRequest>(chat).message, "");
  EXPECT_FALSE(is_valid_message(""));
}

TEST(DecodeText, CodePointCutAtTheEndOfTheField) {
  // 14 ASCII bytes, then the first two bytes of "안" (EC 95 88): the field
  // is full, and its last character is cut. Decoding keeps it; the rules refuse it.
  const Packet login = decoded_packet(cat({hex("00 14  00 01"), raw("abcdefghijklmn"), hex("ec 95")}));
  EXPECT_FALSE(is_valid_user_id(std::get<LoginRequest>(login).user_id));

  const Packet chat = decoded_packet(cat({hex("00 24  00 03"), raw(std::string(31, 'x')), hex("ec")}));
  EXPECT_FALSE(is_valid_message(std::get<ChatRequest>(chat).message));
}

TEST(DecodeText, BadTextIsDecodedNotRefused) {
  // A LOGIN_REQUEST with a bad id is answered INVALID_ID and a bad message
  // ERROR INVALID_TEXT — the session decides, so decode() hands them over.
  EXPECT_EQ(decoded_packet(cat({hex("00 14  00 01"), raw("a b"), nuls(13)})), Packet{LoginRequest{"a b"}});
  EXPECT_EQ(decoded_packet(cat({hex("00 24  00 03"), hex("c0 af"), nuls(30)})),
            Packet{ChatRequest{"\xC0\xAF"}});
}

// --- the text rules ----------------------------------------------------------

TEST(UserId, LengthOneToSixteenBytes) {
  EXPECT_TRUE(is_valid_user_id("a"));
  EXPECT_TRUE(is_valid_user_id(std::string(16, 'a')));
  EXPECT_FALSE(is_valid_user_id(""));
  EXPECT_FALSE(is_valid_user_id(std::string(17, 'a')));  // and no frame can carry it
}

TEST(UserId, KoreanIsValid) {
  EXPECT_TRUE(is_valid_user_id("민수"));
  EXPECT_TRUE(is_valid_user_id("김민수_2018"));
  EXPECT_TRUE(is_valid_user_id("가나다라마"));     // 15 bytes
  EXPECT_FALSE(is_valid_user_id("가나다라마바"));  // 18 bytes: too long, whole characters or not
  EXPECT_TRUE(is_valid_user_id("a가나다라마"));    // 16 bytes
  EXPECT_FALSE(is_valid_user_id(std::string("민수").substr(0, 5)));  // cut inside 수
}

TEST(UserId, NoNulControlDelOrSpace) {
  EXPECT_FALSE(is_valid_user_id(std::string("ab\0c", 4)));
  EXPECT_FALSE(is_valid_user_id("a\x01"));
  EXPECT_FALSE(is_valid_user_id("a\tb"));
  EXPECT_FALSE(is_valid_user_id("a\nb"));
  EXPECT_FALSE(is_valid_user_id("a\x1F"));
  EXPECT_FALSE(is_valid_user_id("a\x7F"));
  EXPECT_FALSE(is_valid_user_id("a b"));
  EXPECT_FALSE(is_valid_user_id(" "));
  EXPECT_TRUE(is_valid_user_id("!~"));  // 0x21 and 0x7E, just inside the printable range
}

TEST(UserId, MustBeValidUtf8) {
  EXPECT_FALSE(is_valid_user_id("\xC0\xAF"));
  EXPECT_FALSE(is_valid_user_id("a\xFF"));
}

TEST(Message, LengthOneToThirtyTwoBytes) {
  EXPECT_TRUE(is_valid_message("x"));
  EXPECT_TRUE(is_valid_message(std::string(32, 'x')));
  EXPECT_FALSE(is_valid_message(""));
  EXPECT_FALSE(is_valid_message(std::string(33, 'x')));  // and no frame can carry it
}

TEST(Message, SpaceAndKoreanAllowedNulNot) {
  EXPECT_TRUE(is_valid_message("hello, world"));
  EXPECT_TRUE(is_valid_message(" "));
  EXPECT_TRUE(is_valid_message("안녕하세요"));
  EXPECT_TRUE(is_valid_message("tab\there"));  // only NUL is forbidden among the controls
  EXPECT_FALSE(is_valid_message(std::string("a\0b", 3)));
  EXPECT_FALSE(is_valid_message(std::string(1, '\0')));
}

TEST(Message, MustBeValidUtf8) {
  EXPECT_FALSE(is_valid_message("\xE0\x80\xAF"));
  EXPECT_FALSE(is_valid_message(std::string("안녕").substr(0, 4)));
}

TEST(Utf8, AcceptsEveryBoundaryOfTheValidRanges) {
  EXPECT_TRUE(is_valid_utf8(""));
  EXPECT_TRUE(is_valid_utf8("\x7F"));              // U+007F, the last 1-byte character
  EXPECT_TRUE(is_valid_utf8("\xC2\x80"));          // U+0080, the first 2-byte one
  EXPECT_TRUE(is_valid_utf8("\xDF\xBF"));          // U+07FF
  EXPECT_TRUE(is_valid_utf8("\xE0\xA0\x80"));      // U+0800, the first 3-byte one
  EXPECT_TRUE(is_valid_utf8("\xED\x9F\xBF"));      // U+D7FF, just below the surrogates
  EXPECT_TRUE(is_valid_utf8("\xEE\x80\x80"));      // U+E000, just above them
  EXPECT_TRUE(is_valid_utf8("\xEF\xBF\xBF"));      // U+FFFF
  EXPECT_TRUE(is_valid_utf8("\xF0\x90\x80\x80"));  // U+10000, the first 4-byte one
  EXPECT_TRUE(is_valid_utf8("\xF4\x8F\xBF\xBF"));  // U+10FFFF, the last code point
  EXPECT_TRUE(is_valid_utf8("민수 😀"));
}

TEST(Utf8, RejectsOverlongEncodings) {
  EXPECT_FALSE(is_valid_utf8("\xC0\xAF"));          // '/' in two bytes
  EXPECT_FALSE(is_valid_utf8("\xC1\xBF"));          // U+007F in two bytes
  EXPECT_FALSE(is_valid_utf8("\xC0\x80"));          // NUL in two bytes ("modified UTF-8")
  EXPECT_FALSE(is_valid_utf8("\xE0\x80\xAF"));      // '/' in three bytes
  EXPECT_FALSE(is_valid_utf8("\xE0\x9F\xBF"));      // U+07FF in three bytes
  EXPECT_FALSE(is_valid_utf8("\xF0\x8F\xBF\xBF"));  // U+FFFF in four bytes
}

TEST(Utf8, RejectsSurrogates) {
  EXPECT_FALSE(is_valid_utf8("\xED\xA0\x80"));              // U+D800
  EXPECT_FALSE(is_valid_utf8("\xED\xBF\xBF"));              // U+DFFF
  EXPECT_FALSE(is_valid_utf8("\xED\xA0\xBD\xED\xB8\x80"));  // a UTF-16 pair spelled in UTF-8 (CESU-8)
}

TEST(Utf8, RejectsCodePointsAboveU10FFFF) {
  EXPECT_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));      // U+110000
  EXPECT_FALSE(is_valid_utf8("\xF7\xBF\xBF\xBF"));      // U+1FFFFF
  EXPECT_FALSE(is_valid_utf8("\xF8\x88\x80\x80\x80"));  // the old 5-byte form
}

TEST(Utf8, RejectsTruncatedSequences) {
  EXPECT_FALSE(is_valid_utf8("\xC2"));
  EXPECT_FALSE(is_valid_utf8("\xEC\x95"));      // "안" without its last byte
  EXPECT_FALSE(is_valid_utf8("\xF0\x9F\x98"));  // "😀" without its last byte
  EXPECT_FALSE(
      is_valid_utf8("\xEC\x95"
                    "a"));  // cut in the middle, then ASCII
}

TEST(Utf8, RejectsStrayContinuationAndInvalidBytes) {
  EXPECT_FALSE(is_valid_utf8("\x80"));
  EXPECT_FALSE(is_valid_utf8("a\xBF"));
  EXPECT_FALSE(is_valid_utf8("\xEC\x95\x88\x88"));  // "안" and one continuation byte too many
  EXPECT_FALSE(is_valid_utf8("\xFE"));
  EXPECT_FALSE(is_valid_utf8("\xFF"));
}

// --- FrameAssembler ----------------------------------------------------------

/// Everything one assembler gives for a stream fed in the pieces `cuts` makes.
struct Assembled {
  std::vector<Bytes> frames;                     ///< The frames, in order.
  bool failed = false;                           ///< next() reported an error.
  ErrorCode error = ErrorCode::malformed_frame;  ///< Which, if failed.
  friend bool operator==(const Assembled&, const Assembled&) = default;
};

/// Takes every frame out of `assembler` until it needs more or fails.
void drain(FrameAssembler& assembler, Assembled& result) {
  std::span<const std::byte> frame;
  ErrorCode error{};
  for (;;) {
    const FrameAssembler::Status status = assembler.next(frame, error);
    if (status == FrameAssembler::Status::need_more) return;
    if (status == FrameAssembler::Status::error) {
      result.failed = true;
      result.error = error;
      return;
    }
    result.frames.emplace_back(frame.begin(), frame.end());
  }
}

/// Feeds `stream` in pieces of the sizes in `pieces` (the last one takes the rest).
Assembled assemble(const Bytes& stream, const std::vector<std::size_t>& pieces) {
  FrameAssembler assembler;
  Assembled result;
  std::size_t offset = 0;
  for (std::size_t i = 0; offset < stream.size(); ++i) {
    const std::size_t size =
        i < pieces.size() ? std::min(pieces[i], stream.size() - offset) : stream.size() - offset;
    assembler.feed(std::span(stream).subspan(offset, size));
    offset += size;
    drain(assembler, result);
  }
  return result;
}

/// One frame of every type, back to back.
Bytes stream_of_every_type() {
  Bytes stream;
  for (const Golden& golden : golden_vectors())
    stream.insert(stream.end(), golden.frame.begin(), golden.frame.end());
  return stream;
}

TEST(FrameAssembler, AllAtOnceGivesEveryFrame) {
  const Assembled result = assemble(stream_of_every_type(), {});
  EXPECT_FALSE(result.failed);
  ASSERT_EQ(result.frames.size(), golden_vectors().size());
  for (std::size_t i = 0; i < result.frames.size(); ++i)
    EXPECT_EQ(result.frames[i], golden_vectors()[i].frame);
}

TEST(FrameAssembler, ByteByByteGivesTheSameFrames) {
  const Bytes stream = stream_of_every_type();
  EXPECT_EQ(assemble(stream, std::vector<std::size_t>(stream.size(), 1)), assemble(stream, {}));
}

TEST(FrameAssembler, RandomPiecesGiveTheSameFrames) {
  const Bytes stream = stream_of_every_type();
  const Assembled whole = assemble(stream, {});
  for (unsigned seed = 1; seed <= 50; ++seed) {
    std::mt19937 random(seed);  // seeded: a failure names the seed and reproduces
    std::uniform_int_distribution<std::size_t> piece(1, 2 * kMaxFrameSize);
    std::vector<std::size_t> pieces;
    for (std::size_t total = 0; total < stream.size(); total += pieces.back())
      pieces.push_back(piece(random));
    EXPECT_EQ(assemble(stream, pieces), whole) << "seed " << seed;
  }
}

TEST(FrameAssembler, ManyFramesInOneFeed) {
  Bytes stream;
  for (int i = 0; i < 1000; ++i)
    encode(ChatBroadcast{"user" + std::to_string(i % 10), std::to_string(i)}, stream);
  FrameAssembler assembler;
  assembler.feed(stream);
  Assembled result;
  drain(assembler, result);
  EXPECT_FALSE(result.failed);
  ASSERT_EQ(result.frames.size(), 1000u);
  EXPECT_EQ(decoded_packet(result.frames[999]), (Packet{ChatBroadcast{"user9", "999"}}));
  EXPECT_EQ(assembler.buffered(), 0u);
}

TEST(FrameAssembler, PartialFrameWaitsAndCountsItsBytes) {
  const Bytes frame = encode(ChatRequest{"hello"});
  FrameAssembler assembler;
  std::span<const std::byte> out;
  ErrorCode error{};
  assembler.feed(std::span(frame).first(35));
  EXPECT_EQ(assembler.next(out, error), FrameAssembler::Status::need_more);
  EXPECT_EQ(assembler.buffered(), 35u);
  assembler.feed(std::span(frame).subspan(35));
  ASSERT_EQ(assembler.next(out, error), FrameAssembler::Status::frame);
  EXPECT_EQ(Bytes(out.begin(), out.end()), frame);
  EXPECT_EQ(assembler.buffered(), 0u);
  EXPECT_EQ(assembler.next(out, error), FrameAssembler::Status::need_more);
}

TEST(FrameAssembler, StaysSmallOverALongStream) {
  // Fed one frame and a half at a time and drained each time, the
  // assembler never holds more than the unfinished frame.
  const Bytes frame = encode(ChatBroadcast{"alice", "a message of some length"});
  Bytes stream;
  for (int i = 0; i < 200; ++i) stream.insert(stream.end(), frame.begin(), frame.end());
  FrameAssembler assembler;
  Assembled result;
  for (std::size_t offset = 0; offset < stream.size(); offset += 78) {
    assembler.feed(std::span(stream).subspan(offset, std::min<std::size_t>(78, stream.size() - offset)));
    drain(assembler, result);
    EXPECT_LT(assembler.buffered(), kMaxFrameSize);
  }
  EXPECT_EQ(result.frames.size(), 200u);
}

/// What next() says after `bytes` were fed to a new assembler.
FrameAssembler::Status status_after(const Bytes& bytes, ErrorCode& error) {
  FrameAssembler assembler;
  assembler.feed(bytes);
  std::span<const std::byte> frame;
  return assembler.next(frame, error);
}

TEST(FrameAssembler, BadHeaderIsReportedAsSoonAsItsFourBytesArrive) {
  struct Case {
    const char* header;  ///< The 4 header bytes.
    ErrorCode expected;  ///< What the assembler must say at once.
  };
  const Case cases[] = {
      {"ff ff 00 01", ErrorCode::malformed_frame},  // would otherwise wait for 65535 bytes
      {"00 15 00 01", ErrorCode::malformed_frame},  // a 21-byte LOGIN_REQUEST
      {"00 00 00 01", ErrorCode::malformed_frame},  // length 0
      {"00 03 00 01", ErrorCode::malformed_frame},  // length 3
      {"00 02 00 08", ErrorCode::malformed_frame},  // length < 4 is checked before the type
      {"00 14 00 00", ErrorCode::unknown_type},    {"00 14 00 08", ErrorCode::unknown_type},
      {"ff ff ff ff", ErrorCode::unknown_type},
  };
  for (const Case& c : cases) {
    const Bytes header = hex(c.header);
    ErrorCode error{};
    // Three bytes are not yet a header: nothing to say.
    EXPECT_EQ(status_after(Bytes(header.begin(), header.begin() + 3), error),
              FrameAssembler::Status::need_more)
        << c.header;
    // The fourth byte completes it: refused now, with no body bytes at all.
    EXPECT_EQ(status_after(header, error), FrameAssembler::Status::error) << c.header;
    EXPECT_EQ(error, c.expected) << c.header;
  }
}

TEST(FrameAssembler, GoodFramesBeforeABadHeaderAreStillDelivered) {
  const Bytes stream = cat({encode(UserJoined{"bob"}), encode(ChatRequest{"hi"}), hex("00 14 00 08")});
  const Assembled result = assemble(stream, {});
  EXPECT_EQ(result.frames.size(), 2u);
  EXPECT_TRUE(result.failed);
  EXPECT_EQ(result.error, ErrorCode::unknown_type);
  EXPECT_EQ(assemble(stream, std::vector<std::size_t>(stream.size(), 1)), result);
}

TEST(FrameAssembler, AfterAnErrorEveryNextIsTheError) {
  FrameAssembler assembler;
  assembler.feed(hex("00 02 00 01"));
  std::span<const std::byte> frame;
  ErrorCode error{};
  ASSERT_EQ(assembler.next(frame, error), FrameAssembler::Status::error);
  EXPECT_EQ(error, ErrorCode::malformed_frame);

  assembler.feed(encode(LoginRequest{"alice"}));  // a good frame later changes nothing
  for (int i = 0; i < 3; ++i) {
    error = ErrorCode::server_full;
    EXPECT_EQ(assembler.next(frame, error), FrameAssembler::Status::error);
    EXPECT_EQ(error, ErrorCode::malformed_frame);
  }
}

TEST(FrameAssembler, EveryFrameItGivesDecodes) {
  const Assembled result = assemble(stream_of_every_type(), {5, 17, 1, 60});
  for (std::size_t i = 0; i < result.frames.size(); ++i) {
    EXPECT_EQ(decoded_packet(result.frames[i]), golden_vectors()[i].packet);
  }
}

}  // namespace
}  // namespace iocp_chat::v2
