// process.hpp — start a program as a child process and talk to it through
// its standard streams, on Linux and on Windows.
//
// Test idea: the end-to-end tests run the real programs — the server and
// the console client — exactly as a user would, and judge them only by what
// they print and how they exit. Nothing is mocked: the child processes talk
// to each other over real loopback sockets.
//
// Each of the child's stdout and stderr is read by a thread of its own into
// a string, so a child that writes a lot to one stream never blocks while
// the test waits on the other.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace iocp_chat::test {

/// How a child process ended and everything it printed.
struct ProcessResult {
  int exit_code = -1;      ///< Its exit code; on Linux, minus the signal number if a signal ended it.
  bool timed_out = false;  ///< True if it did not end in time and was killed.
  std::string output;      ///< Everything it wrote to standard output.
  std::string errors;      ///< Everything it wrote to standard error.
};

/// A running child process whose stdin, stdout and stderr are pipes to this
/// process (posix_spawn on Linux, CreateProcessW on Windows). Killed, if still
/// running, when destroyed.
class ChildProcess {
 public:
  /// Starts `program` (a path) with `arguments` (UTF-8); throws
  /// std::system_error if it cannot be started.
  ChildProcess(const std::string& program, const std::vector<std::string>& arguments);
  /// Kills the child if it is still running and waits for it.
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  /// Writes text to the child's standard input.
  void write_input(std::string_view text);

  /// Closes the child's standard input: it reads the end of input.
  void close_input();

  /// Waits until the child's standard output contains `text`. False if the
  /// timeout passes or the child closes its standard output first.
  bool wait_for_output_containing(std::string_view text, std::chrono::milliseconds timeout);

  /// Waits until the child's standard error contains `text`. False if the
  /// timeout passes or the child closes its standard error first.
  bool wait_for_errors_containing(std::string_view text, std::chrono::milliseconds timeout);

  /// The child's process id (for /proc/<pid>/stat, say).
  long pid() const noexcept;

  /// What the child has written to standard output so far.
  std::string output() const;

  /// What the child has written to standard error so far.
  std::string errors() const;

  /// Asks the child to stop: SIGTERM on Linux; TerminateProcess on Windows,
  /// which has no such polite signal for a console program started this way.
  void terminate();

  /// Waits for the child to exit — killing it after `timeout` — and returns
  /// its exit code and everything it printed.
  ProcessResult wait(std::chrono::milliseconds timeout);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;  ///< The OS handles and the reader threads.
};

/// Runs a program to its end with `input` on its standard input, and returns
/// what it did. Kills it if it runs longer than `timeout`.
ProcessResult run_process(const std::string& program, const std::vector<std::string>& arguments,
                          std::chrono::milliseconds timeout, std::string_view input = {});

}  // namespace iocp_chat::test
