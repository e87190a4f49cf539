// log.hpp — one line per event, from any thread, never interleaved.
//
// IOCP idea: log lines come from many worker threads at once; each line is
// written with a single call under a lock, so two workers' lines never mix.
#pragma once

#include <functional>
#include <string_view>

namespace iocp_chat {

/// Writes "HH:MM:SS.mmm <text>\n" to standard error as one write.
void log_line(std::string_view text);

/// Silences log_line (tests that start many servers keep their output short).
void set_logging_enabled(bool enabled) noexcept;

/// Also hands every line's text (without the time stamp) to `observer`, even
/// while logging is silenced: how a test checks that a reason was logged.
/// An empty function stops it. The observer runs on the logging thread.
void set_log_observer(std::function<void(std::string_view)> observer);

}  // namespace iocp_chat
