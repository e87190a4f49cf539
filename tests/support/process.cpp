// process.cpp — child processes with piped standard streams: posix_spawn and
// pipe2 on Linux, CreateProcessW and CreatePipe on Windows.
//
// The one rule that matters on both systems: the child must inherit only
// its own ends of its own three pipes. An extra copy of a pipe's write end
// left in any process keeps the reader from ever seeing the end of the
// stream. Linux marks every pipe close-on-exec (dup2 into 0/1/2 clears it
// for the child's copies); Windows makes the parent's ends non-inheritable
// and starts one child at a time, so no child picks up another's pipes.
#include "process.hpp"

#include <condition_variable>
#include <mutex>
#include <system_error>
#include <thread>

#ifdef _WIN32
#include <windows.h>
#else
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>

extern char** environ;  // the parent's environment, passed on to the child
#endif

namespace iocp_chat::test {
namespace {

using Clock = std::chrono::steady_clock;

/// A deadline that never comes: wait without a timeout.
constexpr Clock::time_point kForever = Clock::time_point::max();

#ifdef _WIN32
/// One end of a pipe: a HANDLE on Windows.
using PipeHandle = HANDLE;
/// "No pipe".
const PipeHandle kNoPipe = nullptr;
#else
/// One end of a pipe: a file descriptor on Linux.
using PipeHandle = int;
/// "No pipe".
constexpr PipeHandle kNoPipe = -1;
#endif

/// Closes a pipe end, once.
void close_pipe(PipeHandle& pipe) noexcept {
  if (pipe == kNoPipe) return;
#ifdef _WIN32
  CloseHandle(pipe);
#else
  ::close(pipe);
#endif
  pipe = kNoPipe;
}

/// A new pipe whose ends this process keeps to itself (not inherited).
void make_pipe(PipeHandle& read_end, PipeHandle& write_end) {
#ifdef _WIN32
  // Inheritable at first; the caller turns inheritance off for its own end.
  SECURITY_ATTRIBUTES attributes{sizeof attributes, nullptr, TRUE};
  if (!CreatePipe(&read_end, &write_end, &attributes, 0)) {
    throw std::system_error(static_cast<int>(GetLastError()), std::system_category(), "CreatePipe");
  }
#else
  int ends[2];
  if (::pipe2(ends, O_CLOEXEC) != 0) throw std::system_error(errno, std::generic_category(), "pipe2");
  read_end = ends[0];
  write_end = ends[1];
#endif
}

/// Reads what is available, up to `size` bytes; 0 at the end of the stream.
std::size_t read_pipe(PipeHandle pipe, char* buffer, std::size_t size) {
#ifdef _WIN32
  DWORD count = 0;
  if (!ReadFile(pipe, buffer, static_cast<DWORD>(size), &count, nullptr)) return 0;  // broken pipe = end
  return count;
#else
  for (;;) {
    const ssize_t count = ::read(pipe, buffer, size);
    if (count < 0 && errno == EINTR) continue;
    return count > 0 ? static_cast<std::size_t>(count) : 0;
  }
#endif
}

/// Writes all of `text`; stops quietly if the reader has gone.
void write_pipe(PipeHandle pipe, std::string_view text) {
  while (!text.empty()) {
#ifdef _WIN32
    DWORD count = 0;
    if (!WriteFile(pipe, text.data(), static_cast<DWORD>(text.size()), &count, nullptr)) return;
    text.remove_prefix(count);
#else
    const ssize_t count = ::write(pipe, text.data(), text.size());
    if (count < 0 && errno == EINTR) continue;
    if (count <= 0) return;
    text.remove_prefix(static_cast<std::size_t>(count));
#endif
  }
}

/// One of the child's output streams, read into a string by its own thread
/// until the child closes it.
class StreamReader {
 public:
  /// Takes the read end of the pipe and starts reading at once.
  explicit StreamReader(PipeHandle pipe) : pipe_(pipe), thread_([this] { read_until_end(); }) {}
  /// Waits for the end of the stream, then closes the pipe.
  ~StreamReader() {
    thread_.join();
    close_pipe(pipe_);
  }
  StreamReader(const StreamReader&) = delete;
  StreamReader& operator=(const StreamReader&) = delete;

  /// Everything read so far.
  std::string text() const {
    const std::lock_guard guard(lock_);
    return text_;
  }

  /// Waits until the text contains `needle`; false at the deadline or the end of the stream.
  bool wait_for(std::string_view needle, Clock::time_point deadline) {
    std::unique_lock guard(lock_);
    changed_.wait_until(guard, deadline, [&] { return text_.find(needle) != std::string::npos || ended_; });
    return text_.find(needle) != std::string::npos;
  }

  /// Waits for the end of the stream; false if the deadline comes first.
  bool wait_for_end(Clock::time_point deadline) {
    std::unique_lock guard(lock_);
    if (deadline == kForever) {
      // No wait_until here: some standard libraries add the deadline to the
      // system clock's "now", and time_point::max() would overflow.
      changed_.wait(guard, [&] { return ended_; });
      return true;
    }
    return changed_.wait_until(guard, deadline, [&] { return ended_; });
  }

 private:
  void read_until_end() {
    char buffer[4096];
    for (;;) {
      const std::size_t count = read_pipe(pipe_, buffer, sizeof buffer);
      const std::lock_guard guard(lock_);
      if (count == 0) {
        ended_ = true;
        changed_.notify_all();
        return;
      }
      text_.append(buffer, count);
      changed_.notify_all();
    }
  }

  PipeHandle pipe_;                  ///< Our read end; the child has the write end.
  mutable std::mutex lock_;          ///< Guards text_ and ended_.
  std::condition_variable changed_;  ///< Notified after each read.
  std::string text_;                 ///< What the child wrote so far.
  bool ended_ = false;               ///< The child closed the stream (usually: it exited).
  std::thread thread_;               ///< Declared last: starts once the members above exist.
};

}  // namespace

struct ChildProcess::Impl {
#ifdef _WIN32
  HANDLE process = nullptr;  ///< The child's process handle.
#else
  pid_t pid = -1;  ///< The child's process id.
#endif
  bool reaped = false;                   ///< Its exit status has been collected.
  int exit_code = -1;                    ///< Valid once reaped.
  PipeHandle input = kNoPipe;            ///< Write end of the child's stdin.
  std::unique_ptr<StreamReader> output;  ///< The child's stdout.
  std::unique_ptr<StreamReader> errors;  ///< The child's stderr.

  /// Ends the child at once (SIGKILL / TerminateProcess).
  void kill() noexcept {
    if (reaped) return;
#ifdef _WIN32
    TerminateProcess(process, 1);
#else
    ::kill(pid, SIGKILL);
#endif
  }

  /// Collects the exit status, waiting up to the deadline; false if it is still running.
  bool reap(Clock::time_point deadline) {
    if (reaped) return true;
#ifdef _WIN32
    DWORD wait_ms = INFINITE;
    if (deadline != kForever) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      wait_ms = left.count() > 0 ? static_cast<DWORD>(left.count()) : 0;
    }
    if (WaitForSingleObject(process, wait_ms) != WAIT_OBJECT_0) return false;
    DWORD code = 0;
    GetExitCodeProcess(process, &code);
    exit_code = static_cast<int>(code);
    CloseHandle(process);
    process = nullptr;
#else
    // The child has normally closed its streams by now, so this loop ends
    // at its first turn; it only polls for a child that closed them early.
    int status = 0;
    for (;;) {
      const pid_t done = ::waitpid(pid, &status, deadline == kForever ? 0 : WNOHANG);
      if (done == pid) break;
      if (done < 0 && errno != EINTR) return false;
      if (Clock::now() >= deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
#endif
    reaped = true;
    return true;
  }
};

#ifdef _WIN32
namespace {

/// UTF-8 to UTF-16 for CreateProcessW.
std::wstring to_utf16(std::string_view text) {
  if (text.empty()) return {};
  const int length = static_cast<int>(text.size());
  const int size = MultiByteToWideChar(CP_UTF8, 0, text.data(), length, nullptr, 0);
  std::wstring result(static_cast<std::size_t>(size), L'\0');
  MultiByteToWideChar(CP_UTF8, 0, text.data(), length, result.data(), size);
  return result;
}

/// One argument quoted so that the child's CommandLineToArgvW (and the C
/// runtime's argv) gives it back unchanged: Windows passes one command-line
/// string, not an argument array. Backslashes only matter before a quote.
std::wstring quote_argument(const std::wstring& argument) {
  if (!argument.empty() && argument.find_first_of(L" \t\n\v\"") == std::wstring::npos) return argument;
  std::wstring quoted = L"\"";
  std::size_t backslashes = 0;
  for (const wchar_t character : argument) {
    if (character == L'\\') {
      ++backslashes;
      continue;
    }
    // Before a quote, each backslash is doubled and the quote escaped.
    quoted.append(character == L'"' ? backslashes * 2 + 1 : backslashes, L'\\');
    backslashes = 0;
    quoted.push_back(character);
  }
  quoted.append(backslashes * 2, L'\\');  // before the closing quote
  quoted.push_back(L'"');
  return quoted;
}

/// Held while a child is being started: between CreatePipe and
/// CreateProcessW, the child's pipe ends are inheritable and must not leak
/// into a child started at the same time by another thread.
std::mutex g_spawn_lock;

}  // namespace
#endif

ChildProcess::ChildProcess(const std::string& program, const std::vector<std::string>& arguments)
    : impl_(std::make_unique<Impl>()) {
  PipeHandle input_read = kNoPipe;
  PipeHandle output_write = kNoPipe;
  PipeHandle errors_write = kNoPipe;
  PipeHandle output_read = kNoPipe;
  PipeHandle errors_read = kNoPipe;

#ifdef _WIN32
  const std::lock_guard spawn_guard(g_spawn_lock);
  make_pipe(input_read, impl_->input);
  make_pipe(output_read, output_write);
  make_pipe(errors_read, errors_write);
  for (const HANDLE own_end : {impl_->input, output_read, errors_read}) {
    SetHandleInformation(own_end, HANDLE_FLAG_INHERIT, 0);
  }

  std::wstring command_line = quote_argument(to_utf16(program));
  for (const std::string& argument : arguments) command_line += L" " + quote_argument(to_utf16(argument));

  STARTUPINFOW startup{};
  startup.cb = sizeof startup;
  startup.dwFlags = STARTF_USESTDHANDLES;
  startup.hStdInput = input_read;
  startup.hStdOutput = output_write;
  startup.hStdError = errors_write;
  PROCESS_INFORMATION info{};
  const BOOL started = CreateProcessW(nullptr, command_line.data(), nullptr, nullptr, TRUE, CREATE_NO_WINDOW,
                                      nullptr, nullptr, &startup, &info);
  const DWORD start_error = GetLastError();
  close_pipe(input_read);  // the child has its own copies now
  close_pipe(output_write);
  close_pipe(errors_write);
  if (!started) {
    close_pipe(impl_->input);
    close_pipe(output_read);
    close_pipe(errors_read);
    throw std::system_error(static_cast<int>(start_error), std::system_category(), "cannot start " + program);
  }
  CloseHandle(info.hThread);
  impl_->process = info.hProcess;
#else
  // A child that exits while we write to its stdin must not kill the test
  // with SIGPIPE; the write fails with EPIPE instead.
  static const bool sigpipe_ignored = [] { return std::signal(SIGPIPE, SIG_IGN) != SIG_ERR; }();
  (void)sigpipe_ignored;

  make_pipe(input_read, impl_->input);
  make_pipe(output_read, output_write);
  make_pipe(errors_read, errors_write);

  std::vector<std::string> words{program};
  words.insert(words.end(), arguments.begin(), arguments.end());
  std::vector<char*> argv;
  argv.reserve(words.size() + 1);
  for (std::string& word : words) argv.push_back(word.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, input_read, STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, output_write, STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, errors_write, STDERR_FILENO);
  const int status = ::posix_spawn(&impl_->pid, program.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close_pipe(input_read);  // the child has its own copies now
  close_pipe(output_write);
  close_pipe(errors_write);
  if (status != 0) {
    close_pipe(impl_->input);
    close_pipe(output_read);
    close_pipe(errors_read);
    throw std::system_error(status, std::generic_category(), "cannot start " + program);
  }
#endif
  impl_->output = std::make_unique<StreamReader>(output_read);
  impl_->errors = std::make_unique<StreamReader>(errors_read);
}

ChildProcess::~ChildProcess() {
  close_pipe(impl_->input);
  impl_->kill();
  impl_->reap(kForever);
  // The readers' destructors join their threads: the streams end with the child.
}

void ChildProcess::write_input(std::string_view text) {
  if (impl_->input != kNoPipe) write_pipe(impl_->input, text);
}

void ChildProcess::close_input() { close_pipe(impl_->input); }

bool ChildProcess::wait_for_output_containing(std::string_view text, std::chrono::milliseconds timeout) {
  return impl_->output->wait_for(text, Clock::now() + timeout);
}

bool ChildProcess::wait_for_errors_containing(std::string_view text, std::chrono::milliseconds timeout) {
  return impl_->errors->wait_for(text, Clock::now() + timeout);
}

long ChildProcess::pid() const noexcept {
#ifdef _WIN32
  return static_cast<long>(GetProcessId(impl_->process));
#else
  return static_cast<long>(impl_->pid);
#endif
}

std::string ChildProcess::output() const { return impl_->output->text(); }

std::string ChildProcess::errors() const { return impl_->errors->text(); }

void ChildProcess::terminate() {
  if (impl_->reaped) return;
#ifdef _WIN32
  TerminateProcess(impl_->process, 1);
#else
  ::kill(impl_->pid, SIGTERM);
#endif
}

ProcessResult ChildProcess::wait(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  ProcessResult result;
  // A child closes its streams when it exits: wait for that event first.
  const bool streams_ended = impl_->output->wait_for_end(deadline) && impl_->errors->wait_for_end(deadline);
  if (!streams_ended || !impl_->reap(deadline)) {
    result.timed_out = true;
    impl_->kill();
    impl_->reap(kForever);
  }
  impl_->output->wait_for_end(kForever);
  impl_->errors->wait_for_end(kForever);
  result.exit_code = impl_->exit_code;
  result.output = impl_->output->text();
  result.errors = impl_->errors->text();
  return result;
}

ProcessResult run_process(const std::string& program, const std::vector<std::string>& arguments,
                          std::chrono::milliseconds timeout, std::string_view input) {
  ChildProcess child(program, arguments);
  child.write_input(input);
  child.close_input();
  return child.wait(timeout);
}

}  // namespace iocp_chat::test
