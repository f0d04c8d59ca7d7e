#!/usr/bin/env bash
# Native start-up: `wrun run IMAGE true` of a pulled busybox image, side by
# side in one hyperfine run with `crun run` and `runc run` of a bundle with
# the same root file system, `podman run --rm` of the same image, and the
# floors: fork+exec of `true` and `unshare` of five namespaces.
#
# crun refuses a hybrid cgroup host (cgroup v1 controllers plus an empty
# cgroup2 mount at /sys/fs/cgroup/unified) unless that mount is absent, so
# everything runs in one mount namespace where it is unmounted: all tools
# then see the same cgroup v1 hierarchy.
source "$(dirname "$0")/../common.sh"
need docker-registry skopeo umoci podman hyperfine crun runc busybox-static curl
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

unshare -m bash -euo pipefail -c "
    mount --make-rprivate /
    umount /sys/fs/cgroup/unified 2>/dev/null || true
    hyperfine --runs $RUNS --warmup 5 -N --export-json '$OUT/native-start.json' \
        -n 'wrun run' '$WRUN --root $W/wrun run --pull never $IMAGE true' \
        -n 'crun run' 'crun --root $W/crun-state run --bundle $W/bundle bench-crun' \
        -n 'runc run' 'runc --root $W/runc-state run --bundle $W/bundle bench-runc' \
        -n 'podman run --rm' 'podman --root $W/podman/root --runroot $W/podman/run run --rm --network none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 $IMAGE true' \
        -n 'fork+exec true' 'true' \
        -n 'unshare (5 namespaces)' 'unshare -m -p -f -u -i -n true'
"
python3 - "$OUT/native-start.json" <<'PY'
import json, sys
r = {x["command"]: (x["mean"], x["stddev"]) for x in json.load(open(sys.argv[1]))["results"]}
for k, (m, s) in r.items():
    print(f"{k:28} {m*1000:8.2f} ms ± {s*1000:.2f}")
w = r["wrun run"][0]
for k in ("crun run", "runc run", "podman run --rm"):
    print(f"wrun / {k}: {w / r[k][0]:.2f}x")
PY
retire "$W"
empty_trash
