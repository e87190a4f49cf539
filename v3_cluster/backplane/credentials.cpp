// credentials.cpp — read the credentials file or the environment; check
// that what was found is one complete way of logging in.
#include "credentials.hpp"

#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace iocp_chat::v3 {
namespace {

std::string_view trim(std::string_view text) {
  const auto first = text.find_first_not_of(" \t\r");
  if (first == std::string_view::npos) return {};
  const auto last = text.find_last_not_of(" \t\r");
  return text.substr(first, last - first + 1);
}

/// Checks that `credentials` hold exactly one complete way of logging in.
void check_complete(const NatsCredentials& credentials) {
  if (!credentials.token.empty() && (!credentials.user.empty() || !credentials.password.empty())) {
    throw CredentialsError(credentials.source + ": a token and a user/password cannot be mixed");
  }
  if (credentials.user.empty() != credentials.password.empty()) {
    throw CredentialsError(credentials.source + ": a user needs a password, and a password a user");
  }
}

const char* variable(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : nullptr;
}

}  // namespace

NatsCredentials parse_credentials(std::string_view text, const std::string& source) {
  NatsCredentials credentials;
  credentials.source = source;
  std::size_t number = 0;
  while (!text.empty()) {
    const auto end = text.find('\n');
    const std::string_view line = trim(text.substr(0, end));
    text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
    ++number;
    if (line.empty() || line.front() == '#') continue;
    const std::string where = source + ":" + std::to_string(number);
    const auto equals = line.find('=');
    if (equals == std::string_view::npos) throw CredentialsError(where + ": expected `key = value`");
    const std::string_view key = trim(line.substr(0, equals));
    const std::string_view value = trim(line.substr(equals + 1));
    std::string* field = key == "token"      ? &credentials.token
                         : key == "user"     ? &credentials.user
                         : key == "password" ? &credentials.password
                                             : nullptr;
    if (field == nullptr) {
      throw CredentialsError(where + ": unknown key `" + std::string(key) + "` (token, user, password)");
    }
    if (!field->empty()) throw CredentialsError(where + ": `" + std::string(key) + "` given twice");
    if (value.empty()) throw CredentialsError(where + ": `" + std::string(key) + "` is empty");
    field->assign(value);
  }
  check_complete(credentials);
  return credentials;
}

NatsCredentials read_credentials_file(const std::string& path, std::vector<std::string>& warnings) {
  std::ifstream file(path, std::ios::binary);
  if (!file) throw CredentialsError("credentials file " + path + ": cannot be read");
  std::ostringstream text;
  text << file.rdbuf();
  struct stat status {};
  if (::stat(path.c_str(), &status) == 0 && (status.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    warnings.push_back("credentials file " + path + " may be read by its group or others (chmod 600 it)");
  }
  NatsCredentials credentials = parse_credentials(text.str(), "file " + path);
  if (credentials.empty()) throw CredentialsError("credentials file " + path + ": no token and no user");
  return credentials;
}

NatsCredentials load_credentials(const std::string& file_option, std::vector<std::string>& warnings) {
  if (!file_option.empty()) return read_credentials_file(file_option, warnings);
  if (const char* file = variable(kCredentialsFileVariable)) return read_credentials_file(file, warnings);
  NatsCredentials credentials;
  credentials.source = "environment";
  if (const char* token = variable(kTokenVariable)) credentials.token = token;
  if (const char* user = variable(kUserVariable)) credentials.user = user;
  if (const char* password = variable(kPasswordVariable)) credentials.password = password;
  if (credentials.empty() && credentials.password.empty()) {
    credentials.source = "none";
    return credentials;
  }
  check_complete(credentials);
  return credentials;
}

bool url_has_credentials(std::string_view url) noexcept {
  const auto scheme = url.find("://");
  const std::string_view rest = scheme == std::string_view::npos ? url : url.substr(scheme + 3);
  const std::string_view authority = rest.substr(0, rest.find('/'));
  return authority.find('@') != std::string_view::npos;
}

bool url_wants_tls(std::string_view url) noexcept {
  return url.size() >= 6 && (url.substr(0, 6) == "tls://" || url.substr(0, 6) == "TLS://");
}

}  // namespace iocp_chat::v3
