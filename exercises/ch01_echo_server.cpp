// ch01_echo_server.cpp — exercises 1.1 to 1.3, yours to write: an echo
// server on the completion port (see ch01_echo_server.hpp for the ideas, and
// exercises/README.md for the hints). Run its check with
//   ctest --preset linux -L exercise -R ch01
#include "ch01_echo_server.hpp"

#include <stdexcept>
#include <string>

namespace iocp_chat::exercises {

/// Everything the server owns. Add the members you need: the port, the
/// listener, an AcceptOperation, the worker thread, the connections.
struct EchoServer::State {};

EchoServer::EchoServer(Backend backend) : backend_(backend) {}

EchoServer::~EchoServer() { stop(); }

std::uint16_t EchoServer::start() {
  // Exercise 1.1: open_completion_port(backend_), open_listener("127.0.0.1", 0),
  // associate it, start one accept, start the worker thread; return local_port().
  throw std::logic_error("exercise 1.1 is not solved yet (backend " + std::string(to_string(backend_)) +
                         "): write EchoServer::start (and its worker) in exercises/ch01_echo_server.cpp");
}

void EchoServer::stop() {
  // Exercise 1.3: post() a completion that tells the worker to stop; the
  // worker cancels the listener and every connection, takes their
  // completions until none is outstanding, closes the sockets and returns;
  // then join it. Calling stop() twice (or before start()) does nothing.
}

}  // namespace iocp_chat::exercises
