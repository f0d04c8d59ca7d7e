//! End-to-end tests of `wrun run` for native Linux images (issue 4),
//! through the binary, as root: a busybox image built here, pushed to a
//! real `docker-registry` with skopeo and pulled with `wrun pull`, then run
//! for isolation (pid 1, processes, hostname, /etc files, network), masked
//! paths, capabilities and seccomp, copy-on-write, cgroup limits, identity,
//! environment and command, mounts, exit codes, signal forwarding, a tty,
//! clean-up (after a normal exit, a crash and a SIGKILL of wrun) and bad
//! input. Each test has a store of its own.
//!
//! Needs root, `docker-registry`, `skopeo` and a static busybox at
//! /bin/busybox (`busybox-static`); without them a test prints `skipped: …`,
//! or fails when `WRUN_REQUIRE_PRIVILEGED=1`.
//!
//! The tests that compare the host's cgroup tree before and after take
//! [`HOST`] exclusively; every other test holds it shared, so no container
//! of this binary comes or goes while they look.

use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader, Read as _};
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Stdio};
use std::sync::{OnceLock, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;
use wrun_tests::fixture::{self, Compression, Image, ImageBuilder, Layer, Tagged, TarEntry};
use wrun_tests::{
    Env, Registry, Run, assert_code, assert_failure, have_root, have_tools, host_arch, skip,
    wait_until,
};

// ---------------------------------------------------------------- fixture

const BUSYBOX: &str = "/bin/busybox";

/// The applets the tests use, each a symlink to /bin/busybox in the image.
const APPLETS: &[&str] = &[
    "cat", "cp", "cut", "dd", "df", "echo", "env", "false", "grep", "head", "hostname", "id", "ip",
    "kill", "ls", "mkdir", "mknod", "mount", "printf", "ps", "pwd", "rm", "seq", "sh", "sleep",
    "stat", "stty", "tail", "test", "touch", "tr", "true", "tty", "unshare", "wc",
];

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
    app:x:1000:1000:app:/home/app:/bin/sh\n\
    nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
const GROUP: &str = "root:x:0:\nwheel:x:10:app\napp:x:1000:\nnogroup:x:65534:\n";
const MOTD: &str = "original\n";

/// Tests comparing the host's cgroup tree take this exclusively.
static HOST: RwLock<()> = RwLock::new(());

/// Whether /bin/busybox is an ELF without a program interpreter (static),
/// so it runs in an image that has no libc.
fn static_busybox() -> bool {
    std::fs::read(BUSYBOX).is_ok_and(|b| wrun_tests::is_static_elf(&b))
}

/// The busybox layer: /bin/busybox, the applets, /etc/passwd, /etc/group,
/// /etc/motd, and the usual directories.
fn busybox_layer() -> Layer {
    static LAYER: OnceLock<Layer> = OnceLock::new();
    LAYER
        .get_or_init(|| {
            let list = std::process::Command::new(BUSYBOX)
                .arg("--list")
                .output()
                .expect("run busybox --list");
            let have = String::from_utf8_lossy(&list.stdout).into_owned();
            let bin = std::fs::read(BUSYBOX).expect("read /bin/busybox");
            let mut entries = vec![
                TarEntry::dir("bin", 0o755),
                TarEntry::file("bin/busybox", 0o755, &bin),
                TarEntry::dir("etc", 0o755),
                TarEntry::file("etc/passwd", 0o644, PASSWD.as_bytes()),
                TarEntry::file("etc/group", 0o644, GROUP.as_bytes()),
                TarEntry::file("etc/motd", 0o644, MOTD.as_bytes()),
                TarEntry::dir("tmp", 0o1777),
                TarEntry::dir("root", 0o700),
                TarEntry::dir("home", 0o755),
                TarEntry::dir("home/app", 0o755),
            ];
            for a in APPLETS {
                assert!(
                    have.lines().any(|l| l == *a),
                    "/bin/busybox has no applet {a}"
                );
                entries.push(TarEntry::symlink(&format!("bin/{a}"), "busybox"));
            }
            Layer::tar(&entries, Compression::Gzip)
        })
        .clone()
}

/// The busybox image: Cmd `echo default-cmd`, two variables in Env and,
/// with `user`, that User and WorkingDir /home/app.
fn busybox_image(user: Option<&str>) -> Image {
    let layer = busybox_layer();
    let mut config = serde_json::json!({
        "Env": [
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "FROM_IMAGE=img",
            "OVERRIDE=image",
        ],
        "Cmd": ["echo", "default-cmd"],
    });
    if let Some(u) = user {
        config["User"] = u.into();
        config["WorkingDir"] = "/home/app".into();
    }
    let cfg = serde_json::json!({
        "created": "2024-01-01T00:00:00Z",
        "architecture": host_arch(),
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id.clone()]},
    });
    ImageBuilder::new()
        .config_bytes(&serde_json::to_vec(&cfg).expect("serialize a config"))
        .layer(layer)
        .build()
}

/// Pushes `image` to `reg` as `name` (`repo:tag`) through a temporary OCI layout.
fn push(reg: &Registry, name: &str, image: &Image) {
    let dir = tempfile::tempdir().expect("create a layout directory");
    fixture::write_layout(dir.path(), &[("t", Tagged::Image(image))]);
    reg.push_layout(dir.path(), "t", name);
}

/// One test's registry (holding the busybox image), store, and hold on [`HOST`].
struct Fx {
    env: Env,
    registry: Registry,
    /// The pulled busybox image.
    image: String,
    _shared: Option<RwLockReadGuard<'static, ()>>,
    _exclusive: Option<RwLockWriteGuard<'static, ()>>,
}

/// A fixture, or `None` (skipped) without root, the tools or a static busybox.
fn setup() -> Option<Fx> {
    setup_with(false)
}

/// A fixture holding [`HOST`] exclusively.
fn setup_exclusive() -> Option<Fx> {
    setup_with(true)
}

fn setup_with(exclusive: bool) -> Option<Fx> {
    if !have_root("native containers need namespaces, mounts and cgroups")
        || !have_tools(&["docker-registry", "skopeo"])
    {
        return None;
    }
    if !static_busybox() {
        skip("no static busybox at /bin/busybox (apt-get install busybox-static)");
        return None;
    }
    let (shared, excl) = if exclusive {
        (
            None,
            Some(HOST.write().unwrap_or_else(PoisonError::into_inner)),
        )
    } else {
        (
            Some(HOST.read().unwrap_or_else(PoisonError::into_inner)),
            None,
        )
    };
    let registry = Registry::start();
    push(&registry, "busybox:1", &busybox_image(None));
    let image = registry.reference("busybox:1");
    let env = Env::new();
    let pulled = env.ok(&["pull", "-q", &image]);
    assert!(
        pulled.line().starts_with("sha256:"),
        "pull printed {:?}",
        pulled.stdout
    );
    Some(Fx {
        env,
        registry,
        image,
        _shared: shared,
        _exclusive: excl,
    })
}

impl Fx {
    /// `wrun run OPTS IMAGE ARGV`.
    fn run(&self, opts: &[&str], argv: &[&str]) -> Run {
        self.run_image(&self.image, opts, argv)
    }

    /// `wrun run OPTS image ARGV`.
    fn run_image(&self, image: &str, opts: &[&str], argv: &[&str]) -> Run {
        let mut args = vec!["run"];
        args.extend_from_slice(opts);
        args.push(image);
        args.extend_from_slice(argv);
        self.env.run(&args)
    }

    /// `wrun run OPTS IMAGE sh -c SCRIPT`.
    fn sh(&self, opts: &[&str], script: &str) -> Run {
        self.run(opts, &["sh", "-c", script])
    }

    /// [`sh`](Self::sh), asserting exit 0; its stdout.
    fn sh_ok(&self, opts: &[&str], script: &str) -> String {
        let r = self.sh(opts, script);
        assert_code(&r, 0, script);
        r.stdout
    }

    /// A `wrun run` command for `sh -c SCRIPT`, stdout and stderr piped.
    fn spawn_sh(&self, opts: &[&str], script: &str) -> Child {
        let mut args = vec!["run"];
        args.extend_from_slice(opts);
        args.extend_from_slice(&[&self.image, "sh", "-c", script]);
        self.env
            .command(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn wrun run")
    }

    /// Pushes `image` as `name` and pulls it into the store; its reference.
    fn add_image(&self, name: &str, image: &Image) -> String {
        push(&self.registry, name, image);
        let reference = self.registry.reference(name);
        self.env.ok(&["pull", "-q", &reference]);
        reference
    }

    /// Asserts no container is left: `<root>/containers/` holds nothing but
    /// the shared mount-point layer, still empty, and the host's mount table
    /// mentions nothing under the store.
    fn assert_clean(&self) {
        let left: Vec<String> = self
            .env
            .list("containers")
            .into_iter()
            // Dot-names are shared by every container (the mount-point
            // layer, the sealed helper's empty layer, compiled filters).
            .filter(|n| !n.starts_with('.'))
            .collect();
        let points = self.env.root().join("containers/.mount-points");
        if points.exists() {
            let etc: Vec<String> = std::fs::read_dir(points.join("etc"))
                .expect("read the mount-point layer's etc")
                .map(|e| {
                    e.expect("an entry")
                        .file_name()
                        .to_string_lossy()
                        .into_owned()
                })
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            assert_eq!(
                etc,
                ["hostname", "hosts", "resolv.conf"],
                "mount-point layer"
            );
            for f in ["etc/hosts", "etc/hostname", "etc/resolv.conf"] {
                let len = std::fs::metadata(points.join(f)).map_or(u64::MAX, |m| m.len());
                assert_eq!(len, 0, "{f} in the mount-point layer was written");
            }
        }
        assert_eq!(
            left,
            Vec::<String>::new(),
            "container state left in {}",
            self.env.root().display()
        );
        let root = self.env.root().display().to_string();
        let mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
            .expect("read /proc/self/mountinfo")
            .lines()
            .filter(|l| l.contains(&root))
            .map(str::to_string)
            .collect();
        assert!(mounts.is_empty(), "host mounts under the store: {mounts:?}");
    }

    /// The full id of the one container whose hostname (the id's first 12
    /// characters) is `prefix`, from `<root>/containers/`.
    fn container_id(&self, prefix: &str) -> String {
        let ids: Vec<String> = self
            .env
            .list("containers")
            .into_iter()
            .filter(|n| n.starts_with(prefix))
            .collect();
        assert_eq!(ids.len(), 1, "containers for hostname {prefix}: {ids:?}");
        ids[0].clone()
    }
}

// ---------------------------------------------------------------- helpers

/// The non-empty lines of stderr.
fn stderr_lines(r: &Run) -> Vec<&str> {
    r.stderr.lines().filter(|l| !l.trim().is_empty()).collect()
}

/// The value of `Key:\t<hex>` in a /proc/PID/status text.
fn status_hex(status: &str, key: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or_else(|| panic!("no {key} in {status:?}"))
}

/// This process's bounding set (what `--privileged` can give at most).
fn host_cap_bnd() -> u64 {
    status_hex(
        &std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status"),
        "CapBnd",
    )
}

/// The interface names of a /proc/net/dev text.
fn net_dev_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .skip(2)
        .filter_map(|l| l.split_once(':'))
        .map(|(n, _)| n.trim().to_string())
        .collect()
}

/// Every `wrun/<16 hex>` cgroup directory (a `wrun run` container's) in
/// every hierarchy under /sys/fs/cgroup.
fn wrun_cgroups() -> BTreeSet<PathBuf> {
    let base = Path::new("/sys/fs/cgroup");
    let mut roots = vec![base.to_path_buf()];
    if let Ok(rd) = std::fs::read_dir(base) {
        roots.extend(rd.flatten().map(|e| e.path()));
    }
    let mut found = BTreeSet::new();
    for r in roots {
        let Ok(rd) = std::fs::read_dir(r.join("wrun")) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.len() == 16 && name.bytes().all(|b| b.is_ascii_hexdigit()) && e.path().is_dir()
            {
                found.insert(e.path());
            }
        }
    }
    found
}

/// The cgroup directories of container `id`.
fn cgroups_of(id: &str) -> Vec<PathBuf> {
    wrun_cgroups()
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n == id))
        .collect()
}

/// Reads `out` line by line until `ready`; returns the lines before it.
fn read_until_ready(out: &mut BufReader<ChildStdout>) -> Vec<String> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        let n = out
            .read_line(&mut line)
            .expect("read the container's stdout");
        assert!(n > 0, "the container ended before `ready`: {lines:?}");
        let line = line.trim_end().to_string();
        if line == "ready" {
            return lines;
        }
        lines.push(line);
    }
}

/// Waits for `child` and collects what is left of its output.
fn finish(mut child: Child, out: Option<BufReader<ChildStdout>>) -> Run {
    let mut stderr = child.stderr.take().expect("wrun's stderr pipe");
    let errs = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut stdout = String::new();
    match out {
        Some(mut o) => {
            let _ = o.read_to_string(&mut stdout);
        }
        None => {
            if let Some(mut o) = child.stdout.take() {
                let _ = o.read_to_string(&mut stdout);
            }
        }
    }
    let status = child.wait().expect("wait for wrun");
    Run {
        status,
        stdout,
        stderr: errs.join().expect("the stderr reader"),
    }
}

/// Whether signal `sig` is blocked in the main thread of process `pid`
/// (wrun blocks what it forwards once the container runs).
fn blocks(pid: u32, sig: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map(|s| status_hex(&s, "SigBlk") & (1u64 << (sig - 1)) != 0)
        .unwrap_or(false)
}

/// A container held running until the test lets it go: it prints its
/// hostname, then `ready`, then waits for `/hold/go` (a host directory).
struct Held {
    child: Child,
    out: BufReader<ChildStdout>,
    hostname: String,
    hold: tempfile::TempDir,
}

impl Held {
    fn start(fx: &Fx, opts: &[&str]) -> Held {
        let hold = tempfile::tempdir().expect("create the hold directory");
        let volume = format!("{}:/hold", hold.path().display());
        let mut all = vec!["-v", volume.as_str()];
        all.extend_from_slice(opts);
        let mut child = fx.spawn_sh(
            &all,
            "hostname; echo ready; while ! test -e /hold/go; do sleep 0.05; done; echo released",
        );
        let mut out = BufReader::new(child.stdout.take().expect("wrun's stdout pipe"));
        let lines = read_until_ready(&mut out);
        let hostname = lines.first().cloned().unwrap_or_default();
        Held {
            child,
            out,
            hostname,
            hold,
        }
    }

    fn release(self) -> Run {
        std::fs::write(self.hold.path().join("go"), b"").expect("write /hold/go");
        finish(self.child, Some(self.out))
    }
}

// ---------------------------------------------------------------- isolation

#[test]
fn workload_is_pid_1_and_sees_only_its_own_processes() {
    let Some(fx) = setup() else { return };
    let out = fx.sh_ok(&[], "echo $$; ps; true");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("1"), "$$ in {out:?}");
    // `PID USER COMMAND`; busybox runs `ps` in a fork of the shell, so
    // both show the script.
    let procs: Vec<(u32, &str)> = lines
        .filter(|l| !l.trim_start().starts_with("PID"))
        .map(|l| {
            let pid = l.split_whitespace().next().and_then(|p| p.parse().ok());
            (pid.unwrap_or(0), l)
        })
        .collect();
    assert_eq!(procs.len(), 2, "processes: {out}");
    assert_eq!(procs[0].0, 1, "processes: {out}");
    assert!(
        procs[0].1.ends_with(" sh -c echo $$; ps; true"),
        "pid 1: {out}"
    );
    assert!(procs[1].1.contains("ps"), "processes: {out}");
    assert!(
        procs.iter().all(|(_, l)| l.contains("echo $$; ps; true")),
        "a process not of the container: {out}"
    );
    fx.assert_clean();
}

#[test]
fn hostname_defaults_to_the_id_and_etc_files_are_provided() {
    let Some(fx) = setup() else { return };
    let script =
        "hostname; cat /etc/hostname; echo ---; cat /etc/hosts; echo ---; cat /etc/resolv.conf";
    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("read the host's hostname")
        .trim()
        .to_string();
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();

    let out = fx.sh_ok(&[], script);
    let parts: Vec<&str> = out.splitn(3, "---\n").collect();
    assert_eq!(parts.len(), 3, "stdout {out:?}");
    let names: Vec<&str> = parts[0].lines().collect();
    assert_eq!(names.len(), 2, "hostname lines {names:?}");
    let name = names[0];
    assert!(
        name.len() == 12 && name.bytes().all(|b| b.is_ascii_hexdigit()),
        "default hostname {name:?}"
    );
    assert_ne!(name, host_name, "the container has the host's hostname");
    assert_eq!(names[1], name, "/etc/hostname");
    assert!(
        parts[1]
            .lines()
            .any(|l| l.split_whitespace().any(|w| w == name))
            && parts[1].contains("localhost"),
        "/etc/hosts {:?}",
        parts[1]
    );
    assert_eq!(parts[2], host_resolv, "/etc/resolv.conf");

    let out = fx.sh_ok(&["--hostname", "box"], script);
    let parts: Vec<&str> = out.splitn(3, "---\n").collect();
    assert_eq!(parts[0], "box\nbox\n", "stdout {out:?}");
    assert!(
        parts[1]
            .lines()
            .any(|l| l.split_whitespace().any(|w| w == "box")),
        "/etc/hosts {:?}",
        parts[1]
    );
    let now = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("host hostname");
    assert_eq!(now.trim(), host_name, "the host's hostname changed");
    fx.assert_clean();
}

#[test]
fn network_none_has_only_loopback_up_and_host_shows_the_host_interfaces() {
    let Some(fx) = setup() else { return };
    let out = fx.sh_ok(
        &[],
        "ls /sys/class/net; echo ---; cat /sys/class/net/lo/flags; echo ---; \
         cat /proc/net/dev; echo ---; ip -o addr show dev lo",
    );
    let parts: Vec<&str> = out.split("---\n").collect();
    assert_eq!(parts.len(), 4, "stdout {out:?}");
    assert_eq!(parts[0], "lo\n", "/sys/class/net");
    let flags = u32::from_str_radix(parts[1].trim().trim_start_matches("0x"), 16)
        .unwrap_or_else(|_| panic!("lo flags {:?}", parts[1]));
    assert!(flags & 1 != 0, "lo is not up: flags {flags:#x}");
    let names: Vec<String> = net_dev_names(parts[2]).into_iter().collect();
    assert_eq!(names, ["lo"], "/proc/net/dev {:?}", parts[2]);
    assert!(
        parts[3].contains("127.0.0.1"),
        "lo addresses {:?}",
        parts[3]
    );
    // The default is none.
    let explicit = fx.sh_ok(&["--network", "none"], "ls /sys/class/net");
    assert_eq!(explicit, "lo\n");

    let host = net_dev_names(&std::fs::read_to_string("/proc/net/dev").expect("host net/dev"));
    let out = fx.sh_ok(&["--network", "host"], "cat /proc/net/dev");
    assert_eq!(net_dev_names(&out), host, "--network host: {out:?}");
    fx.assert_clean();
}

// ---------------------------------------------------------------- security

#[test]
fn proc_is_masked_and_read_only_and_capabilities_are_bounded() {
    let Some(fx) = setup() else { return };
    let host_bnd = host_cap_bnd();
    let caps = "grep -E '^(CapBnd|CapEff|NoNewPrivs)' /proc/self/status";

    // runc's masked files, those this kernel has (it may lack /proc/kcore).
    let masked: Vec<&str> = [
        "/proc/kcore",
        "/proc/keys",
        "/proc/timer_list",
        "/proc/sched_debug",
    ]
    .into_iter()
    .filter(|f| Path::new(f).exists())
    .collect();
    assert!(!masked.is_empty(), "none of the masked files exists here");
    let host_firmware = std::fs::read_dir("/sys/firmware").map_or(0, |d| d.count());
    let probe = format!(
        "for f in {}; do echo $(wc -c < $f) $(stat -c %F $f); done; ls /sys/firmware | wc -l",
        masked.join(" ")
    );

    let r = fx.sh(
        &[],
        &format!("{probe}; echo x > /proc/sys/kernel/domainname && echo sys-writable; {caps}"),
    );
    assert_code(&r, 0, "defaults");
    let mut lines = r.stdout.lines();
    for f in &masked {
        assert_eq!(
            lines.next(),
            Some("0 character special file"),
            "{f} is not masked: {:?}",
            r.stdout
        );
    }
    assert_eq!(lines.next(), Some("0"), "/sys/firmware: {:?}", r.stdout);
    assert!(!r.stdout.contains("sys-writable"), "stdout {:?}", r.stdout);
    assert!(
        r.stderr.contains("Read-only file system"),
        "stderr {:?}",
        r.stderr
    );
    let bnd = status_hex(&r.stdout, "CapBnd");
    assert_eq!(bnd, 0x8004_05fb, "podman's default set, got {bnd:#x}");
    assert_ne!(bnd, host_bnd, "the container has the host's bounding set");
    assert_eq!(status_hex(&r.stdout, "CapEff"), 0x8004_05fb);
    assert!(r.stdout.contains("NoNewPrivs:\t1"), "stdout {:?}", r.stdout);

    let out = fx.sh_ok(&["--cap-drop", "ALL", "--cap-add", "NET_ADMIN"], caps);
    assert_eq!(status_hex(&out, "CapBnd"), 1 << 12, "stdout {out:?}");
    let out = fx.sh_ok(&["--cap-drop", "ALL"], caps);
    assert_eq!(status_hex(&out, "CapBnd"), 0, "stdout {out:?}");
    // CAP_KILL (5) dropped; CAP_NET_RAW (13), not in the default set, added.
    let out = fx.sh_ok(&["--cap-drop", "KILL"], caps);
    assert_eq!(
        status_hex(&out, "CapBnd"),
        0x8004_05fb & !(1 << 5),
        "stdout {out:?}"
    );
    let out = fx.sh_ok(&["--cap-add", "NET_RAW"], caps);
    assert_eq!(
        status_hex(&out, "CapBnd"),
        0x8004_05fb | (1 << 13),
        "stdout {out:?}"
    );
    let out = fx.sh_ok(&["--cap-add", "SYS_ADMIN"], caps);
    assert_eq!(
        status_hex(&out, "CapBnd"),
        0x8004_05fb | (1 << 21),
        "stdout {out:?}"
    );

    // ALL: every capability wrun holds (this host's bounding set may lack some).
    let out = fx.sh_ok(&["--cap-add", "ALL"], caps);
    assert_eq!(status_hex(&out, "CapBnd"), host_bnd, "stdout {out:?}");

    let r = fx.sh(
        &["--privileged"],
        &format!("{probe}; unshare -U true && echo unshare-allowed; {caps}"),
    );
    assert_code(&r, 0, "--privileged");
    let mut lines = r.stdout.lines();
    for f in &masked {
        let line = lines.next().unwrap_or_default();
        assert!(
            !line.contains("character"),
            "{f} masked under --privileged: {:?}",
            r.stdout
        );
    }
    assert_eq!(
        lines.next(),
        Some(host_firmware.to_string().as_str()),
        "/sys/firmware under --privileged: {:?}",
        r.stdout
    );
    assert!(
        r.stdout.contains("unshare-allowed"),
        "stderr {:?}",
        r.stderr
    );
    assert_eq!(
        status_hex(&r.stdout, "CapBnd"),
        host_bnd,
        "--privileged: {:?}",
        r.stdout
    );
    fx.assert_clean();
}

#[test]
fn seccomp_blocks_a_call_no_capability_guards_and_unconfined_lifts_it() {
    let Some(fx) = setup() else { return };
    // Creating a user namespace needs no capability: only the filter stops it.
    let script = "unshare -U true && echo unshare-allowed; true";
    let r = fx.sh(&[], script);
    assert_code(&r, 0, "default seccomp");
    assert!(
        !r.stdout.contains("unshare-allowed"),
        "unshare -U was allowed"
    );
    assert!(r.stderr.contains("not permitted"), "stderr {:?}", r.stderr);

    let r = fx.sh(&["--security-opt", "seccomp=unconfined"], script);
    assert_code(&r, 0, "seccomp=unconfined");
    assert_eq!(r.stdout, "unshare-allowed\n", "stderr {:?}", r.stderr);
    // No filter at all unconfined; the default one is in filter mode (2).
    let out = fx.sh_ok(
        &["--security-opt", "seccomp=unconfined"],
        "grep Seccomp: /proc/self/status",
    );
    assert_eq!(out, "Seccomp:\t0\n");
    let out = fx.sh_ok(&[], "grep Seccomp: /proc/self/status");
    assert_eq!(out, "Seccomp:\t2\n");
    fx.assert_clean();
}

// ---------------------------------------------------------------- devices

#[test]
fn devices_open_only_as_runc_allows_and_device_grants_one() {
    let Some(fx) = setup() else { return };
    // Any node may be made, but a host device opens only when granted
    // (read-only opens in subshells: no tty becomes the shell's terminal).
    let script = "head -c 1 /dev/urandom > /dev/null && echo urandom; \
        mknod /dev/t-disk b 7 0 && echo made; ( : < /dev/t-disk ) 2>&1; \
        mknod /dev/t-fuse c 10 229 && echo made; ( : < /dev/t-fuse && echo fuse ) 2>&1; true";
    let r = fx.sh(&["--cap-add", "MKNOD"], script);
    assert_code(&r, 0, "default device rules");
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 5, "stdout {:?}", r.stdout);
    assert_eq!((lines[0], lines[1], lines[3]), ("urandom", "made", "made"));
    for l in [lines[2], lines[4]] {
        assert!(
            l.ends_with("Operation not permitted"),
            "stdout {:?}",
            r.stdout
        );
    }

    if std::path::Path::new("/dev/fuse").exists() {
        let r = fx.sh(
            &["--device", "/dev/fuse:/dev/f:r", "--cap-add", "MKNOD"],
            "test -c /dev/f && echo node; : < /dev/f && echo read; ( : <> /dev/f ) 2>&1; \
             mknod /dev/t-disk b 7 0; ( : < /dev/t-disk ) 2>&1; true",
        );
        assert_code(&r, 0, "--device /dev/fuse:/dev/f:r");
        let lines: Vec<&str> = r.stdout.lines().collect();
        assert_eq!(lines.len(), 4, "stdout {:?}", r.stdout);
        assert_eq!((lines[0], lines[1]), ("node", "read"));
        for l in [lines[2], lines[3]] {
            assert!(
                l.ends_with("Operation not permitted"),
                "stdout {:?}",
                r.stdout
            );
        }
    } else {
        skip("no /dev/fuse to grant with --device");
    }

    for (opt, why) in [
        ("/etc/passwd", "/etc/passwd is not a device"),
        ("/dev/null:/dev/n:rwx", "bad permissions \"rwx\""),
        ("dev/null", "the host path must be absolute"),
    ] {
        let r = fx.run(&["--device", opt], &["true"]);
        let line = assert_failure(&r, opt);
        assert!(line.contains(why), "--device {opt}: {line}");
    }
    fx.assert_clean();
}

// ---------------------------------------------------------------- file system

#[test]
fn writes_are_copy_on_write_and_never_reach_the_store() {
    let Some(fx) = setup() else { return };
    let out = fx.sh_ok(
        &[],
        "echo changed > /etc/motd && echo x > /cow-marker && echo x > /etc/cow-marker && \
         echo x > /etc/hosts && rm /bin/ls && cat /etc/motd; test -e /bin/ls || echo ls-gone",
    );
    assert_eq!(out, "changed\nls-gone\n");

    // The shared layer is as unpacked.
    let layers = fx.env.root().join("layers");
    let mut stack = vec![layers.clone()];
    let mut motds = Vec::new();
    let mut ls_links = 0;
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir)
            .expect("read a layer directory")
            .flatten()
        {
            let p = e.path();
            let name = e.file_name();
            assert_ne!(name, "cow-marker", "a container's file in the store: {p:?}");
            let ft = e.file_type().expect("file type");
            if ft.is_dir() {
                stack.push(p);
            } else if name == "motd" {
                motds.push(std::fs::read_to_string(&p).expect("read motd"));
            } else if name == "ls" && ft.is_symlink() {
                ls_links += 1;
            }
        }
    }
    assert_eq!(motds, [MOTD], "/etc/motd in {}", layers.display());
    assert_eq!(ls_links, 1, "bin/ls in {}", layers.display());

    // The next container starts from the image again.
    let out = fx.sh_ok(
        &[],
        "cat /etc/motd; test -e /cow-marker && echo leaked; test -e /etc/cow-marker && echo leaked; test -e /bin/ls && echo ls",
    );
    assert_eq!(out, "original\nls\n");
    fx.assert_clean();
}

#[test]
fn volumes_bind_read_write_and_read_only_and_tmpfs_mounts() {
    let Some(fx) = setup() else { return };
    let rw = tempfile::tempdir().expect("create a host directory");
    let ro = tempfile::tempdir().expect("create a host directory");
    std::fs::write(ro.path().join("hello.txt"), "from the host\n").expect("write hello.txt");
    let rw_spec = format!("{}:/mnt/rw", rw.path().display());
    let ro_spec = format!("{}:/mnt/ro:ro", ro.path().display());
    let r = fx.sh(
        &["-v", &rw_spec, "-v", &ro_spec, "--tmpfs", "/scratch"],
        "cat /mnt/ro/hello.txt; echo in > /mnt/rw/out.txt && echo rw-ok; \
         echo x > /mnt/ro/no.txt && echo ro-writable; \
         echo s > /scratch/s && cat /scratch/s; grep ' /scratch ' /proc/mounts | cut -d' ' -f3; true",
    );
    assert_code(&r, 0, "volumes");
    assert_eq!(
        r.stdout, "from the host\nrw-ok\ns\ntmpfs\n",
        "stderr {:?}",
        r.stderr
    );
    assert!(
        r.stderr.contains("Read-only file system"),
        "stderr {:?}",
        r.stderr
    );
    assert_eq!(
        std::fs::read_to_string(rw.path().join("out.txt")).expect("the write landed on the host"),
        "in\n"
    );
    assert!(
        !ro.path().join("no.txt").exists(),
        "wrote through a read-only volume"
    );

    // --read-only: only tmpfs mounts (and volumes) are writable, as in docker.
    let r = fx.sh(
        &["--read-only", "--tmpfs", "/scratch"],
        "touch /x && echo root-writable; touch /tmp/y && echo tmp-writable; \
         touch /scratch/z && echo tmpfs-writable; true",
    );
    assert_code(&r, 0, "--read-only");
    assert_eq!(r.stdout, "tmpfs-writable\n", "stderr {:?}", r.stderr);
    assert_eq!(
        r.stderr.matches("Read-only file system").count(),
        2,
        "stderr {:?}",
        r.stderr
    );
    fx.assert_clean();
}

/// `--tmpfs PATH[:OPTIONS]` takes docker's options, keeps docker's
/// defaults (noexec, nosuid, nodev, mode 1777) unless they are overridden,
/// and refuses a bad one with one line (issue 12).
#[test]
fn tmpfs_takes_dockers_options_and_refuses_bad_ones() {
    let Some(fx) = setup() else { return };
    // size=1m, mode=0700: 1024 KiB, mode 700, and 2 MiB do not fit.
    let r = fx.sh(
        &["--tmpfs", "/scratch:size=1m,mode=0700"],
        "stat -c '%a %u %g' /scratch; df -k /scratch | tail -n 1 | tr -s ' ' | cut -d' ' -f2; \
         dd if=/dev/zero of=/scratch/big bs=1024 count=2048 2>/dev/null; echo dd=$?; \
         grep ' /scratch ' /proc/mounts | cut -d' ' -f3,4",
    );
    assert_code(&r, 0, "size and mode");
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(
        lines[..3],
        ["700 0 0", "1024", "dd=1"],
        "stdout {:?} stderr {:?}",
        r.stdout,
        r.stderr
    );
    let mount = lines.get(3).copied().unwrap_or_default();
    for opt in [
        "tmpfs rw",
        "nosuid",
        "nodev",
        "noexec",
        "size=1024k",
        "mode=700",
    ] {
        assert!(mount.contains(opt), "{opt} not in {mount:?}");
    }
    let r = fx.sh(
        &["--tmpfs", "/scratch:size=1m"],
        "dd if=/dev/zero of=/scratch/big bs=1024 count=2048",
    );
    assert!(
        r.status.code() != Some(0) && r.stderr.contains("No space left on device"),
        "writing 2 MiB to a 1 MiB tmpfs: {:?}",
        r.stderr
    );

    // The default is noexec, and mode 1777; exec lets a copied binary run.
    let copy_and_run = "stat -c %a /x; cp /bin/busybox /x/echo && /x/echo ran";
    let r = fx.sh(&["--tmpfs", "/x"], copy_and_run);
    assert_eq!(r.stdout, "1777\n", "stderr {:?}", r.stderr);
    assert!(
        r.status.code() == Some(126) && r.stderr.contains("Permission denied"),
        "a binary ran from a noexec tmpfs: {:?} {:?}",
        r.status,
        r.stderr
    );
    assert_eq!(
        fx.sh_ok(&["--tmpfs", "/x:exec"], copy_and_run),
        "1777\nran\n"
    );

    // uid, gid, ro.
    assert_eq!(
        fx.sh_ok(&["--tmpfs", "/x:uid=1000,gid=10"], "stat -c '%u %g' /x"),
        "1000 10\n"
    );
    let r = fx.sh(&["--tmpfs", "/x:ro"], "touch /x/y && echo writable; true");
    assert_eq!(r.stdout, "", "a ro tmpfs was writable");
    assert!(r.stderr.contains("Read-only file system"), "{:?}", r.stderr);

    // Bad ones: one line, before anything runs.
    for (arg, says) in [
        ("/x:bogus=1", "unknown option \"bogus=1\""),
        ("/x:noexec,fast", "unknown option \"fast\""),
        ("/x:size=lots", "bad size \"lots\""),
        ("/x:mode=0800", "bad mode \"0800\""),
        ("/x:uid=me", "bad uid \"me\""),
        ("scratch:size=1m", "must be absolute"),
        ("/", "must be absolute and not /"),
    ] {
        let r = fx.sh(&["--tmpfs", arg], "echo ran");
        let line = assert_failure(&r, arg);
        assert!(
            line.starts_with(&format!("wrun: invalid tmpfs mount {arg:?}: "))
                && line.contains(says),
            "--tmpfs {arg}: {line}"
        );
        assert_eq!(r.stdout, "", "--tmpfs {arg} ran");
    }
    fx.assert_clean();
}

// ---------------------------------------------------------------- limits

#[test]
fn memory_hog_is_oom_killed_with_137_and_reported() {
    let Some(fx) = setup() else { return };
    let r = fx.sh(
        &["--memory", "32m"],
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max",
    );
    assert_code(&r, 0, "limit file");
    assert_eq!(r.stdout, "33554432\n");
    assert!(!r.stderr.contains("OOM"), "stderr {:?}", r.stderr);

    let r = fx.run(&["--memory", "32m"], &["tail", "/dev/zero"]);
    assert_code(&r, 137, "memory hog");
    let lines = stderr_lines(&r);
    assert_eq!(lines.len(), 1, "stderr {:?}", r.stderr);
    assert!(lines[0].contains("OOM"), "stderr {:?}", r.stderr);
    fx.assert_clean();
}

#[test]
fn fork_storm_stops_at_the_pids_limit() {
    let Some(fx) = setup() else { return };
    let r = fx.sh(
        &["--pids-limit", "10"],
        "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max; \
         sh -c 'for i in $(seq 1 30); do sleep 2 & done'; set -- /proc/[0-9]*; echo $#",
    );
    let mut lines = r.stdout.lines();
    assert_eq!(lines.next(), Some("10"), "pids.max: {:?}", r.stdout);
    let n: u32 = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("stdout {:?} stderr {:?}", r.stdout, r.stderr));
    assert!(n <= 10, "{n} processes despite --pids-limit 10");
    assert!(
        r.stderr.contains("fork"),
        "no failed fork: stderr {:?}",
        r.stderr
    );
    fx.assert_clean();
}

// ---------------------------------------------------------------- process

#[test]
fn env_workdir_entrypoint_args_and_user() {
    let Some(fx) = setup() else { return };
    // Cmd, replaced by ARGS; --entrypoint drops Cmd.
    assert_eq!(fx.run(&[], &[]).stdout, "default-cmd\n");
    let r = fx.run(&[], &["echo", "replaced"]);
    assert_code(&r, 0, "args");
    assert_eq!(r.stdout, "replaced\n");
    let r = fx.run(&["--entrypoint", "echo"], &["via", "entrypoint"]);
    assert_code(&r, 0, "--entrypoint with args");
    assert_eq!(r.stdout, "via entrypoint\n");
    let r = fx.run(&["--entrypoint", "echo"], &[]);
    assert_code(&r, 0, "--entrypoint alone");
    assert_eq!(r.stdout, "\n", "the image's Cmd was kept");

    // Env: image, then --env-file, then -e.
    let dir = tempfile::tempdir().expect("create a directory");
    let file = dir.path().join("env");
    std::fs::write(&file, "# a comment\nB=from-file\nOVERRIDE=file\n\n").expect("write env file");
    let out = fx.sh_ok(
        &[
            "-e",
            "A=1",
            "-e",
            "OVERRIDE=cli",
            "--env-file",
            file.to_str().expect("a UTF-8 path"),
        ],
        "echo $A $B $OVERRIDE $FROM_IMAGE; echo $HOME; pwd",
    );
    assert_eq!(out, "1 from-file cli img\n/root\n/\n");
    let out = fx.sh_ok(
        &["--env-file", file.to_str().expect("path")],
        "echo $OVERRIDE",
    );
    assert_eq!(out, "file\n");

    // -w, created if missing.
    let out = fx.sh_ok(&["-w", "/app/dir"], "pwd; touch here && echo writable");
    assert_eq!(out, "/app/dir\nwritable\n");

    // --user by name and by uid:gid.
    let out = fx.sh_ok(
        &["--user", "app"],
        "id; echo $HOME; grep CapEff /proc/self/status",
    );
    let (id, rest) = out.split_once('\n').expect("id's line");
    assert!(
        id == "uid=1000(app) gid=1000(app) groups=10(wheel)"
            || id == "uid=1000(app) gid=1000(app) groups=1000(app),10(wheel)",
        "id: {id:?}"
    );
    assert_eq!(rest, "/home/app\nCapEff:\t0000000000000000\n");
    let out = fx.sh_ok(&["--user", "1000:1000"], "id -u; id -g; id -un");
    assert_eq!(out, "1000\n1000\napp\n");
    let out = fx.sh_ok(&["--user", "1000:10"], "id -u; id -g");
    assert_eq!(out, "1000\n10\n");

    // The image's User and WorkingDir, and --user over them.
    let app = fx.add_image("busybox-app:1", &busybox_image(Some("app")));
    let r = fx.run_image(&app, &[], &["sh", "-c", "id -un; pwd; echo $HOME"]);
    assert_code(&r, 0, "image User");
    assert_eq!(r.stdout, "app\n/home/app\n/home/app\n");
    let r = fx.run_image(&app, &["--user", "0"], &["id", "-u"]);
    assert_code(&r, 0, "--user over the image's User");
    assert_eq!(r.stdout, "0\n");
    fx.assert_clean();
}

#[test]
fn everything_after_the_image_is_the_workloads_flags_and_dashes_included() {
    let Some(fx) = setup() else { return };
    let cases: &[(&str, &[&str], &str)] = &[
        ("/bin/sh", &["-c", "echo hi"], "hi\n"),
        ("/bin/echo", &["-e", "hi"], "hi\n"),
        ("/bin/echo", &["--help"], "--help\n"),
        ("/bin/echo", &["-v", "X:Y"], "-v X:Y\n"),
        ("/bin/echo", &["--", "hi"], "-- hi\n"),
        ("/bin/echo", &["a", "--", "-e"], "a -- -e\n"),
    ];
    for (entrypoint, argv, out) in cases {
        let r = fx.run(&["--entrypoint", entrypoint], argv);
        assert_code(&r, 0, &format!("--entrypoint {entrypoint} IMAGE {argv:?}"));
        assert_eq!(r.stdout, *out, "{entrypoint} {argv:?}");
    }
    // `-v X:Y` after the image is ls's, not a volume wrun would refuse.
    let r = fx.run(&["--entrypoint", "/bin/ls"], &["-v", "X:Y"]);
    assert_code(&r, 1, "--entrypoint /bin/ls IMAGE -v X:Y");
    assert!(r.stderr.contains("ls: X:Y: No such file"), "{}", r.stderr);
    assert!(!r.stderr.contains("wrun: "), "{}", r.stderr);
    // Without --entrypoint the arguments replace Cmd: `sh -c`, and `--`
    // is the program, as docker and podman have it.
    let r = fx.run(
        &[],
        &["sh", "-c", r#"printf '%s|%s\n' "$0" "$1""#, "-e", "--"],
    );
    assert_code(&r, 0, "IMAGE sh -c …");
    assert_eq!(r.stdout, "-e|--\n");
    let r = fx.run(&[], &["--", "echo", "hi"]);
    assert_code(&r, 127, "IMAGE -- echo hi");
    assert!(r.stderr.contains("--"), "{}", r.stderr);
    let r = fx.run(&[], &["--help"]);
    assert_code(&r, 127, "IMAGE --help");
    assert!(!r.stdout.contains("Usage:"), "{}", r.stdout);
    // Options before the image stay wrun's.
    let r = fx.run(
        &["-e", "A=1", "--entrypoint", "/bin/sh"],
        &["-c", "echo $A"],
    );
    assert_code(&r, 0, "-e before the image");
    assert_eq!(r.stdout, "1\n");
    fx.assert_clean();
}

/// The busybox image with a second layer of `top` entries over it.
fn busybox_with(top: &[TarEntry]) -> Image {
    let base = busybox_layer();
    let top = Layer::tar(top, Compression::Gzip);
    let cfg = serde_json::json!({
        "architecture": host_arch(),
        "os": "linux",
        "config": {"Cmd": ["id"]},
        "rootfs": {"type": "layers", "diff_ids": [base.diff_id.clone(), top.diff_id.clone()]},
    });
    ImageBuilder::new()
        .config_bytes(&serde_json::to_vec(&cfg).expect("serialize a config"))
        .layer(base)
        .layer(top)
        .build()
}

#[test]
fn users_are_read_from_the_image_never_from_the_host() {
    let Some(fx) = setup() else { return };
    const APT: &str = "root:x:0:0:root:/root:/bin/sh\n_apt:x:4242:65534::/nonexistent:/bin/false\n";
    // /etc is an absolute symlink inside the image: its users are found.
    let cfg = fx.add_image(
        "etc-link:1",
        &busybox_with(&[
            TarEntry::dir("cfg", 0o755),
            TarEntry::file("cfg/passwd", 0o644, APT.as_bytes()),
            TarEntry::file("cfg/group", 0o644, b"root:x:0:\nnogroup:x:65534:\n"),
            TarEntry::symlink("etc", "/cfg"),
        ]),
    );
    let r = fx.run_image(
        &cfg,
        &["--user", "_apt"],
        &["sh", "-c", "id -u; id -g; echo $HOME"],
    );
    assert_code(&r, 0, "--user through /etc -> /cfg");
    assert_eq!(r.stdout, "4242\n65534\n/nonexistent\n");

    // /etc pointing at /etc, or a passwd pointing out of the image: the
    // host's /etc/passwd (which has _apt and root) is never read.
    let looped = fx.add_image(
        "etc-loop:1",
        &busybox_with(&[TarEntry::symlink("etc", "/etc")]),
    );
    let escaping = fx.add_image(
        "passwd-out:1",
        &busybox_with(&[
            TarEntry::dir("etc", 0o755),
            TarEntry::symlink("etc/passwd", "../../../../../../etc/passwd"),
        ]),
    );
    for image in [&looped, &escaping] {
        for user in ["_apt", "root"] {
            let r = fx.run_image(image, &["--user", user], &["id", "-u"]);
            assert_code(&r, 125, "a user only the host knows");
            let lines = stderr_lines(&r);
            assert!(
                lines.len() == 1
                    && lines[0].ends_with(&format!(
                        ": unable to find user {user}: no matching entries in passwd file"
                    )),
                "{image}: {lines:?}"
            );
        }
        let r = fx.run_image(image, &["--user", "42"], &["id", "-u"]);
        assert_code(&r, 0, "a numeric user needs no passwd");
        assert_eq!(r.stdout, "42\n");
    }
    fx.assert_clean();
}

#[test]
fn exit_codes_follow_docker() {
    let Some(fx) = setup() else { return };
    assert_code(&fx.run(&[], &["true"]), 0, "true");
    assert_code(&fx.run(&[], &["false"]), 1, "false");
    assert_code(&fx.sh(&[], "exit 3"), 3, "exit 3");

    for (argv, code, words) in [
        ("/bin/nope", 127, ["/bin/nope", "no such file"]),
        ("nope", 127, ["nope", "no such file"]),
        ("/etc/passwd", 126, ["/etc/passwd", "permission denied"]),
    ] {
        let r = fx.run(&[], &[argv]);
        assert_code(&r, code, argv);
        let lines = stderr_lines(&r);
        assert_eq!(lines.len(), 1, "{argv}: stderr {:?}", r.stderr);
        assert!(lines[0].starts_with("wrun: "), "{argv}: {:?}", lines[0]);
        for w in words {
            assert!(lines[0].contains(w), "{argv}: {:?} lacks {w:?}", lines[0]);
        }
        assert!(r.stdout.is_empty(), "{argv}: stdout {:?}", r.stdout);
    }

    // A workload killed by signal N: 128+N (pid 1 is --init's reaper, so
    // the workload is an ordinary process that the signal can kill).
    let r = fx.sh(&["--init"], "kill -TERM $$; sleep 5");
    assert_code(&r, 128 + libc::SIGTERM, "kill -TERM $$");
    let r = fx.sh(&["--init"], "kill -SEGV $$; sleep 5");
    assert_code(&r, 128 + libc::SIGSEGV, "kill -SEGV $$");

    let r = fx.run(&["--timeout", "1s"], &["sleep", "30"]);
    assert_code(&r, 124, "--timeout 1s");
    let lines = stderr_lines(&r);
    assert_eq!(lines.len(), 1, "stderr {:?}", r.stderr);
    assert!(lines[0].contains("timeout"), "stderr {:?}", r.stderr);
    fx.assert_clean();
}

#[test]
fn sigterm_to_wrun_reaches_the_workload() {
    let Some(fx) = setup() else { return };
    // With --timeout, the watchdog thread must not take the signal either.
    let cases = [
        (libc::SIGTERM, "TERM", &[][..]),
        (libc::SIGINT, "INT", &[][..]),
        (libc::SIGTERM, "TERM", &["--timeout", "60s"][..]),
        (libc::SIGINT, "INT", &["--timeout", "60s"][..]),
    ];
    for (sig, name, opts) in cases {
        let mut child = fx.spawn_sh(
            opts,
            &format!(
                "trap 'echo got {name}; exit 42' {name}; echo ready; while :; do sleep 0.1; done"
            ),
        );
        let mut out = BufReader::new(child.stdout.take().expect("wrun's stdout"));
        read_until_ready(&mut out);
        // wrun blocks the signals it forwards once the container runs.
        assert!(
            wait_until(Duration::from_secs(30), || blocks(child.id(), sig)),
            "wrun never started forwarding SIG{name}"
        );
        // SAFETY: kill passes no pointer; the pid is our child's, reaped only
        // by `finish` below, so it cannot have been reused.
        assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
        let r = finish(child, Some(out));
        assert_code(&r, 42, &format!("SIG{name} {opts:?}"));
        assert_eq!(r.stdout, format!("got {name}\n"), "stderr {:?}", r.stderr);
    }
    fx.assert_clean();
}

// ---------------------------------------------------------------- terminal

/// A new pty: (master, slave), the master sized `rows`×`cols`.
fn open_pty(rows: u16, cols: u16) -> (std::fs::File, std::fs::File) {
    // SAFETY: posix_openpt passes no pointer; the result is checked for -1
    // just below before it is owned.
    let fd = unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) };
    assert!(fd >= 0, "posix_openpt: {}", std::io::Error::last_os_error());
    // SAFETY: fd is a new descriptor we own.
    let master = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    // SAFETY: neither call takes a pointer; `fd` is owned by `master`, alive
    // to the end of this function, so it still names our pty master.
    assert!(unsafe { libc::grantpt(fd) == 0 && libc::unlockpt(fd) == 0 });
    let mut buf = [0 as libc::c_char; 128];
    assert_eq!(
        // SAFETY: buf is writable for its length.
        unsafe { libc::ptsname_r(fd, buf.as_mut_ptr(), buf.len()) },
        0
    );
    // SAFETY: ptsname_r NUL-terminated the name.
    let name = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(&name)
        .expect("open the pty slave");
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    assert_eq!(
        // SAFETY: TIOCSWINSZ reads a winsize that lives across the call.
        unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) },
        0
    );
    (master, slave)
}

#[test]
fn tty_runs_the_workload_on_a_terminal_of_the_callers_size() {
    let Some(fx) = setup() else { return };
    let (mut master, slave) = open_pty(30, 90);
    let mut cmd = fx.env.command(&[
        "run",
        "-t",
        &fx.image,
        "sh",
        "-c",
        "tty; test -t 0 && test -t 1 && echo is-a-tty; stty size; echo TERM=$TERM",
    ]);
    cmd.stdin(slave.try_clone().expect("dup the slave"))
        .stdout(slave.try_clone().expect("dup the slave"))
        .stderr(slave);
    let mut child = cmd.spawn().expect("spawn wrun run -t");
    drop(cmd);
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        // EIO once the last slave is closed (wrun has exited).
        while let Ok(n) = master.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        out
    });
    let status = child.wait().expect("wait for wrun");
    let out = String::from_utf8_lossy(&reader.join().expect("the pty reader")).replace('\r', "");
    assert_eq!(status.code(), Some(0), "output {out:?}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines.first().is_some_and(|l| l.starts_with("/dev/")),
        "tty printed {out:?}"
    );
    assert_eq!(
        &lines[1..],
        ["is-a-tty", "30 90", "TERM=xterm"],
        "output {out:?}"
    );

    // Without -t, no terminal even when wrun has one.
    let r = fx.sh(&[], "tty; true");
    assert_eq!(r.stdout, "not a tty\n", "stderr {:?}", r.stderr);
    fx.assert_clean();
}

// ---------------------------------------------------------------- clean-up

#[test]
fn nothing_is_left_after_a_normal_exit_or_a_crash() {
    let Some(fx) = setup_exclusive() else { return };
    let before = wrun_cgroups();
    let held = Held::start(
        &fx,
        &[
            "--memory",
            "64m",
            "--pids-limit",
            "50",
            "--cpus",
            "0.5",
            "--cpu-shares",
            "512",
        ],
    );
    let id = fx.container_id(&held.hostname);
    let cgroups = cgroups_of(&id);
    let v1 = Path::new("/sys/fs/cgroup/memory/tasks").exists();
    if v1 {
        for c in ["memory", "pids", "cpu"] {
            let p = Path::new("/sys/fs/cgroup").join(c).join("wrun").join(&id);
            assert!(cgroups.contains(&p), "no {} in {cgroups:?}", p.display());
        }
    } else {
        assert!(!cgroups.is_empty(), "no cgroup for {id}");
    }
    assert!(
        fx.env
            .root()
            .join("containers")
            .join(&id)
            .join("upper")
            .is_dir(),
        "no upper directory while running"
    );
    // Running, the container's mounts are in its own namespace.
    let root = fx.env.root().display().to_string();
    let info = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(
        !info.contains(&root),
        "a container mount is visible on the host"
    );
    let r = held.release();
    assert_code(&r, 0, "held container");
    assert_eq!(r.stdout, "released\n");
    assert_eq!(cgroups_of(&id), Vec::<PathBuf>::new(), "cgroups left");
    fx.assert_clean();

    // A crash of the workload.
    let r = fx.sh(&["--init", "--memory", "64m"], "kill -SEGV $$");
    assert_code(&r, 128 + libc::SIGSEGV, "crash");
    fx.assert_clean();
    assert_eq!(wrun_cgroups(), before, "cgroups left after the runs");
}

#[test]
fn a_sigkilled_wrun_is_reaped_by_the_next_run() {
    let Some(fx) = setup_exclusive() else { return };
    let before = wrun_cgroups();
    let mut held = Held::start(&fx, &["--memory", "64m", "--pids-limit", "20"]);
    let id = fx.container_id(&held.hostname);
    let cgroups = cgroups_of(&id);
    assert!(!cgroups.is_empty(), "no cgroup for {id}");
    held.child.kill().expect("SIGKILL wrun");
    let _ = held.child.wait();
    // The helper sees wrun go and takes the workload with it; the state
    // stays until the next wrun reaps it.
    let procs: Vec<PathBuf> = cgroups.iter().map(|c| c.join("cgroup.procs")).collect();
    assert!(
        wait_until(Duration::from_secs(30), || procs.iter().all(|p| {
            std::fs::read_to_string(p).map_or(true, |s| s.trim().is_empty())
        })),
        "the workload survived wrun"
    );
    assert!(
        fx.env.root().join("containers").join(&id).is_dir(),
        "no stale state to reap"
    );
    assert!(!cgroups_of(&id).is_empty(), "no stale cgroup to reap");

    let r = fx.run(&[], &["true"]);
    assert_code(&r, 0, "the next run");
    assert_eq!(cgroups_of(&id), Vec::<PathBuf>::new(), "stale cgroups left");
    fx.assert_clean();
    assert_eq!(wrun_cgroups(), before, "cgroups left");
}

// ---------------------------------------------------------------- platforms

/// `run --platform` picks the stored image of that platform, pulls it when
/// missing, and fails with one line when the index has no such platform or
/// `--pull never` finds none stored (issue 12).
#[test]
fn run_platform_picks_the_stored_image_of_that_platform_or_pulls_it() {
    let Some(fx) = setup() else { return };
    let hello =
        wat::parse_file(Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/wasm/hello.wat"))
            .expect("compile samples/wasm/hello.wat");
    let host = format!("linux/{}", host_arch());
    let other = if host_arch() == "arm64" {
        "linux/amd64"
    } else {
        "linux/arm64"
    };
    let index = fixture::Index::new(vec![
        (&host, busybox_image(None)),
        ("wasi/wasm", fixture::wasm_artifact(&hello)),
    ]);
    let dir = tempfile::tempdir().expect("create a layout directory");
    fixture::write_layout(dir.path(), &[("t", Tagged::Index(&index))]);
    fx.registry.push_layout(dir.path(), "t", "multi:1");
    let multi = fx.registry.reference("multi:1");
    // A plain pull takes the host's platform: the native image.
    fx.env.ok(&["pull", "-q", &multi]);
    let native = |opts: &[&str], what: &str| {
        let r = fx.run_image(&multi, opts, &["echo", "native"]);
        assert_code(&r, 0, what);
        assert_eq!(r.stdout, "native\n", "{what}: stderr {:?}", r.stderr);
    };
    let wasm = |opts: &[&str], what: &str| {
        let r = fx.run_image(&multi, opts, &["x"]);
        assert_code(&r, 0, what);
        assert!(
            r.stdout.starts_with("hello from wasm\n"),
            "{what}: stdout {:?} stderr {:?}",
            r.stdout,
            r.stderr
        );
    };
    native(&[], "plain run");
    // Not stored for wasi/wasm: --pull never says so, without a pull.
    let r = fx.run_image(
        &multi,
        &["--pull", "never", "--platform", "wasi/wasm"],
        &["x"],
    );
    let line = assert_failure(&r, "--pull never --platform wasi/wasm before it is pulled");
    assert!(
        line.contains("not in the store for platform wasi/wasm"),
        "{line}"
    );
    // --platform wasi/wasm pulls the Wasm image of the index and runs it.
    wasm(&["-q", "--platform", "wasi/wasm"], "--platform wasi/wasm");
    // Both are stored now: each platform runs its own, with no pull.
    native(&["--pull", "never", "--platform", &host], "--platform host");
    wasm(
        &["--pull", "never", "--platform", "wasi/wasm"],
        "--platform wasi/wasm, stored",
    );
    native(&["--platform", &host], "--platform host, pull missing");
    // A platform the index lacks: one line naming what it has.
    let r = fx.run_image(&multi, &["-q", "--platform", other], &["true"]);
    let line = assert_failure(&r, "--platform the index lacks");
    assert!(
        line.contains(&format!("no manifest for platform {other}")) && line.contains(&host),
        "{line}"
    );
    let r = fx.run_image(&multi, &["--pull", "never", "--platform", other], &["true"]);
    let line = assert_failure(&r, "--pull never --platform the index lacks");
    assert!(
        line.contains(&format!("not in the store for platform {other}")),
        "{line}"
    );
    // An image that is no index, of another platform: refused, not run.
    let r = fx.run(&["-q", "--platform", other], &["true"]);
    let line = assert_failure(&r, "--platform of a single-platform image");
    assert!(
        line.contains(&format!("is for platform {host}, not {other}")),
        "{line}"
    );
    fx.assert_clean();
}

// ---------------------------------------------------------------- bad input

#[test]
fn bad_input_is_one_line_and_leaves_nothing() {
    let Some(fx) = setup_exclusive() else { return };
    let before = wrun_cgroups();
    let empty = fx.add_image("empty:1", &ImageBuilder::new().cmd(&["/bin/true"]).build());
    let img = fx.image.as_str();
    let missing = "/definitely/not/here/wrun";
    let missing_volume = format!("{missing}:/x");
    let cases: Vec<(Vec<&str>, &str, Vec<&str>)> = vec![
        (
            vec!["--user", "nobody-here", img, "true"],
            "unknown user",
            vec!["nobody-here"],
        ),
        (
            vec!["--user", "app:nogroup-here", img, "true"],
            "unknown group",
            vec!["nogroup-here"],
        ),
        (
            vec!["-v", "relative:/x", img, "true"],
            "relative volume",
            vec!["relative"],
        ),
        (
            vec!["-v", "/tmp:/x:bogus", img, "true"],
            "bad volume mode",
            vec!["ro or rw"],
        ),
        (
            vec!["-v", &missing_volume, img, "true"],
            "missing host path",
            vec![missing],
        ),
        (
            vec!["--memory", "1k", img, "true"],
            "tiny memory limit",
            vec!["memory"],
        ),
        (
            vec!["--pids-limit", "0", img, "true"],
            "zero pids limit",
            vec!["pids"],
        ),
        (
            vec!["--cpu-shares", "1", img, "true"],
            "cpu shares out of range",
            vec!["shares"],
        ),
        (
            vec!["--cpus", "1000000000", img, "true"],
            "a cpu quota the kernel refuses",
            vec!["cfs_quota_us", "invalid argument"],
        ),
        (
            vec!["--pids-limit", "99999999", img, "true"],
            "a pids limit the kernel refuses",
            vec!["pids.max", "invalid argument"],
        ),
        (
            vec!["--fuel", "10", img, "true"],
            "--fuel on a native image",
            vec!["--fuel"],
        ),
        (
            vec!["--network", "bridge", img, "true"],
            "unknown network",
            vec!["bridge"],
        ),
        (
            vec!["--tmpfs", "relative", img, "true"],
            "relative tmpfs",
            vec!["relative"],
        ),
        (
            vec![empty.as_str()],
            "an image with no layers",
            vec!["no layers"],
        ),
    ];
    for (args, what, words) in cases {
        let mut all = vec!["run"];
        all.extend_from_slice(&args);
        let r = fx.env.run(&all);
        let line = assert_failure(&r, what);
        for w in words {
            assert!(line.contains(w), "{what}: {line:?} lacks {w:?}");
        }
        assert!(r.stdout.is_empty(), "{what}: stdout {:?}", r.stdout);
        fx.assert_clean();
        assert_eq!(wrun_cgroups(), before, "{what}: cgroups left");
    }
}
