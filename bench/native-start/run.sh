#!/usr/bin/env bash
# Native start-up: `wrun run IMAGE true` of a pulled busybox image, side by
# side in one hyperfine run with `crun run` and `runc run` of a bundle with
# the same root file system, and `podman run --rm` of the same image, in
# three runs:
# 1. as engines run containers: the default seccomp filter on every side
#    (for crun and runc, podman's profile turned into the bundle's
#    linux.seccomp as podman does it, by seccomp_spec.py), with the floors
#    fork+exec of `true` and `unshare` of five namespaces;
# 2. no seccomp filter on any side (wrun --security-opt seccomp=unconfined);
# 3. as 1, with a memory limit (64 MiB, swap 128 MiB) and a pids limit (100)
#    on every side.
#
# crun refuses a hybrid cgroup host (cgroup v1 controllers plus an empty
# cgroup2 mount at /sys/fs/cgroup/unified) unless that mount is absent, so
# everything runs in one mount namespace where it is unmounted: all tools
# then see the same cgroup v1 hierarchy.
source "$(dirname "$0")/../common.sh"
need docker-registry skopeo umoci podman hyperfine crun runc busybox-static curl \
    golang-github-containers-common
build_wrun
RUNS=${RUNS:-50}

W="$OUT/native"
retire "$W"
mkdir -p "$W"

# A busybox image: /bin/busybox and its applets.
LAYOUT="$W/layout"
umoci init --layout "$LAYOUT"
umoci new --image "$LAYOUT:1"
umoci unpack --image "$LAYOUT:1" "$W/b0" >/dev/null
mkdir -p "$W/b0/rootfs/bin"
cp /bin/busybox "$W/b0/rootfs/bin/busybox"
for applet in sh true echo cat ls; do ln -sf busybox "$W/b0/rootfs/bin/$applet"; done
umoci repack --image "$LAYOUT:1" "$W/b0"
umoci config --image "$LAYOUT:1" --config.cmd /bin/sh

start_registry
skopeo copy -q --dest-tls-verify=false "oci:$LAYOUT:1" "docker://$REGISTRY/bench/busybox:1"
IMAGE="$REGISTRY/bench/busybox:1"
"$WRUN" --root "$W/wrun" pull -q "$IMAGE" >/dev/null
podman --root "$W/podman/root" --runroot "$W/podman/run" pull -q --tls-verify=false "$IMAGE" >/dev/null

# One bundle for crun and runc: the image's root file system and a spec
# with the same namespaces, no terminal, running `true`.
umoci unpack --image "$LAYOUT:1" "$W/bundle" >/dev/null
python3 - "$W/bundle/config.json" <<'PY'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/true"]
c["root"]["readonly"] = False
ns = [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "cgroup")]
c["linux"]["namespaces"] = ns
json.dump(c, open(p, "w"), indent=1)
PY
# The same bundle with podman's default seccomp profile, and with limits
# besides: what `--memory 64m --pids-limit 100` asks.
cp -a "$W/bundle" "$W/bundle-seccomp"
python3 "$(dirname "$0")/seccomp_spec.py" /usr/share/containers/seccomp.json "$W/bundle-seccomp/config.json"
cp -a "$W/bundle-seccomp" "$W/bundle-limits"
python3 - "$W/bundle-limits/config.json" <<'PY'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["linux"]["resources"] = {
    "memory": {"limit": 64 << 20, "swap": 128 << 20},
    "pids": {"limit": 100},
}
json.dump(c, open(p, "w"), indent=1)
PY

WR="$WRUN --root $W/wrun run --pull never"
unshare -m bash -euo pipefail -c "
    mount --make-rprivate /
    umount /sys/fs/cgroup/unified 2>/dev/null || true
    hyperfine --runs $RUNS --warmup 5 -N --export-json '$OUT/native-start.json' \
        -n 'wrun run' '$WR $IMAGE true' \
        -n 'crun run' 'crun --root $W/crun-state run --bundle $W/bundle-seccomp bench-crun' \
        -n 'runc run' 'runc --root $W/runc-state run --bundle $W/bundle-seccomp bench-runc' \
        -n 'podman run --rm' 'podman --root $W/podman/root --runroot $W/podman/run run --rm --network none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 $IMAGE true' \
        -n 'fork+exec true' 'true' \
        -n 'unshare (5 namespaces)' 'unshare -m -p -f -u -i -n true'
    hyperfine --runs $RUNS --warmup 5 -N --export-json '$OUT/native-start-unconfined.json' \
        -n 'wrun run' '$WR --security-opt seccomp=unconfined $IMAGE true' \
        -n 'crun run' 'crun --root $W/crun-state run --bundle $W/bundle bench-crun' \
        -n 'runc run' 'runc --root $W/runc-state run --bundle $W/bundle bench-runc'
    hyperfine --runs $RUNS --warmup 5 -N --export-json '$OUT/native-start-limits.json' \
        -n 'wrun run' '$WR --memory 64m --pids-limit 100 $IMAGE true' \
        -n 'crun run' 'crun --root $W/crun-state run --bundle $W/bundle-limits bench-crun' \
        -n 'runc run' 'runc --root $W/runc-state run --bundle $W/bundle-limits bench-runc'
"
python3 - "$OUT/native-start.json" "$OUT/native-start-unconfined.json" "$OUT/native-start-limits.json" <<'PY'
import json, statistics, sys
titles = ("default seccomp filter on every side", "no seccomp filter on any side",
          "default filter, --memory 64m --pids-limit 100")
for path, title in zip(sys.argv[1:], titles):
    res = json.load(open(path))["results"]
    r = {x["command"]: (x["mean"], x["stddev"], statistics.median(x["times"])) for x in res}
    print(f"-- {title} (mean ± stddev, median)")
    for k, (m, s, med) in r.items():
        print(f"{k:28} {m*1000:8.2f} ms ± {s*1000:.2f}   median {med*1000:.2f} ms")
    w = r["wrun run"]
    for k in ("crun run", "runc run", "podman run --rm"):
        if k in r:
            print(f"wrun / {k}: {w[0] / r[k][0]:.2f}x mean, {w[2] / r[k][2]:.2f}x median")
PY
retire "$W"
empty_trash
