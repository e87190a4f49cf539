// main.cpp — start-up of the ver.1 WinAPI client: the command line, Winsock,
// then the dialog.
//
// WinAPI idea: a GUI-subsystem program (WinMain, linked with -mwindows /
// /SUBSYSTEM:WINDOWS) gets no console window. Its whole life is the message
// loop that DialogBoxParamW runs; main only prepares and waits for it.
//
// Usage: v1_client_win32 [--host H] [--port P] [--connect] [--log FILE]
//   --connect   connect at start instead of waiting for the Connect button
//   --log FILE  append every line shown in the list box to FILE (UTF-8);
//               the GUI test reads it instead of reading pixels
// Winsock 2 before windows.h (which would otherwise bring the old winsock.h),
// and shellapi.h (CommandLineToArgvW) after the windows.h it builds on.
#include <winsock2.h>

#include <windows.h>

#include <shellapi.h>

#include <cstdlib>
#include <exception>
#include <string>
#include <string_view>
#include <utility>

#include "chat_dialog.hpp"
#include "iocp_chat/os_error.hpp"
#include "iocp_chat/socket.hpp"
#include "wide_text.hpp"

namespace {

using iocp_chat::v1::ClientOptions;

constexpr std::wstring_view kUsage =
    L"usage: v1_client_win32 [--host H] [--port P] [--connect] [--log FILE]\n"
    L"  The ver.1 chat client: a dialog that sends each typed line to the\n"
    L"  server and shows every line the server broadcasts.\n"
    L"  --host H     server address (default 127.0.0.1)\n"
    L"  --port P     server port (default 42006)\n"
    L"  --connect    connect at start\n"
    L"  --log FILE   append every line shown in the list to FILE, UTF-8 (for tests)\n"
    L"  --help       this text\n";

/// The command line, understood: options, or help, or what was wrong.
struct CommandLine {
  ClientOptions options;
  bool show_help = false;
  std::wstring error;  ///< Empty if the command line was fine.
};

/// A port number 1..65535, or 0 if `text` is not one.
std::uint16_t parse_port(const std::wstring& text) {
  wchar_t* end = nullptr;
  const unsigned long value = std::wcstoul(text.c_str(), &end, 10);
  if (text.empty() || *end != L'\0' || value == 0 || value > 65535) return 0;
  return static_cast<std::uint16_t>(value);
}

/// Reads the command line as UTF-16 words (GetCommandLineW, CommandLineToArgvW):
/// WinMain's own lpCmdLine is in the ANSI code page and would lose a
/// non-ASCII file name.
CommandLine parse_command_line() {
  CommandLine result;
  int count = 0;
  LPWSTR* words = CommandLineToArgvW(GetCommandLineW(), &count);
  if (words == nullptr) return result;
  for (int i = 1; i < count && result.error.empty(); ++i) {
    const std::wstring word = words[i];
    const bool has_value = i + 1 < count;
    if (word == L"--help" || word == L"-h") {
      result.show_help = true;
    } else if (word == L"--connect") {
      result.options.connect_at_start = true;
    } else if (word == L"--host" && has_value) {
      result.options.host = words[++i];
    } else if (word == L"--port" && has_value) {
      result.options.port = parse_port(words[++i]);
      if (result.options.port == 0) result.error = L"--port needs a number from 1 to 65535";
    } else if (word == L"--log" && has_value) {
      result.options.log_path = words[++i];
    } else {
      result.error = L"unknown option or missing value: " + word;
    }
  }
  LocalFree(words);
  return result;
}

/// Shows text where the user will see it. A GUI program has no console of its
/// own: if its output is redirected (a pipe, a file, or Wine started from a
/// terminal) it writes there; if it was started from a console window it
/// attaches to that console (AttachConsole); otherwise it opens a message box.
void tell_user(std::wstring_view text, bool is_error) {
  HANDLE out = GetStdHandle(is_error ? STD_ERROR_HANDLE : STD_OUTPUT_HANDLE);
  if ((out == nullptr || out == INVALID_HANDLE_VALUE) && AttachConsole(ATTACH_PARENT_PROCESS)) {
    out = CreateFileW(L"CONOUT$", GENERIC_READ | GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_WRITE, nullptr,
                      OPEN_EXISTING, 0, nullptr);
  }
  if (out == nullptr || out == INVALID_HANDLE_VALUE) {
    const std::wstring message(text);
    const auto icon = static_cast<UINT>(is_error ? MB_ICONERROR : MB_ICONINFORMATION);
    MessageBoxW(nullptr, message.c_str(), L"v1_client_win32", MB_OK | icon);
    return;
  }
  DWORD written = 0;
  DWORD mode = 0;
  if (GetConsoleMode(out, &mode)) {
    // A real console takes UTF-16 directly.
    WriteConsoleW(out, text.data(), static_cast<DWORD>(text.size()), &written, nullptr);
  } else {
    // A pipe or a file gets UTF-8, like everything else this project writes.
    const std::string bytes = iocp_chat::v1::utf8_from_wide(text);
    WriteFile(out, bytes.data(), static_cast<DWORD>(bytes.size()), &written, nullptr);
  }
}

}  // namespace

int WINAPI WinMain(HINSTANCE instance, HINSTANCE, LPSTR, int) {
  CommandLine command_line = parse_command_line();
  if (!command_line.error.empty()) {
    tell_user(command_line.error + L"\n" + std::wstring(kUsage), true);
    return 2;
  }
  if (command_line.show_help) {
    tell_user(kUsage, false);
    return 0;
  }
  try {
    const iocp_chat::NetworkSession winsock;  // WSAStartup now, WSACleanup at the end
    iocp_chat::v1::ChatDialog dialog(std::move(command_line.options));
    if (dialog.run(instance) == -1) {
      // No window at all: e.g. no display (under Wine, a prefix started without DISPLAY).
      iocp_chat::throw_os_error(iocp_chat::last_os_error(), "cannot open the dialog");
    }
    return 0;
  } catch (const std::exception& error) {
    tell_user(iocp_chat::v1::wide_from_utf8(error.what()) + L"\n", true);
    return 1;
  }
}
