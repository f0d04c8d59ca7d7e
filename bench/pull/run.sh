#!/usr/bin/env bash
# Pull benchmark: a ~120 MB Debian minbase image from a local registry into
# an empty store, until it is unpacked and ready to run, side by side with
# what a user does today:
#   - skopeo copy docker://… oci:DIR, then umoci unpack (an unpacked bundle)
#   - podman pull (overlay storage driver; PODMAN_DRIVER=vfs to change it)
#   - the floor: tar -xzf of the image's layers, one after the other
# Both a single-layer and a 10-layer image are measured. Prints ratios.
#
# Environment: RUNS (default 5), BENCH_OUT (default bench/out), PODMAN_DRIVER,
# WRUN (a wrun binary to use instead of building target/release/wrun).
source "$(dirname "$0")/../common.sh"
need docker-registry skopeo umoci podman hyperfine debootstrap curl python3
build_wrun
RUNS=${RUNS:-5}
PODMAN_DRIVER=${PODMAN_DRIVER:-overlay}

ROOTFS="$OUT/minbase"
if [ ! -x "$ROOTFS/bin/sh" ]; then
    echo "building a Debian minbase root file system (once; log in $OUT/debootstrap.log)" >&2
    retire "$ROOTFS.tmp"
    debootstrap --variant=minbase bookworm "$ROOTFS.tmp" > "$OUT/debootstrap.log" 2>&1
    mv "$ROOTFS.tmp" "$ROOTFS"
fi
# As Debian's own images: no downloaded packages, no apt lists (80 MB).
find "$ROOTFS/var/cache/apt/archives" "$ROOTFS/var/lib/apt/lists" -maxdepth 1 -type f \
    \( -name '*.deb' -o -path '*/lists/*' \) -delete

# Image layouts: one layer, and the same files in 10 layers.
LAYOUT="$OUT/layout"
if [ ! -f "$LAYOUT/index.json" ]; then
    echo "building the image layouts (once)" >&2
    retire "$LAYOUT.tmp"
    L="$LAYOUT.tmp"
    umoci init --layout "$L"
    umoci new --image "$L:one"
    tar -C "$ROOTFS" -cf - . | umoci raw add-layer --image "$L:one" /dev/stdin
    umoci config --image "$L:one" --config.cmd /bin/sh
    # Spread the files over 10 layers of about equal size; directories go
    # in the first, as image builders' base layers have them.
    python3 - "$ROOTFS" "$OUT/lists" <<'PY'
import os, sys
root, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
dirs, files = [], []
for d, ds, fs in os.walk(root):
    rel = os.path.relpath(d, root)
    dirs.append("." if rel == "." else "./" + rel)
    # os.walk lists symlinks to directories (bin -> usr/bin, …) with the
    # directories but does not enter them: they are entries like files.
    links = [x for x in ds if os.path.islink(os.path.join(d, x))]
    for f in fs + links:
        p = os.path.join(d, f)
        files.append((os.lstat(p).st_size, "./" + os.path.relpath(p, root)))
files.sort(reverse=True)
groups = [[0, []] for _ in range(10)]
for size, rel in files:
    g = min(groups, key=lambda g: g[0])
    g[0] += size
    g[1].append(rel)
groups[0][1][:0] = dirs
for i, (_, names) in enumerate(groups):
    with open(f"{out}/{i}", "w") as f:
        f.write("".join(n + "\0" for n in names))
PY
    umoci new --image "$L:ten"
    for i in $(seq 0 9); do
        tar -C "$ROOTFS" --no-recursion --null --verbatim-files-from -T "$OUT/lists/$i" -cf - |
            umoci raw add-layer --image "$L:ten" /dev/stdin
    done
    umoci config --image "$L:ten" --config.cmd /bin/sh
    umoci gc --layout "$L"
    mv "$L" "$LAYOUT"
fi

# The layer files of a tag of the layout, in order.
layers() {
    python3 - "$LAYOUT" "$1" <<'PY'
import json, sys
lay, tag = sys.argv[1], sys.argv[2]
idx = json.load(open(f"{lay}/index.json"))
m = next(m for m in idx["manifests"] if m["annotations"]["org.opencontainers.image.ref.name"] == tag)
man = json.load(open(f"{lay}/blobs/sha256/{m['digest'].split(':')[1]}"))
for l in man["layers"]:
    print(f"{lay}/blobs/sha256/{l['digest'].split(':')[1]}")
PY
}

echo "image: $(du -s --si --apparent-size "$ROOTFS" | cut -f1)B unpacked, $(find "$ROOTFS" | wc -l) entries" \
    "($(find "$ROOTFS" -type f | wc -l) files, $(find "$ROOTFS" -type d | wc -l) directories, $(find "$ROOTFS" -type l | wc -l) symlinks)" >&2
for t in one ten; do
    mapfile -t files < <(layers $t)
    echo "  $t: ${#files[@]} layer(s), $(du -c --si --apparent-size "${files[@]}" | tail -1 | cut -f1)B gzip" \
        "($(du --si --apparent-size "${files[@]}" | cut -f1 | paste -sd ' '))" >&2
done

start_registry
for t in one ten; do
    skopeo copy -q --dest-tls-verify=false "oci:$LAYOUT:$t" "docker://$REGISTRY/bench/minbase:$t"
done

q() { printf '%q' "$1"; }
W="$OUT/work"
mkdir -p "$W"
echo "load before: $(uptime)" >&2
for t in one ten; do
    ref="$REGISTRY/bench/minbase:$t"
    floor="mkdir $(q "$W/tar")"
    mapfile -t files < <(layers $t)
    for l in "${files[@]}"; do
        floor+=" && tar -C $(q "$W/tar") -xzf $(q "$l")"
    done
    echo >&2
    echo "== $t: $ref" >&2
    # Every run starts from empty stores; the previous run's trees are moved
    # aside (see retire) and deleted at the end.
    hyperfine --runs "$RUNS" --warmup 1 --shell bash \
        --export-json "$OUT/pull-$t.json" \
        --prepare "source $(q "$BENCH_DIR/common.sh") && retire $(q "$W") && mkdir $(q "$W") && sync" \
        -n "wrun pull" \
        "$(q "$WRUN") --root $(q "$W/wrun") pull -q $ref" \
        -n "skopeo copy + umoci unpack" \
        "skopeo copy -q --src-tls-verify=false docker://$ref oci:$(q "$W/oci"):x && umoci unpack --image $(q "$W/oci"):x $(q "$W/bundle") >/dev/null" \
        -n "podman pull ($PODMAN_DRIVER)" \
        "podman --root $(q "$W/podman/root") --runroot $(q "$W/podman/run") --storage-driver $PODMAN_DRIVER pull -q --tls-verify=false $ref" \
        -n "tar -xzf (floor)" \
        "$floor"
done
echo "load after: $(uptime)" >&2

stop_registry

python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
for t, label in (("one", "single layer"), ("ten", "10 layers")):
    res = json.load(open(f"{out}/pull-{t}.json"))["results"]
    r = {x["command"]: x for x in res}
    w = r["wrun pull"]["mean"]
    print(f"{label}:")
    for k, x in r.items():
        sd = f" ± {x['stddev']:.3f} s" if x["stddev"] is not None else ""
        print(f"  {k:36} {x['mean']:.3f} s{sd}")
    for k, x in r.items():
        if k != "wrun pull":
            print(f"  wrun / {k:29} {w / x['mean']:.2f}x")
PY

# Last, as it takes minutes: the stores of every run.
echo "deleting the runs' trees ($OUT/trash)" >&2
retire "$W"
empty_trash
