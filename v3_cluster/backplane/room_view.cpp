// room_view.cpp — the failure detector and the per-node membership, as
// pure functions of the messages and the time (rules in room_view.hpp).
#include "room_view.hpp"

#include <utility>

namespace iocp_chat::v3 {

const char* reason_name(NodeDownReason reason) noexcept {
  switch (reason) {
    case NodeDownReason::silent:
      return "silent";
    case NodeDownReason::goodbye:
      return "goodbye";
    case NodeDownReason::restarted:
      return "restarted";
  }
  return "unknown";
}

RoomView::RoomView(std::string self, std::uint64_t incarnation, LivenessSettings settings)
    : self_(std::move(self)), incarnation_(incarnation), settings_(settings) {}

ViewEvent RoomView::node_down(const std::string& node, NodeDownReason reason,
                              std::set<std::string>& members) {
  ViewEvent event;
  event.type = ViewEvent::Type::node_down;
  event.node = node;
  event.reason = reason;
  event.members.assign(members.begin(), members.end());
  members.clear();
  return event;
}

void RoomView::ask_sync(const std::string& node, Peer& peer, Clock::time_point now, ViewActions& actions) {
  if (peer.sync_asked && now - peer.last_sync < settings_.heartbeat_interval) return;
  peer.sync_asked = true;
  peer.last_sync = now;
  actions.sync_requests.push_back(node);
}

ViewActions RoomView::on_message(const RoomMessage& message, Clock::time_point now) {
  ViewActions actions;
  if (message.node == self_) {
    if (message.incarnation != incarnation_) {
      actions.name_clash = true;  // another process under this name, or this node's previous life
      return actions;
    }
    if (message.kind == MessageKind::heartbeat) {
      if (deaf_) {
        // Hearing itself again: its peers' silence meanwhile proved nothing,
        // so their clocks restart; and, unless this is the first time (no
        // one knew it before), it may have been declared dead.
        deaf_ = false;
        for (auto& [name, peer] : peers_) {
          if (peer.alive) peer.last_heard = now;
        }
        actions.renew_own_ids = heard_self_;
        heard_self_ = true;
      }
      self_last_heard_ = now;
    }
    return actions;  // its own chat and presence were delivered locally already
  }

  const bool room_stream = is_room_stream(message.kind);
  auto found = peers_.find(message.node);
  if (found != peers_.end() && message.incarnation < found->second.incarnation) {
    ++counters_.late;
    return actions;
  }
  if (found == peers_.end() || message.incarnation > found->second.incarnation) {
    if (found != peers_.end() && found->second.alive) {
      actions.events.push_back(node_down(message.node, NodeDownReason::restarted, found->second.members));
    }
    Peer fresh;
    fresh.incarnation = message.incarnation;
    fresh.last_heard = now;
    // Numbered from the start (room stream from 1, node messages after 0)?
    // If not, this node joined later than that one: ask for its roster.
    const bool from_start = room_stream ? message.sequence == 1 : message.sequence == 0;
    fresh.last_sequence = room_stream && message.sequence > 0 ? message.sequence - 1 : message.sequence;
    found = peers_.insert_or_assign(message.node, std::move(fresh)).first;
    ViewEvent up;
    up.type = ViewEvent::Type::node_up;
    up.node = message.node;
    actions.events.push_back(std::move(up));
    if (!from_start) ask_sync(message.node, found->second, now, actions);
  }

  Peer& peer = found->second;
  if (!peer.alive) {
    handle_from_dead(message, peer, now, actions);
    return actions;
  }
  peer.last_heard = now;
  if (room_stream) {
    if (message.sequence <= peer.last_sequence) {
      ++counters_.duplicates;
      return actions;
    }
    if (message.sequence != peer.last_sequence + 1) {
      ++counters_.gaps;
      peer.roster_open = false;
      ask_sync(message.node, peer, now, actions);
    }
    peer.last_sequence = message.sequence;
    apply_room_message(message, peer, actions);
    return actions;
  }

  if (message.sequence > peer.last_sequence) {  // the tail of its stream was lost
    ++counters_.gaps;
    peer.roster_open = false;
    peer.last_sequence = message.sequence;
    ask_sync(message.node, peer, now, actions);
  }
  switch (message.kind) {
    case MessageKind::goodbye:
      actions.events.push_back(node_down(message.node, NodeDownReason::goodbye, peer.members));
      peer.alive = false;
      peer.dead_by_silence = false;
      peer.released = true;  // it released its ids itself
      break;
    case MessageKind::sync_request:
      if (message.target.empty() || message.target == self_) actions.send_roster = true;
      break;
    case MessageKind::declared_dead:
      if (message.target == self_ && message.target_incarnation == incarnation_) {
        ++counters_.told_declared;
        actions.renew_own_ids = true;
      }
      break;
    default:
      break;  // heartbeat: being heard is all it says
  }
  return actions;
}

void RoomView::apply_room_message(const RoomMessage& message, Peer& peer, ViewActions& actions) {
  ViewEvent event;
  event.node = message.node;
  event.user_id = message.user_id;
  switch (message.kind) {
    case MessageKind::chat:
      event.type = ViewEvent::Type::chat;
      event.text = message.text;
      event.sequence = message.sequence;
      actions.events.push_back(std::move(event));
      break;
    case MessageKind::joined:
      if (peer.members.insert(message.user_id).second) {
        event.type = ViewEvent::Type::member_joined;
        actions.events.push_back(std::move(event));
      }
      break;
    case MessageKind::left:
      if (peer.members.erase(message.user_id) != 0) {
        event.type = ViewEvent::Type::member_left;
        actions.events.push_back(std::move(event));
      }
      break;
    case MessageKind::roster:
      if (message.roster_flags & kRosterFirstPart) {
        peer.roster_open = true;
        peer.roster.clear();
      }
      if (!peer.roster_open) break;  // missed its first part: wait for the next roster
      peer.roster.insert(message.members.begin(), message.members.end());
      if (message.roster_flags & kRosterLastPart) {
        peer.roster_open = false;
        // The roster is the truth: report the difference, then take it.
        for (const std::string& id : peer.roster) {
          if (!peer.members.contains(id)) {
            actions.events.push_back({ViewEvent::Type::member_joined, message.node, id, {}, 0, {}, {}});
          }
        }
        for (const std::string& id : peer.members) {
          if (!peer.roster.contains(id)) {
            actions.events.push_back({ViewEvent::Type::member_left, message.node, id, {}, 0, {}, {}});
          }
        }
        peer.members = std::move(peer.roster);
        peer.roster.clear();
      }
      break;
    default:
      break;
  }
}

void RoomView::handle_from_dead(const RoomMessage& message, Peer& peer, Clock::time_point now,
                                ViewActions& actions) {
  ++counters_.from_dead;
  if (!peer.dead_by_silence) return;  // it said goodbye: anything later is late
  if (message.kind == MessageKind::goodbye) {
    peer.dead_by_silence = false;  // gone for good; it released its ids itself
    return;
  }
  // Keep following its numbers, so a roster is known to be whole.
  if (is_room_stream(message.kind)) {
    if (message.sequence <= peer.last_sequence) return;
    if (message.sequence != peer.last_sequence + 1) peer.roster_open = false;
    peer.last_sequence = message.sequence;
    if (message.kind == MessageKind::roster && peer.released) {
      if (message.roster_flags & kRosterFirstPart) {
        peer.roster_open = true;
        peer.roster.clear();
      }
      if (peer.roster_open) {
        peer.roster.insert(message.members.begin(), message.members.end());
        if (message.roster_flags & kRosterLastPart) {
          // Taken back: this roster was sent after its renewal, which came
          // after this node's release of its old ids.
          peer.alive = true;
          peer.dead_by_silence = false;
          peer.roster_open = false;
          peer.members = std::move(peer.roster);
          peer.roster.clear();
          peer.last_heard = now;
          ++counters_.rejoined;
          actions.events.push_back({ViewEvent::Type::node_up, message.node, {}, {}, 0, {}, {}});
          for (const std::string& id : peer.members) {
            actions.events.push_back({ViewEvent::Type::member_joined, message.node, id, {}, 0, {}, {}});
          }
          return;
        }
      }
    }
  } else if (message.sequence > peer.last_sequence) {
    peer.last_sequence = message.sequence;
    peer.roster_open = false;
  }
  if (message.kind == MessageKind::sync_request && (message.target.empty() || message.target == self_)) {
    actions.send_roster = true;
  }
  if (peer.last_told == Clock::time_point{} || now - peer.last_told >= settings_.heartbeat_interval) {
    peer.last_told = now;
    actions.tell_declared.emplace_back(message.node, peer.incarnation);
  }
}

ViewActions RoomView::on_tick(Clock::time_point now) {
  ViewActions actions;
  if (!deaf_ && now - self_last_heard_ > settings_.deaf_after) deaf_ = true;
  if (deaf_) return actions;  // its peers' silence proves nothing now
  for (auto& [name, peer] : peers_) {
    if (!peer.alive || now - peer.last_heard <= settings_.dead_after) continue;
    actions.events.push_back(node_down(name, NodeDownReason::silent, peer.members));
    peer.alive = false;
    peer.dead_by_silence = true;
    peer.released = false;
    peer.roster_open = false;
    peer.last_told = {};
    actions.release_ids_of.emplace_back(name, peer.incarnation);
    ++counters_.declared_dead;
  }
  return actions;
}

void RoomView::on_connection_lost() { deaf_ = true; }

void RoomView::on_release_done(const std::string& node, std::uint64_t incarnation) {
  auto found = peers_.find(node);
  if (found != peers_.end() && found->second.incarnation == incarnation && !found->second.alive) {
    found->second.released = true;
  }
}

std::vector<PeerInfo> RoomView::peers() const {
  std::vector<PeerInfo> result;
  for (const auto& [name, peer] : peers_) {
    result.push_back({name, peer.incarnation, peer.alive, peer.members, peer.last_sequence});
  }
  return result;
}

}  // namespace iocp_chat::v3
