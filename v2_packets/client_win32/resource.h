// resource.h — the numbers that name the ver.2 client's two dialogs and
// their controls.
//
// WinAPI idea: a dialog is data, not code. client_win32.rc describes the
// windows and their controls (compiled into the .exe by the resource
// compiler, rc.exe or windres), and the C++ code finds each control again by
// the number defined here (GetDlgItem, SetDlgItemTextW, SendDlgItemMessageW).
// This header is read by both compilers, so it holds only #defines.
#pragma once

// The dialog templates (DialogBoxParamW loads them by these numbers).
#define IDD_LOGIN 100  // first: server, port and user id
#define IDD_CHAT 101   // after a successful login: the conversation

// Controls. IDC_STATIC is the conventional id of labels nobody addresses.
#define IDC_STATIC -1

// The login dialog.
#define IDC_HOST 1001          // edit box: server address
#define IDC_PORT 1002          // edit box: server port (digits only)
#define IDC_USER_ID 1003       // edit box: the id to log in with
#define IDC_LOGIN 1004         // default push button: Login (Enter presses it)
#define IDC_LOGIN_STATUS 1005  // label: what happened to the last try

// The chat dialog.
#define IDC_WHO 1101       // label: "민수 @ 127.0.0.1:42006"
#define IDC_MESSAGES 1102  // list box: everything received, one line per item
#define IDC_MESSAGE 1103   // edit box: the line to send
#define IDC_SEND 1104      // default push button: Send (Enter presses it)
