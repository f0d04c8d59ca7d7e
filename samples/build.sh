#!/bin/sh
# Rebuilds the committed C guests. The WAT guests need no build step: tests
# compile them with the `wat` crate. Requires clang-14, lld-14, wasi-libc and
# libclang-rt-14-dev-wasm32 (Debian/Ubuntu package names).
set -eu
cd "$(dirname "$0")"
for src in c/*.c; do
    out="wasm/$(basename "$src" .c).wasm"
    clang-14 --target=wasm32-wasi --sysroot=/usr -O2 -Wall -Werror -Wl,--strip-all "$src" -o "$out"
    echo "built $out"
done
