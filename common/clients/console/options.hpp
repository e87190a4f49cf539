// options.hpp — the console clients' command line: what a user can ask
// for, read with the project's CommandLine parser, so --help and the errors
// look like every other program's. Shared by both stages' console clients
// (v1_client and v2_client), so it lives in common/clients/console/
// (iocp_chat::console).
//
// Idea: a client has two ways to feed the chat. A person types lines
// (interactive mode); a script passes them with --send (scripted mode, used
// by scripts/demo.sh and the tests). Both end up as "lines to send", and
// --expect / --timeout turn the client into a small checker: "leave once N
// lines have come back, fail if they do not come in time". The two stages
// differ only in how a client says who it is (ver.1: --name, a label for
// the screen; ver.2: --id, the login id) and in what --expect counts, so
// each program passes those words in a ClientProgram.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "iocp_chat/command_line.hpp"

namespace iocp_chat::console {

/// The port of the original 2018 program, kept as the default.
inline constexpr std::uint16_t kDefaultPort = 42006;

/// How long --expect waits by default before it gives up.
inline constexpr std::chrono::milliseconds kDefaultTimeout{10000};

/// Everything the command line can set; the defaults are what a bare
/// `v1_client` or `v2_client` uses.
struct ClientOptions {
  std::string host = "127.0.0.1";          ///< Server address or host name (--host).
  std::uint16_t port = kDefaultPort;       ///< Server TCP port (--port).
  std::string name;                        ///< Who this is: ver.1's --name label, ver.2's --id; may be empty.
  std::vector<std::string> lines_to_send;  ///< --send texts in order; non-empty means scripted mode.
  std::chrono::milliseconds delay{0};      ///< Pause before the first --send and between sends (--delay).
  std::optional<std::size_t> expected_lines;  ///< Leave once this many lines have arrived (--expect).
  std::chrono::milliseconds timeout = kDefaultTimeout;  ///< Give --expect up after this long (--timeout).

  /// True when the lines come from --send rather than from the keyboard.
  bool scripted() const noexcept { return !lines_to_send.empty(); }
};

/// The words that make the shared command line one program's: its name, its
/// help texts, and how it spells the option that sets ClientOptions::name.
struct ClientProgram {
  std::string program;      ///< "v1_client": heads --help and every error message.
  std::string summary;      ///< What the program does: the first line of --help.
  std::string epilogue;     ///< The end of --help: the modes, the exit codes, examples.
  std::string name_option;  ///< "--name" or "--id": the option that sets ClientOptions::name.
  std::string name_value;   ///< Its value in --help: "NAME" or "ID".
  std::string name_help;    ///< Its line in --help.
  std::string expect_help;  ///< The line of --expect in --help: what it counts.
};

/// Reads the arguments (program name first, UTF-8) into `options` with the
/// project's CommandLine parser. Prints the usage for --help, or the
/// problem for a bad command line, itself; the caller exits 0 or 2 then.
ParseOutcome parse_options(const std::vector<std::string>& arguments, const ClientProgram& program,
                           ClientOptions& options);

}  // namespace iocp_chat::console
