// modal_dialog.hpp — the plumbing every dialog of the WinAPI clients shares,
// written once: a modal dialog from a resource template whose messages reach
// a C++ object. Shared by both stages' WinAPI clients — the ver.1 chat
// dialog and the ver.2 login and chat dialogs — so it lives in
// common/clients/win32/ (iocp_chat::win32_client).
//
// WinAPI idea: the dialog procedure is a plain function. Windows calls it
// with a window handle, never with an object, so the object has to travel
// inside the window. DialogBoxParamW takes one value for that (its last
// argument, dwInitParam) and hands it back as the lParam of WM_INITDIALOG,
// the first message that matters; the procedure keeps it in the window's
// DWLP_USER slot, the word every dialog has for its program's own use, and
// reads it back from there for every later message. A static function that
// only finds the object and jumps into it is called a trampoline.
//
// C++ idea: CRTP. A dialog class derives from ModalDialog<ItsOwnClass>, so
// the one trampoline below knows the real class and calls its
// handle_message directly: no virtual function, no copy of this code.
#pragma once

// WIN32_LEAN_AND_MEAN and NOMINMAX come with iocp_chat::common (common/CMakeLists.txt).
#include <windows.h>

namespace iocp_chat::v1 {

/// A modal dialog built from a resource template; its messages go to
/// `Derived::handle_message(UINT, WPARAM, LPARAM)`, which returns what a
/// dialog procedure returns (TRUE: handled; FALSE: the dialog manager's default).
template <typename Derived>
class ModalDialog {
 public:
  ModalDialog(const ModalDialog&) = delete;
  ModalDialog& operator=(const ModalDialog&) = delete;

  // [run-dialog]
  /// Shows the dialog and runs its modal message loop until EndDialog
  /// (DialogBoxParamW); returns EndDialog's result, -1 if it could not open.
  INT_PTR run(HINSTANCE instance) {
    // The last argument comes back to dialog_proc as WM_INITDIALOG's
    // lParam: that is how the static dialog procedure finds this object.
    return DialogBoxParamW(instance, MAKEINTRESOURCEW(template_id_), nullptr, &ModalDialog::dialog_proc,
                           reinterpret_cast<LPARAM>(this));
  }
  // [run-dialog]

 protected:
  /// `template_id`: the DIALOG resource to build the window from (IDD_... in resource.h).
  explicit ModalDialog(int template_id) noexcept : template_id_(template_id) {}
  /// Not virtual: a dialog is never destroyed through a pointer to this base.
  ~ModalDialog() = default;

  /// The dialog window; nullptr until WM_INITDIALOG has arrived.
  HWND window() const noexcept { return window_; }

 private:
  // [dialog-proc]
  // The dialog procedure (DLGPROC): Windows calls it for every message of
  // the window, with the window's handle, never with an object.
  static INT_PTR CALLBACK dialog_proc(HWND window, UINT message, WPARAM wparam, LPARAM lparam) {
    if (message == WM_INITDIALOG) {
      // lParam is run()'s `this`: keep it in the window's DWLP_USER slot,
      // where every later message finds it.
      SetWindowLongPtrW(window, DWLP_USER, lparam);
      reinterpret_cast<ModalDialog*>(lparam)->window_ = window;
    }
    auto* self = reinterpret_cast<ModalDialog*>(GetWindowLongPtrW(window, DWLP_USER));
    if (self == nullptr) return FALSE;  // a message before WM_INITDIALOG (WM_SETFONT)
    // CRTP: this base is part of a Derived, which handles the message.
    return static_cast<Derived*>(self)->handle_message(message, wparam, lparam);
  }
  // [dialog-proc]

  int template_id_;        ///< The DIALOG resource's id, for DialogBoxParamW.
  HWND window_ = nullptr;  ///< The dialog, once WM_INITDIALOG ran.
};

}  // namespace iocp_chat::v1
