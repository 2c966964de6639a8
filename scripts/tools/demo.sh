#!/usr/bin/env bash
# Installs what is missing, builds greenlua (Release) and runs the demos:
# a chat server with three bots, then greenthreads at work.
set -u
cd "$(dirname "$0")/../.."
. scripts/tools/deps.sh
need_packages "${GL_BUILD_PACKAGES[@]}" || exit 1
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null &&
  cmake --build build -j"$(nproc)" >/dev/null || exit 1
build/greenlua scripts/examples/chat_demo.lua || exit 1
echo
exec build/greenlua scripts/examples/demo.lua
