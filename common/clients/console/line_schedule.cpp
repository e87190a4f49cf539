// line_schedule.cpp — the console clients' send schedule (see the header),
// shared by both stages' console clients (iocp_chat::console).
#include "line_schedule.hpp"

#include <algorithm>
#include <iterator>

namespace iocp_chat::console {

LineSchedule::LineSchedule(const ClientOptions& options, Clock::time_point start)
    : options_(options), next_time_(start + options.delay) {}

std::vector<std::string> LineSchedule::take_due(Clock::time_point now, std::deque<std::string>& typed) {
  std::vector<std::string> due;
  if (options_.scripted()) {
    if (send_pending() && now >= next_time_) {
      due.push_back(options_.lines_to_send[next_line_++]);
      next_time_ = now + options_.delay;
    }
  } else {
    due.assign(std::make_move_iterator(typed.begin()), std::make_move_iterator(typed.end()));
    typed.clear();
  }
  return due;
}

bool LineSchedule::finished(bool input_ended) const noexcept {
  return options_.scripted() ? !send_pending() : input_ended;
}

std::optional<LineSchedule::Clock::time_point> LineSchedule::wake_at(
    std::optional<Clock::time_point> deadline) const noexcept {
  if (!send_pending()) return deadline;
  return deadline ? std::min(*deadline, next_time_) : next_time_;
}

bool LineSchedule::send_pending() const noexcept {
  return options_.scripted() && next_line_ < options_.lines_to_send.size();
}

}  // namespace iocp_chat::console
