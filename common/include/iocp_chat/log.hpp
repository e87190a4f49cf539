// log.hpp — one line per event, from any thread, never interleaved, and never
// a reason for a worker to wait.
//
// IOCP idea: a worker thread should block only in the completion port's
// wait. Log lines come from many workers at once — some while they hold a
// client's lock, some caused by what clients send — so log_line only puts
// the line in a bounded queue; one writer thread writes the queue to
// standard error. If standard error stops taking output (a full pipe that
// nobody reads), the queue fills, later lines are dropped and counted, and
// "N log lines dropped" is written once the output moves again. What is
// queued when the program ends normally is written before it exits.
#pragma once

#include <chrono>
#include <functional>
#include <string_view>

namespace iocp_chat {

/// Queues "HH:MM:SS.mmm <text>\n" for standard error, written whole by the
/// writer thread; never waits for the output (past 1 MiB queued, the line
/// is dropped and counted instead).
void log_line(std::string_view text);

/// Silences log_line (tests that start many servers keep their output short).
void set_logging_enabled(bool enabled) noexcept;

/// Also hands every line's text (without the time stamp) to `observer`, even
/// while logging is silenced: how a test checks that a reason was logged.
/// An empty function stops it. The observer runs on the logging thread,
/// inside log_line, so it has seen the line when log_line returns.
void set_log_observer(std::function<void(std::string_view)> observer);

/// Waits until the lines queued so far are written (or `timeout` passes); true if they are.
bool flush_log(std::chrono::milliseconds timeout = std::chrono::milliseconds(2000));

}  // namespace iocp_chat
