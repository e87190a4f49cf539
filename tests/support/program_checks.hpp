// program_checks.hpp — the checks that every console program's end-to-end
// test makes of two unhappy ends: nobody listening, and a bad command line.
//
// Test idea: a user meets these ends before any chat, so each program must
// meet them the same way — exit code 1 and the OS's own words when the
// connection is refused (WSAECONNREFUSED through FormatMessage on Windows,
// ECONNREFUSED through strerror on Linux), exit code 2 and a message naming
// the problem for a bad command line, and nothing on standard output in
// either case. Judged, like the rest, only from outside the process.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "iocp_chat/os_error.hpp"
#include "process.hpp"

#ifdef _WIN32
#include <winsock2.h>  // WSAECONNREFUSED
#else
#include <cerrno>  // ECONNREFUSED
#endif

namespace iocp_chat::test {

/// The OS's words for "connection refused", as the programs print them.
inline std::string connection_refused_text() {
#ifdef _WIN32
  return os_error(WSAECONNREFUSED).message();
#else
  return os_error(ECONNREFUSED).message();
#endif
}

/// Checks how a client ended that found nobody listening on
/// 127.0.0.1:`port`: exit code 1, nothing on standard output, and on
/// standard error the address it tried and the OS's reason.
inline void expect_connection_refused_exit(const ProcessResult& result, const std::string& port) {
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_EQ(result.output, "");
  EXPECT_NE(result.errors.find("cannot connect to 127.0.0.1:" + port), std::string::npos) << result.errors;
  EXPECT_NE(result.errors.find(connection_refused_text()), std::string::npos) << result.errors;
}

/// A command line a program must reject, and a piece of the message it must print.
struct BadCommandLine {
  std::vector<std::string> arguments;  ///< What is passed to the program.
  std::string message;                 ///< Text its standard error must contain.
};

/// Runs `program` once per bad command line: each run must exit with code 2,
/// print nothing on standard output and name the problem on standard error.
inline void expect_each_rejected(const std::string& program, const std::vector<BadCommandLine>& cases,
                                 std::chrono::milliseconds timeout) {
  for (const BadCommandLine& bad : cases) {
    SCOPED_TRACE(bad.arguments.front());
    const ProcessResult result = run_process(program, bad.arguments, timeout);
    EXPECT_EQ(result.exit_code, 2);
    EXPECT_EQ(result.output, "");
    EXPECT_NE(result.errors.find(bad.message), std::string::npos) << result.errors;
  }
}

}  // namespace iocp_chat::test
