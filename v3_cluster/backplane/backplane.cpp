// backplane.cpp — the NATS connection, the room subscription, the heartbeat
// and registry threads, and the glue that turns RoomView's decisions into
// publications, bucket requests and listener calls.
//
// Locks, always taken in this order, never the reverse:
//   view_lock_ (the view; held while calling the listener)
//     -> outgoing_lock_ (this node's numbered stream and its ids)
//       -> stats_lock_ (counters)
// tasks_mutex_ and closed_mutex_ are leaves: nothing is taken while holding them.
#include "backplane.hpp"

#include <algorithm>
#include <cstdlib>
#include <future>
#include <set>
#include <utility>

#include "credentials.hpp"
#include "iocp_chat/log.hpp"

namespace iocp_chat::v3 {
namespace {

using Clock = std::chrono::steady_clock;

/// Microseconds since the epoch: distinct per start, and a restart is newer.
std::uint64_t new_incarnation() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

/// The host part of a URL (between "scheme://" and ":port" or "/").
std::string host_of(std::string_view url) {
  const auto scheme = url.find("://");
  std::string_view rest = scheme == std::string_view::npos ? url : url.substr(scheme + 3);
  rest = rest.substr(0, rest.find('/'));
  if (!rest.empty() && rest.front() == '[') return std::string(rest.substr(1, rest.find(']') - 1));
  return std::string(rest.substr(0, rest.rfind(':')));
}

bool is_ip_literal(std::string_view host) {
  return host.find(':') != std::string_view::npos ||
         std::all_of(host.begin(), host.end(), [](char c) { return (c >= '0' && c <= '9') || c == '.'; });
}

void check(natsStatus status, const char* what) {
  if (status != NATS_OK) throw BackplaneError(std::string(what) + ": " + nats::error_text(status));
}

}  // namespace

Backplane::Backplane(BackplaneSettings settings, BackplaneListener& listener)
    : settings_(std::move(settings)),
      listener_(listener),
      incarnation_(new_incarnation()),
      holder_(settings_.node + " " + std::to_string(incarnation_)),
      subjects_(room_subjects(settings_.room)),
      view_(settings_.node, incarnation_, settings_.liveness) {
  if (!is_valid_name(settings_.node, kMaxNodeNameSize)) {
    throw BackplaneError("node name '" + settings_.node + "': 1 to 32 of A-Z a-z 0-9 _ -");
  }
  if (!is_valid_name(settings_.room, kMaxRoomNameSize)) {
    throw BackplaneError("room name '" + settings_.room + "': 1 to 32 of A-Z a-z 0-9 _ -");
  }
  if (settings_.urls.empty()) throw BackplaneError("no NATS URL given");
  for (const std::string& url : settings_.urls) {
    if (url_has_credentials(url)) {
      throw BackplaneError(
          "a NATS URL must not carry credentials (they would show in the process list); "
          "use a credentials file or the environment");
    }
  }
  const LivenessSettings& live = settings_.liveness;
  if (live.heartbeat_interval.count() <= 0 || live.deaf_after <= live.heartbeat_interval ||
      live.dead_after <= live.deaf_after) {
    throw BackplaneError("liveness: need 0 < heartbeat interval < deaf_after < dead_after");
  }
}

Backplane::~Backplane() { stop(); }

void Backplane::log(std::string_view text) const {
  log_line("v3 " + settings_.node + ": " + std::string(text));
}

nats::Options Backplane::make_options() {
  natsOptions* raw = nullptr;
  check(natsOptions_Create(&raw), "NATS options");
  nats::Options options(raw);

  std::vector<const char*> urls;
  for (const std::string& url : settings_.urls) urls.push_back(url.c_str());
  check(natsOptions_SetServers(raw, urls.data(), static_cast<int>(urls.size())), "NATS URLs");
  check(natsOptions_SetNoRandomize(raw, !settings_.randomize_servers), "NATS options");
  check(natsOptions_SetIgnoreDiscoveredServers(raw, settings_.ignore_discovered_servers), "NATS options");
  check(natsOptions_SetTimeout(raw, settings_.connect_timeout.count()), "NATS options");
  const std::string name = "iocp-chat node " + settings_.node;
  check(natsOptions_SetName(raw, name.c_str()), "NATS options");
  // Reconnect forever: a node outlives any NATS outage and rejoins by itself.
  check(natsOptions_SetMaxReconnect(raw, -1), "NATS options");
  check(natsOptions_SetReconnectWait(raw, settings_.reconnect_wait.count()), "NATS options");
  // A connection that goes silent without a reset (a cut cable) is noticed
  // after about ping_interval × (max_pings_out + 1).
  check(natsOptions_SetPingInterval(raw, settings_.ping_interval.count()), "NATS options");
  check(natsOptions_SetMaxPingsOut(raw, settings_.max_pings_out), "NATS options");
  // A request in flight when the connection drops fails at once (the claim
  // answers TRY_LATER) instead of waiting out its timeout.
  check(natsOptions_SetFailRequestsOnDisconnect(raw, true), "NATS options");
  check(natsOptions_SetDisconnectedCB(raw, &Backplane::on_nats_disconnected, this), "NATS options");
  check(natsOptions_SetReconnectedCB(raw, &Backplane::on_nats_reconnected, this), "NATS options");
  check(natsOptions_SetClosedCB(raw, &Backplane::on_nats_closed, this), "NATS options");
  check(natsOptions_SetErrorHandler(raw, &Backplane::on_nats_error, this), "NATS options");

  std::vector<std::string> warnings;
  NatsCredentials credentials;
  try {
    credentials = load_credentials(settings_.credentials_file, warnings);
  } catch (const CredentialsError& error) {
    throw BackplaneError(error.what());
  }
  for (const std::string& warning : warnings) log("warning: " + warning);
  if (!credentials.token.empty()) {
    check(natsOptions_SetToken(raw, credentials.token.c_str()), "NATS token");
    log("NATS credentials: a token, from " + credentials.source);
  } else if (!credentials.user.empty()) {
    check(natsOptions_SetUserInfo(raw, credentials.user.c_str(), credentials.password.c_str()), "NATS user");
    log("NATS credentials: user " + credentials.user + ", from " + credentials.source);
  } else {
    log("NATS credentials: none (a server that requires them will refuse this node)");
  }

  std::set<std::string> tls_hosts;
  for (const std::string& url : settings_.urls) {
    if (url_wants_tls(url)) tls_hosts.insert(host_of(url));
  }
  if (!tls_hosts.empty()) {
    check(natsOptions_SetSecure(raw, true), "TLS");
    std::string ca_file = settings_.tls_ca_file;
    if (ca_file.empty()) {
      if (const char* variable = std::getenv("IOCP_CHAT_NATS_CA_FILE")) ca_file = variable;
    }
    if (!ca_file.empty()) check(natsOptions_LoadCATrustedCertificates(raw, ca_file.c_str()), "TLS CA file");
    // The client checks the certificate's chain, and its name when there is
    // one name to check (every tls:// URL names the same host, not an address).
    if (tls_hosts.size() == 1 && !is_ip_literal(*tls_hosts.begin())) {
      check(natsOptions_SetExpectedHostname(raw, tls_hosts.begin()->c_str()), "TLS host name");
      log("TLS: server certificate checked against CA " + (ca_file.empty() ? "(none given)" : ca_file) +
          " and host name " + *tls_hosts.begin());
    } else {
      log("TLS: server certificate chain checked against CA " + (ca_file.empty() ? "(none given)" : ca_file) +
          "; host name not checked (several hosts, or an address)");
    }
  }
  return options;
}

void Backplane::start() {
  if (started_ || connection_) throw BackplaneError("start: a Backplane starts once");
  closing_ = false;
  nats::Options options = make_options();
  natsConnection* connection = nullptr;
  const natsStatus status = natsConnection_Connect(&connection, options.get());
  if (status != NATS_OK) {
    std::string urls;
    for (const std::string& url : settings_.urls) urls += (urls.empty() ? "" : ",") + url;
    throw BackplaneError("cannot connect to NATS at " + urls + ": " + nats::error_text(status));
  }
  connection_.reset(connection);
  log("connected to NATS at " + connected_url() + ", room " + settings_.room + ", incarnation " +
      std::to_string(incarnation_));

  try {
    registry_ = std::make_unique<IdRegistry>(connection_.get(), settings_.room, settings_.registry);
    natsSubscription* subscription = nullptr;
    check(natsConnection_Subscribe(&subscription, connection_.get(), subjects_.all.c_str(),
                                   &Backplane::on_nats_message, this),
          "subscribe to the room");
    subscription_.reset(subscription);
    check(natsSubscription_SetOnCompleteCB(subscription, &Backplane::on_subscription_complete, this),
          "subscription");
    // The server must have the subscription before this node speaks, or
    // it would miss the first answers to its own sync request.
    check(natsConnection_FlushTimeout(connection_.get(), settings_.registry.request_timeout.count()),
          "subscribe to the room");
  } catch (...) {
    shutdown(false);
    throw;
  }

  started_ = true;
  {
    std::lock_guard lock(tasks_mutex_);
    stopping_ = false;
    leftovers_pending_ = true;
  }
  registry_thread_ = std::thread([this] { registry_loop(); });
  heartbeat_thread_ = std::thread([this] { heartbeat_loop(); });
  post_task([this] { release_leftovers(); });
  {
    // Every node answers with its roster: this node learns who is here.
    CriticalSectionLock lock(outgoing_lock_);
    RoomMessage request;
    request.kind = MessageKind::sync_request;
    publish(std::move(request));
  }
}

void Backplane::stop() { shutdown(true); }

void Backplane::close_without_goodbye() { shutdown(false); }

void Backplane::shutdown(bool goodbye) {
  closing_ = true;
  {
    std::lock_guard lock(tasks_mutex_);
    stopping_ = true;
  }
  tasks_changed_.notify_all();
  heartbeat_wake_.notify_all();
  if (heartbeat_thread_.joinable()) heartbeat_thread_.join();
  if (registry_thread_.joinable()) registry_thread_.join();
  // Claims still queued will not run: tell their callers (after the goodbye).
  std::deque<std::function<void()>> abandoned;
  {
    std::lock_guard lock(tasks_mutex_);
    tasks_.clear();
    abandoned.swap(abandoned_claims_);
  }

  if (goodbye && started_ && is_connected()) {
    // Release the ids first, so that they are free when the others hear
    // the goodbye and tell their clients USER_LEFT.
    std::map<std::string, std::uint64_t> held;
    {
      CriticalSectionLock lock(outgoing_lock_);
      held = held_;
    }
    std::size_t released = 0;
    for (const auto& [user_id, revision] : held) {
      if (registry_->release(user_id, revision) == ReleaseStatus::released) ++released;
    }
    {
      CriticalSectionLock lock(outgoing_lock_);
      held_.clear();
      RoomMessage goodbye_message;
      goodbye_message.kind = MessageKind::goodbye;
      publish(std::move(goodbye_message));
    }
    natsConnection_FlushTimeout(connection_.get(), 1000);
    log("left the room: released " + std::to_string(released) + " of " + std::to_string(held.size()) +
        " ids, said goodbye");
  }
  for (auto& if_abandoned : abandoned) {
    if (if_abandoned) if_abandoned();  // a claim answers `unavailable` (see claim())
  }

  if (subscription_) {
    // Wait until the message handler has returned for the last time: it
    // uses this object.
    natsSubscription_Unsubscribe(subscription_.get());
    std::unique_lock lock(closed_mutex_);
    if (!closed_changed_.wait_for(lock, std::chrono::seconds(5), [this] { return subscription_done_; })) {
      log("warning: the subscription's handler did not finish in 5 s");
    }
  }
  registry_.reset();
  if (connection_) {
    natsConnection_Close(connection_.get());
    std::unique_lock lock(closed_mutex_);
    if (!closed_changed_.wait_for(lock, std::chrono::seconds(5), [this] { return closed_; })) {
      log("warning: the NATS connection did not report closed in 5 s");
    }
  }
  subscription_.reset();
  connection_.reset();
  started_ = false;
}

// --- the server's calls -------------------------------------------------------

void Backplane::claim(std::string user_id, ClaimDone done) {
  if (!is_valid_user_id(user_id))
    throw std::invalid_argument("claim: a user id is 1 to 16 bytes without NUL");
  auto shared_done = std::make_shared<ClaimDone>(std::move(done));
  const bool queued = post_task([this, user_id, shared_done] { run_claim(user_id, *shared_done); },
                                [shared_done] {
                                  (*shared_done)({ClaimStatus::unavailable, 0, {}, "the node is stopping"});
                                });
  if (!queued) (*shared_done)({ClaimStatus::unavailable, 0, {}, "the node is not running"});
}

ClaimResult Backplane::claim_and_wait(std::string user_id) {
  auto promise = std::make_shared<std::promise<ClaimResult>>();
  std::future<ClaimResult> future = promise->get_future();
  claim(std::move(user_id), [promise](const ClaimResult& result) { promise->set_value(result); });
  return future.get();
}

void Backplane::release(const std::string& user_id) {
  std::uint64_t revision = 0;
  {
    CriticalSectionLock lock(outgoing_lock_);
    const auto found = held_.find(user_id);
    if (found == held_.end()) return;
    revision = found->second;
    held_.erase(found);
    RoomMessage left;
    left.kind = MessageKind::left;
    left.user_id = user_id;
    publish(std::move(left));  // the others hear it at once; the bucket follows
  }
  post_task([this, user_id, revision] {
    if (registry_->release(user_id, revision) == ReleaseStatus::unavailable) {
      std::lock_guard lock(tasks_mutex_);
      pending_releases_[user_id] = revision;  // retried until NATS answers
    }
  });
}

bool Backplane::publish_chat(std::string_view user_id, std::string_view text) {
  if (!is_valid_user_id(user_id) || !is_valid_text(text)) return false;
  RoomMessage chat;
  chat.kind = MessageKind::chat;
  chat.user_id = user_id;
  chat.text = text;
  CriticalSectionLock lock(outgoing_lock_);
  return publish(std::move(chat));
}

bool Backplane::connected() const { return is_connected(); }

bool Backplane::is_connected() const {
  return connection_ && natsConnection_Status(connection_.get()) == NATS_CONN_STATUS_CONNECTED;
}

std::string Backplane::connected_url() const {
  if (!connection_) return {};
  char url[256] = {};
  if (natsConnection_GetConnectedUrl(connection_.get(), url, sizeof url) != NATS_OK) return {};
  return url;
}

std::vector<std::string> Backplane::local_ids() const {
  CriticalSectionLock lock(outgoing_lock_);
  std::vector<std::string> ids;
  for (const auto& [user_id, revision] : held_) ids.push_back(user_id);
  return ids;
}

std::vector<PeerInfo> Backplane::peers() const {
  CriticalSectionLock lock(view_lock_);
  return view_.peers();
}

BackplaneStats Backplane::stats() const {
  BackplaneStats result;
  {
    CriticalSectionLock lock(stats_lock_);
    result = stats_;
  }
  CriticalSectionLock lock(view_lock_);
  result.view = view_.counters();
  return result;
}

IdRegistry& Backplane::registry() {
  if (!registry_) throw BackplaneError("the backplane is not running");
  return *registry_;
}

// --- publishing ---------------------------------------------------------------

bool Backplane::publish(RoomMessage message) {
  const bool room_stream = is_room_stream(message.kind);
  if (!is_connected()) {
    // Not queued for later: what is published while NATS is unreachable is
    // lost for the other nodes (at-most-once). Presence is repaired by the
    // roster this node sends when it is back.
    if (room_stream) {
      CriticalSectionLock lock(stats_lock_);
      ++stats_.dropped_unconnected;
    }
    return false;
  }
  message.node = settings_.node;
  message.incarnation = incarnation_;
  message.sequence = room_stream ? ++sequence_ : sequence_;
  const std::string payload = encode(message);
  const natsStatus status =
      natsConnection_Publish(connection_.get(), subject_for(subjects_, message.kind).c_str(), payload.data(),
                             static_cast<int>(payload.size()));
  CriticalSectionLock lock(stats_lock_);
  if (status != NATS_OK) {
    // Its number is spent: the receivers see a gap, count it and ask for
    // this node's roster.
    if (room_stream) ++stats_.dropped_unconnected;
    return false;
  }
  ++stats_.published;
  return true;
}

void Backplane::publish_roster() {
  CriticalSectionLock lock(outgoing_lock_);
  std::vector<std::string> ids;
  for (const auto& [user_id, revision] : held_) ids.push_back(user_id);
  std::size_t offset = 0;
  do {
    RoomMessage part;
    part.kind = MessageKind::roster;
    const std::size_t count = std::min(kMaxRosterPart, ids.size() - offset);
    part.members.assign(ids.begin() + static_cast<std::ptrdiff_t>(offset),
                        ids.begin() + static_cast<std::ptrdiff_t>(offset + count));
    part.roster_flags = static_cast<std::uint8_t>((offset == 0 ? kRosterFirstPart : 0) |
                                                  (offset + count == ids.size() ? kRosterLastPart : 0));
    offset += count;
    if (!publish(std::move(part))) return;
  } while (offset < ids.size());
}

// --- what the view decided ------------------------------------------------------

void Backplane::apply(ViewActions& actions) {
  for (ViewEvent& event : actions.events) {
    switch (event.type) {
      case ViewEvent::Type::node_up:
        log("node " + event.node + " is up");
        listener_.on_node_up(event.node);
        break;
      case ViewEvent::Type::node_down:
        log("node " + event.node + " is down (" + reason_name(event.reason) +
            "): " + std::to_string(event.members.size()) + " of its clients leave");
        listener_.on_node_down(event.node, event.reason, event.members);
        break;
      case ViewEvent::Type::member_joined:
        listener_.on_member_joined(event.node, event.user_id);
        break;
      case ViewEvent::Type::member_left:
        listener_.on_member_left(event.node, event.user_id);
        break;
      case ViewEvent::Type::chat:
        listener_.on_chat(
            {std::move(event.node), std::move(event.user_id), std::move(event.text), event.sequence});
        break;
    }
  }
  if (!actions.sync_requests.empty() || !actions.tell_declared.empty()) {
    CriticalSectionLock lock(outgoing_lock_);
    for (const std::string& target : actions.sync_requests) {
      RoomMessage request;
      request.kind = MessageKind::sync_request;
      request.target = target;
      publish(std::move(request));
    }
    for (const auto& [target, target_incarnation] : actions.tell_declared) {
      log("node " + target + " speaks again after being declared dead: telling it so");
      RoomMessage notice;
      notice.kind = MessageKind::declared_dead;
      notice.target = target;
      notice.target_incarnation = target_incarnation;
      publish(std::move(notice));
    }
  }
  if (actions.send_roster) publish_roster();
  for (const auto& [node, node_incarnation] : actions.release_ids_of) {
    post_task(
        [this, node = node, node_incarnation = node_incarnation] { release_dead(node, node_incarnation); });
  }
  if (actions.renew_own_ids) {
    {
      std::lock_guard lock(tasks_mutex_);
      renew_wanted_ = true;
    }
    tasks_changed_.notify_all();
  }
  if (actions.name_clash) log_rate_limited("warning: another process speaks as node " + settings_.node);
}

// --- the threads ----------------------------------------------------------------

void Backplane::heartbeat_loop() {
  const auto interval = settings_.liveness.heartbeat_interval;
  const auto tick = std::max<Clock::duration>(interval / 4, std::chrono::milliseconds(10));
  auto next_heartbeat = Clock::now();
  std::unique_lock lock(tasks_mutex_);
  while (!stopping_) {
    lock.unlock();
    const auto now = Clock::now();
    if (now >= next_heartbeat) {
      {
        CriticalSectionLock outgoing(outgoing_lock_);
        RoomMessage heartbeat;
        heartbeat.kind = MessageKind::heartbeat;
        publish(std::move(heartbeat));
      }
      next_heartbeat += interval;
      if (next_heartbeat <= now) next_heartbeat = now + interval;
    }
    {
      CriticalSectionLock view(view_lock_);
      ViewActions actions = view_.on_tick(now);
      apply(actions);
    }
    lock.lock();
    heartbeat_wake_.wait_until(lock, std::min(now + tick, next_heartbeat), [this] { return stopping_; });
  }
}

bool Backplane::post_task(std::function<void()> task, std::function<void()> if_abandoned) {
  {
    std::lock_guard lock(tasks_mutex_);
    if (stopping_ || !started_) return false;
    tasks_.push_back(std::move(task));
    abandoned_claims_.push_back(std::move(if_abandoned));
  }
  tasks_changed_.notify_all();
  return true;
}

void Backplane::registry_loop() {
  // Work that failed for want of NATS is retried every half second, however
  // busy the queue is (a stream of claims must not starve a dead node's release).
  constexpr auto kRetryPeriod = std::chrono::milliseconds(500);
  auto next_retry = Clock::now() + kRetryPeriod;
  std::unique_lock lock(tasks_mutex_);
  while (!stopping_) {
    if (Clock::now() >= next_retry) {
      lock.unlock();
      retry_pending();
      lock.lock();
      next_retry = Clock::now() + kRetryPeriod;
      continue;
    }
    if (!tasks_.empty()) {
      std::function<void()> task = std::move(tasks_.front());
      tasks_.pop_front();
      abandoned_claims_.pop_front();
      lock.unlock();
      task();
      lock.lock();
      continue;
    }
    if (renew_wanted_) {
      renew_wanted_ = false;
      lock.unlock();
      run_renewal();
      lock.lock();
      continue;
    }
    tasks_changed_.wait_until(lock, next_retry,
                              [this] { return stopping_ || !tasks_.empty() || renew_wanted_; });
  }
}

// --- the registry thread's work --------------------------------------------------

std::string Backplane::holder_node(std::string_view holder) {
  return std::string(holder.substr(0, holder.find(' ')));
}

void Backplane::run_claim(const std::string& user_id, const ClaimDone& done) {
  {
    CriticalSectionLock lock(outgoing_lock_);
    const auto found = held_.find(user_id);
    if (found != held_.end()) {
      done({ClaimStatus::taken, found->second, holder_, {}});  // another client of this node has it
      return;
    }
  }
  std::optional<std::uint64_t> pending;
  {
    std::lock_guard lock(tasks_mutex_);
    if (auto found = pending_releases_.find(user_id); found != pending_releases_.end())
      pending = found->second;
  }
  if (pending) {
    // An earlier client's id whose release NATS has not confirmed yet.
    if (registry_->release(user_id, *pending) == ReleaseStatus::unavailable) {
      done({ClaimStatus::unavailable, 0, {}, "the release of this id is not confirmed yet"});
      return;
    }
    std::lock_guard lock(tasks_mutex_);
    pending_releases_.erase(user_id);
  }
  if (!is_connected()) {
    done({ClaimStatus::unavailable, 0, {}, "not connected to NATS"});
    return;
  }
  ClaimResult result = registry_->claim(user_id, holder_);
  if (result.status == ClaimStatus::taken && holder_node(result.holder) == settings_.node) {
    // Under this node's name but not held by it: a previous life's
    // leftover, or this life's create whose answer was lost. Release, retry.
    if (registry_->release(user_id, result.revision) == ReleaseStatus::released) {
      result = registry_->claim(user_id, holder_);
    }
  }
  if (result.status == ClaimStatus::claimed) {
    {
      CriticalSectionLock lock(outgoing_lock_);
      held_[user_id] = result.revision;
      RoomMessage joined;
      joined.kind = MessageKind::joined;
      joined.user_id = user_id;
      publish(std::move(joined));
    }
    CriticalSectionLock lock(stats_lock_);
    ++stats_.claims;
  } else if (result.status == ClaimStatus::unavailable) {
    log("claim of '" + user_id + "' not answered (" + result.error + "): TRY_LATER");
    std::lock_guard lock(tasks_mutex_);
    orphan_checks_.insert(user_id);  // it may have been written all the same
  }
  done(result);
}

void Backplane::run_renewal() {
  if (!is_connected()) {
    std::lock_guard lock(tasks_mutex_);
    renew_failed_ = true;
    return;
  }
  std::map<std::string, std::uint64_t> snapshot;
  {
    CriticalSectionLock lock(outgoing_lock_);
    snapshot = held_;
  }
  std::vector<std::string> revoked;
  bool complete = true;
  for (const auto& [user_id, revision] : snapshot) {
    const ClaimResult result = registry_->renew(user_id, holder_, revision);
    if (result.status == ClaimStatus::unavailable) {
      complete = false;
      break;
    }
    std::uint64_t release_now = 0;
    {
      CriticalSectionLock lock(outgoing_lock_);
      const auto found = held_.find(user_id);
      if (result.status == ClaimStatus::claimed) {
        if (found != held_.end()) {
          found->second = result.revision;
        } else {
          release_now = result.revision;  // its client left during the renewal
        }
      } else if (found != held_.end()) {
        // Someone else holds it now: this node must stop serving it.
        held_.erase(found);
        revoked.push_back(user_id);
        RoomMessage left;
        left.kind = MessageKind::left;
        left.user_id = user_id;
        publish(std::move(left));
      }
    }
    if (release_now != 0) registry_->release(user_id, release_now);
  }
  if (!revoked.empty()) {
    std::string list;
    for (const std::string& user_id : revoked) list += (list.empty() ? "" : ", ") + user_id;
    log("ids revoked (this node was declared dead and they were claimed elsewhere): " + list);
    {
      CriticalSectionLock lock(stats_lock_);
      stats_.revoked += revoked.size();
    }
    CriticalSectionLock view(view_lock_);
    listener_.on_ids_revoked(revoked);
  }
  if (!complete) {
    log("renewal of this node's ids interrupted (NATS unreachable): retrying");
    std::lock_guard lock(tasks_mutex_);
    renew_failed_ = true;
    return;
  }
  if (!snapshot.empty()) log("renewed " + std::to_string(snapshot.size() - revoked.size()) + " ids");
  {
    CriticalSectionLock lock(stats_lock_);
    ++stats_.renewals;
  }
  publish_roster();  // the others take this node back (or just check their view)
}

void Backplane::release_leftovers() {
  std::vector<IdEntry> entries;
  try {
    if (!is_connected()) throw RegistryError("not connected to NATS");
    entries = registry_->entries();
  } catch (const RegistryError& error) {
    log_rate_limited(std::string("clean-up of a previous run's ids deferred: ") + error.what());
    std::lock_guard lock(tasks_mutex_);
    leftovers_pending_ = true;
    return;
  }
  std::size_t released = 0;
  for (const IdEntry& entry : entries) {
    if (holder_node(entry.holder) == settings_.node && entry.holder != holder_ &&
        registry_->release(entry.user_id, entry.revision) == ReleaseStatus::released) {
      ++released;
    }
  }
  {
    std::lock_guard lock(tasks_mutex_);
    leftovers_pending_ = false;
  }
  if (released != 0) log("released " + std::to_string(released) + " ids left by a previous run of this node");
}

void Backplane::release_dead(const std::string& node, std::uint64_t node_incarnation) {
  auto still_dead = [&] {
    CriticalSectionLock lock(view_lock_);
    for (const PeerInfo& peer : view_.peers()) {
      if (peer.node == node) return !peer.alive && peer.incarnation == node_incarnation;
    }
    return false;
  };
  std::vector<IdEntry> entries;
  try {
    if (!is_connected()) throw RegistryError("not connected to NATS");
    entries = registry_->entries();
  } catch (const RegistryError& error) {
    log_rate_limited("release of node " + node + "'s ids deferred: " + error.what());
    std::lock_guard lock(tasks_mutex_);
    pending_dead_.emplace_back(node, node_incarnation);  // retried until NATS answers
    return;
  }
  const std::string dead_holder = node + " " + std::to_string(node_incarnation);
  std::size_t released = 0, found = 0, unanswered = 0;
  for (const IdEntry& entry : entries) {
    if (entry.holder != dead_holder) continue;
    ++found;
    if (!still_dead()) break;  // it restarted: its new life cleans up after the old one
    // By revision: if it renewed meanwhile, or another node released it
    // first, this changes nothing.
    const ReleaseStatus status = registry_->release(entry.user_id, entry.revision);
    if (status == ReleaseStatus::released) ++released;
    if (status == ReleaseStatus::unavailable) ++unanswered;
  }
  log("node " + node + " declared dead: " + std::to_string(found) + " of its ids in the bucket, " +
      std::to_string(released) + " released by this node" +
      (unanswered != 0 ? ", " + std::to_string(unanswered) + " not answered (retried)" : std::string()));
  {
    CriticalSectionLock lock(stats_lock_);
    stats_.released_for_dead += released;
  }
  if (unanswered != 0) {
    // The bucket may be electing a new leader (the NATS node that led it is
    // the one that went): listing worked, deleting did not. Try the whole
    // node again on the next retry tick rather than leave its ids held.
    std::lock_guard lock(tasks_mutex_);
    pending_dead_.emplace_back(node, node_incarnation);
    return;
  }
  CriticalSectionLock lock(view_lock_);
  view_.on_release_done(node, node_incarnation);
}

void Backplane::retry_pending() {
  if (!is_connected()) return;
  std::map<std::string, std::uint64_t> releases;
  std::vector<std::pair<std::string, std::uint64_t>> dead;
  std::set<std::string> orphans;
  bool leftovers = false, renew = false;
  {
    std::lock_guard lock(tasks_mutex_);
    releases.swap(pending_releases_);
    dead.swap(pending_dead_);
    orphans.swap(orphan_checks_);
    leftovers = std::exchange(leftovers_pending_, false);
    renew = std::exchange(renew_failed_, false);
  }
  for (const auto& [user_id, revision] : releases) {
    if (registry_->release(user_id, revision) == ReleaseStatus::unavailable) {
      std::lock_guard lock(tasks_mutex_);
      pending_releases_.emplace(user_id, revision);
    }
  }
  for (const auto& [node, node_incarnation] : dead) release_dead(node, node_incarnation);
  for (const std::string& user_id : orphans) {
    // A claim that was not answered may have been written: if the entry
    // names this very node and no client of it holds the id, release it.
    try {
      const std::optional<IdEntry> entry = registry_->lookup(user_id);
      bool held = false;
      {
        CriticalSectionLock lock(outgoing_lock_);
        held = held_.contains(user_id);
      }
      if (entry && entry->holder == holder_ && !held) registry_->release(user_id, entry->revision);
    } catch (const RegistryError&) {
      std::lock_guard lock(tasks_mutex_);
      orphan_checks_.insert(user_id);
    }
  }
  if (leftovers) release_leftovers();
  if (renew) run_renewal();
}

// --- NATS callbacks (on the client library's threads) -----------------------------

void Backplane::on_nats_message(natsConnection*, natsSubscription*, natsMsg* raw, void* closure) {
  auto* self = static_cast<Backplane*>(closure);
  nats::Message message(raw);
  const auto* data = reinterpret_cast<const std::uint8_t*>(natsMsg_GetData(raw));
  const auto size = static_cast<std::size_t>(natsMsg_GetDataLength(raw));
  std::optional<RoomMessage> decoded = decode({data, size});
  const char* subject = natsMsg_GetSubject(raw);
  if (decoded && subject_for(self->subjects_, decoded->kind) != subject) decoded.reset();
  {
    CriticalSectionLock lock(self->stats_lock_);
    ++self->stats_.received;
    if (!decoded) ++self->stats_.malformed;
  }
  if (!decoded) {
    self->log_rate_limited(std::string("dropped a malformed message on ") + subject);
    return;
  }
  CriticalSectionLock lock(self->view_lock_);
  ViewActions actions = self->view_.on_message(*decoded, Clock::now());
  self->apply(actions);
}

void Backplane::on_nats_disconnected(natsConnection*, void* closure) {
  auto* self = static_cast<Backplane*>(closure);
  if (self->closing_) return;
  {
    CriticalSectionLock lock(self->stats_lock_);
    ++self->stats_.disconnects;
  }
  self->log("lost the connection to NATS: reconnecting; logins answer TRY_LATER meanwhile");
  CriticalSectionLock lock(self->view_lock_);
  self->view_.on_connection_lost();
  self->listener_.on_connection_lost();
}

void Backplane::on_nats_reconnected(natsConnection*, void* closure) {
  auto* self = static_cast<Backplane*>(closure);
  if (self->closing_) return;
  const std::string url = self->connected_url();
  {
    CriticalSectionLock lock(self->stats_lock_);
    ++self->stats_.reconnects;
  }
  self->log("reconnected to NATS at " + url + ": renewing this node's ids");
  {
    CriticalSectionLock lock(self->view_lock_);
    self->listener_.on_connection_back(url);
  }
  {
    std::lock_guard lock(self->tasks_mutex_);
    self->renew_wanted_ = true;
  }
  self->tasks_changed_.notify_all();
}

void Backplane::on_nats_closed(natsConnection*, void* closure) {
  auto* self = static_cast<Backplane*>(closure);
  std::lock_guard lock(self->closed_mutex_);
  self->closed_ = true;
  self->closed_changed_.notify_all();
}

void Backplane::on_subscription_complete(void* closure) {
  auto* self = static_cast<Backplane*>(closure);
  std::lock_guard lock(self->closed_mutex_);
  self->subscription_done_ = true;
  self->closed_changed_.notify_all();
}

void Backplane::on_nats_error(natsConnection* connection, natsSubscription*, natsStatus status,
                              void* closure) {
  auto* self = static_cast<Backplane*>(closure);
  const char* text = nullptr;
  natsConnection_GetLastError(connection, &text);
  self->log_rate_limited(std::string("NATS error: ") + natsStatus_GetText(status) +
                         (text != nullptr && *text != '\0' ? std::string(" (") + text + ")" : std::string()));
}

void Backplane::log_rate_limited(const std::string& text) {
  {
    std::lock_guard lock(error_log_mutex_);
    const auto now = Clock::now();
    if (last_error_log_ != Clock::time_point{} && now - last_error_log_ < std::chrono::seconds(1)) return;
    last_error_log_ = now;
  }
  log(text);
}

}  // namespace iocp_chat::v3
