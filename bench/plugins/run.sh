#!/bin/sh
# Plugin benchmark: wrun-plugin against raw Wasmtime, in release mode.
# Usage: bench/plugins/run.sh [SCALE]   (SCALE multiplies the iteration counts)
set -eu
cd "$(dirname "$0")/../.."
exec cargo bench -p wrun-plugin --bench plugins -- "${1:-1}"
