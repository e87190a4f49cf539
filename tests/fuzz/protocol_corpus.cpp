// protocol_corpus.cpp — writes (or checks) the seed corpus of protocol_fuzz:
// one valid frame of each packet type, plus one stream of all of them.
//
// Idea shown: a fuzzer starts far faster from valid inputs than from
// nothing — each seed already passes the header checks, so mutations
// explore the body and the text rules at once. The seeds are generated,
// not hand-edited, so anyone can see where each byte comes from and make
// them again:
//
//   protocol_corpus --write-corpus tests/fuzz/corpus/protocol
//   protocol_corpus --check tests/fuzz/corpus/protocol    (a CTest test runs this)
//
// Each file is in protocol_fuzz's input layout: 4 bytes that choose the
// piece sizes, then the stream.
#include "common/protocol/packets.hpp"

#include <cstddef>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

using iocp_chat::v2::ErrorCode;
using iocp_chat::v2::LoginStatus;
using Bytes = std::vector<std::byte>;

/// Piece sizes 1, 3, 7 and 52 bytes (each byte b means b + 1): a frame is
/// fed split, byte by byte and whole within one seed.
const Bytes kPlan = {std::byte{0}, std::byte{2}, std::byte{6}, std::byte{51}};

/// Every seed: file name and its content.
std::vector<std::pair<std::string, Bytes>> seeds() {
  const std::vector<std::pair<std::string, iocp_chat::v2::Packet>> packets = {
      {"login_request", iocp_chat::v2::LoginRequest{"alice"}},
      {"login_response", iocp_chat::v2::LoginResponse{LoginStatus::id_taken, "민수"}},
      {"chat_request", iocp_chat::v2::ChatRequest{"hello, 여러분"}},
      {"chat_broadcast", iocp_chat::v2::ChatBroadcast{"bob", "hi there"}},
      {"user_joined", iocp_chat::v2::UserJoined{"carol"}},
      {"user_left", iocp_chat::v2::UserLeft{"0123456789abcdef"}},
      {"error", iocp_chat::v2::ErrorPacket{ErrorCode::slow_consumer}},
  };
  std::vector<std::pair<std::string, Bytes>> files;
  Bytes all = kPlan;
  for (const auto& [name, packet] : packets) {
    Bytes content = kPlan;
    iocp_chat::v2::encode(packet, content);
    iocp_chat::v2::encode(packet, all);
    files.emplace_back(name, std::move(content));
  }
  files.emplace_back("all_types", std::move(all));
  return files;
}

/// The whole content of `path` (empty if it cannot be read).
Bytes read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  const std::vector<char> chars((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  Bytes bytes;
  for (const char c : chars) bytes.push_back(static_cast<std::byte>(c));
  return bytes;
}

/// Writes every seed into `dir`; returns the exit code.
int write_corpus(const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  for (const auto& [name, content] : seeds()) {
    std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
    for (const std::byte b : content) out.put(static_cast<char>(b));
    if (!out) {
      std::fprintf(stderr, "protocol_corpus: cannot write %s\n", (dir / name).string().c_str());
      return 1;
    }
  }
  std::printf("protocol_corpus: wrote %zu seeds to %s\n", seeds().size(), dir.string().c_str());
  return 0;
}

/// Checks that `dir` holds every seed as this program would write it.
int check_corpus(const std::filesystem::path& dir) {
  int status = 0;
  for (const auto& [name, content] : seeds()) {
    if (read_file(dir / name) != content) {
      std::fprintf(stderr, "protocol_corpus: %s is missing or out of date\n", (dir / name).string().c_str());
      status = 1;
    }
  }
  if (status != 0)
    std::fprintf(stderr, "regenerate with: protocol_corpus --write-corpus %s\n", dir.string().c_str());
  return status;
}

}  // namespace

/// `--write-corpus DIR` or `--check DIR`.
int main(int argc, char** argv) {
  if (argc == 3 && std::string_view(argv[1]) == "--write-corpus") return write_corpus(argv[2]);
  if (argc == 3 && std::string_view(argv[1]) == "--check") return check_corpus(argv[2]);
  std::fprintf(stderr, "usage: protocol_corpus --write-corpus DIR | --check DIR\n");
  return 2;
}
