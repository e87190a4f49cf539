// shutdown_signal.hpp — waiting for Ctrl+C the way each platform delivers it.
//
// IOCP idea: the main thread of an IOCP server does not handle I/O; it
// starts the workers, then waits for the order to stop and runs the
// shutdown sequence. On Windows the order comes through a console control
// handler (SetConsoleCtrlHandler, called on a thread of its own); on Linux as
// SIGINT/SIGTERM, which are blocked in every thread and taken with sigwait,
// so no signal handler ever runs in the middle of a worker.
#pragma once

namespace iocp_chat {

/// Call first in main(), before any thread starts: blocks SIGINT and SIGTERM
/// (inherited by every thread) or installs the console control handler.
void prepare_shutdown_signal();

/// Blocks until Ctrl+C, SIGINT, SIGTERM or a console close event arrives.
void wait_for_shutdown_signal();

}  // namespace iocp_chat
