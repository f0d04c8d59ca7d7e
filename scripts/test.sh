#!/usr/bin/env bash
# Runs wrun's whole test suite on a fresh Debian machine, as root:
# installs what the tests use (the CNCF registry, skopeo, umoci, htpasswd,
# a static busybox for native images, libseccomp and podman's seccomp
# profile for the native seccomp tests, a C compiler and static C library for
# the probes run inside containers), builds the binary, runs every test.
# Tests start their own registries on 127.0.0.1; nothing else is needed.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(docker-registry skopeo umoci apache2-utils busybox-static
    libseccomp-dev pkg-config golang-github-containers-common gcc libc6-dev
    podman runc conmon)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ]; then
        echo "installing: ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "missing packages (install as root): ${missing[*]}" >&2
    fi
fi

# In CI a test that cannot get root, namespaces, cgroups or a registry fails
# instead of skipping.
if [ -n "${CI:-}" ]; then
    export WRUN_REQUIRE_PRIVILEGED=1
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --workspace --all-targets
cargo test --workspace --no-fail-fast "$@"
