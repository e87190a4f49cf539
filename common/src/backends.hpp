// backends.hpp — internal: the constructors of the three completion-port
// backends, which open_completion_port() chooses between. Each throws
// std::system_error, with the OS's reason, when it cannot start.
#pragma once

#include <memory>

#include "iocp_chat/completion_port.hpp"

namespace iocp_chat::detail {

#ifdef _WIN32
/// The real I/O completion port (completion_port_win32.cpp).
std::unique_ptr<CompletionPort> open_iocp_port();
#else
#ifdef IOCP_CHAT_HAVE_URING
/// io_uring (completion_port_uring.cpp).
std::unique_ptr<CompletionPort> open_uring_port();
#endif
/// epoll readiness turned into completions (completion_port_epoll.cpp).
std::unique_ptr<CompletionPort> open_epoll_port();
#endif

}  // namespace iocp_chat::detail
