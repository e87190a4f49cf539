// command_line.hpp — a small, declarative option parser shared by every
// program of the repository, so each has the same `--help` and the same
// clear error for a bad option.
//
// Not an IOCP idea; it keeps the programs' main() short enough to read.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace iocp_chat {

/// What parse() found.
enum class ParseOutcome : std::uint8_t {
  run,    ///< Options are valid: run the program.
  help,   ///< --help was given: usage was printed; exit 0.
  error,  ///< A bad option: the message was printed; exit 2.
};

/// Options of one program: `--name VALUE` and `--flag`.
class CommandLine {
 public:
  /// `summary` is the first line of --help, `example` its last.
  CommandLine(std::string program, std::string summary, std::string example = {});

  /// `--name`: sets `target` to true.
  void flag(std::string name, std::string help, bool& target);
  /// `--name TEXT`: stores the text.
  void text(std::string name, std::string value_name, std::string help, std::string& target);
  /// `--name TEXT`, repeatable: appends each value.
  void texts(std::string name, std::string value_name, std::string help, std::vector<std::string>& target);
  /// `--name N`: a whole number in [minimum, maximum].
  void number(std::string name, std::string help, std::uint64_t& target, std::uint64_t minimum,
              std::uint64_t maximum);
  /// `--name VALUE` with a custom parser that returns an error message, or "" when accepted.
  void custom(std::string name, std::string value_name, std::string help,
              std::function<std::string(std::string_view)> apply);

  /// Parses argv; prints usage (stdout) or the error (stderr) itself.
  ParseOutcome parse(int argc, const char* const* argv);

  /// The --help text.
  std::string usage() const;

 private:
  /// One option: its spelling, help text, and what to do with its value.
  struct Option {
    std::string name;                                    ///< "--port".
    std::string value_name;                              ///< "N"; empty for a flag.
    std::string help;                                    ///< One line for --help.
    std::function<std::string(std::string_view)> apply;  ///< Returns an error message or "".
  };

  std::string program_;          ///< Shown in usage.
  std::string summary_;          ///< First line of --help.
  std::string example_;          ///< Last lines of --help.
  std::vector<Option> options_;  ///< In the order they were declared.
};

}  // namespace iocp_chat
