//! Security measured, not assumed: the same probe in a wrun container and
//! in a podman + runc container (podman's defaults) on the same root file
//! system, and whatever podman refuses, wrun must refuse too.
//!
//! The probe (`PROBE`, a busybox shell script, with the seccomp probe of
//! wrun-native's end-to-end tests built statically beside it) tries system
//! calls, device nodes, masked and read-only paths, mounts and raw sockets
//! and prints `what=allowed` or `what=refused` for each, and the
//! container's capability sets. Nothing it tries can change the host: the
//! devices are only opened, the writes go to per-namespace or read-only
//! files, and podman runs with `--network none`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use wrun_tests::fixture::{self, Compression, ImageBuilder, Layer, Tagged, TarEntry};
use wrun_tests::{Env, assert_code, have_root, have_tools, skip};

const BUSYBOX: &str = "/bin/busybox";

/// Calls the seccomp probe makes (see `tests/probes/seccomp.c` of
/// wrun-native). Left out: sockets of families whose module the host's
/// kernel would load on demand under a profile that lets them through
/// (`AF_VSOCK`, `AF_ALG`).
const CALLS: &[&str] = &[
    "getpid",
    "openat",
    "io_uring_setup",
    "add_key",
    "keyctl",
    "unshare_user",
    "unshare_mount",
    "perf_event_open",
    "bpf",
    "mount",
    "clone_newns",
    "clone_plain",
    "clone3",
    "personality_linux",
    "personality_query",
    "personality_bad",
    "socket_unix",
    "userfaultfd",
    "ptrace",
    "kexec_load",
    "new_600",
];

const PROBE: &str = r#"#!/bin/sh
v() { if eval "$2" >/dev/null 2>&1; then echo "$1=allowed"; else echo "$1=refused"; fi; }
# A call refused by a filter or for want of a capability fails with EPERM
# or ENOSYS; any other answer means the kernel ran it.
/probe/seccomp $CALLS | while IFS== read -r name errno; do
    case "$errno" in 1|38) echo "call.$name=refused" ;; *) echo "call.$name=allowed" ;; esac
done
for n in 'console c 4 0' 'fuse c 10 229' 'loop b 7 0' 'mem c 1 1' 'kmsg c 1 11'; do
    set -- $n
    mknod /tmp/d-$1 $2 $3 $4 2>/dev/null
    v "device.$1" "( : < /tmp/d-$1 )"
done
v read.proc_keys "grep -q . /proc/keys"
v read.timer_list "grep -q . /proc/timer_list"
v read.sched_debug "grep -q . /proc/sched_debug"
v read.sys_firmware "ls /sys/firmware | grep -q ."
v write.proc_sys "echo probe > /proc/sys/kernel/domainname"
v write.sys "touch /sys/kernel/probe"
mkdir -p /mnt
v mount.tmpfs "mount -t tmpfs probe /mnt"
v mount.proc "mount -t proc probe /mnt"
v sethostname "hostname probe"
v raw_socket "ping -c 1 -W 1 127.0.0.1"
grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb)' /proc/self/status | tr -d '\t' | sed 's/:/=/'
"#;

const APPLETS: &[&str] = &[
    "sh", "cat", "grep", "mknod", "ls", "touch", "mkdir", "mount", "hostname", "ping", "tr", "sed",
];

/// The probe's files: busybox and its applets, the seccomp probe, the script.
fn files(seccomp_probe: &[u8]) -> Vec<(String, u32, Vec<u8>)> {
    let busybox = std::fs::read(BUSYBOX).expect("read /bin/busybox");
    let script = PROBE.replace("$CALLS", &CALLS.join(" "));
    vec![
        ("bin/busybox".into(), 0o755, busybox),
        ("probe/seccomp".into(), 0o755, seccomp_probe.to_vec()),
        ("probe/run".into(), 0o755, script.into_bytes()),
    ]
}

fn build_seccomp_probe(dir: &Path) -> Vec<u8> {
    let src =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/wrun-native/tests/probes/seccomp.c");
    let out = dir.join("seccomp");
    let st = Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .expect("run gcc");
    assert!(st.success(), "gcc {}", src.display());
    std::fs::read(&out).expect("read the probe")
}

/// The same files as a root file system directory, for `podman --rootfs`.
fn rootfs(dir: &Path, files: &[(String, u32, Vec<u8>)]) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let root = dir.join("rootfs");
    for d in ["bin", "probe", "tmp", "proc", "sys", "dev", "etc"] {
        std::fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    for (path, mode, data) in files {
        let p = root.join(path);
        std::fs::write(&p, data).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode)).expect("chmod");
    }
    for a in APPLETS {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(a)).expect("symlink");
    }
    root
}

/// The same files as an OCI layout holding image `t`, for `wrun run oci:`.
fn layout(dir: &Path, files: &[(String, u32, Vec<u8>)]) -> PathBuf {
    let mut entries = vec![
        TarEntry::dir("bin", 0o755),
        TarEntry::dir("probe", 0o755),
        TarEntry::dir("tmp", 0o1777),
    ];
    for (path, mode, data) in files {
        entries.push(TarEntry::file(path, *mode, data));
    }
    for a in APPLETS {
        entries.push(TarEntry::symlink(&format!("bin/{a}"), "busybox"));
    }
    let layer = Layer::tar(&entries, Compression::Gzip);
    let arch = wrun_tests::host_arch();
    let cfg = serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "config": {"Cmd": ["/probe/run"]},
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id.clone()]},
    });
    let image = ImageBuilder::new()
        .config_bytes(&serde_json::to_vec(&cfg).expect("serialize a config"))
        .layer(layer)
        .build();
    let out = dir.join("layout");
    fixture::write_layout(&out, &[("t", Tagged::Image(&image))]);
    out
}

fn parse(stdout: &str) -> BTreeMap<String, String> {
    stdout
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn podman(dir: &Path, rootfs: &Path, extra: &[&str]) -> BTreeMap<String, String> {
    let mut cmd = Command::new("podman");
    cmd.arg("--root")
        .arg(dir.join("podman/root"))
        .arg("--runroot")
        .arg(dir.join("podman/run"))
        .args([
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "file",
            "run",
            "--rm",
            "--runtime",
            "runc",
            "--network",
            "none",
            // Raising a hard limit is refused on some hosts; keep podman's
            // own defaults out of the way.
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
        ])
        .args(extra)
        .arg("--rootfs")
        .arg(rootfs)
        .arg("/probe/run");
    let out = cmd.output().expect("run podman");
    assert!(
        out.status.success(),
        "podman: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse(&String::from_utf8_lossy(&out.stdout))
}

fn wrun(env: &Env, layout: &Path, extra: &[&str]) -> BTreeMap<String, String> {
    let source = format!("oci:{}:t", layout.display());
    let mut args = vec!["run"];
    args.extend_from_slice(extra);
    args.push(&source);
    let r = env.run(&args);
    assert_code(&r, 0, "the probe in wrun");
    parse(&r.stdout)
}

fn caps(results: &BTreeMap<String, String>, set: &str) -> u64 {
    let v = results
        .get(set)
        .unwrap_or_else(|| panic!("no {set} in {results:?}"));
    u64::from_str_radix(v, 16).unwrap_or_else(|_| panic!("{set}={v}"))
}

/// Everything podman refuses, wrun refuses; wrun's capability sets are
/// subsets of podman's.
fn compare(ours: &BTreeMap<String, String>, theirs: &BTreeMap<String, String>, what: &str) {
    let mut wrong = Vec::new();
    let mut stricter = Vec::new();
    for (k, v) in theirs.iter().filter(|(k, _)| !k.starts_with("Cap")) {
        match (v.as_str(), ours.get(k).map(String::as_str)) {
            ("refused", Some("refused")) | ("allowed", Some("allowed")) => {}
            ("refused", got) => wrong.push(format!("{k}: podman refuses, wrun {got:?}")),
            ("allowed", Some("refused")) => stricter.push(k.as_str()),
            (other, got) => wrong.push(format!("{k}: podman {other}, wrun {got:?}")),
        }
    }
    for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        let (w, p) = (caps(ours, set), caps(theirs, set));
        if w & !p != 0 {
            wrong.push(format!("{set}: wrun {w:#x} has what podman's {p:#x} lacks"));
        }
    }
    println!("{what}: wrun refuses besides: {stricter:?}");
    assert!(wrong.is_empty(), "{what}:\n{}", wrong.join("\n"));
    // The comparison covered what it meant to.
    assert!(
        theirs.len() >= CALLS.len() + 15,
        "{what}: podman's answers {theirs:?}"
    );
}

#[test]
fn a_wrun_container_refuses_whatever_a_podman_runc_container_refuses() {
    if !have_root("both runtimes need root here")
        || !have_tools(&["podman", "runc", "conmon", "gcc"])
    {
        return;
    }
    if !Path::new(BUSYBOX).exists() {
        skip("no static busybox at /bin/busybox (apt-get install busybox-static)");
        return;
    }
    let dir = tempfile::tempdir().expect("a directory");
    let files = files(&build_seccomp_probe(dir.path()));
    let root = rootfs(dir.path(), &files);
    let layout = layout(dir.path(), &files);
    let env = Env::new();

    // Their defaults against ours.
    let theirs = podman(dir.path(), &root, &[]);
    let ours = wrun(&env, &layout, &[]);
    compare(&ours, &theirs, "defaults");
    // Both refuse raw sockets, mounts and device nodes by default.
    for k in [
        "raw_socket",
        "mount.tmpfs",
        "device.console",
        "call.io_uring_setup",
    ] {
        assert_eq!(ours.get(k).map(String::as_str), Some("refused"), "{k}");
    }

    // With CAP_MKNOD on both sides the nodes are made: the device rules
    // decide, and only the ones runc allows open.
    let theirs = podman(dir.path(), &root, &["--cap-add", "MKNOD"]);
    let ours = wrun(&env, &layout, &["--cap-add", "MKNOD"]);
    compare(&ours, &theirs, "--cap-add MKNOD");
    for d in ["console", "fuse", "loop", "mem", "kmsg"] {
        assert_eq!(
            ours.get(&format!("device.{d}")).map(String::as_str),
            Some("refused"),
            "{d}"
        );
    }
}
