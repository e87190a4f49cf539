// protocol_fuzz.cpp — libFuzzer target over the ver.2 receive path: arbitrary
// bytes, cut into arbitrary pieces, through FrameAssembler and decode().
//
// Idea under test: framing must survive anything a peer can send. The
// server runs exactly this path on every byte a client sends, so a crash,
// a leak or undefined behaviour here is a remote crash of the server.
// AddressSanitizer and UndefinedBehaviorSanitizer watch every run; on top
// of "no crash", the target checks what must always hold:
//   - cutting the stream differently never changes the frames or the error
//     (the same stream is fed once in the input's pieces and once whole);
//   - after an error, next() keeps reporting the same error;
//   - drained of its frames, the assembler holds less than one frame;
//   - a decoded packet encodes back to exactly the frame it came from, and
//     decodes again to the same packet;
//   - the text rules return, whatever the text.
//
// Input layout: the first kPlanSize bytes choose the piece sizes (each byte
// b means a piece of b + 1 bytes, used in turn); the rest is the stream.
// The seed corpus (corpus/protocol/, written by protocol_corpus.cpp) is one
// file per packet type in this layout.
#include "common/protocol/packets.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string_view>
#include <variant>
#include <vector>

namespace {

using iocp_chat::v2::Decoded;
using iocp_chat::v2::ErrorCode;
using iocp_chat::v2::FrameAssembler;
using iocp_chat::v2::Packet;

/// Bytes at the start of the input that choose the piece sizes.
constexpr std::size_t kPlanSize = 4;

/// Stops the run as a crash, with the reason: libFuzzer saves the input.
[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "protocol_fuzz: %s\n", what);
  std::abort();
}

/// Everything one assembler gave for a stream.
struct Assembled {
  std::vector<std::vector<std::byte>> frames;    ///< The frames, in order.
  bool failed = false;                           ///< It reported an error.
  ErrorCode error = ErrorCode::malformed_frame;  ///< Which, if failed.
  friend bool operator==(const Assembled&, const Assembled&) = default;
};

/// Takes frames until the assembler needs more or fails; checks that an error sticks.
void drain(FrameAssembler& assembler, Assembled& result) {
  std::span<const std::byte> frame;
  ErrorCode error{};
  for (;;) {
    switch (assembler.next(frame, error)) {
      case FrameAssembler::Status::need_more:
        return;
      case FrameAssembler::Status::frame:
        result.frames.emplace_back(frame.begin(), frame.end());
        break;
      case FrameAssembler::Status::error: {
        ErrorCode again{};
        if (assembler.next(frame, again) != FrameAssembler::Status::error || again != error) {
          fail("an error did not stick");
        }
        result.failed = true;
        result.error = error;
        return;
      }
    }
  }
}

/// A text through both rules: they must return, whatever it holds.
void check_text(std::string_view text) {
  (void)iocp_chat::v2::is_valid_user_id(text);
  (void)iocp_chat::v2::is_valid_message(text);
  (void)iocp_chat::v2::is_valid_utf8(text);
}

/// Every text field of a packet through check_text().
void check_texts(const Packet& packet) {
  std::visit(
      [](const auto& p) {
        if constexpr (requires { p.user_id; }) check_text(p.user_id);
        if constexpr (requires { p.message; }) check_text(p.message);
      },
      packet);
}

/// One frame from the assembler: decode it, then encode it back and decode again.
void check_frame(std::span<const std::byte> frame) {
  const Decoded decoded = iocp_chat::v2::decode(frame);
  if (!decoded.packet) {
    // The assembler vetted the header, so only a bad status or code is left.
    if (decoded.error != ErrorCode::malformed_frame) fail("assembled frame refused for its header");
    return;
  }
  check_texts(*decoded.packet);

  // Decoded text never exceeds its field, so it always fits back in.
  const std::vector<std::byte> encoded = iocp_chat::v2::encode(*decoded.packet);
  if (!std::equal(encoded.begin(), encoded.end(), frame.begin(), frame.end())) {
    fail("encode(decode(frame)) != frame");
  }
  const Decoded again = iocp_chat::v2::decode(encoded);
  if (!again.packet || *again.packet != *decoded.packet) fail("decode(encode(packet)) != packet");
}

}  // namespace

/// libFuzzer's entry point: one input, any bytes.
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto input = std::as_bytes(std::span(data, size));
  const std::span<const std::byte> plan = input.first(std::min(size, kPlanSize));
  const std::span<const std::byte> stream = input.subspan(plan.size());

  // The text rules over raw bytes, and decode() on its own, over a span of
  // any size, as a careless caller might use it.
  check_text(std::string_view(reinterpret_cast<const char*>(data), size));
  const Decoded raw = iocp_chat::v2::decode(stream);
  if (raw.packet) check_texts(*raw.packet);

  // The stream in the plan's pieces, draining after each feed.
  FrameAssembler pieces;
  Assembled by_pieces;
  for (std::size_t offset = 0, turn = 0; offset < stream.size(); ++turn) {
    // A non-empty stream means the whole plan was there.
    const std::size_t piece = std::to_integer<std::size_t>(plan[turn % kPlanSize]) + 1;
    const std::size_t length = std::min(piece, stream.size() - offset);
    pieces.feed(stream.subspan(offset, length));
    offset += length;
    drain(pieces, by_pieces);
    // Drained, it holds at most the start of one frame.
    if (!by_pieces.failed && pieces.buffered() >= iocp_chat::v2::kMaxFrameSize)
      fail("the buffer keeps growing");
  }

  // The same stream in one piece must give the same frames and the same end.
  FrameAssembler whole;
  Assembled at_once;
  whole.feed(stream);
  drain(whole, at_once);
  if (!(by_pieces == at_once)) fail("the frames depend on how the stream was cut");

  for (const std::vector<std::byte>& frame : at_once.frames) check_frame(frame);
  return 0;
}
