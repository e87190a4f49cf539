// main.cpp — start-up of the ver.2 WinAPI client: the command line,
// Winsock, the connection, then the login dialog and the chat dialog.
//
// WinAPI idea: a GUI-subsystem program (WinMain, linked with -mwindows /
// /SUBSYSTEM:WINDOWS) gets no console window. Its life is the message loops
// that DialogBoxParamW runs, one dialog after the other; main only prepares
// them and hands the connection from the first to the second.
//
// Usage: v2_client_win32 [--host H] [--port P] [--id ID] [--login] [--log FILE]
//   --id ID     the id field's first text
//   --login     press Login at start (with --id: log in without typing)
//   --log FILE  append every line shown (the list box, and the login
//               dialog's status) to FILE, UTF-8; the GUI test reads it
// Winsock 2 before windows.h (which would otherwise bring the old winsock.h).
#include <winsock2.h>

#include <windows.h>

#include <exception>
#include <string>
#include <string_view>
#include <vector>

#include "chat_dialog.hpp"
#include "common/clients/win32/gui_program.hpp"
#include "common/clients/win32/transcript.hpp"
#include "common/clients/win32/wide_text.hpp"
#include "iocp_chat/os_error.hpp"
#include "iocp_chat/socket.hpp"
#include "login_dialog.hpp"
#include "server_connection.hpp"

namespace {

using iocp_chat::v1::tell_user;

/// The caption of a message box, if the program has nowhere else to write.
constexpr const wchar_t* kProgramName = L"v2_client_win32";

/// The --help text.
constexpr std::wstring_view kUsage =
    L"usage: v2_client_win32 [--host H] [--port P] [--id ID] [--login] [--log FILE]\n"
    L"  The ver.2 chat client: a login dialog (server, port, user id), then a\n"
    L"  chat dialog that sends each typed line as message packets and shows\n"
    L"  every message, join and leave the server reports.\n"
    L"  --host H     server address (default 127.0.0.1)\n"
    L"  --port P     server port (default 42006)\n"
    L"  --id ID      user id to put in the login dialog\n"
    L"  --login      press Login at start\n"
    L"  --log FILE   append every line shown to FILE, UTF-8 (for tests)\n"
    L"  --help       this text\n";

/// The command line, understood: options, or help, or what was wrong.
struct CommandLine {
  iocp_chat::v2::LoginOptions options;  ///< For the login dialog.
  std::wstring log_path;                ///< --log, or empty.
  bool show_help = false;               ///< --help.
  std::wstring error;                   ///< Empty if the command line was fine.
};

/// Reads the command line as UTF-16 words (command_line_words), so that a
/// Korean --id arrives intact.
CommandLine parse_command_line() {
  CommandLine result;
  const std::vector<std::wstring> words = iocp_chat::v1::command_line_words();
  for (std::size_t i = 0; i < words.size() && result.error.empty(); ++i) {
    const std::wstring& word = words[i];
    const bool has_value = i + 1 < words.size();
    if (word == L"--help" || word == L"-h") {
      result.show_help = true;
    } else if (word == L"--login") {
      result.options.login_at_start = true;
    } else if (word == L"--host" && has_value) {
      result.options.host = words[++i];
    } else if (word == L"--port" && has_value) {
      result.options.port = iocp_chat::v1::parse_port(words[++i]);
      if (result.options.port == 0) result.error = L"--port needs a number from 1 to 65535";
    } else if (word == L"--id" && has_value) {
      result.options.user_id = words[++i];
    } else if (word == L"--log" && has_value) {
      result.log_path = words[++i];
    } else {
      result.error = L"unknown option or missing value: " + word;
    }
  }
  return result;
}

/// Throws if DialogBoxParamW could not open a dialog at all.
void check_opened(INT_PTR result) {
  if (result == -1) {
    // No window at all: e.g. no display (under Wine, a prefix started without DISPLAY).
    iocp_chat::throw_os_error(iocp_chat::last_os_error(), "cannot open the dialog");
  }
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
    iocp_chat::v1::Transcript transcript(command_line.log_path);
    // The connection outlives both dialogs: the login happens on it, and
    // the chat goes on over it.
    iocp_chat::v2::ServerConnection connection(instance);

    std::string user_id;
    {
      iocp_chat::v2::LoginDialog login(connection, transcript, std::move(command_line.options));
      const INT_PTR result = login.run(instance);
      check_opened(result);
      if (result != IDOK) return 0;  // closed without logging in
      user_id = login.user_id();
    }
    iocp_chat::v2::ChatDialog chat(connection, transcript, std::move(user_id));
    check_opened(chat.run(instance));
    return 0;  // ~ServerConnection closes the socket: the server sends USER_LEFT
  } catch (const std::exception& error) {
    tell_user(iocp_chat::v1::wide_from_utf8(error.what()) + L"\n", true, kProgramName);
    return 1;
  }
}
