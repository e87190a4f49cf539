// options.hpp — the console client's command line: what a user can ask for
// (read with the project's CommandLine parser, so --help and the errors look
// like every other program's).
//
// Idea: the client has two ways to feed the chat. A person types lines
// (interactive mode); a script passes them with --send (scripted mode, used
// by scripts/demo.sh and the tests). Both end up as "lines to send", and
// --expect / --timeout turn the client into a small checker: "leave once N
// lines have come back, fail if they do not come in time".
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "iocp_chat/command_line.hpp"

namespace iocp_chat::v1_client {

/// The port of the original 2018 program, kept as the default.
inline constexpr std::uint16_t kDefaultPort = 42006;

/// How long --expect waits by default before it gives up.
inline constexpr std::chrono::milliseconds kDefaultTimeout{10000};

/// Everything the command line can set; the defaults are what a bare
/// `v1_client` uses.
struct ClientOptions {
  std::string host = "127.0.0.1";             ///< Server address or host name (--host).
  std::uint16_t port = kDefaultPort;          ///< Server TCP port (--port).
  std::string name;                           ///< Prefix "[name] " on printed lines when not empty (--name).
  std::vector<std::string> lines_to_send;     ///< --send texts in order; non-empty means scripted mode.
  std::chrono::milliseconds delay{0};         ///< Pause before the first --send and between sends (--delay).
  std::optional<std::size_t> expected_lines;  ///< Leave once this many lines have arrived (--expect).
  std::chrono::milliseconds timeout = kDefaultTimeout;  ///< Give --expect up after this long (--timeout).

  /// True when the lines come from --send rather than from the keyboard.
  bool scripted() const noexcept { return !lines_to_send.empty(); }
};

/// Reads the arguments (program name first, UTF-8) into `options` with the
/// project's CommandLine parser. Prints the usage for --help, or the
/// problem for a bad command line, itself; the caller exits 0 or 2 then.
ParseOutcome parse_options(const std::vector<std::string>& arguments, ClientOptions& options);

}  // namespace iocp_chat::v1_client
