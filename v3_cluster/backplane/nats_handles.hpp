// nats_handles.hpp — the NATS C client's objects held by std::unique_ptr, so
// each is destroyed exactly once, on every path out of a function; and the
// text of a NATS error for logs and exceptions. Private to the backplane.
#pragma once

#include <nats/nats.h>

#include <memory>
#include <string>

namespace iocp_chat::v3::nats {

/// Calls the C client's destroy function of one object type.
template <auto Destroy>
struct Destroyer {
  /// Destroys `object` with `Destroy`.
  template <typename T>
  void operator()(T* object) const noexcept {
    Destroy(object);
  }
};

using Options = std::unique_ptr<natsOptions, Destroyer<natsOptions_Destroy>>;
using Connection = std::unique_ptr<natsConnection, Destroyer<natsConnection_Destroy>>;
using Subscription = std::unique_ptr<natsSubscription, Destroyer<natsSubscription_Destroy>>;
using JetStream = std::unique_ptr<jsCtx, Destroyer<jsCtx_Destroy>>;
using KeyValue = std::unique_ptr<kvStore, Destroyer<kvStore_Destroy>>;
using Entry = std::unique_ptr<kvEntry, Destroyer<kvEntry_Destroy>>;
using Watcher = std::unique_ptr<kvWatcher, Destroyer<kvWatcher_Destroy>>;
using Message = std::unique_ptr<natsMsg, Destroyer<natsMsg_Destroy>>;
using PubAck = std::unique_ptr<jsPubAck, Destroyer<jsPubAck_Destroy>>;

/// `<status text>: <the library's last error on this thread>`.
inline std::string error_text(natsStatus status) {
  std::string text = natsStatus_GetText(status);
  natsStatus last = NATS_OK;
  const char* detail = nats_GetLastError(&last);
  if (detail != nullptr && *detail != '\0' && last == status) {
    text += ": ";
    text += detail;
  }
  return text;
}

/// True for the statuses that mean "NATS cannot be reached now" (as opposed
/// to "NATS answered no").
inline bool is_unreachable(natsStatus status) noexcept {
  switch (status) {
    case NATS_TIMEOUT:
    case NATS_NO_RESPONDERS:
    case NATS_CONNECTION_CLOSED:
    case NATS_CONNECTION_DISCONNECTED:
    case NATS_NOT_YET_CONNECTED:
    case NATS_NO_SERVER:
    case NATS_STALE_CONNECTION:
    case NATS_IO_ERROR:
    case NATS_DRAINING:
      return true;
    default:
      return false;
  }
}

}  // namespace iocp_chat::v3::nats
