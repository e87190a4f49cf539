// nats_harness.hpp — real nats-server processes for the ver.3 tests: on free
// ports of 127.0.0.1, with JetStream (its store in a temporary directory)
// and authentication (a token, or users with permissions), alone or as a
// three-node cluster joined by routes; started, stopped, killed with
// SIGKILL and restarted on the same ports and store. Plus child processes
// whose output goes to a file, and test TLS certificates made with openssl.
//
// Test idea: no mock of NATS. What the backplane promises under failures —
// a lost server, a killed node, a failover inside a NATS cluster — is only
// worth what the real server does, so the tests run the real server and
// break it for real.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "server_process.hpp"

namespace iocp_chat::v3::test {

using namespace std::chrono_literals;

/// A fresh directory under the system's temporary directory, removed with
/// everything in it when destroyed.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  /// Where it is.
  const std::filesystem::path& path() const noexcept { return path_; }

 private:
  std::filesystem::path path_;  ///< The directory.
};

/// Writes `text` to `path` with permissions `mode` (0600 for secrets).
void write_file(const std::filesystem::path& path, const std::string& text, unsigned mode = 0600);

/// Everything in the file at `path` ("" if it cannot be read).
std::string read_file(const std::filesystem::path& path);

// A free port for a server, chosen below the ephemeral range (tests/support).
using iocp_chat::test::free_port;

/// A child process whose standard output and error go to one file.
class Process {
 public:
  /// Starts `program` with `arguments`; `environment` adds to (or replaces
  /// in) this process's environment. Throws std::runtime_error on failure.
  Process(const std::string& program, const std::vector<std::string>& arguments,
          const std::filesystem::path& output_file,
          const std::map<std::string, std::string>& environment = {});
  /// Kills it (SIGKILL) if still running, and reaps it.
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  /// Sends `signal` (SIGTERM, SIGKILL, ...).
  void signal(int signal_number);
  /// Waits up to `timeout` for it to exit; its exit status (or -signal), or nothing.
  std::optional<int> wait(std::chrono::milliseconds timeout);
  /// True until it has exited and been reaped.
  bool running();
  /// Its output so far.
  std::string output() const;
  /// Waits until its output contains `text` (false after `timeout`, or if it exits first).
  bool wait_for_output(const std::string& text, std::chrono::milliseconds timeout);
  /// Its process id.
  pid_t pid() const noexcept { return pid_; }

 private:
  pid_t pid_ = -1;                     ///< The child.
  bool reaped_ = false;                ///< waitpid has returned for it.
  int status_ = 0;                     ///< Its exit status once reaped.
  std::filesystem::path output_file_;  ///< Where its output goes.
};

/// Who may connect to a test server.
struct NatsAuth {
  /// One user of `authorization { users }`.
  struct User {
    std::string name;                    ///< User name.
    std::string password;                ///< Its password.
    std::vector<std::string> publish;    ///< Subjects it may publish on; empty: any.
    std::vector<std::string> subscribe;  ///< Subjects it may subscribe to; empty: any.
  };
  std::string token;        ///< `authorization { token }`, or...
  std::vector<User> users;  ///< ...`authorization { users }`; neither: no authentication.
};

/// How one test server is set up.
struct NatsServerConfig {
  std::string name = "n1";         ///< server_name (JetStream in a cluster needs one).
  NatsAuth auth;                   ///< Who may connect.
  std::string cluster_name;        ///< Empty: no cluster.
  int cluster_port = 0;            ///< Its route port (cluster only).
  std::vector<int> route_ports;    ///< The other nodes' route ports (cluster only).
  std::filesystem::path tls_cert;  ///< Server certificate; empty: no TLS.
  std::filesystem::path tls_key;   ///< Its key.
};

/// One nats-server, on free ports, with JetStream stored under `directory`.
class NatsServer {
 public:
  /// Chooses its ports and writes its configuration file; starts nothing.
  NatsServer(const std::filesystem::path& directory, NatsServerConfig config);
  ~NatsServer();

  /// Starts it and waits until its /healthz says ok (JetStream ready),
  /// unless `wait_healthy` is false. Throws std::runtime_error with its log
  /// if it does not come up in time.
  void start(bool wait_healthy = true);
  /// Asks it to stop (SIGTERM) and waits for it.
  void stop();
  /// Kills it (SIGKILL) and reaps it.
  void kill();
  /// True while its process runs.
  bool running();
  /// Waits until /healthz answers ok (false after `timeout`).
  bool wait_healthy(std::chrono::milliseconds timeout);

  /// `nats://127.0.0.1:<port>`, or `tls://localhost:<port>` for the scheme "tls".
  std::string url(const std::string& scheme = "nats") const;
  /// Its client port.
  int port() const noexcept { return port_; }
  /// Its server_name.
  const std::string& name() const noexcept { return config_.name; }
  /// Its log (stdout and stderr) so far.
  std::string log() const;

 private:
  NatsServerConfig config_;           ///< As given.
  std::filesystem::path directory_;   ///< Config, log and JetStream store live here.
  int port_ = 0;                      ///< Client port.
  int monitor_port_ = 0;              ///< HTTP monitoring port (/healthz).
  std::unique_ptr<Process> process_;  ///< The running server, if any.
};

/// Three nats-server nodes joined by routes (one cluster, JetStream on each).
class NatsCluster {
 public:
  /// Configures `size` nodes under `directory`, each requiring `auth`; starts nothing.
  NatsCluster(const std::filesystem::path& directory, const NatsAuth& auth, int size = 3);
  /// Starts every node, then waits until all are healthy (JetStream's meta
  /// leader elected).
  void start();
  /// Node `index` (0 is n1).
  NatsServer& node(std::size_t index) { return *nodes_.at(index); }
  /// How many nodes.
  std::size_t size() const noexcept { return nodes_.size(); }

 private:
  std::vector<std::unique_ptr<NatsServer>> nodes_;  ///< n1, n2, n3.
};

/// A test CA and a server certificate for "localhost" and 127.0.0.1.
struct TlsFiles {
  std::filesystem::path ca;           ///< The CA certificate (for the client).
  std::filesystem::path server_cert;  ///< The server's certificate, signed by the CA.
  std::filesystem::path server_key;   ///< Its key.
};

/// Makes TlsFiles under `directory` with the openssl command; nothing if
/// openssl is missing or fails.
std::optional<TlsFiles> make_tls_files(const std::filesystem::path& directory);

/// Waits until `condition()` is true, polling every 10 ms; false after `timeout`.
template <typename Condition>
bool eventually(Condition condition, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

}  // namespace iocp_chat::v3::test
