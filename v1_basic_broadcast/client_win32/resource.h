// resource.h — the numbers that name the dialog and its controls.
//
// WinAPI idea: a dialog is data, not code. client_win32.rc describes the
// window and its controls (compiled by the resource compiler, rc.exe or
// windres, into the .exe), and the C++ code finds each control again by the
// number defined here (GetDlgItem, SetDlgItemTextW, SendDlgItemMessageW).
// This header is read by both compilers, so it holds only #defines.
#pragma once

// The dialog template (DialogBoxParamW loads it by this number).
#define IDD_CHAT 100

// Controls. IDC_STATIC is the conventional id of labels nobody addresses.
#define IDC_STATIC -1
#define IDC_HOST 1001      // edit box: server address
#define IDC_PORT 1002      // edit box: server port (digits only)
#define IDC_CONNECT 1003   // push button: Connect / Disconnect
#define IDC_MESSAGES 1004  // list box: everything received, one line per item
#define IDC_MESSAGE 1005   // edit box: the line to send
#define IDC_SEND 1006      // default push button: Send (Enter presses it)
