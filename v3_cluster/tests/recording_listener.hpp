// recording_listener.hpp — a BackplaneListener for tests: it writes down
// every callback with the time it arrived, and lets a test wait for one.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "backplane.hpp"

namespace iocp_chat::v3::test {

/// One callback as it arrived.
struct Recorded {
  std::string kind;            ///< "chat", "joined", "left", "down", "up", "revoked", "lost", "back".
  std::string node;            ///< The node it is about (chat, joined, left, down, up).
  std::string user_id;         ///< chat, joined, left.
  std::string text;            ///< chat.
  std::uint64_t sequence = 0;  ///< chat.
  NodeDownReason reason = NodeDownReason::silent;  ///< down.
  std::vector<std::string> ids;                    ///< down: its members; revoked: the ids.
  std::chrono::steady_clock::time_point at;        ///< When it arrived.
};

/// Records every callback. Also checks the promise that callbacks never run
/// two at a time.
class RecordingListener : public BackplaneListener {
 public:
  void on_chat(const RemoteChat& chat) override {
    add({"chat", chat.node, chat.user_id, chat.text, chat.sequence, {}, {}, {}});
  }
  void on_member_joined(const std::string& node, const std::string& user_id) override {
    add({"joined", node, user_id, {}, 0, {}, {}, {}});
  }
  void on_member_left(const std::string& node, const std::string& user_id) override {
    add({"left", node, user_id, {}, 0, {}, {}, {}});
  }
  void on_node_down(const std::string& node, NodeDownReason reason,
                    const std::vector<std::string>& members) override {
    add({"down", node, {}, {}, 0, reason, members, {}});
  }
  void on_ids_revoked(const std::vector<std::string>& user_ids) override {
    add({"revoked", {}, {}, {}, 0, {}, user_ids, {}});
  }
  void on_node_up(const std::string& node) override { add({"up", node, {}, {}, 0, {}, {}, {}}); }
  void on_connection_lost() override { add({"lost", {}, {}, {}, 0, {}, {}, {}}); }
  void on_connection_back(const std::string& url) override { add({"back", {}, {}, url, 0, {}, {}, {}}); }

  /// Everything so far.
  std::vector<Recorded> events() const {
    std::lock_guard lock(mutex_);
    return events_;
  }

  /// The first event (after the first `skip` of its kind) for which `match`
  /// is true, waiting up to `timeout` for it.
  std::optional<Recorded> wait_for(const std::function<bool(const Recorded&)>& match,
                                   std::chrono::milliseconds timeout) const {
    std::unique_lock lock(mutex_);
    std::optional<Recorded> found;
    changed_.wait_for(lock, timeout, [&] {
      for (const Recorded& event : events_) {
        if (match(event)) {
          found = event;
          return true;
        }
      }
      return false;
    });
    return found;
  }

  /// wait_for an event of `kind` about `node` ("" = any node).
  std::optional<Recorded> wait_for(const std::string& kind, const std::string& node,
                                   std::chrono::milliseconds timeout) const {
    return wait_for(
        [&](const Recorded& event) { return event.kind == kind && (node.empty() || event.node == node); },
        timeout);
  }

  /// How many events of `kind` arrived.
  std::size_t count(const std::string& kind) const {
    std::lock_guard lock(mutex_);
    std::size_t total = 0;
    for (const Recorded& event : events_) total += event.kind == kind ? 1u : 0u;
    return total;
  }

  /// True if two callbacks ever overlapped (the backplane promises never).
  bool overlapped() const {
    std::lock_guard lock(mutex_);
    return overlapped_;
  }

 private:
  void add(Recorded event) {
    {
      std::lock_guard lock(mutex_);
      if (inside_) overlapped_ = true;
      inside_ = true;
    }
    event.at = std::chrono::steady_clock::now();
    std::lock_guard lock(mutex_);
    events_.push_back(std::move(event));
    inside_ = false;
    changed_.notify_all();
  }

  mutable std::mutex mutex_;                 ///< Guards what follows.
  mutable std::condition_variable changed_;  ///< Signals a new event.
  std::vector<Recorded> events_;             ///< In arrival order.
  bool inside_ = false;                      ///< A callback is running.
  bool overlapped_ = false;                  ///< Two ran at once.
};

}  // namespace iocp_chat::v3::test
