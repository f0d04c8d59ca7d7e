#!/usr/bin/env bash
# Runs wrun's whole test suite on a fresh Debian machine, as root:
# installs what the build and the tests use (libseccomp for the build; the
# CNCF registry, skopeo, umoci, htpasswd, a static busybox for native
# images, a C compiler and static C library for the probes run inside
# containers, podman + runc and podman's seccomp profile to compare
# against), checks formatting and clippy, builds, runs every test.
# Tests start their own registries on 127.0.0.1; nothing else is needed.
set -euo pipefail
cd "$(dirname "$0")/.."

# Building needs libseccomp (the native backend's filter compiler).
scripts/deps.sh docker-registry skopeo umoci apache2-utils busybox-static \
    libseccomp-dev pkg-config golang-github-containers-common gcc libc6-dev \
    podman runc conmon

# In CI a test that cannot get root, namespaces, cgroups or a registry fails
# instead of skipping.
if [ -n "${CI:-}" ]; then
    export WRUN_REQUIRE_PRIVILEGED=1
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --workspace --all-targets
cargo test --workspace --no-fail-fast "$@"
