#!/usr/bin/env bash
# setup.sh — installs every Debian/Ubuntu package that building, testing,
# the docs and the benchmarks need. Idempotent: when everything is present it
# only checks and returns; apt-get update runs only if something is missing.
# Needs root (or sudo) on Debian 12.
set -euo pipefail

packages=(
  # build (Linux)
  cmake ninja-build g++ clang libclang-rt-14-dev pkg-config
  # tests and micro-benchmarks
  googletest libgtest-dev libbenchmark-dev
  # the fan-out benchmark's comparison servers and its plots (bench/run_matrix.sh)
  redis-server nats-server gnuplot-nox
  # the io_uring backend
  liburing-dev
  # ver.3: the NATS C client; its tests start nats-server (above) and make TLS certificates with openssl
  libnats-dev openssl
  # the Windows cross build, run under Wine
  g++-mingw-w64-x86-64-posix wine wine64
  # the WinAPI client's GUI test: a virtual display, a robot, screenshots, Korean fonts
  xvfb xauth xdotool x11-xserver-utils imagemagick fonts-wine fonts-nanum
  # style check, docs (rsvg-convert: look at a rendered diagram as a PNG)
  clang-format doxygen graphviz librsvg2-bin
  # scripts
  python3 procps
)

missing=()
for package in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$package")
done

if ((${#missing[@]} == 0)); then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

echo "setup: installing ${missing[*]}"
sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "setup: done"
