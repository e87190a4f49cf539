// ch00_exercises_test.cpp — the check of chapter 0's exercise 0.2: every
// server answers `--version` with its name and the project's version.
//
// IOCP idea: none yet; this is about running the real programs the way a
// user does (as child processes) and judging them by what they print and
// how they exit, like tests/v1/console_client_test.cpp.
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "process.hpp"

namespace iocp_chat::exercises {
namespace {

using namespace std::chrono_literals;

/// Runs `program --version` and checks what it prints.
void expect_version(const std::string& program, const std::string& name) {
  const test::ProcessResult result = test::run_process(program, {"--version"}, 20s);
  const std::string wanted = name + " " + IOCP_CHAT_VERSION;
  EXPECT_EQ(result.exit_code, 0) << "exercise 0.2: '" << name << " --version' should exit 0; it exited "
                                 << result.exit_code << " and said: " << result.errors;
  EXPECT_NE(result.output.find(wanted), std::string::npos)
      << "exercise 0.2: '" << name << " --version' should print '" << wanted
      << "' on standard output (the version comes from CMake's project(VERSION ...)); it printed: '"
      << result.output << "'";
}

// Exercise 0.2: --version, the same for every program (common/src/command_line.cpp).
TEST(Exercise0_2, ServersPrintTheirVersion) {
  expect_version(IOCP_CHAT_V1_SERVER, "v1_server");
  expect_version(IOCP_CHAT_V2_SERVER, "v2_server");
}

}  // namespace
}  // namespace iocp_chat::exercises
