// transcript.hpp — the client's --log file: every line the window shows,
// appended as UTF-8 the moment it is shown.
//
// Why it exists: a test cannot read a list box's text from the screen's
// pixels, so the WinAPI clients copy each shown line here and the GUI tests
// (tests/win32/) read the file instead. Shared by both stages' WinAPI
// clients, so it lives in common/clients/win32/ (iocp_chat::win32_client).
//
// WinAPI idea: CreateFileW with FILE_APPEND_DATA and WriteFile — no C
// runtime buffer in between, so a line is in the file as soon as WriteFile
// returns, and a reader polling the file sees it at once.
#pragma once

// WIN32_LEAN_AND_MEAN and NOMINMAX come with iocp_chat::common (common/CMakeLists.txt).
#include <windows.h>

#include <string>
#include <string_view>

#include "iocp_chat/os_error.hpp"
#include "wide_text.hpp"

namespace iocp_chat::v1 {

/// An append-only UTF-8 copy of the lines a window shows; inactive if no path was given.
class Transcript {
 public:
  /// Opens (or creates) `path` for appending; an empty path means no
  /// transcript. Throws std::system_error if the file cannot be opened.
  explicit Transcript(const std::wstring& path) {
    if (path.empty()) return;
    // FILE_APPEND_DATA: every WriteFile lands at the current end of the file.
    file_ = CreateFileW(path.c_str(), FILE_APPEND_DATA, FILE_SHARE_READ | FILE_SHARE_WRITE, nullptr,
                        OPEN_ALWAYS, FILE_ATTRIBUTE_NORMAL, nullptr);
    if (file_ == INVALID_HANDLE_VALUE) throw_os_error(last_os_error(), "cannot open the --log file");
  }
  /// Closes the file (CloseHandle).
  ~Transcript() {
    if (file_ != INVALID_HANDLE_VALUE) CloseHandle(file_);
  }
  Transcript(const Transcript&) = delete;
  Transcript& operator=(const Transcript&) = delete;

  /// Appends `line` and a "\n", as UTF-8; does nothing without a file.
  void write_line(std::wstring_view line) {
    if (file_ == INVALID_HANDLE_VALUE) return;
    const std::string bytes = utf8_from_wide(line) + "\n";
    DWORD written = 0;
    WriteFile(file_, bytes.data(), static_cast<DWORD>(bytes.size()), &written, nullptr);
  }

 private:
  HANDLE file_ = INVALID_HANDLE_VALUE;  ///< The --log file, or INVALID_HANDLE_VALUE.
};

}  // namespace iocp_chat::v1
