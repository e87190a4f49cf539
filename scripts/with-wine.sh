#!/bin/sh
# with-wine.sh — run a command (usually `ctest --preset mingw`) with a
# throw-away Wine prefix, started the fast way.
#
# Usage: scripts/with-wine.sh COMMAND [ARGS...]
#   e.g. scripts/with-wine.sh ctest --preset mingw
#
# Why a script: ctest waits until a test's stderr closes, and the first Wine
# process of a prefix starts wineserver and Wine's services, which inherit
# that stderr. Left to itself, every test would pay a cold start (~2.5 s)
# or hang. Instead this script makes a fresh prefix, starts a persistent
# wineserver (`wineserver -p`) and the services (`wineboot -i`) once, with
# their output detached, runs the command, then stops the server and
# deletes the prefix. The command's exit code is this script's exit code.
set -eu

if [ "$#" -eq 0 ]; then
  echo "usage: $0 COMMAND [ARGS...]" >&2
  exit 2
fi

WINEPREFIX=$(mktemp -d "${TMPDIR:-/tmp}/iocp-chat-wine.XXXXXX")
# WINEDEBUG=-all: no Wine diagnostics in the test output.
# WINEDLLOVERRIDES: no .NET (Mono) or HTML (Gecko) runtime to install, and no
# desktop menu entries; this is what makes a new prefix take seconds.
WINEDEBUG=-all
WINEDLLOVERRIDES="mscoree,mshtml=;winemenubuilder.exe=d"
export WINEPREFIX WINEDEBUG WINEDLLOVERRIDES

cleanup() {
  wineserver -k >/dev/null 2>&1 || true
  wineserver -w >/dev/null 2>&1 || true
  rm -rf "$WINEPREFIX"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The prefix: wineserver, the services, and the Korean font mapping — Wine
# falls back only to font names it knows from Windows, so Gulim (the Korean
# UI font) is mapped to NanumGothic (Debian's fonts-nanum), for processes
# started from now on. Any step can fail now and then on a loaded machine
# (a CI docs run once stopped here without a word), so a failure is said,
# and the prefix is made again once.
start_prefix() {
  wineserver -p &&
    wineboot -i >/dev/null 2>&1 </dev/null &&
    wine reg add 'HKCU\Software\Wine\Fonts\Replacements' /v Gulim /d NanumGothic /f >/dev/null 2>&1 </dev/null
}
if ! start_prefix; then
  echo "with-wine.sh: starting the Wine prefix failed (wineserver -p, wineboot -i or wine reg); trying once more" >&2
  cleanup
  mkdir -p "$WINEPREFIX"
  start_prefix || {
    echo "with-wine.sh: could not start Wine twice; see: WINEPREFIX=$WINEPREFIX wineboot -i" >&2
    exit 1
  }
fi

status=0
"$@" || status=$?
exit "$status"
