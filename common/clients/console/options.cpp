// options.cpp — the console clients' options, declared with the project's
// CommandLine parser (so every program has the same --help and the same
// errors), plus the checks that span two options. Shared by both stages'
// console clients (iocp_chat::console).
#include "options.hpp"

#include <cstdio>
#include <limits>

namespace iocp_chat::console {
namespace {

/// Longest pause or timeout accepted: one day, far from any overflow.
constexpr std::uint64_t kMaxMilliseconds = 24ULL * 60 * 60 * 1000;

/// Prints "PROGRAM: MESSAGE (try --help)" for a command line that parsed
/// but makes no sense.
ParseOutcome usage_error(const ClientProgram& program, const std::string& message) {
  std::fprintf(stderr, "%s: %s (try --help)\n", program.program.c_str(), message.c_str());
  return ParseOutcome::error;
}

}  // namespace

ParseOutcome parse_options(const std::vector<std::string>& arguments, const ClientProgram& program,
                           ClientOptions& options) {
  std::uint64_t port = options.port;
  std::uint64_t delay_ms = kMaxMilliseconds + 1;  // "not given"
  std::uint64_t expect = 0;                       // "not given"
  std::uint64_t timeout_ms = kMaxMilliseconds + 1;

  CommandLine command_line(program.program, program.summary, program.epilogue);
  command_line.text("--host", "HOST", "server address or host name (default 127.0.0.1)", options.host);
  command_line.number("--port", "server TCP port (default 42006)", port, 1, 65535);
  command_line.text(program.name_option, program.name_value, program.name_help, options.name);
  command_line.texts(
      "--send", "TEXT",
      "scripted mode: send TEXT as a line instead of reading the keyboard; repeat for more lines",
      options.lines_to_send);
  command_line.number("--delay", "with --send: milliseconds to wait before the first line and between lines",
                      delay_ms, 0, kMaxMilliseconds);
  command_line.number("--expect", program.expect_help, expect, 1, std::numeric_limits<std::uint32_t>::max());
  command_line.number("--timeout",
                      "with --expect: fail (exit 1) if the lines are not all there this many "
                      "milliseconds after connecting (default 10000)",
                      timeout_ms, 1, kMaxMilliseconds);

  // CommandLine reads a C-style argv; ours holds UTF-8 on every platform.
  std::vector<const char*> argv;
  argv.reserve(arguments.size());
  for (const std::string& argument : arguments) argv.push_back(argument.c_str());
  const ParseOutcome outcome = command_line.parse(static_cast<int>(argv.size()), argv.data());
  if (outcome != ParseOutcome::run) return outcome;

  // Options that would silently do nothing are mistakes worth pointing out.
  const bool delay_given = delay_ms <= kMaxMilliseconds;
  const bool timeout_given = timeout_ms <= kMaxMilliseconds;
  if (options.host.empty()) return usage_error(program, "--host needs an address or a host name");
  if (delay_given && options.lines_to_send.empty()) {
    return usage_error(program, "--delay paces --send lines; give at least one --send");
  }
  if (timeout_given && expect == 0) {
    return usage_error(program, "--timeout limits the wait of --expect; give --expect too");
  }

  options.port = static_cast<std::uint16_t>(port);
  if (delay_given) options.delay = std::chrono::milliseconds(delay_ms);
  if (expect != 0) options.expected_lines = static_cast<std::size_t>(expect);
  if (timeout_given) options.timeout = std::chrono::milliseconds(timeout_ms);
  return ParseOutcome::run;
}

}  // namespace iocp_chat::console
