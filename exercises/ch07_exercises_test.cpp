// ch07_exercises_test.cpp — the check of chapter 7's exercise 7.1: each
// server's `--list-backends` says which backends it was built with and
// whether each can start on this machine, and why not.
//
// IOCP idea checked: the backend is chosen at run time behind one interface
// (open_completion_port); a backend that is compiled in may still be unable
// to start (io_uring blocked by a container), and the program can say so
// before it serves anyone. Run as a user would, as a child process.
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "iocp_chat/completion_port.hpp"
#include "process.hpp"

namespace iocp_chat::exercises {
namespace {

using namespace std::chrono_literals;

/// Runs `program --list-backends` and checks one line per compiled backend.
void expect_backend_list(const std::string& program, const std::string& name) {
  const test::ProcessResult result = test::run_process(program, {"--list-backends"}, 20s);
  ASSERT_EQ(result.exit_code, 0) << "exercise 7.1: '" << name
                                 << " --list-backends' should exit 0 after the list; it said: "
                                 << result.errors;
  for (const Backend backend : compiled_backends()) {
    const std::string line = std::string(to_string(backend)) + ": ";
    EXPECT_NE(result.output.find(line), std::string::npos)
        << "exercise 7.1: '" << name << " --list-backends' should print a line '" << line << "available' or '"
        << line << "unavailable (reason)'; it printed: '" << result.output << "'";
  }
  // epoll starts on every Linux this project supports.
  EXPECT_NE(result.output.find("epoll: available"), std::string::npos)
      << "exercise 7.1: try open_completion_port(backend) for each of compiled_backends()";
}

// Exercise 7.1: both servers list their backends.
TEST(Exercise7_1, ServersListTheirBackends) {
  expect_backend_list(IOCP_CHAT_V1_SERVER, "v1_server");
  expect_backend_list(IOCP_CHAT_V2_SERVER, "v2_server");
}

}  // namespace
}  // namespace iocp_chat::exercises
