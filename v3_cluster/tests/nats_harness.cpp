// nats_harness.cpp — nats-server configurations, child processes through
// posix_spawn, /healthz over a plain socket, and openssl for certificates.
#include "nats_harness.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>

extern char** environ;  // passed on to the children, with additions

namespace iocp_chat::v3::test {
namespace {

/// A quoted string for the nats-server configuration format.
std::string quoted(const std::string& text) { return "\"" + text + "\""; }

std::string quoted_list(const std::vector<std::string>& items) {
  std::string list = "[";
  for (const std::string& item : items) list += (list.size() > 1 ? ", " : "") + quoted(item);
  return list + "]";
}

/// GET http://127.0.0.1:<port><path>; the status line and body, or "" if no answer.
std::string http_get(int port, const std::string& path) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return {};
  timeval timeout{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string answer;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0) {
    const std::string request = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size())) {
      char buffer[4096];
      ssize_t got = 0;
      while ((got = ::recv(fd, buffer, sizeof buffer, 0)) > 0)
        answer.append(buffer, static_cast<std::size_t>(got));
    }
  }
  ::close(fd);
  return answer;
}

}  // namespace

// --- files and ports -----------------------------------------------------------

TempDir::TempDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "iocp-chat-v3-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr)
    throw std::system_error(errno, std::generic_category(), "mkdtemp");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

void write_file(const std::filesystem::path& path, const std::string& text, unsigned mode) {
  {
    std::ofstream file(path, std::ios::binary | std::ios::trunc);
    if (!file) throw std::runtime_error("cannot write " + path.string());
    file << text;
  }
  ::chmod(path.c_str(), static_cast<mode_t>(mode));
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream file(path, std::ios::binary);
  std::ostringstream text;
  text << file.rdbuf();
  return text.str();
}

// --- Process -------------------------------------------------------------------

Process::Process(const std::string& program, const std::vector<std::string>& arguments,
                 const std::filesystem::path& output_file,
                 const std::map<std::string, std::string>& environment)
    : output_file_(output_file) {
  std::vector<std::string> argument_storage{program};
  argument_storage.insert(argument_storage.end(), arguments.begin(), arguments.end());
  std::vector<char*> argv;
  for (std::string& argument : argument_storage) argv.push_back(argument.data());
  argv.push_back(nullptr);

  std::vector<std::string> environment_storage;
  for (char** variable = environ; *variable != nullptr; ++variable) {
    const std::string entry = *variable;
    const std::string name = entry.substr(0, entry.find('='));
    if (!environment.contains(name)) environment_storage.push_back(entry);
  }
  for (const auto& [name, value] : environment) environment_storage.push_back(name + "=" + value);
  std::vector<char*> envp;
  for (std::string& entry : environment_storage) envp.push_back(entry.data());
  envp.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, output_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  // The child starts with the default signal mask: a test program that
  // blocked SIGTERM must not pass that on.
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attributes, &none);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK);
  const int error = ::posix_spawnp(&pid_, program.c_str(), &actions, &attributes, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  if (error != 0) throw std::system_error(error, std::generic_category(), "posix_spawn " + program);
}

Process::~Process() {
  if (running()) {
    signal(SIGKILL);
    wait(5s);
  }
}

void Process::signal(int signal_number) {
  if (!reaped_) ::kill(pid_, signal_number);
}

std::optional<int> Process::wait(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!reaped_) {
    int status = 0;
    const pid_t done = ::waitpid(pid_, &status, WNOHANG);
    if (done == pid_) {
      reaped_ = true;
      status_ = WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? -WTERMSIG(status) : -1;
      break;
    }
    if (done < 0 || std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(5ms);
  }
  return status_;
}

bool Process::running() {
  if (reaped_) return false;
  wait(0ms);
  return !reaped_;
}

std::string Process::output() const { return read_file(output_file_); }

bool Process::wait_for_output(const std::string& text, std::chrono::milliseconds timeout) {
  return eventually([&] { return output().find(text) != std::string::npos || !running(); }, timeout) &&
         output().find(text) != std::string::npos;
}

// --- NatsServer ----------------------------------------------------------------

NatsServer::NatsServer(const std::filesystem::path& directory, NatsServerConfig config)
    : config_(std::move(config)), directory_(directory / config_.name) {
  std::filesystem::create_directories(directory_ / "jetstream");
  port_ = free_port();
  monitor_port_ = free_port();

  std::ostringstream text;
  text << "server_name: " << quoted(config_.name) << "\n"
       << "listen: " << quoted("127.0.0.1:" + std::to_string(port_)) << "\n"
       << "http: " << quoted("127.0.0.1:" + std::to_string(monitor_port_)) << "\n"
       << "jetstream {\n  store_dir: " << quoted((directory_ / "jetstream").string())
       << "\n  max_memory_store: 64MB\n  max_file_store: 256MB\n}\n";
  if (!config_.auth.token.empty()) {
    text << "authorization {\n  token: " << quoted(config_.auth.token) << "\n}\n";
  } else if (!config_.auth.users.empty()) {
    text << "authorization {\n  users: [\n";
    for (const NatsAuth::User& user : config_.auth.users) {
      text << "    { user: " << quoted(user.name) << ", password: " << quoted(user.password);
      if (!user.publish.empty() || !user.subscribe.empty()) {
        text << ", permissions: { ";
        if (!user.publish.empty()) text << "publish: " << quoted_list(user.publish);
        if (!user.publish.empty() && !user.subscribe.empty()) text << ", ";
        if (!user.subscribe.empty()) text << "subscribe: " << quoted_list(user.subscribe);
        text << " }";
      }
      text << " }\n";
    }
    text << "  ]\n}\n";
  }
  if (!config_.cluster_name.empty()) {
    text << "cluster {\n  name: " << quoted(config_.cluster_name)
         << "\n  listen: " << quoted("127.0.0.1:" + std::to_string(config_.cluster_port))
         << "\n  routes: [\n";
    for (int route : config_.route_ports)
      text << "    " << quoted("nats-route://127.0.0.1:" + std::to_string(route)) << "\n";
    text << "  ]\n}\n";
  }
  if (!config_.tls_cert.empty()) {
    text << "tls {\n  cert_file: " << quoted(config_.tls_cert.string())
         << "\n  key_file: " << quoted(config_.tls_key.string()) << "\n}\n";
  }
  // The configuration holds the secrets: readable by this user only.
  write_file(directory_ / "nats.conf", text.str(), 0600);
}

NatsServer::~NatsServer() {
  if (process_ && process_->running()) kill();
}

void NatsServer::start(bool wait_until_healthy) {
  process_ = std::make_unique<Process>("nats-server",
                                       std::vector<std::string>{"-c", (directory_ / "nats.conf").string()},
                                       directory_ / "nats.log");
  if (wait_until_healthy && !wait_healthy(30s)) {
    throw std::runtime_error("nats-server " + config_.name + " did not become healthy:\n" + log());
  }
}

bool NatsServer::wait_healthy(std::chrono::milliseconds timeout) {
  bool healthy = false;
  eventually(
      [&] {
        const std::string answer = http_get(monitor_port_, "/healthz");
        healthy = answer.starts_with("HTTP/1.") && answer.find(" 200 ") != std::string::npos &&
                  answer.find("\"ok\"") != std::string::npos;
        return healthy || !running();  // a server that exited will not become healthy
      },
      timeout);
  return healthy;
}

void NatsServer::stop() {
  if (!process_) return;
  process_->signal(SIGTERM);
  if (!process_->wait(10s)) {
    process_->signal(SIGKILL);
    process_->wait(5s);
  }
}

void NatsServer::kill() {
  if (!process_) return;
  process_->signal(SIGKILL);
  process_->wait(5s);
}

bool NatsServer::running() { return process_ && process_->running(); }

std::string NatsServer::url(const std::string& scheme) const {
  const std::string host = scheme == "tls" ? "localhost" : "127.0.0.1";
  return scheme + "://" + host + ":" + std::to_string(port_);
}

std::string NatsServer::log() const { return read_file(directory_ / "nats.log"); }

// --- NatsCluster ---------------------------------------------------------------

NatsCluster::NatsCluster(const std::filesystem::path& directory, const NatsAuth& auth, int size) {
  std::vector<int> route_ports;
  for (int i = 0; i < size; ++i) route_ports.push_back(free_port());
  for (int i = 0; i < size; ++i) {
    NatsServerConfig config;
    config.name = "n" + std::to_string(i + 1);
    config.auth = auth;
    config.cluster_name = "iocp-chat-test";
    config.cluster_port = route_ports[static_cast<std::size_t>(i)];
    for (int j = 0; j < size; ++j) {
      if (j != i) config.route_ports.push_back(route_ports[static_cast<std::size_t>(j)]);
    }
    nodes_.push_back(std::make_unique<NatsServer>(directory, std::move(config)));
  }
}

void NatsCluster::start() {
  for (auto& node : nodes_) node->start(false);
  for (auto& node : nodes_) {
    if (!node->wait_healthy(60s)) {
      throw std::runtime_error("cluster node " + node->name() + " did not become healthy:\n" + node->log());
    }
  }
}

// --- TLS -------------------------------------------------------------------------

std::optional<TlsFiles> make_tls_files(const std::filesystem::path& directory) {
  const std::string dir = directory.string();
  write_file(directory / "server.ext", "subjectAltName=DNS:localhost,IP:127.0.0.1\n", 0644);
  const std::string curve = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
  const std::string commands =
      "cd '" + dir + "' && " + "openssl req -x509" + curve +
      " -keyout ca.key -out ca.pem -days 2 -subj '/CN=iocp-chat test CA' && " + "openssl req" + curve +
      " -keyout server.key -out server.csr -subj '/CN=localhost' && " +
      "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 "
      "-extfile server.ext";
  if (std::system((commands + " >openssl.log 2>&1").c_str()) != 0) return std::nullopt;
  return TlsFiles{directory / "ca.pem", directory / "server.pem", directory / "server.key"};
}

}  // namespace iocp_chat::v3::test
