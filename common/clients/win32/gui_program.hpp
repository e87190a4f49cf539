// gui_program.hpp — what a GUI-subsystem program needs before and after its
// window: its command line in UTF-16, a port number from it, and a way to
// tell the user something without a console.
//
// WinAPI idea: a GUI-subsystem program (WinMain, linked with -mwindows /
// /SUBSYSTEM:WINDOWS) gets no console window, and WinMain's lpCmdLine is in
// the ANSI code page. So the command line is read again as UTF-16
// (GetCommandLineW, CommandLineToArgvW), and text for the user goes to
// whatever output the program has, or else into a message box. Shared by
// both stages' WinAPI clients (v1_client_win32 and v2_client_win32), so it
// lives in common/clients/win32/ (iocp_chat::win32_client).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace iocp_chat::v1 {

/// The program's arguments as UTF-16 words, without the program's name
/// (GetCommandLineW split by CommandLineToArgvW, which keeps non-ASCII
/// file names and ids intact).
std::vector<std::wstring> command_line_words();

/// A port number 1..65535, or 0 if `text` is not one.
std::uint16_t parse_port(const std::wstring& text);

/// Shows `text` where the user will see it: the program's stdout or stderr
/// if it has one (a pipe, a file, or Wine started from a terminal), the
/// console it was started from (AttachConsole), or else a message box
/// (MessageBoxW) captioned `caption`.
void tell_user(std::wstring_view text, bool is_error, const wchar_t* caption);

}  // namespace iocp_chat::v1
