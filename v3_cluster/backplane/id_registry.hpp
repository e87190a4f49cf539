// id_registry.hpp — cluster-wide unique user ids on a JetStream key-value
// bucket: one key per logged-in id, whose value names the node holding it.
//
// Idea shown: uniqueness across machines needs one atomic decision that every
// node accepts, and we take it from NATS instead of inventing it. A JetStream
// stream orders every write to a subject, and a write may carry "the last
// revision of this key must be R" (R = 0: "must not exist"); the server
// refuses it otherwise. On that compare-and-set:
//
//   claim    = create: write only if the key has no live value. Of two nodes
//              racing for one id, the stream orders the two writes and only
//              the first passes; the second sees "wrong last sequence".
//   release  = delete *with the revision the claimer got*: if the key moved
//              on since (released and claimed again by someone else), the
//              delete is refused, so a late or repeated release never removes
//              someone else's later claim.
//   renew    = rewrite with the revision held: a node that may have been
//              declared dead moves its claims to new revisions; a release by
//              a peer that read the old revision then fails, and if the peer
//              was first, the renewal fails and the node learns the id is no
//              longer its own.
//
// The value is the holder: "<node> <incarnation>" (see room_wire.hpp), so a
// node restarted under the same name can tell its previous life's entries
// from its own, and peers releasing a dead node's ids touch only that life.
//
// Every call is a request to NATS and blocks up to the request timeout; the
// backplane makes them on its own registry thread, never on a server worker.
// Any error other than NATS's answer "taken" or "changed" is `unavailable`:
// the server answers TRY_LATER rather than guess.
#pragma once

#include <nats/nats.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "nats_handles.hpp"

namespace iocp_chat::v3 {

/// Setting up the bucket failed (the message says why).
class RegistryError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// How the bucket is made and how long a request may take.
struct RegistrySettings {
  int replicas = 1;  ///< Copies of the bucket in a NATS cluster (3 survives one NATS node's loss).
  std::chrono::milliseconds request_timeout{2000};  ///< Longest wait for one answer.
  std::chrono::milliseconds setup_timeout{15000};   ///< Longest wait for JetStream to accept the bucket.
};

/// The outcome of claim and renew.
enum class ClaimStatus {
  claimed,      ///< This holder has the id, at `revision`.
  taken,        ///< Someone else holds it (`holder`, `revision`).
  unavailable,  ///< NATS could not be asked or did not answer: try later.
};

/// A claim's or renewal's outcome.
struct ClaimResult {
  ClaimStatus status = ClaimStatus::unavailable;  ///< What happened.
  std::uint64_t revision = 0;                     ///< claimed: the new revision; taken: the holder's.
  std::string holder;                             ///< taken: who holds it.
  std::string error;                              ///< unavailable: why (for the log).
};

/// The outcome of a release.
enum class ReleaseStatus {
  released,     ///< Deleted at the given revision.
  changed,      ///< The key is no longer at that revision: nothing done (someone else's now, or gone).
  unavailable,  ///< NATS could not be asked: try later.
};

/// One live entry of the bucket.
struct IdEntry {
  std::string user_id;         ///< The id (decoded from the key).
  std::string holder;          ///< The value: `<node> <incarnation>`.
  std::uint64_t revision = 0;  ///< Its revision.
};

/// The bucket of one room, over one NATS connection. Thread-safe (each call
/// is an independent request), but the backplane uses it from one thread.
class IdRegistry {
 public:
  /// Opens the bucket of `room`, creating it if missing. Retries while
  /// JetStream is not ready (a fresh cluster electing its leader) up to
  /// settings.setup_timeout; throws RegistryError then.
  IdRegistry(natsConnection* connection, std::string_view room, RegistrySettings settings);

  /// Claims `user_id` for `holder`: create, atomic across the cluster.
  ClaimResult claim(std::string_view user_id, std::string_view holder);

  /// Deletes `user_id` if its revision is still `revision`.
  ReleaseStatus release(std::string_view user_id, std::uint64_t revision);

  /// Rewrites `user_id` for `holder` if its revision is still `revision`;
  /// if it was deleted meanwhile, claims it again. `claimed` with the new
  /// revision, `taken` if another holder has it now.
  ClaimResult renew(std::string_view user_id, std::string_view holder, std::uint64_t revision);

  /// The live entry of `user_id`; nothing if it has none; throws
  /// RegistryError if NATS cannot be asked.
  std::optional<IdEntry> lookup(std::string_view user_id);

  /// Every live entry; throws RegistryError if NATS cannot be asked.
  std::vector<IdEntry> entries();

  /// The bucket's name.
  const std::string& bucket() const noexcept { return bucket_; }

 private:
  std::string bucket_;         ///< `iocp-chat-ids-<room>`.
  RegistrySettings settings_;  ///< Replicas and timeouts.
  nats::JetStream jetstream_;  ///< The JetStream context (request timeout = settings_.request_timeout).
  nats::KeyValue store_;       ///< The bucket.
};

}  // namespace iocp_chat::v3
