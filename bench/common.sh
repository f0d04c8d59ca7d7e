# Shared by the benchmarks: where they work, and the tools they compare.
# Sourced by bench/*/run.sh, and by their hyperfine --prepare commands.
set -euo pipefail
BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$BENCH_DIR/.." && pwd)"
mkdir -p "${BENCH_OUT:-$BENCH_DIR/out}"
OUT="$(cd "${BENCH_OUT:-$BENCH_DIR/out}" && pwd)"
# Absolute and exported, so that hyperfine's --prepare commands see the same one.
export BENCH_OUT="$OUT"

need() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

# Builds target/release/wrun; WRUN=/path/to/wrun uses that binary instead.
build_wrun() {
    if [ -z "${WRUN:-}" ]; then
        (cd "$REPO" && cargo build --release -p wrun-cli >&2)
        WRUN="$REPO/target/release/wrun"
    fi
    WRUN="$(realpath "$WRUN")"
}

# The registry is stopped at exit, however the script ends (error, Ctrl-C, kill).
REGISTRY_PID=
stop_registry() {
    if [ -n "$REGISTRY_PID" ]; then
        kill "$REGISTRY_PID" 2>/dev/null || true
        wait "$REGISTRY_PID" 2>/dev/null || true
        REGISTRY_PID=
    fi
}
trap stop_registry EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Starts a docker-registry on a free loopback port; sets REGISTRY=127.0.0.1:PORT.
# Its storage persists in $OUT/registry/data, so pushes are cheap after the first run.
start_registry() {
    local port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    mkdir -p "$OUT/registry"
    cat > "$OUT/registry/config.yml" <<YML
version: 0.1
storage:
  filesystem:
    rootdirectory: $OUT/registry/data
http:
  addr: 127.0.0.1:$port
log:
  level: error
YML
    docker-registry serve "$OUT/registry/config.yml" > "$OUT/registry/log" 2>&1 &
    REGISTRY_PID=$!
    REGISTRY=127.0.0.1:$port
    for _ in $(seq 100); do
        curl -fsS "http://$REGISTRY/v2/" >/dev/null 2>&1 && return 0
        kill -0 "$REGISTRY_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "registry did not start; see $OUT/registry/log" >&2
    return 1
}

# Moves trees aside now; empty_trash deletes them later. Deleting a large
# tree slows file creation on this disk for minutes, which would skew the
# runs that follow. Mounts left beneath a tree (podman's overlay driver
# bind-mounts its home) are unmounted first, or the tree could not be deleted.
retire() {
    local d m
    mkdir -p "$OUT/trash"
    for d in "$@"; do
        [ -e "$d" ] || continue
        [ -d "$d" ] && d="$(cd "$d" && pwd)"
        findmnt -rn -o TARGET | { grep -F "$d/" || true; } | sort -r | while read -r m; do
            umount "$m"
        done
        mv "$d" "$(mktemp -d "$OUT/trash/XXXXXX")/"
    done
}

empty_trash() {
    rm -rf "$OUT/trash"
}
