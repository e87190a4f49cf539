// keyboard.hpp — the keyboard thread of the console clients: it reads what
// the user types and hands each line to the main thread, which decides when
// to send it. Shared by both stages' console clients (v1_client and
// v2_client), so it lives in common/clients/console/ (iocp_chat::console).
//
// Idea: reading the keyboard blocks, and the main thread must never block on
// it (it also waits for the server and for --delay). So one thread does
// nothing but read lines and put them in a queue under the chat's lock; the
// main thread is woken through the chat's condition variable, the same way
// the receiver thread wakes it for lines from the server.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

#include "console_io.hpp"

namespace iocp_chat::console {

/// The typed command that leaves the chat; it is not sent.
inline constexpr std::string_view kQuitCommand = "/quit";

/// The keyboard thread: hands each typed line to the main thread, until
/// /quit or the end of input. `ChatState` is the client's shared state, with
/// `lock` (a mutex guarding the rest), `changed` (a condition variable),
/// `typed_lines` (a queue of strings), `quit_requested` and `input_ended`.
/// It shares ownership of the state because it is detached: a thread
/// blocked reading the keyboard cannot be woken portably, so the program may
/// end while it still waits, and the state must outlive it.
template <typename ChatState>
void read_keyboard(const std::shared_ptr<ChatState>& state) {
  std::string line;
  while (read_input_line(line)) {
    const std::lock_guard guard(state->lock);
    if (line == kQuitCommand) {
      state->quit_requested = true;
      state->changed.notify_all();
      return;
    }
    state->typed_lines.push_back(std::move(line));
    state->changed.notify_all();
  }
  const std::lock_guard guard(state->lock);
  state->input_ended = true;
  state->changed.notify_all();
}

}  // namespace iocp_chat::console
