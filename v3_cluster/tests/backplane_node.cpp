// backplane_node.cpp — v3_backplane_node: one backplane node as a program of
// its own, with no chat server around it. It joins a room, claims the ids it
// is given, prints "ready", then prints every callback as one line until it
// is stopped (SIGINT/SIGTERM: a clean stop with goodbye) or killed.
//
// Why a program: the failure tests kill a node with SIGKILL, and only a
// separate process can die that way while the test watches from another.
//
//   v3_backplane_node --nats nats://127.0.0.1:4222 --node a --claim alice --claim bob
//
// Credentials come from --credentials FILE or the environment (never an
// option holding the secret itself): see credentials.hpp.
#include <cstdio>
#include <string>
#include <vector>

#include "backplane.hpp"
#include "iocp_chat/command_line.hpp"
#include "iocp_chat/shutdown_signal.hpp"

namespace {

using iocp_chat::v3::Backplane;
using iocp_chat::v3::BackplaneError;
using iocp_chat::v3::BackplaneSettings;
using iocp_chat::v3::ClaimStatus;
using iocp_chat::v3::NodeDownReason;
using iocp_chat::v3::RemoteChat;

/// Prints each callback as one line (callbacks never overlap, so no lock).
class PrintingListener : public iocp_chat::v3::BackplaneListener {
 public:
  void on_chat(const RemoteChat& chat) override {
    print("chat " + chat.node + " " + chat.user_id + " " + std::to_string(chat.sequence) + " " + chat.text);
  }
  void on_member_joined(const std::string& node, const std::string& user_id) override {
    print("joined " + node + " " + user_id);
  }
  void on_member_left(const std::string& node, const std::string& user_id) override {
    print("left " + node + " " + user_id);
  }
  void on_node_down(const std::string& node, NodeDownReason reason,
                    const std::vector<std::string>& members) override {
    print("down " + node + " " + iocp_chat::v3::reason_name(reason) + join(members));
  }
  void on_ids_revoked(const std::vector<std::string>& user_ids) override {
    print("revoked" + join(user_ids));
  }
  void on_node_up(const std::string& node) override { print("up " + node); }
  void on_connection_lost() override { print("lost"); }
  void on_connection_back(const std::string& url) override { print("back " + url); }

  static void print(const std::string& line) {
    std::fputs((line + "\n").c_str(), stdout);
    std::fflush(stdout);
  }

 private:
  static std::string join(const std::vector<std::string>& items) {
    std::string text;
    for (const std::string& item : items) text += " " + item;
    return text;
  }
};

std::vector<std::string> split(const std::string& list) {
  std::vector<std::string> items;
  std::size_t start = 0;
  while (start <= list.size()) {
    const std::size_t comma = list.find(',', start);
    const std::string item =
        list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (!item.empty()) items.push_back(item);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return items;
}

}  // namespace

int main(int argc, char** argv) {
  iocp_chat::prepare_shutdown_signal();
  std::string urls, node, room = "lobby", credentials;
  std::vector<std::string> claims;
  bool in_order = false;
  iocp_chat::CommandLine options("v3_backplane_node",
                                 "One ver.3 backplane node without a chat server (for tests).",
                                 "v3_backplane_node --nats nats://127.0.0.1:4222 --node a --claim alice");
  options.text("--nats", "URL[,URL...]", "NATS servers (a failover list)", urls);
  options.text("--node", "NAME", "this node's name", node);
  options.text("--room", "NAME", "the room (default lobby)", room);
  options.text("--credentials", "FILE", "NATS credentials file (else IOCP_CHAT_NATS_* variables)",
               credentials);
  options.texts("--claim", "ID", "claim this id after joining (repeatable)", claims);
  options.flag("--in-order", "try the URLs in order (default: shuffled)", in_order);
  switch (options.parse(argc, argv)) {
    case iocp_chat::ParseOutcome::help:
      return 0;
    case iocp_chat::ParseOutcome::error:
      return 2;
    case iocp_chat::ParseOutcome::run:
      break;
  }
  if (urls.empty() || node.empty()) {
    std::fputs("v3_backplane_node: --nats and --node are required\n", stderr);
    return 2;
  }

  BackplaneSettings settings;
  settings.urls = split(urls);
  settings.node = node;
  settings.room = room;
  settings.credentials_file = credentials;
  settings.randomize_servers = !in_order;
  PrintingListener listener;
  try {
    Backplane backplane(settings, listener);
    backplane.start();
    for (const std::string& id : claims) {
      const auto result = backplane.claim_and_wait(id);
      PrintingListener::print((result.status == ClaimStatus::claimed ? "claimed " : "not claimed ") + id);
    }
    PrintingListener::print("ready " + backplane.holder());
    iocp_chat::wait_for_shutdown_signal();
    backplane.stop();
  } catch (const BackplaneError& error) {
    std::fprintf(stderr, "v3_backplane_node: %s\n", error.what());
    return 1;
  }
  return 0;
}
