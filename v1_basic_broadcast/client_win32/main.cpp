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
// Winsock 2 before windows.h (which would otherwise bring the old winsock.h).
#include <winsock2.h>

#include <windows.h>

#include <exception>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "chat_dialog.hpp"
#include "common/clients/win32/gui_program.hpp"
#include "common/clients/win32/wide_text.hpp"
#include "iocp_chat/os_error.hpp"
#include "iocp_chat/socket.hpp"

namespace {

using iocp_chat::v1::ClientOptions;
using iocp_chat::v1::tell_user;

/// The caption of a message box, if the program has nowhere else to write.
constexpr const wchar_t* kProgramName = L"v1_client_win32";

/// The --help text.
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

/// Reads the command line as UTF-16 words (command_line_words): WinMain's
/// own lpCmdLine is in the ANSI code page and would lose a non-ASCII file name.
CommandLine parse_command_line() {
  CommandLine result;
  const std::vector<std::wstring> words = iocp_chat::v1::command_line_words();
  for (std::size_t i = 0; i < words.size() && result.error.empty(); ++i) {
    const std::wstring& word = words[i];
    const bool has_value = i + 1 < words.size();
    if (word == L"--help" || word == L"-h") {
      result.show_help = true;
    } else if (word == L"--connect") {
      result.options.connect_at_start = true;
    } else if (word == L"--host" && has_value) {
      result.options.host = words[++i];
    } else if (word == L"--port" && has_value) {
      result.options.port = iocp_chat::v1::parse_port(words[++i]);
      if (result.options.port == 0) result.error = L"--port needs a number from 1 to 65535";
    } else if (word == L"--log" && has_value) {
      result.options.log_path = words[++i];
    } else {
      result.error = L"unknown option or missing value: " + word;
    }
  }
  return result;
}

}  // namespace

int WINAPI WinMain(HINSTANCE instance, HINSTANCE, LPSTR, int) {
  CommandLine command_line = parse_command_line();
  if (!command_line.error.empty()) {
    tell_user(command_line.error + L"\n" + std::wstring(kUsage), true, kProgramName);
    return 2;
  }
  if (command_line.show_help) {
    tell_user(kUsage, false, kProgramName);
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
    tell_user(iocp_chat::v1::wide_from_utf8(error.what()) + L"\n", true, kProgramName);
    return 1;
  }
}
