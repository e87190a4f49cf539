// line_schedule.hpp — when a console client sends what: the next --send line
// once its --delay is over, or whatever the user has typed. Shared by both
// stages' console clients (v1_client and v2_client), whose main threads
// differ only in how one line goes on the wire, so it lives in
// common/clients/console/ (iocp_chat::console).
//
// Client-side idea shown: the main thread never polls. It sleeps on a
// condition variable until another thread changes the shared state, or
// until the next timed event this class names (wake_at).
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "options.hpp"

namespace iocp_chat::console {

/// The order and timing of the lines a console client sends.
class LineSchedule {
 public:
  /// The clock the schedule runs on.
  using Clock = std::chrono::steady_clock;

  /// The first --send line is due `options.delay` after `start`.
  LineSchedule(const ClientOptions& options, Clock::time_point start);

  /// The lines to send now: the next --send line if it is due, or every line
  /// in `typed` (moved out of it) when the client is interactive.
  std::vector<std::string> take_due(Clock::time_point now, std::deque<std::string>& typed);

  /// True when nothing more will be sent: every --send line is out, or (interactive) the input ended.
  bool finished(bool input_ended) const noexcept;

  /// When the main thread must wake up even if nothing changes: the next
  /// --send time, or `deadline`, whichever comes first; std::nullopt = only on a change.
  std::optional<Clock::time_point> wake_at(std::optional<Clock::time_point> deadline) const noexcept;

 private:
  /// True while --send lines remain.
  bool send_pending() const noexcept;

  const ClientOptions& options_;  ///< The --send lines and --delay.
  std::size_t next_line_ = 0;     ///< Index of the next --send line.
  Clock::time_point next_time_;   ///< When it is due.
};

}  // namespace iocp_chat::console
