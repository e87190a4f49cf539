// completion_port.cpp — what every backend shares: backend names, the
// single-completion wait(), and the choice of backend at run time
// (`--backend auto` and its fallback).
#include "iocp_chat/completion_port.hpp"

#include <cstring>
#include <stdexcept>
#include <system_error>

#include "backends.hpp"
#include "iocp_chat/os_error.hpp"

namespace iocp_chat {

std::string_view to_string(Backend backend) noexcept {
  switch (backend) {
    case Backend::automatic:
      return "auto";
    case Backend::iocp:
      return "iocp";
    case Backend::uring:
      return "uring";
    case Backend::epoll:
      return "epoll";
  }
  return "?";
}

std::optional<Backend> parse_backend(std::string_view name) noexcept {
  for (const Backend backend : {Backend::automatic, Backend::iocp, Backend::uring, Backend::epoll}) {
    if (name == to_string(backend)) return backend;
  }
  return std::nullopt;
}

std::vector<Backend> compiled_backends() {
#ifdef _WIN32
  return {Backend::iocp};
#elif defined(IOCP_CHAT_HAVE_URING)
  return {Backend::uring, Backend::epoll};
#else
  return {Backend::epoll};
#endif
}

std::optional<Completion> CompletionPort::wait(std::chrono::milliseconds timeout) {
  Completion completion;
  if (wait_many(std::span(&completion, 1), timeout) == 0) return std::nullopt;
  return completion;
}

namespace {

/// Throws the "no such backend here" error, naming the backends this build has.
[[noreturn]] void unavailable(Backend backend) {
  std::string names;
  for (const Backend compiled : compiled_backends()) {
    names += (names.empty() ? "" : ", ") + std::string(to_string(compiled));
  }
  throw std::system_error(std::make_error_code(std::errc::not_supported),
                          "the '" + std::string(to_string(backend)) +
                              "' backend is not available on this platform (this build has: " + names + ")");
}

}  // namespace

// [backend-choice]
std::unique_ptr<CompletionPort> open_completion_port(Backend requested, std::string* note) {
  auto say = [note](std::string text) {
    if (note != nullptr) *note = std::move(text);
  };
#ifdef _WIN32
  if (requested != Backend::automatic && requested != Backend::iocp) unavailable(requested);
  say(requested == Backend::automatic ? "backend: iocp (auto: Windows I/O completion port)"
                                      : "backend: iocp");
  return detail::open_iocp_port();
#else
  switch (requested) {
    case Backend::iocp:
      unavailable(requested);
    case Backend::epoll:
      say("backend: epoll");
      return detail::open_epoll_port();
    case Backend::uring:
#ifdef IOCP_CHAT_HAVE_URING
      say("backend: uring");
      return detail::open_uring_port();
#else
      unavailable(requested);
#endif
    case Backend::automatic:
#ifdef IOCP_CHAT_HAVE_URING
      try {
        auto port = detail::open_uring_port();
        say("backend: uring (auto: io_uring is available)");
        return port;
      } catch (const std::system_error& error) {
        say(std::string("backend: epoll (auto: io_uring cannot start: ") + error.what() + ")");
        return detail::open_epoll_port();
      }
#else
      say("backend: epoll (auto: built without liburing)");
      return detail::open_epoll_port();
#endif
  }
  unavailable(requested);
#endif
}
// [backend-choice]

}  // namespace iocp_chat
