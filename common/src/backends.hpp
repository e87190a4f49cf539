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
/// Tests only (tests/common/uring_backend_test.cpp): io_uring with `entries`
/// SQ slots and twice as many CQ slots, whose submissions are refused with
/// EBUSY while completions overflow the CQ, as Linux 5.x refused them;
/// newer kernels never do, so the refusal paths could not be tested otherwise.
std::unique_ptr<CompletionPort> open_uring_port_for_test(unsigned entries);
#endif
/// epoll readiness turned into completions (completion_port_epoll.cpp).
std::unique_ptr<CompletionPort> open_epoll_port();
#endif

}  // namespace iocp_chat::detail
