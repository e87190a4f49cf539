// console_io.cpp — UTF-8 arguments, keyboard input and output, on a Linux
// terminal and on a Windows console (see console_io.hpp for why they differ).
// Shared by both stages' console clients (iocp_chat::console).
#include "console_io.hpp"

#include <cstdio>
#include <mutex>

#ifdef _WIN32
#include <windows.h>  // first, in a block of its own: shellapi.h needs its macros

#include <fcntl.h>
#include <io.h>
#include <shellapi.h>
#else
#include <unistd.h>

#include <cerrno>
#endif

namespace iocp_chat::console {
namespace {

/// Held for each write, so lines from the receiving thread and messages
/// from the main thread never mix within a line.
std::mutex g_output_lock;

/// Removes the "\r" of a "\r\n" line ending (files written on Windows).
void strip_carriage_return(std::string& line) {
  if (!line.empty() && line.back() == '\r') line.pop_back();
}

/// Reads some bytes of standard input; 0 at the end of input. It goes
/// around the C library's stdin (and std::cin) on purpose: the keyboard
/// thread may still be blocked here when the program ends, and it must not
/// hold the stream lock that exit() takes to flush the C streams.
std::size_t read_input_bytes(char* buffer, std::size_t size) {
#ifdef _WIN32
  DWORD count = 0;
  if (!ReadFile(GetStdHandle(STD_INPUT_HANDLE), buffer, static_cast<DWORD>(size), &count, nullptr)) {
    return 0;  // a closed pipe reads as ERROR_BROKEN_PIPE: the end of input
  }
  return count;
#else
  for (;;) {
    const ssize_t count = ::read(STDIN_FILENO, buffer, size);
    if (count < 0 && errno == EINTR) continue;
    return count > 0 ? static_cast<std::size_t>(count) : 0;
  }
#endif
}

#ifdef _WIN32
/// UTF-16 (Windows' own text) to UTF-8 (the chat's text).
std::string to_utf8(std::wstring_view text) {
  if (text.empty()) return {};
  const int length = static_cast<int>(text.size());
  const int size = WideCharToMultiByte(CP_UTF8, 0, text.data(), length, nullptr, 0, nullptr, nullptr);
  std::string result(static_cast<std::size_t>(size > 0 ? size : 0), '\0');
  if (size > 0) WideCharToMultiByte(CP_UTF8, 0, text.data(), length, result.data(), size, nullptr, nullptr);
  return result;
}

/// UTF-8 to UTF-16; invalid bytes become U+FFFD instead of failing.
std::wstring to_utf16(std::string_view text) {
  if (text.empty()) return {};
  const int length = static_cast<int>(text.size());
  const int size = MultiByteToWideChar(CP_UTF8, 0, text.data(), length, nullptr, 0);
  std::wstring result(static_cast<std::size_t>(size > 0 ? size : 0), L'\0');
  if (size > 0) MultiByteToWideChar(CP_UTF8, 0, text.data(), length, result.data(), size);
  return result;
}

/// True if `handle` is a console window rather than a pipe or a file.
bool is_console(HANDLE handle) {
  DWORD mode = 0;
  return handle != INVALID_HANDLE_VALUE && handle != nullptr && GetConsoleMode(handle, &mode) != 0;
}

/// Writes to a console in UTF-16, or to a redirected stream as raw bytes.
void write_to(DWORD which, std::FILE* stream, std::string_view text) {
  const HANDLE handle = GetStdHandle(which);
  if (is_console(handle)) {
    const std::wstring wide = to_utf16(text);
    DWORD written = 0;
    WriteConsoleW(handle, wide.data(), static_cast<DWORD>(wide.size()), &written, nullptr);
    return;
  }
  std::fwrite(text.data(), 1, text.size(), stream);
  std::fflush(stream);
}

/// Reads one line from the console in UTF-16. Ctrl+Z at the start of a
/// line is the console's end of input.
bool read_console_line(HANDLE input, std::string& line) {
  static std::wstring pending;  // typed text after the last line handed out
  for (;;) {
    if (const auto end = pending.find(L'\n'); end != std::wstring::npos) {
      const std::wstring typed = pending.substr(0, end);
      pending.erase(0, end + 1);
      if (!typed.empty() && typed.front() == L'\x1a') return false;
      line = to_utf8(typed);
      strip_carriage_return(line);
      return true;
    }
    wchar_t buffer[512];
    DWORD count = 0;
    if (!ReadConsoleW(input, buffer, 512, &count, nullptr) || count == 0) return false;
    pending.append(buffer, count);
  }
}
#endif

}  // namespace

void prepare_console() {
#ifdef _WIN32
  _setmode(_fileno(stdout), _O_BINARY);
  _setmode(_fileno(stderr), _O_BINARY);
#endif
}

std::vector<std::string> utf8_arguments(int argc, char** argv) {
  std::vector<std::string> arguments;
#ifdef _WIN32
  // argv is in the ANSI code page; the UTF-16 command line has every character.
  (void)argc;
  (void)argv;
  int count = 0;
  wchar_t** wide = CommandLineToArgvW(GetCommandLineW(), &count);
  if (wide != nullptr) {
    for (int index = 0; index < count; ++index) arguments.push_back(to_utf8(wide[index]));
    LocalFree(wide);
  }
#else
  arguments.reserve(static_cast<std::size_t>(argc));
  for (int index = 0; index < argc; ++index) arguments.emplace_back(argv[index]);
#endif
  return arguments;
}

bool read_input_line(std::string& line) {
#ifdef _WIN32
  if (const HANDLE input = GetStdHandle(STD_INPUT_HANDLE); is_console(input)) {
    return read_console_line(input, line);
  }
#endif
  // Redirected input (a pipe or a file): UTF-8 bytes, cut at "\n".
  static std::string pending;  // bytes read after the last line handed out
  static bool input_ended = false;
  for (;;) {
    if (const auto end = pending.find('\n'); end != std::string::npos) {
      line = pending.substr(0, end);
      pending.erase(0, end + 1);
      strip_carriage_return(line);
      return true;
    }
    if (input_ended) {
      if (pending.empty()) return false;
      line = std::move(pending);  // a last line without "\n" still counts
      pending.clear();
      strip_carriage_return(line);
      return true;
    }
    char buffer[4096];
    const std::size_t count = read_input_bytes(buffer, sizeof buffer);
    if (count == 0) {
      input_ended = true;
    } else {
      pending.append(buffer, count);
    }
  }
}

void write_output(std::string_view text) {
  const std::lock_guard lock(g_output_lock);
#ifdef _WIN32
  write_to(STD_OUTPUT_HANDLE, stdout, text);
#else
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
#endif
}

void write_error(std::string_view text) {
  const std::lock_guard lock(g_output_lock);
#ifdef _WIN32
  write_to(STD_ERROR_HANDLE, stderr, text);
#else
  std::fwrite(text.data(), 1, text.size(), stderr);
  std::fflush(stderr);
#endif
}

}  // namespace iocp_chat::console
