// console_io.hpp — the terminal side of the console clients: arguments,
// keyboard lines and printed lines, all as UTF-8 on Linux and on Windows.
// Shared by both stages' console clients (v1_client and v2_client), so it
// lives in common/clients/console/ (iocp_chat::console).
//
// Idea: the chat carries UTF-8 bytes and the client passes them through
// unchanged. Linux terminals already speak UTF-8. A Windows console does
// not by default: main's argv and std::cin arrive in the "ANSI" code page,
// where Korean text is lost, and printing UTF-8 bytes gives mojibake. So on
// Windows these functions talk to the console in UTF-16 (GetCommandLineW,
// ReadConsoleW, WriteConsoleW) and convert at the edge; redirected input
// and output (pipes, files — what the tests use) stay raw UTF-8 bytes.
// Every #ifdef of the clients' terminal code lives in console_io.cpp.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace iocp_chat::console {

/// Sets up standard output and error for UTF-8 (on Windows: binary mode, so
/// "\n" is not turned into "\r\n" and bytes pass unchanged). Call once, first.
void prepare_console();

/// The command-line arguments, program name first, as UTF-8.
std::vector<std::string> utf8_arguments(int argc, char** argv);

/// Reads one line typed by the user (or piped in), without its line ending.
/// Returns false at the end of input. Blocks; called by one thread only.
bool read_input_line(std::string& line);

/// Writes text to standard output as one write and flushes it. Safe to call
/// from several threads: each call's text stays in one piece.
void write_output(std::string_view text);

/// Same as write_output, for standard error (status and error messages).
void write_error(std::string_view text);

}  // namespace iocp_chat::console
