// codec_bench.cpp — what ver.2's wire format costs without any I/O (Google
// Benchmark), using the real v2_protocol library the servers and clients use:
//   * encode: one CHAT_BROADCAST frame appended to a reused buffer;
//   * decode: one CHAT_BROADCAST frame into a Packet;
//   * FrameAssembler: a long stream of CHAT_BROADCAST frames fed in 1 KiB or
//     64 KiB pieces (reads of those sizes), every frame taken out — bytes/s.
// Run: build/linux/bench/codec_bench  (numbers go in the docs, never in tests)
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "common/protocol/packets.hpp"

namespace iocp_chat {
namespace {

/// The broadcast every benchmark uses: a full-size id and a full-size message.
v2::ChatBroadcast sample_broadcast() {
  return v2::ChatBroadcast{"bench-user-00042", "0001000000000042000012345678abcd"};
}

/// Encodes one CHAT_BROADCAST per iteration into a reused buffer.
void encode_chat_broadcast(benchmark::State& state) {
  const v2::Packet packet = sample_broadcast();
  std::vector<std::byte> out;
  out.reserve(v2::kMaxFrameSize);
  for (auto _ : state) {
    out.clear();
    v2::encode(packet, out);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(v2::kMaxFrameSize));
}
BENCHMARK(encode_chat_broadcast);

/// Decodes one CHAT_BROADCAST frame per iteration.
void decode_chat_broadcast(benchmark::State& state) {
  const std::vector<std::byte> frame = v2::encode(sample_broadcast());
  for (auto _ : state) {
    auto decoded = v2::decode(frame);
    benchmark::DoNotOptimize(decoded);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(frame.size()));
}
BENCHMARK(decode_chat_broadcast);

/// Feeds 10,000 CHAT_BROADCAST frames (520,000 bytes) in reads of state.range(0) bytes.
void frame_assembler_stream(benchmark::State& state) {
  const auto read_size = static_cast<std::size_t>(state.range(0));
  constexpr std::size_t kFrames = 10000;
  std::vector<std::byte> stream;
  stream.reserve(kFrames * v2::kMaxFrameSize);
  for (std::size_t i = 0; i < kFrames; ++i) v2::encode(sample_broadcast(), stream);
  std::size_t frames = 0;
  for (auto _ : state) {
    v2::FrameAssembler assembler;
    std::span<const std::byte> rest(stream);
    std::span<const std::byte> frame;
    v2::ErrorCode error{};
    while (!rest.empty()) {
      const std::size_t take = std::min(read_size, rest.size());
      assembler.feed(rest.first(take));
      rest = rest.subspan(take);
      while (assembler.next(frame, error) == v2::FrameAssembler::Status::frame) {
        benchmark::DoNotOptimize(frame.data());
        ++frames;
      }
    }
  }
  if (frames != kFrames * static_cast<std::size_t>(state.iterations())) state.SkipWithError("frames lost");
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(kFrames));
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(stream.size()));
  state.SetLabel(std::to_string(read_size / 1024) + " KiB reads");
}
BENCHMARK(frame_assembler_stream)->Arg(1024)->Arg(64 * 1024);

}  // namespace
}  // namespace iocp_chat

BENCHMARK_MAIN();
