// id_registry.cpp — claim, release and renew as compare-and-set writes on
// the JetStream stream behind the key-value bucket.
//
// Lines such as `// [name]` mark the listings the tutorial shows.
#include "id_registry.hpp"

#include <thread>

#include "room_wire.hpp"

namespace iocp_chat::v3 {
namespace {

/// The header that makes a stream message a key-value delete (what
/// kvStore_Delete sends, which cannot carry an expected revision in 3.4).
constexpr const char* kOperationHeader = "KV-Operation";
constexpr const char* kDeleteOperation = "DEL";

std::string entry_value(kvEntry* entry) {
  const char* data = static_cast<const char*>(kvEntry_Value(entry));
  return data == nullptr ? std::string()
                         : std::string(data, static_cast<std::size_t>(kvEntry_ValueLen(entry)));
}

}  // namespace

IdRegistry::IdRegistry(natsConnection* connection, std::string_view room, RegistrySettings settings)
    : bucket_(id_bucket_name(room)), settings_(settings) {
  jsOptions options;
  jsOptions_Init(&options);
  options.Wait = settings_.request_timeout.count();
  jsCtx* jetstream = nullptr;
  natsStatus status = natsConnection_JetStream(&jetstream, connection, &options);
  if (status != NATS_OK) throw RegistryError("JetStream context: " + nats::error_text(status));
  jetstream_.reset(jetstream);

  kvConfig config;
  kvConfig_Init(&config);
  config.Bucket = bucket_.c_str();
  config.Description = "iocp-chat: user id -> holding node";
  config.History = 1;
  config.StorageType = js_FileStorage;
  config.Replicas = settings_.replicas;

  // A fresh JetStream cluster needs a few seconds to elect its meta leader;
  // until then every request fails. Retry until the setup timeout.
  const auto deadline = std::chrono::steady_clock::now() + settings_.setup_timeout;
  std::string last_error;
  for (;;) {
    kvStore* store = nullptr;
    status = js_CreateKeyValue(&store, jetstream_.get(), &config);
    if (status != NATS_OK) {
      last_error = nats::error_text(status);
      // It may exist with another configuration (another replica count):
      // use it as it is.
      status = js_KeyValue(&store, jetstream_.get(), bucket_.c_str());
    }
    if (status == NATS_OK) {
      store_.reset(store);
      return;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      throw RegistryError("key-value bucket " + bucket_ + ": " + last_error);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
}

// [kv-claim]
ClaimResult IdRegistry::claim(std::string_view user_id, std::string_view holder) {
  const std::string key = id_key(user_id);
  const std::string value(holder);
  ClaimResult result;
  // Twice at most: if the create fails and the key has no live value, it
  // was released in between (or NATS is down); one more try tells which.
  for (int attempt = 0; attempt < 2; ++attempt) {
    std::uint64_t revision = 0;
    const natsStatus status =
        kvStore_Create(&revision, store_.get(), key.c_str(), value.data(), static_cast<int>(value.size()));
    if (status == NATS_OK) return {ClaimStatus::claimed, revision, value, {}};
    result.error = nats::error_text(status);
    if (nats::is_unreachable(status)) {
      // The create may still have been written (its answer was lost); the
      // caller finds such an entry under its own name and releases it.
      result.status = ClaimStatus::unavailable;
      return result;
    }
    try {
      if (std::optional<IdEntry> entry = lookup(user_id)) {
        return {ClaimStatus::taken, entry->revision, entry->holder, {}};
      }
    } catch (const RegistryError& error) {
      result.error = error.what();
      return result;
    }
  }
  result.status = ClaimStatus::unavailable;
  return result;
}
// [kv-claim]

// [kv-release]
ReleaseStatus IdRegistry::release(std::string_view user_id, std::uint64_t revision) {
  if (revision == 0) return ReleaseStatus::changed;  // 0 would mean "no expectation"
  const std::string subject = "$KV." + bucket_ + "." + id_key(user_id);
  natsMsg* raw = nullptr;
  if (natsMsg_Create(&raw, subject.c_str(), nullptr, nullptr, 0) != NATS_OK)
    return ReleaseStatus::unavailable;
  nats::Message message(raw);
  natsMsgHeader_Set(message.get(), kOperationHeader, kDeleteOperation);
  jsPubOptions options;
  jsPubOptions_Init(&options);
  options.ExpectLastSubjectSeq = revision;  // the compare in compare-and-set
  jsPubAck* ack = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  const natsStatus status = js_PublishMsg(&ack, jetstream_.get(), message.get(), &options, &code);
  nats::PubAck owned_ack(ack);
  if (status == NATS_OK) return ReleaseStatus::released;
  if (code == JSStreamWrongLastSequenceErr) return ReleaseStatus::changed;
  return ReleaseStatus::unavailable;
}
// [kv-release]

ClaimResult IdRegistry::renew(std::string_view user_id, std::string_view holder, std::uint64_t revision) {
  const std::string key = id_key(user_id);
  const std::string value(holder);
  std::uint64_t new_revision = 0;
  const natsStatus status = kvStore_Update(&new_revision, store_.get(), key.c_str(), value.data(),
                                           static_cast<int>(value.size()), revision);
  if (status == NATS_OK) return {ClaimStatus::claimed, new_revision, value, {}};
  if (nats::is_unreachable(status)) return {ClaimStatus::unavailable, 0, {}, nats::error_text(status)};
  // The key moved on: who has it now?
  std::optional<IdEntry> entry;
  try {
    entry = lookup(user_id);
  } catch (const RegistryError& error) {
    return {ClaimStatus::unavailable, 0, {}, error.what()};
  }
  if (!entry) return claim(user_id, holder);  // released meanwhile: claim it again
  if (entry->holder == value) {
    // Written by this very holder: an earlier renewal whose answer was lost.
    return {ClaimStatus::claimed, entry->revision, value, {}};
  }
  return {ClaimStatus::taken, entry->revision, entry->holder, {}};
}

std::optional<IdEntry> IdRegistry::lookup(std::string_view user_id) {
  const std::string key = id_key(user_id);
  kvEntry* raw = nullptr;
  const natsStatus status = kvStore_Get(&raw, store_.get(), key.c_str());
  if (status == NATS_NOT_FOUND) return std::nullopt;
  if (status != NATS_OK) throw RegistryError("lookup: " + nats::error_text(status));
  nats::Entry entry(raw);
  return IdEntry{std::string(user_id), entry_value(entry.get()), kvEntry_Revision(entry.get())};
}

std::vector<IdEntry> IdRegistry::entries() {
  kvWatchOptions options;
  kvWatchOptions_Init(&options);
  options.IgnoreDeletes = true;
  kvWatcher* raw = nullptr;
  natsStatus status = kvStore_WatchAll(&raw, store_.get(), &options);
  if (status != NATS_OK) throw RegistryError("list the bucket: " + nats::error_text(status));
  nats::Watcher watcher(raw);
  std::vector<IdEntry> result;
  // The watcher first delivers every live value, then one empty entry
  // (the "initial values done" marker).
  for (;;) {
    kvEntry* next = nullptr;
    status = kvWatcher_Next(&next, watcher.get(), settings_.request_timeout.count());
    if (status != NATS_OK) throw RegistryError("list the bucket: " + nats::error_text(status));
    if (next == nullptr) break;
    nats::Entry entry(next);
    if (kvEntry_Operation(entry.get()) != kvOp_Put) continue;
    if (std::optional<std::string> id = user_id_of_key(kvEntry_Key(entry.get()))) {
      result.push_back({std::move(*id), entry_value(entry.get()), kvEntry_Revision(entry.get())});
    }
  }
  return result;
}

}  // namespace iocp_chat::v3
