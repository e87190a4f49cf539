// credentials.hpp — where a node's NATS credentials come from: a file or the
// environment, never the command line.
//
// Idea shown: whoever can publish on the room's subjects can speak as any
// user of the room, so the backplane is only as closed as the NATS account
// it uses. A secret on the command line is visible to every local user
// (`ps`, /proc/<pid>/cmdline) and lands in shell histories; a file readable
// by its owner only, or the environment of the service, is not. The
// backplane therefore takes no secret as an option, refuses URLs that carry
// one (nats://user:secret@host), and logs where the credentials came from,
// never what they are.
//
// The file holds `key = value` lines; blank lines and lines starting with
// `#` are ignored:
//
//   # iocp-chat NATS credentials (chmod 600)
//   token = s3cr3t
//
// or `user = ...` and `password = ...`. A token and a user cannot be mixed.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace iocp_chat::v3 {

/// Names a file of credentials (when no file is given as an option).
inline constexpr const char* kCredentialsFileVariable = "IOCP_CHAT_NATS_CREDENTIALS_FILE";
/// Holds a token.
inline constexpr const char* kTokenVariable = "IOCP_CHAT_NATS_TOKEN";
/// Holds a user name (with kPasswordVariable).
inline constexpr const char* kUserVariable = "IOCP_CHAT_NATS_USER";
/// Holds a password (with kUserVariable).
inline constexpr const char* kPasswordVariable = "IOCP_CHAT_NATS_PASSWORD";

/// A credentials file or variable that cannot be used; the message says
/// which and why, never the secret.
class CredentialsError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A token, or a user and password, or nothing.
struct NatsCredentials {
  std::string token;     ///< The server's `authorization { token }`.
  std::string user;      ///< The server's `authorization { users }` name...
  std::string password;  ///< ...and its password.
  std::string source;    ///< Where they came from ("file PATH", "environment", "none"), for the log.

  /// True when there is neither a token nor a user.
  bool empty() const noexcept { return token.empty() && user.empty(); }
};

/// The credentials in `text` (the file format above); `source` names it in
/// errors. Throws CredentialsError on an unknown or repeated key, a line
/// without `=`, an empty value, a token mixed with a user, or a user
/// without a password (or the reverse).
NatsCredentials parse_credentials(std::string_view text, const std::string& source);

/// The credentials in the file at `path`. Throws CredentialsError if it
/// cannot be read or parsed. Adds a warning to `warnings` if its group or
/// others may read it (like ssh, but a warning, not a refusal).
NatsCredentials read_credentials_file(const std::string& path, std::vector<std::string>& warnings);

/// The rule: the file `file_option` names, if not empty; else the file
/// IOCP_CHAT_NATS_CREDENTIALS_FILE names; else IOCP_CHAT_NATS_TOKEN, or
/// IOCP_CHAT_NATS_USER with IOCP_CHAT_NATS_PASSWORD; else none (empty; the
/// server will refuse the connection if it requires credentials).
NatsCredentials load_credentials(const std::string& file_option, std::vector<std::string>& warnings);

/// True if a NATS URL carries a user, password or token before its host
/// (scheme://secret@host): the backplane refuses it.
bool url_has_credentials(std::string_view url) noexcept;

/// True if a NATS URL asks for TLS (scheme tls://).
bool url_wants_tls(std::string_view url) noexcept;

}  // namespace iocp_chat::v3
