// line_schedule_test.cpp — when the console clients send what: --send lines
// one per --delay, typed lines at once, and when the main thread must wake.
// Pure logic on given time points: nothing sleeps.
#include "common/clients/console/line_schedule.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <deque>
#include <string>
#include <vector>

namespace iocp_chat::console {
namespace {

using namespace std::chrono_literals;
using Clock = LineSchedule::Clock;
using Lines = std::vector<std::string>;

TEST(LineScheduleTest, ScriptedLinesLeaveOnePerDelayInOrderThenItIsFinished) {
  ClientOptions options;
  options.lines_to_send = {"one", "two"};
  options.delay = 100ms;
  const Clock::time_point start{};
  LineSchedule schedule(options, start);
  std::deque<std::string> typed{"ignored while scripted"};

  EXPECT_EQ(schedule.take_due(start + 99ms, typed), Lines{}) << "the first line waits for --delay";
  EXPECT_EQ(schedule.wake_at(std::nullopt), start + 100ms);
  EXPECT_EQ(schedule.take_due(start + 100ms, typed), Lines{"one"});
  EXPECT_FALSE(schedule.finished(false));
  EXPECT_EQ(schedule.take_due(start + 150ms, typed), Lines{}) << "one line per --delay";
  EXPECT_EQ(schedule.wake_at(start + 120ms), start + 120ms) << "an earlier --expect deadline wins";
  EXPECT_EQ(schedule.take_due(start + 200ms, typed), Lines{"two"});
  EXPECT_TRUE(schedule.finished(false)) << "every --send line is out";
  EXPECT_EQ(schedule.wake_at(std::nullopt), std::nullopt) << "nothing timed is left";
  EXPECT_EQ(typed.size(), 1U) << "typed lines are not used in scripted mode";
}

TEST(LineScheduleTest, TypedLinesLeaveAtOnceAndTheEndOfInputFinishesIt) {
  ClientOptions options;  // no --send: interactive
  LineSchedule schedule(options, Clock::time_point{});
  std::deque<std::string> typed{"hello", "안녕"};
  EXPECT_EQ(schedule.take_due(Clock::time_point{}, typed), (Lines{"hello", "안녕"}));
  EXPECT_TRUE(typed.empty());
  EXPECT_EQ(schedule.wake_at(std::nullopt), std::nullopt) << "wait for the keyboard, not the clock";
  EXPECT_FALSE(schedule.finished(false));
  EXPECT_TRUE(schedule.finished(true));
}

}  // namespace
}  // namespace iocp_chat::console
