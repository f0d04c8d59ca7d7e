#!/usr/bin/env bash
# Wasm start-up: `wrun run` of a pulled hello-world Wasm image (its compiled
# code cached in the store), side by side in one hyperfine run with the
# wasmtime CLI running the same module with its cache warm, and running a
# precompiled .cwasm; `wasmtime --version` is the floor of a process that
# loads the same engine.
source "$(dirname "$0")/../common.sh"
need docker-registry skopeo hyperfine curl
build_wrun
RUNS=${RUNS:-100}
WASMTIME_VERSION=48.0.8
WASMTIME=$(command -v wasmtime || true)
if [ -z "$WASMTIME" ] || ! "$WASMTIME" --version | grep -q "$WASMTIME_VERSION"; then
    echo "installing the wasmtime CLI $WASMTIME_VERSION (about 20 minutes)" >&2
    cargo install --quiet --locked "wasmtime-cli@$WASMTIME_VERSION" >&2
    WASMTIME="$(dirname "$(command -v cargo)")/wasmtime"
fi

W="$OUT/wasm-start"
retire "$W"
mkdir -p "$W"
MODULE="$REPO/samples/wasm/greet.wasm"

# The module as a CNCF Wasm artifact in an OCI layout.
python3 - "$MODULE" "$W/layout" <<'PY'
import hashlib, json, os, sys
module, out = sys.argv[1], sys.argv[2]
os.makedirs(f"{out}/blobs/sha256")
def blob(data):
    d = hashlib.sha256(data).hexdigest()
    open(f"{out}/blobs/sha256/{d}", "wb").write(data)
    return {"digest": f"sha256:{d}", "size": len(data)}
wasm = open(module, "rb").read()
config = json.dumps({"architecture": "wasm", "os": "wasip1"}).encode()
manifest = json.dumps({
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "artifactType": "application/vnd.wasm.config.v0+json",
    "config": {"mediaType": "application/vnd.wasm.config.v0+json", **blob(config)},
    "layers": [{"mediaType": "application/wasm", **blob(wasm)}],
}).encode()
m = blob(manifest)
json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", **m,
           "annotations": {"org.opencontainers.image.ref.name": "1"}}]}, open(f"{out}/index.json", "w"))
open(f"{out}/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
PY
start_registry
skopeo copy -q --dest-tls-verify=false "oci:$W/layout:1" "docker://$REGISTRY/bench/greet:1"
IMAGE="$REGISTRY/bench/greet:1"
"$WRUN" --root "$W/wrun" pull -q "$IMAGE" >/dev/null
"$WRUN" --root "$W/wrun" run --pull never "$IMAGE" >/dev/null   # fills the compiled-code cache

# The wasmtime CLI's own cache, warm; and a precompiled module.
cat > "$W/wasmtime-cache.toml" <<TOML
[cache]
directory = "$W/wasmtime-cache"
TOML
CACHE_FLAG=(-C "cache=y,cache-config=$W/wasmtime-cache.toml")
"$WASMTIME" run "${CACHE_FLAG[@]}" "$MODULE" >/dev/null   # fills its cache
"$WASMTIME" compile "$MODULE" -o "$W/greet.cwasm"

hyperfine --runs "$RUNS" --warmup 10 -N --export-json "$OUT/wasm-start.json" \
    -n "wrun run (image, cached code)" "$WRUN --root $W/wrun run --pull never $IMAGE" \
    -n "wasmtime run (warm cache)" "$WASMTIME run ${CACHE_FLAG[*]} $MODULE" \
    -n "wasmtime run (precompiled)" "$WASMTIME run --allow-precompiled $W/greet.cwasm" \
    -n "wasmtime --version" "$WASMTIME --version"
python3 - "$OUT/wasm-start.json" <<'PY'
import json, sys
r = {x["command"]: (x["mean"], x["stddev"]) for x in json.load(open(sys.argv[1]))["results"]}
for k, (m, s) in r.items():
    print(f"{k:32} {m*1000:7.2f} ms ± {s*1000:.2f}")
w = r["wrun run (image, cached code)"][0]
for k in ("wasmtime run (warm cache)", "wasmtime run (precompiled)"):
    print(f"wrun / {k}: {w / r[k][0]:.2f}x")
PY
