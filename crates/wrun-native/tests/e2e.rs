//! End-to-end tests of native containers, as root, on a busybox rootfs.
//!
//! `harness = false`: this binary is also the init helper. Started with
//! the hidden init verb it becomes the helper (as the `wrun` binary does);
//! otherwise it runs the tests one after another (they share the host's
//! cgroup tree and mount table, which some of them compare before and after)
//! and prints `N passed, M failed`. An argument filters tests by name.
//!
//! Needs root and a static busybox (`apt-get install busybox-static`).
//! Without them the tests are skipped with the reason, unless
//! `WRUN_REQUIRE_PRIVILEGED=1` is set (as in CI), which makes it a failure.

use std::fs;
use std::io::Read;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use wrun_core::{Access, Identity, Limits, Network};
use wrun_native::oci_spec::runtime::Spec;
use wrun_native::{Device, Error, ExitStatus, Launcher, SeccompPolicy, SpecBuilder, Volume};

const BUSYBOX: &str = "/bin/busybox";

struct Env {
    _tmp: tempfile::TempDir,
    layers: Vec<PathBuf>,
    state: PathBuf,
    host_dir: PathBuf,
}

struct Output {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Env {
    fn new() -> Result<Env, String> {
        let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
        let base = tmp.path().join("layers/base");
        let top = tmp.path().join("layers/top");
        for d in ["bin", "etc", "tmp", "root", "home/alice"] {
            fs::create_dir_all(base.join(d)).map_err(|e| e.to_string())?;
        }
        fs::copy(BUSYBOX, base.join("bin/busybox")).map_err(|e| e.to_string())?;
        let list = std::process::Command::new(BUSYBOX)
            .arg("--list")
            .output()
            .map_err(|e| e.to_string())?;
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            if applet != "busybox" {
                symlink("busybox", base.join("bin").join(applet)).map_err(|e| e.to_string())?;
            }
        }
        fs::write(
            base.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n",
        )
        .map_err(|e| e.to_string())?;
        fs::write(
            base.join("etc/group"),
            "root:x:0:\nwheel:x:10:alice\nalice:x:1000:\nnogroup:x:65534:\n",
        )
        .map_err(|e| e.to_string())?;
        fs::create_dir_all(top.join("data")).map_err(|e| e.to_string())?;
        fs::write(top.join("data/lower.txt"), "original\n").map_err(|e| e.to_string())?;
        let host_dir = tmp.path().join("host");
        fs::create_dir_all(&host_dir).map_err(|e| e.to_string())?;
        fs::write(host_dir.join("hello.txt"), "from the host\n").map_err(|e| e.to_string())?;
        Ok(Env {
            state: tmp.path().join("containers"),
            layers: vec![base, top],
            host_dir,
            _tmp: tmp,
        })
    }

    /// A host directory holding `NAME`, the static build of
    /// `tests/probes/NAME.c` (gcc and the static C library:
    /// `apt-get install gcc libc6-dev`), to mount into a container with
    /// [`Env::probe_volume`].
    fn probe(&self, name: &str) -> Result<PathBuf, String> {
        let dir = self._tmp.path().join("probes");
        let bin = dir.join(name);
        if bin.exists() {
            return Ok(dir);
        }
        fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let src = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/probes")
            .join(format!("{name}.c"));
        let out = std::process::Command::new("gcc")
            .args(["-static", "-O2", "-o"])
            .arg(&bin)
            .arg(&src)
            .output()
            .map_err(|e| format!("run gcc (apt-get install gcc libc6-dev): {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "gcc {}: {}",
                src.display(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(dir)
    }

    /// Mounts the probes' directory read-only at `/probe`.
    fn probe_volume(dir: &Path) -> Volume {
        Volume {
            host: dir.to_path_buf(),
            container: "/probe".into(),
            access: Access::ReadOnly,
        }
    }

    fn spawn(
        &self,
        id: &str,
        configure: impl FnOnce(&mut SpecBuilder),
    ) -> Result<wrun_native::Container, Error> {
        self.spawn_in(id, Path::new("/sys/fs/cgroup"), configure)
    }

    fn spawn_in(
        &self,
        id: &str,
        cgroup_root: &Path,
        configure: impl FnOnce(&mut SpecBuilder),
    ) -> Result<wrun_native::Container, Error> {
        let mut b = SpecBuilder::new();
        configure(&mut b);
        self.spawn_spec(id, cgroup_root, &b.build(id)?)
    }

    /// Starts container `id` from a spec made by the test itself.
    fn spawn_spec(
        &self,
        id: &str,
        cgroup_root: &Path,
        spec: &Spec,
    ) -> Result<wrun_native::Container, Error> {
        let helper = std::env::current_exe().map_err(|e| Error::SpawnHelper {
            path: "current_exe".into(),
            source: e,
        })?;
        Launcher::new(&self.state)
            .helper(helper)
            .cgroup_root(cgroup_root)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn(id, spec, &self.layers)
    }

    fn run(&self, id: &str, configure: impl FnOnce(&mut SpecBuilder)) -> Result<Output, String> {
        self.run_in(id, Path::new("/sys/fs/cgroup"), configure)
    }

    fn run_in(
        &self,
        id: &str,
        cgroup_root: &Path,
        configure: impl FnOnce(&mut SpecBuilder),
    ) -> Result<Output, String> {
        let mut b = SpecBuilder::new();
        configure(&mut b);
        let spec = b.build(id).map_err(|e| chain(&e))?;
        self.run_spec(id, cgroup_root, &spec)
    }

    /// Runs container `id` from a spec made by the test itself, to its end.
    fn run_spec(&self, id: &str, cgroup_root: &Path, spec: &Spec) -> Result<Output, String> {
        let mut c = self
            .spawn_spec(id, cgroup_root, spec)
            .map_err(|e| format!("{e:#}: {}", chain(&e)))?;
        collect(&mut c, |_| {}).and_then(|(out, err)| {
            let status = c.wait().map_err(|e| chain(&e))?;
            Ok(Output {
                status,
                stdout: out,
                stderr: err,
            })
        })
    }

    fn sh(&self, id: &str, script: &str) -> Result<Output, String> {
        self.run(id, |b| {
            b.args(["sh", "-c", script]);
        })
    }
}

fn collect(
    c: &mut wrun_native::Container,
    during: impl FnOnce(&wrun_native::Container),
) -> Result<(String, String), String> {
    let mut out = c.take_stdout().ok_or("no stdout")?;
    let mut err = c.take_stderr().ok_or("no stderr")?;
    let t = thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    during(c);
    let mut s = String::new();
    let _ = out.read_to_string(&mut s);
    let e = t.join().map_err(|_| "stderr reader panicked")?;
    Ok((s, e))
}

/// The error with its sources, as `{:#}` in anyhow would print it.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

fn expect_ok(o: &Output) -> Result<(), String> {
    ensure!(
        o.status.exit_code() == 0,
        "exit {} (stdout {:?}, stderr {:?})",
        o.status.exit_code(),
        o.stdout,
        o.stderr
    );
    Ok(())
}

fn pid_one(env: &Env) -> Result<(), String> {
    let o = env.sh("pid1", "echo $$; cat /proc/1/cmdline | tr '\\0' ' '")?;
    expect_ok(&o)?;
    ensure!(o.stdout.starts_with("1\nsh -c"), "stdout {:?}", o.stdout);
    Ok(())
}

fn hostname_and_etc_files(env: &Env) -> Result<(), String> {
    let o = env.run("hostname", |b| {
        b.hostname("box")
            .args(["sh", "-c", "hostname; cat /etc/hostname; grep -c box /etc/hosts; test -e /etc/resolv.conf && echo resolv; \
                echo 10.0.0.9 db >> /etc/hosts && grep -c db /etc/hosts; ls -A /dev | grep -c wrun"]);
    })?;
    // The files are the container's own (writable), and nothing of their
    // staging is left in /dev.
    ensure!(
        o.stdout == "box\nbox\n1\nresolv\n1\n0\n",
        "stdout {:?} stderr {:?}",
        o.stdout,
        o.stderr
    );
    Ok(())
}

fn host_processes_invisible(env: &Env) -> Result<(), String> {
    let o = env.sh("procs", "ls /proc | grep -c '^[0-9]'")?;
    expect_ok(&o)?;
    let n: u32 = o
        .stdout
        .trim()
        .parse()
        .map_err(|_| format!("stdout {:?}", o.stdout))?;
    ensure!(n <= 3, "{n} processes visible");
    Ok(())
}

fn network_none_has_only_loopback_up(env: &Env) -> Result<(), String> {
    let o = env.sh("net", "ip -o link; ip -o addr show lo")?;
    expect_ok(&o)?;
    let links: Vec<&str> = o.stdout.lines().filter(|l| l.contains(": <")).collect();
    ensure!(
        links.len() == 1 && links[0].contains(" lo: "),
        "links {links:?}"
    );
    ensure!(links[0].contains("UP"), "lo is down: {}", links[0]);
    ensure!(
        o.stdout.contains("127.0.0.1"),
        "no 127.0.0.1: {:?}",
        o.stdout
    );

    let host = env.run("net-host", |b| {
        b.network(Network::Host)
            .args(["sh", "-c", "ip -o link | wc -l"]);
    })?;
    expect_ok(&host)?;
    let n: u32 = host
        .stdout
        .trim()
        .parse()
        .map_err(|_| host.stdout.clone())?;
    ensure!(n >= 1, "host network shows {n} links");
    Ok(())
}

fn masked_and_readonly_paths(env: &Env) -> Result<(), String> {
    // Only the masked files this kernel has can be checked.
    let files: Vec<&str> = [
        "/proc/kcore",
        "/proc/keys",
        "/proc/timer_list",
        "/proc/sched_debug",
    ]
    .into_iter()
    .filter(|f| Path::new(f).exists())
    .collect();
    ensure!(
        !files.is_empty(),
        "none of the masked files exists on this host"
    );
    let script = format!(
        "for f in {}; do wc -c < $f; done; echo x > /proc/sys/kernel/domainname && echo writable; ls /sys/firmware | wc -l; true",
        files.join(" ")
    );
    let o = env.sh("masked", &script)?;
    expect_ok(&o)?;
    let expected = "0\n".repeat(files.len() + 1);
    ensure!(
        o.stdout == expected,
        "stdout {:?} stderr {:?}",
        o.stdout,
        o.stderr
    );
    ensure!(
        o.stderr.contains("Read-only file system"),
        "stderr {:?}",
        o.stderr
    );
    Ok(())
}

fn capabilities_are_bounded(env: &Env) -> Result<(), String> {
    let o = env.sh(
        "caps",
        "grep -E 'Cap(Bnd|Eff)|NoNewPrivs' /proc/self/status",
    )?;
    expect_ok(&o)?;
    ensure!(
        o.stdout.contains("CapBnd:\t00000000800405fb"),
        "stdout {:?}",
        o.stdout
    );
    ensure!(
        o.stdout.contains("CapEff:\t00000000800405fb"),
        "stdout {:?}",
        o.stdout
    );
    ensure!(o.stdout.contains("NoNewPrivs:\t1"), "stdout {:?}", o.stdout);
    let o = env.run("caps-drop", |b| {
        b.cap_drop("ALL")
            .cap_add("NET_ADMIN")
            .args(["grep", "CapBnd", "/proc/self/status"]);
    })?;
    expect_ok(&o)?;
    ensure!(
        o.stdout.contains("CapBnd:\t0000000000001000"),
        "stdout {:?}",
        o.stdout
    );
    Ok(())
}

fn seccomp_blocks_denied_calls(env: &Env) -> Result<(), String> {
    // Creating a user namespace needs no capability: only the filter stops it.
    let o = env.sh("seccomp", "unshare -U true && echo allowed; true")?;
    expect_ok(&o)?;
    ensure!(
        !o.stdout.contains("allowed"),
        "unshare -U was allowed: {:?}",
        o.stderr
    );
    ensure!(o.stderr.contains("not permitted"), "stderr {:?}", o.stderr);
    let o = env.run("seccomp-off", |b| {
        b.seccomp(SeccompPolicy::Unconfined)
            .args(["sh", "-c", "unshare -U true && echo allowed"]);
    })?;
    ensure!(
        o.stdout.contains("allowed"),
        "unconfined: {:?} {:?}",
        o.stdout,
        o.stderr
    );
    Ok(())
}

fn copy_on_write(env: &Env) -> Result<(), String> {
    let o = env.sh(
        "cow1",
        "echo changed > /data/lower.txt && echo x > /newfile && rm /bin/ls && cat /data/lower.txt",
    )?;
    expect_ok(&o)?;
    ensure!(o.stdout == "changed\n", "stdout {:?}", o.stdout);
    let lower =
        fs::read_to_string(env.layers[1].join("data/lower.txt")).map_err(|e| e.to_string())?;
    ensure!(
        lower == "original\n",
        "the shared layer was written: {lower:?}"
    );
    ensure!(
        env.layers[0].join("bin/ls").exists(),
        "the shared layer lost bin/ls"
    );
    let o = env.sh(
        "cow2",
        "cat /data/lower.txt; test -e /newfile && echo leaked; test -e /bin/ls && echo ls",
    )?;
    ensure!(o.stdout == "original\nls\n", "stdout {:?}", o.stdout);
    Ok(())
}

fn memory_hog_is_oom_killed(env: &Env) -> Result<(), String> {
    let limits = Limits {
        memory: Some(32 << 20),
        memory_swap: Some(32 << 20),
        ..Limits::default()
    };
    let o = env.run("oom", |b| {
        b.limits(&limits).args(["tail", "/dev/zero"]);
    })?;
    ensure!(o.status.exit_code() == 137, "exit {}", o.status.exit_code());
    ensure!(o.status.oom_killed(), "not reported as an OOM kill");
    Ok(())
}

fn fork_storm_stops_at_pids_limit(env: &Env) -> Result<(), String> {
    let limits = Limits {
        pids: Some(10),
        ..Limits::default()
    };
    let o = env.run("pids", |b| {
        b.limits(&limits).args([
            "sh",
            "-c",
            "sh -c 'for i in $(seq 1 30); do sleep 2 & done'; set -- /proc/[0-9]*; echo $#",
        ]);
    })?;
    let n: u32 = o
        .stdout
        .trim()
        .parse()
        .map_err(|_| format!("stdout {:?} stderr {:?}", o.stdout, o.stderr))?;
    ensure!(n <= 10, "{n} processes despite pids.max 10");
    ensure!(o.stderr.contains("fork"), "stderr {:?}", o.stderr);
    Ok(())
}

fn exit_codes(env: &Env) -> Result<(), String> {
    let o = env.sh("exit0", "true")?;
    ensure!(o.status.exit_code() == 0, "exit {}", o.status.exit_code());
    let o = env.sh("exit3", "exit 3")?;
    ensure!(o.status.exit_code() == 3, "exit {}", o.status.exit_code());
    for (id, cmd, code, msg) in [
        (
            "missing",
            "/bin/nope",
            127,
            "exec /bin/nope: no such file or directory",
        ),
        (
            "missing-path",
            "nope",
            127,
            "exec nope: no such file or directory",
        ),
        (
            "not-exec",
            "/etc/passwd",
            126,
            "exec /etc/passwd: permission denied",
        ),
    ] {
        match env.spawn(id, |b| {
            b.arg(cmd);
        }) {
            Ok(_) => return Err(format!("{cmd} started")),
            Err(e) => {
                ensure!(e.exit_code() == code, "{cmd}: exit code {}", e.exit_code());
                ensure!(chain(&e) == msg, "{cmd}: {:?}", chain(&e));
            }
        }
    }
    Ok(())
}

fn signals_are_forwarded(env: &Env) -> Result<(), String> {
    let mut c = env
        .spawn("sig", |b| {
            b.args([
                "sh",
                "-c",
                "trap 'echo got TERM; exit 42' TERM; echo ready; while true; do sleep 0.1; done",
            ]);
        })
        .map_err(|e| chain(&e))?;
    let signaller = c.signaller();
    let mut out = c.take_stdout().ok_or("stdout")?;
    let mut first = [0u8; 6];
    out.read_exact(&mut first).map_err(|e| e.to_string())?;
    signaller.signal(libc::SIGTERM).map_err(|e| chain(&e))?;
    let mut rest = String::new();
    let _ = out.read_to_string(&mut rest);
    let status = c.wait().map_err(|e| chain(&e))?;
    ensure!(status.exit_code() == 42, "exit {}", status.exit_code());
    ensure!(rest.contains("got TERM"), "stdout {rest:?}");

    let c = env
        .spawn("sigkill", |b| {
            b.args(["sleep", "100"]);
        })
        .map_err(|e| chain(&e))?;
    let started = Instant::now();
    c.signal(libc::SIGKILL).map_err(|e| chain(&e))?;
    let status = c.wait().map_err(|e| chain(&e))?;
    ensure!(status.signal() == Some(libc::SIGKILL), "{status:?}");
    ensure!(status.exit_code() == 137, "exit {}", status.exit_code());
    ensure!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    Ok(())
}

fn bind_mounts(env: &Env) -> Result<(), String> {
    let host = env.host_dir.display().to_string();
    let o = env.run("volumes", |b| {
        b.volume(Volume::parse(&format!("{host}:/mnt/rw")).expect("rw"))
            .volume(Volume {
                host: env.host_dir.clone(),
                container: "/mnt/ro".into(),
                access: Access::ReadOnly,
            })
            .tmpfs(wrun_native::Tmpfs::new("/scratch"))
            .args([
                "sh",
                "-c",
                "cat /mnt/ro/hello.txt; echo in > /mnt/rw/out.txt; echo x > /mnt/ro/no.txt && echo ro-writable; echo s > /scratch/s && echo tmpfs-ok; true",
            ]);
    })?;
    expect_ok(&o)?;
    ensure!(
        o.stdout == "from the host\ntmpfs-ok\n",
        "stdout {:?}",
        o.stdout
    );
    let written = fs::read_to_string(env.host_dir.join("out.txt")).map_err(|e| e.to_string())?;
    ensure!(written == "in\n", "host file {written:?}");
    ensure!(
        !env.host_dir.join("no.txt").exists(),
        "wrote through a read-only mount"
    );
    Ok(())
}

fn user_and_read_only_root(env: &Env) -> Result<(), String> {
    let o = env.run("user", |b| {
        b.identity(Identity {
            uid: 1000,
            gid: 1000,
            additional_gids: vec![10],
            home: "/home/alice".into(),
        })
        .args(["sh", "-c", "id; echo $HOME; grep CapEff /proc/self/status"]);
    })?;
    expect_ok(&o)?;
    ensure!(
        o.stdout
            .starts_with("uid=1000(alice) gid=1000(alice) groups=10(wheel)")
            || o.stdout
                .starts_with("uid=1000(alice) gid=1000(alice) groups=1000(alice),10(wheel)"),
        "stdout {:?}",
        o.stdout
    );
    ensure!(
        o.stdout.contains("/home/alice\nCapEff:\t0000000000000000"),
        "stdout {:?}",
        o.stdout
    );
    let o = env.run("readonly", |b| {
        b.read_only(true).args([
            "sh",
            "-c",
            "touch /x && echo writable; touch /tmp/y && echo tmp-writable; true",
        ]);
    })?;
    expect_ok(&o)?;
    ensure!(o.stdout.is_empty(), "stdout {:?}", o.stdout);
    ensure!(
        o.stderr.contains("Read-only file system"),
        "stderr {:?}",
        o.stderr
    );
    Ok(())
}

fn setup_failure_is_one_line_and_leaves_nothing(env: &Env) -> Result<(), String> {
    let err = env
        .spawn("badmount", |b| {
            b.volume(Volume::parse("/nonexistent-wrun:/x").expect("parse"))
                .arg("true");
        })
        .err()
        .ok_or("started")?;
    ensure!(
        chain(&err) == "bind mount /nonexistent-wrun on /x: no such file or directory",
        "{:?}",
        chain(&err)
    );
    ensure!(!env.state.join("badmount").exists(), "state left behind");
    ensure!(
        !Path::new("/sys/fs/cgroup/memory/wrun/badmount").exists()
            && !Path::new("/sys/fs/cgroup/wrun/badmount").exists(),
        "cgroup left behind"
    );
    let err = Launcher::new(&env.state)
        .spawn(
            "nolayers",
            &SpecBuilder::new()
                .arg("true")
                .build("x")
                .map_err(|e| chain(&e))?,
            &[],
        )
        .err()
        .ok_or("started without layers")?;
    ensure!(chain(&err).contains("no layers"), "{}", chain(&err));
    Ok(())
}

fn snapshot() -> (Vec<String>, Vec<PathBuf>) {
    let mounts: Vec<String> = fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .map(|l| l.split(' ').skip(3).take(2).collect::<Vec<_>>().join(" "))
        .collect();
    let mut cgroups = Vec::new();
    for root in [
        "/sys/fs/cgroup",
        "/sys/fs/cgroup/memory",
        "/sys/fs/cgroup/pids",
        "/sys/fs/cgroup/cpu",
        "/sys/fs/cgroup/devices",
        "/sys/fs/cgroup/unified",
    ] {
        let dir = Path::new(root).join("wrun");
        if let Ok(entries) = fs::read_dir(&dir) {
            for e in entries.flatten() {
                if e.path().is_dir() {
                    cgroups.push(e.path());
                }
            }
        }
    }
    cgroups.sort();
    (mounts, cgroups)
}

fn host_state_unchanged(env: &Env) -> Result<(), String> {
    let before = snapshot();
    env.run("clean", |b| {
        b.limits(&Limits {
            memory: Some(64 << 20),
            pids: Some(50),
            cpus: Some(0.5),
            cpu_shares: Some(512),
            ..Limits::default()
        })
        .args(["sh", "-c", "sleep 0.2 & mount | wc -l"]);
    })?;
    let after = snapshot();
    ensure!(before.0 == after.0, "the host mount table changed");
    ensure!(before.1 == after.1, "cgroups left: {:?}", after.1);
    let left: Vec<_> = fs::read_dir(&env.state)
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.file_name())
        // Dot-names are shared by every container (the mount-point layer,
        // the sealed helper's empty layer, compiled filters).
        .filter(|n| !n.to_string_lossy().starts_with('.'))
        .collect();
    ensure!(left.is_empty(), "state left: {left:?}");
    // The bottom layer of the sealed helper's overlay stays, empty.
    let empty = fs::read_dir(env.state.join(".empty"))
        .map_err(|e| e.to_string())?
        .count();
    ensure!(
        empty == 0,
        "the helper overlay's empty layer has {empty} entries"
    );
    // The shared mount-point layer stays, as it was made: empty mount
    // points, never written by a container.
    let points = env.state.join(".mount-points");
    let mut found = Vec::new();
    for d in ["proc", "sys", "dev", "etc"] {
        let names: Vec<_> = fs::read_dir(points.join(d))
            .map_err(|e| format!("{}: {e}", points.join(d).display()))?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        found.push((d, names.len()));
    }
    ensure!(
        found == [("proc", 0), ("sys", 0), ("dev", 0), ("etc", 3)],
        "mount-point layer changed: {found:?}"
    );
    for f in ["etc/hosts", "etc/hostname", "etc/resolv.conf"] {
        let len = fs::metadata(points.join(f))
            .map_err(|e| e.to_string())?
            .len();
        ensure!(len == 0, "{f} in the mount-point layer has {len} bytes");
    }
    Ok(())
}

/// The role of a re-executed test binary that launches a container and is
/// then SIGKILLed, as a `wrun` killed mid-run.
fn orphan_role() -> ExitCode {
    let state = std::env::var_os("WRUN_E2E_STATE").map(PathBuf::from);
    let layers = std::env::var("WRUN_E2E_LAYERS").unwrap_or_default();
    let (Some(state), false) = (state, layers.is_empty()) else {
        return ExitCode::FAILURE;
    };
    let layers: Vec<PathBuf> = layers.split(':').map(PathBuf::from).collect();
    let Ok(spec) = SpecBuilder::new().args(["sleep", "1000"]).build("orphan") else {
        return ExitCode::FAILURE;
    };
    let Ok(exe) = std::env::current_exe() else {
        return ExitCode::FAILURE;
    };
    match Launcher::new(&state)
        .helper(exe)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn("orphan", &spec, &layers)
    {
        Ok(c) => {
            println!("started {}", c.pid());
            loop {
                thread::sleep(Duration::from_secs(60));
            }
        }
        Err(e) => {
            println!("failed {}", chain(&e));
            ExitCode::FAILURE
        }
    }
}

fn killed_launcher_is_reaped(env: &Env) -> Result<(), String> {
    let layers: Vec<String> = env.layers.iter().map(|l| l.display().to_string()).collect();
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut launcher = std::process::Command::new(exe)
        .env("WRUN_E2E_ROLE", "orphan")
        .env("WRUN_E2E_STATE", &env.state)
        .env("WRUN_E2E_LAYERS", layers.join(":"))
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut line = String::new();
    {
        use std::io::BufRead;
        let out = launcher.stdout.take().ok_or("stdout")?;
        std::io::BufReader::new(out)
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
    }
    let pid: i32 = line
        .strip_prefix("started ")
        .and_then(|p| p.trim().parse().ok())
        .ok_or_else(|| format!("launcher said {line:?}"))?;
    ensure!(
        Path::new(&format!("/proc/{pid}")).exists(),
        "workload {pid} not running"
    );
    launcher.kill().map_err(|e| e.to_string())?;
    let _ = launcher.wait();
    // The helper sees its launcher go and takes the workload with it.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Path::new(&format!("/proc/{pid}")).exists() {
        ensure!(
            Instant::now() < deadline,
            "workload {pid} survived its launcher"
        );
        thread::sleep(Duration::from_millis(10));
    }
    ensure!(env.state.join("orphan").exists(), "no stale state to reap");
    let reaped = wrun_native::reap_stale(&env.state).map_err(|e| chain(&e))?;
    ensure!(reaped == vec!["orphan".to_string()], "reaped {reaped:?}");
    ensure!(!env.state.join("orphan").exists(), "state left");
    let (_, cgroups) = snapshot();
    ensure!(
        !cgroups.iter().any(|c| c.ends_with("orphan")),
        "cgroups left: {cgroups:?}"
    );
    Ok(())
}

fn cgroup_namespace_and_mount(env: &Env) -> Result<(), String> {
    let script = "cat /proc/self/cgroup; ls /sys/fs/cgroup | tr '\\n' ' '";
    let o = env.sh("cgns", script)?;
    expect_ok(&o)?;
    let v2_host = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    if v2_host {
        ensure!(o.stdout.starts_with("0::/\n"), "stdout {:?}", o.stdout);
        ensure!(o.stdout.contains("cgroup.procs"), "stdout {:?}", o.stdout);
    } else {
        ensure!(o.stdout.contains(":memory:/\n"), "stdout {:?}", o.stdout);
        ensure!(
            o.stdout.contains("memory ")
                && o.stdout.contains("pids ")
                && o.stdout.contains("devices "),
            "stdout {:?}",
            o.stdout
        );
        ensure!(o.stdout.contains(":devices:/\n"), "stdout {:?}", o.stdout);
    }

    // On a hybrid host, also run through the (controller-less) cgroup2 mount.
    let unified = Path::new("/sys/fs/cgroup/unified");
    if !v2_host && unified.join("cgroup.controllers").exists() {
        let mut c = env
            .spawn_in("cgv2", unified, |b| {
                b.args([
                    "sh",
                    "-c",
                    "cat /proc/self/cgroup | grep '^0::'; ls /sys/fs/cgroup/cgroup.procs",
                ]);
            })
            .map_err(|e| chain(&e))?;
        ensure!(unified.join("wrun/cgv2").exists(), "no v2 cgroup created");
        let (out, err) = collect(&mut c, |_| {})?;
        let status = c.wait().map_err(|e| chain(&e))?;
        ensure!(
            status.exit_code() == 0,
            "exit {} {err:?}",
            status.exit_code()
        );
        ensure!(
            out == "0::/\n/sys/fs/cgroup/cgroup.procs\n",
            "stdout {out:?}"
        );
        ensure!(!unified.join("wrun/cgv2").exists(), "v2 cgroup left behind");
        let err = env
            .spawn_in("cgv2-limits", unified, |b| {
                b.limits(&Limits {
                    memory: Some(64 << 20),
                    ..Limits::default()
                })
                .arg("true");
            })
            .err()
            .ok_or("a v2 memory limit without the controller was accepted")?;
        ensure!(
            chain(&err).contains("cgroup v2 controller memory is not available"),
            "{}",
            chain(&err)
        );
        ensure!(!env.state.join("cgv2-limits").exists(), "state left");
    }
    Ok(())
}

fn init_reaps_and_forwards(env: &Env) -> Result<(), String> {
    let o = env.run("init", |b| {
        b.init(true).args([
            "sh",
            "-c",
            "echo $$; (sleep 0.1 &); sleep 0.4; ps -o stat | grep -c Z; exit 5",
        ]);
    })?;
    ensure!(
        o.status.exit_code() == 5,
        "exit {} {:?}",
        o.status.exit_code(),
        o.stderr
    );
    ensure!(o.stdout == "2\n0\n", "stdout {:?}", o.stdout);

    let mut c = env
        .spawn("init-sig", |b| {
            b.init(true).args([
                "sh",
                "-c",
                "trap 'exit 42' TERM; echo ready; while true; do sleep 0.1; done",
            ]);
        })
        .map_err(|e| chain(&e))?;
    let mut out = c.take_stdout().ok_or("stdout")?;
    let mut first = [0u8; 6];
    out.read_exact(&mut first).map_err(|e| e.to_string())?;
    c.signal(libc::SIGTERM).map_err(|e| chain(&e))?;
    let status = c.wait().map_err(|e| chain(&e))?;
    ensure!(status.exit_code() == 42, "exit {}", status.exit_code());

    // Without a handler, pid 2 dies of the signal the reaper forwards.
    let c = env
        .spawn("init-kill", |b| {
            b.init(true).args(["sleep", "100"]);
        })
        .map_err(|e| chain(&e))?;
    c.signal(libc::SIGTERM).map_err(|e| chain(&e))?;
    let status = c.wait().map_err(|e| chain(&e))?;
    ensure!(status.exit_code() == 143, "exit {}", status.exit_code());
    Ok(())
}

fn tty_through_a_pty(env: &Env) -> Result<(), String> {
    let mut c = env
        .spawn("tty", |b| {
            b.tty(true).console_size(40, 100).args([
                "sh",
                "-c",
                "test -t 0 && test -t 1 && echo is-a-tty; stty size; test -c /dev/console && echo console; echo $TERM",
            ]);
        })
        .map_err(|e| chain(&e))?;
    let mut master = c.take_pty().ok_or("no pty")?;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match master.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            // EIO: the last slave closed.
            Err(_) => break,
        }
    }
    let status = c.wait().map_err(|e| chain(&e))?;
    let out = String::from_utf8_lossy(&out).replace("\r\n", "\n");
    ensure!(
        status.exit_code() == 0,
        "exit {} {out:?}",
        status.exit_code()
    );
    ensure!(
        out == "is-a-tty\n40 100\nconsole\nxterm\n",
        "output {out:?}"
    );
    Ok(())
}

fn seccomp_profile_file(env: &Env) -> Result<(), String> {
    let profile = env.host_dir.join("profile.json");
    fs::write(
        &profile,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
            {"names":["mkdir","mkdirat","no_such_call"],"action":"SCMP_ACT_ERRNO","errnoRet":13},
            {"names":["chmod"],"action":"SCMP_ACT_ERRNO","args":[{"index":1,"value":511,"op":"SCMP_CMP_EQ"}]},
            {"names":["fchmodat"],"action":"SCMP_ACT_ERRNO","args":[{"index":2,"value":511,"op":"SCMP_CMP_EQ"}]}
        ]}"#,
    )
    .map_err(|e| e.to_string())?;
    let o = env.run("profile", |b| {
        b.seccomp(SeccompPolicy::Profile(profile.clone())).args([
            "sh",
            "-c",
            "mkdir /d && echo mkdir; touch /f; chmod 755 /f && echo 755; chmod 777 /f && echo 777; true",
        ]);
    })?;
    expect_ok(&o)?;
    ensure!(
        o.stdout == "755\n",
        "stdout {:?} stderr {:?}",
        o.stdout,
        o.stderr
    );
    ensure!(
        o.stderr.contains("Permission denied"),
        "stderr {:?}",
        o.stderr
    );
    ensure!(
        o.stderr.contains("Operation not permitted"),
        "stderr {:?}",
        o.stderr
    );
    Ok(())
}

/// podman's seccomp profile (Debian: golang-github-containers-common), the
/// reference the comparison test loads through wrun's profile loader.
const PODMAN_PROFILE: &str = "/usr/share/containers/seccomp.json";

/// What a probed call must get.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Want {
    /// Succeeded.
    Ok,
    /// Failed with this errno.
    Errno(i32),
    /// Let through by the filter: the kernel answered (success or an error
    /// other than EPERM and ENOSYS, with the probe's arguments).
    Allowed,
    /// Not EPERM: ENOSYS (refused as a call newer than the profile) or
    /// let through, depending on which calls this libseccomp knows.
    NotEperm,
}

impl Want {
    fn matches(self, got: &str) -> bool {
        let errno: Option<i32> = got.parse().ok();
        match self {
            Want::Ok => errno == Some(0),
            Want::Errno(e) => errno == Some(e),
            Want::Allowed => errno.is_some_and(|e| e != libc::EPERM && e != libc::ENOSYS),
            Want::NotEperm => errno.is_some_and(|e| e != libc::EPERM),
        }
    }
}

const EPERM: Want = Want::Errno(libc::EPERM);
const ENOSYS: Want = Want::Errno(libc::ENOSYS);

/// `(probe, wrun's default, podman's profile)` for docker's default
/// capability set. `None` for podman: not probed, because the profile lets
/// the call through and the kernel would autoload a module on the host.
const SECCOMP_CASES: &[(&str, Want, Option<Want>)] = &[
    ("getpid", Want::Ok, Some(Want::Ok)),
    ("openat", Want::Ok, Some(Want::Ok)),
    // docker refuses io_uring (not on its list); podman's profile does not
    // list it either, and its default answer is ENOSYS.
    ("io_uring_setup", EPERM, Some(ENOSYS)),
    ("add_key", EPERM, Some(ENOSYS)),
    // podman's profile allows keyctl, unshare and clone3 and leaves them
    // to capabilities; a user namespace needs none.
    ("keyctl", EPERM, Some(Want::Allowed)),
    ("unshare_user", EPERM, Some(Want::Ok)),
    ("unshare_mount", EPERM, Some(EPERM)),
    ("perf_event_open", EPERM, Some(EPERM)),
    ("bpf", EPERM, Some(EPERM)),
    ("mount", EPERM, Some(EPERM)),
    ("clone_newns", EPERM, Some(EPERM)),
    ("clone_plain", Want::Ok, Some(Want::Ok)),
    ("clone3", ENOSYS, Some(Want::Allowed)),
    ("personality_linux", Want::Ok, Some(Want::Ok)),
    ("personality_query", Want::Ok, Some(Want::Ok)),
    // A persona docker does not list: refused by both, with each
    // profile's default errno.
    ("personality_bad", EPERM, Some(ENOSYS)),
    ("socket_vsock", EPERM, None),
    ("socket_alg", EPERM, None),
    ("socket_unix", Want::Ok, Some(Want::Ok)),
    ("userfaultfd", EPERM, Some(EPERM)),
    ("ptrace", Want::Allowed, Some(Want::Allowed)),
    ("kexec_load", EPERM, Some(EPERM)),
    // On docker's list, but newer than what libseccomp 2.5.4 knows.
    ("fchmodat2", Want::NotEperm, Some(Want::NotEperm)),
    // A number no kernel has yet: ENOSYS from both (runc's rule in wrun,
    // podman's default errno).
    ("new_600", ENOSYS, Some(ENOSYS)),
];

/// Runs the probe in a container and returns `probe -> answer`.
fn probe(
    env: &Env,
    id: &str,
    dir: &Path,
    names: &[&str],
    configure: impl FnOnce(&mut SpecBuilder),
) -> Result<std::collections::BTreeMap<String, String>, String> {
    let o = env.run(id, |b| {
        b.volume(Env::probe_volume(dir))
            .arg("/probe/seccomp")
            .args(names.iter().copied());
        configure(b);
    })?;
    expect_ok(&o)?;
    Ok(o.stdout
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

/// wrun's default filter and podman's profile (through wrun's loader),
/// each decided by the real kernel inside a container with docker's
/// default capabilities: every call gets the answer the table says, and
/// where the two differ the table says why.
fn seccomp_default_matches_docker(env: &Env) -> Result<(), String> {
    let dir = env.probe("seccomp")?;
    let all: Vec<&str> = SECCOMP_CASES.iter().map(|c| c.0).collect();
    let ours = probe(env, "sc-default", &dir, &all, |_| {})?;
    ensure!(
        Path::new(PODMAN_PROFILE).exists(),
        "no {PODMAN_PROFILE} (apt-get install golang-github-containers-common)"
    );
    let podman_names: Vec<&str> = SECCOMP_CASES
        .iter()
        .filter(|c| c.2.is_some())
        .map(|c| c.0)
        .collect();
    let theirs = probe(env, "sc-podman", &dir, &podman_names, |b| {
        b.seccomp(SeccompPolicy::Profile(PODMAN_PROFILE.into()));
    })?;
    let mut wrong = Vec::new();
    for (name, want_ours, want_theirs) in SECCOMP_CASES {
        let got = ours.get(*name).map(String::as_str).unwrap_or("missing");
        if !want_ours.matches(got) {
            wrong.push(format!("default: {name} got {got}, want {want_ours:?}"));
        }
        if let Some(want) = want_theirs {
            let got = theirs.get(*name).map(String::as_str).unwrap_or("missing");
            if !want.matches(got) {
                wrong.push(format!("podman: {name} got {got}, want {want:?}"));
            }
        }
    }
    // WRUN_E2E_SHOW=1 prints every answer.
    if std::env::var_os("WRUN_E2E_SHOW").is_some() {
        println!("default {ours:?}\npodman {theirs:?}");
    }
    ensure!(wrong.is_empty(), "{}", wrong.join("; "));

    // CAP_SYS_ADMIN gives back the namespace and mount calls, and clone3.
    let admin = probe(
        env,
        "sc-admin",
        &dir,
        &[
            "unshare_mount",
            "mount",
            "clone_newns",
            "clone3",
            "bpf",
            "io_uring_setup",
        ],
        |b| {
            b.cap_add("SYS_ADMIN");
        },
    )?;
    for (name, want) in [
        ("unshare_mount", Want::Ok),
        ("mount", Want::Ok),
        ("clone_newns", Want::Ok),
        ("clone3", Want::Allowed),
        ("bpf", Want::Allowed),
        ("io_uring_setup", EPERM),
    ] {
        let got = admin.get(name).map(String::as_str).unwrap_or("missing");
        ensure!(
            want.matches(got),
            "with CAP_SYS_ADMIN: {name} got {got}, want {want:?}"
        );
    }
    Ok(())
}

/// Runtime-spec features `wrun run` does not set but an OCI caller may.
fn spec_sysctl_and_rlimits(env: &Env) -> Result<(), String> {
    use wrun_native::oci_spec::runtime::{PosixRlimitBuilder, PosixRlimitType};
    let mut spec = SpecBuilder::new()
        .args([
            "sh",
            "-c",
            "cat /proc/sys/net/ipv4/ip_forward; ulimit -n; cat /proc/self/oom_score_adj",
        ])
        .build("spec")
        .map_err(|e| chain(&e))?;
    if let Some(linux) = spec.linux_mut() {
        linux.set_sysctl(Some(
            [("net.ipv4.ip_forward".to_string(), "1".to_string())].into(),
        ));
    }
    if let Some(p) = spec.process_mut() {
        let nofile = PosixRlimitBuilder::default()
            .typ(PosixRlimitType::RlimitNofile)
            .soft(321u64)
            .hard(654u64)
            .build()
            .map_err(|e| e.to_string())?;
        p.set_rlimits(Some(vec![nofile]));
        p.set_oom_score_adj(Some(500));
    }
    let host_before =
        fs::read_to_string("/proc/sys/net/ipv4/ip_forward").map_err(|e| e.to_string())?;
    let o = env.run_spec("spec", Path::new("/sys/fs/cgroup"), &spec)?;
    expect_ok(&o)?;
    ensure!(o.stdout == "1\n321\n500\n", "stdout {:?}", o.stdout);
    let host_after =
        fs::read_to_string("/proc/sys/net/ipv4/ip_forward").map_err(|e| e.to_string())?;
    ensure!(host_after == host_before, "the host's ip_forward changed");

    if let Some(linux) = spec.linux_mut() {
        linux.set_sysctl(Some(
            [("vm.swappiness".to_string(), "1".to_string())].into(),
        ));
    }
    let err = env
        .spawn_spec("spec2", Path::new("/sys/fs/cgroup"), &spec)
        .err()
        .ok_or("a host-wide sysctl was accepted")?;
    ensure!(
        chain(&err).contains("vm.swappiness is not namespaced"),
        "{}",
        chain(&err)
    );
    Ok(())
}

/// The cgroup roots to test device rules under: the default one, and on a
/// hybrid host also its cgroup2 mount (where the rules are an eBPF
/// program). A hybrid host without that mount is a skip, or a failure
/// under WRUN_REQUIRE_PRIVILEGED=1.
fn device_roots() -> Result<Vec<(&'static str, PathBuf)>, String> {
    let mut roots = vec![("default", PathBuf::from("/sys/fs/cgroup"))];
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        return Ok(roots);
    }
    let unified = PathBuf::from("/sys/fs/cgroup/unified");
    if unified.join("cgroup.controllers").exists() {
        roots.push(("v2", unified));
    } else if std::env::var("WRUN_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
        return Err("no cgroup2 mount at /sys/fs/cgroup/unified to test device programs on".into());
    } else {
        println!("  (device programs not tested: no cgroup2 mount at /sys/fs/cgroup/unified)");
    }
    Ok(roots)
}

/// Makes a node of each of a console, /dev/fuse and a loop disk in /dev,
/// then opens each read-only in a subshell (so a tty cannot become the
/// shell's controlling terminal); prints `made NAME` and the open's error
/// (or `opened NAME`).
const MKNOD_AND_OPEN: &str = "for n in 'console c 4 0' 'fuse c 10 229' 'loop b 7 0'; do set -- $n; \
    mknod /dev/t-$1 $2 $3 $4 && echo made $1; \
    ( : < /dev/t-$1 && echo opened $1 ) 2>&1 | sed 's/.*: //'; done";

/// A default container opens the devices runc's rules allow and no other,
/// though with `CAP_MKNOD` (not in the default set, as in podman) it may
/// make a node of any: under v1 through its own `devices` cgroup (whose
/// rules it can read), under v2 through the device program.
fn default_device_rules(env: &Env) -> Result<(), String> {
    let o = env.sh("dev-nomknod", "mknod /dev/t c 4 0 2>&1 | sed 's/.*: //'")?;
    ensure!(
        o.stdout == "Operation not permitted\n",
        "mknod without CAP_MKNOD: {:?}",
        o.stdout
    );
    for (tag, root) in device_roots()? {
        let script = format!(
            "head -c 1 /dev/zero > /dev/null && echo zero; echo x > /dev/null && echo null; \
             head -c 1 /dev/urandom > /dev/null && echo urandom; \
             echo x 2>/dev/null > /dev/full || echo full; : < /dev/ptmx && echo ptmx; \
             ( : < /dev/tty ) 2>&1 | sed 's/.*: //'; {MKNOD_AND_OPEN}"
        );
        let o = env.run_in(&format!("dev-{tag}"), &root, |b| {
            b.cap_add("MKNOD").args(["sh", "-c", &script]);
        })?;
        expect_ok(&o)?;
        // /dev/tty opens but has no terminal behind it; the nodes made are
        // refused by the device rules, not by their drivers.
        let expected = "zero\nnull\nurandom\nfull\nptmx\nNo such device or address\n\
            made console\nOperation not permitted\nmade fuse\nOperation not permitted\n\
            made loop\nOperation not permitted\n";
        ensure!(
            o.stdout == expected,
            "{tag}: stdout {:?} stderr {:?}",
            o.stdout,
            o.stderr
        );
    }
    // The v1 rules, as the container's own devices cgroup lists them.
    if Path::new("/sys/fs/cgroup/devices/devices.list").exists() {
        let o = env.sh("dev-list", "cat /sys/fs/cgroup/devices/devices.list")?;
        expect_ok(&o)?;
        let expected = "c *:* m\nb *:* m\nc 1:3 rwm\nc 1:8 rwm\nc 1:7 rwm\nc 5:0 rwm\n\
            c 1:5 rwm\nc 1:9 rwm\nc 136:* rwm\nc 5:2 rwm\nc 10:200 rwm\n";
        ensure!(o.stdout == expected, "devices.list {:?}", o.stdout);
        ensure!(
            !Path::new("/sys/fs/cgroup/devices/wrun/dev-list").exists(),
            "the devices cgroup was left behind"
        );
    }
    Ok(())
}

/// `--device` makes the host's node in the container and allows what it
/// asks for, only for that device; `--privileged` allows every device and
/// brings the host's nodes.
fn granted_devices(env: &Env) -> Result<(), String> {
    if !Path::new("/dev/fuse").exists() {
        return Err("no /dev/fuse on this host to grant".into());
    }
    // The node is made with the host's numbers, mode and owner.
    let host = {
        use std::os::unix::fs::MetadataExt;
        let m = fs::metadata("/dev/fuse").map_err(|e| e.to_string())?;
        format!("{:o} a:e5 {}:{}", m.mode() & 0o7777, m.uid(), m.gid())
    };
    for (tag, root) in device_roots()? {
        let o = env.run_in(&format!("dev-grant-{tag}"), &root, |b| {
            b.device(Device::parse("/dev/fuse").expect("device"))
                .cap_add("MKNOD")
                .args([
                    "sh",
                    "-c",
                    "test -c /dev/fuse && stat -c '%a %t:%T %u:%g' /dev/fuse; \
                 : <> /dev/fuse && echo opened; \
                 mknod /dev/t-loop b 7 0; ( : < /dev/t-loop ) 2>&1 | sed 's/.*: //'",
                ]);
        })?;
        expect_ok(&o)?;
        ensure!(
            o.stdout == format!("{host}\nopened\nOperation not permitted\n"),
            "{tag} --device: stdout {:?} stderr {:?}",
            o.stdout,
            o.stderr
        );

        let o = env.run_in(&format!("dev-ro-{tag}"), &root, |b| {
            b.device(Device::parse("/dev/fuse:/dev/f-ro:r").expect("device"))
                .args([
                    "sh",
                    "-c",
                    ": < /dev/f-ro && echo read; ( : <> /dev/f-ro ) 2>&1 | sed 's/.*: //'",
                ]);
        })?;
        ensure!(
            o.stdout == "read\nOperation not permitted\n",
            "{tag} --device :r: stdout {:?} stderr {:?}",
            o.stdout,
            o.stderr
        );

        let o = env.run_in(&format!("dev-priv-{tag}"), &root, |b| {
            b.privileged(true).args([
                "sh",
                "-c",
                "mknod /dev/t-fuse c 10 229 && : < /dev/t-fuse && echo fuse; \
                 mknod /dev/t-loop b 7 0 && : < /dev/t-loop && echo loop; \
                 test -c /dev/fuse && test -b /dev/loop0 && echo host-nodes",
            ]);
        })?;
        ensure!(
            o.stdout == "fuse\nloop\nhost-nodes\n",
            "{tag} --privileged: stdout {:?} stderr {:?}",
            o.stdout,
            o.stderr
        );
    }
    let err = env
        .spawn("dev-bad", |b| {
            b.device(Device::parse("/etc/passwd").expect("parses"))
                .arg("true");
        })
        .err()
        .ok_or("a regular file was accepted as a device")?;
    ensure!(
        chain(&err) == "/etc/passwd is not a device",
        "{}",
        chain(&err)
    );
    Ok(())
}

/// A spec whose device rules only deny all (podman's, which leaves the
/// defaults to the runtime) still gets runc's defaults appended: /dev/null
/// opens, a console node does not.
fn engine_spec_gets_the_default_devices(env: &Env) -> Result<(), String> {
    use wrun_native::oci_spec::runtime::LinuxDeviceCgroup;
    let mut spec = SpecBuilder::new()
        .cap_add("MKNOD")
        .args([
            "sh",
            "-c",
            "echo x > /dev/null && echo null; mknod /dev/t c 4 0; ( : < /dev/t ) 2>&1 | sed 's/.*: //'",
        ])
        .build("engine")
        .map_err(|e| chain(&e))?;
    let mut deny_all = LinuxDeviceCgroup::default();
    deny_all.set_access(Some("rwm".into()));
    if let Some(res) = spec
        .linux_mut()
        .as_mut()
        .and_then(|l| l.resources_mut().as_mut())
    {
        res.set_devices(Some(vec![deny_all]));
    }
    let o = env.run_spec("engine", Path::new("/sys/fs/cgroup"), &spec)?;
    expect_ok(&o)?;
    ensure!(
        o.stdout == "null\nOperation not permitted\n",
        "stdout {:?} stderr {:?}",
        o.stdout,
        o.stderr
    );
    Ok(())
}

type Test = (&'static str, fn(&Env) -> Result<(), String>);

/// The children of this process, from /proc.
fn children() -> Vec<String> {
    let mut v = Vec::new();
    for task in fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let list = fs::read_to_string(task.path().join("children")).unwrap_or_default();
        v.extend(list.split_whitespace().map(str::to_string));
    }
    v.sort();
    v
}

/// A prestarted helper serves the next spawn; changing the stdio after it
/// started discards it (the container gets the new stdio), and dropping
/// the launcher stops it: no child process is left.
fn prestarted_helper(env: &Env) -> Result<(), String> {
    let helper = std::env::current_exe().map_err(|e| e.to_string())?;
    let before = children();
    let spec = |id: &str, script: &str| {
        let mut b = SpecBuilder::new();
        b.args(["sh", "-c", script]);
        b.build(id).map_err(|e| chain(&e))
    };

    let mut l = Launcher::new(&env.state);
    l.helper(&helper)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    l.prestart().map_err(|e| chain(&e))?;
    let waiting = children();
    ensure!(waiting.len() == before.len() + 1, "no helper waiting");
    let mut c = l
        .spawn("pre1", &spec("pre1", "echo prestarted")?, &env.layers)
        .map_err(|e| chain(&e))?;
    // The container runs under the helper that was waiting.
    ensure!(children() == waiting, "a new helper: {:?}", children());
    let (out, _) = collect(&mut c, |_| {})?;
    ensure!(
        c.wait().map_err(|e| chain(&e))?.exit_code() == 0,
        "pre1 failed"
    );
    ensure!(out == "prestarted\n", "stdout {out:?}");

    // Stdio set after the helper started: the helper is replaced.
    l.prestart().map_err(|e| chain(&e))?;
    l.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut c = l
        .spawn("pre2", &spec("pre2", "echo replaced")?, &env.layers)
        .map_err(|e| chain(&e))?;
    let (out, _) = collect(&mut c, |_| {})?;
    ensure!(
        c.wait().map_err(|e| chain(&e))?.exit_code() == 0,
        "pre2 failed"
    );
    ensure!(out == "replaced\n", "stdout {out:?}");

    l.prestart().map_err(|e| chain(&e))?;
    drop(l);
    ensure!(children() == before, "children left: {:?}", children());
    Ok(())
}

const TESTS: &[Test] = &[
    ("pid_one", pid_one),
    ("hostname_and_etc_files", hostname_and_etc_files),
    ("host_processes_invisible", host_processes_invisible),
    (
        "network_none_has_only_loopback_up",
        network_none_has_only_loopback_up,
    ),
    ("masked_and_readonly_paths", masked_and_readonly_paths),
    ("capabilities_are_bounded", capabilities_are_bounded),
    ("seccomp_blocks_denied_calls", seccomp_blocks_denied_calls),
    ("copy_on_write", copy_on_write),
    ("memory_hog_is_oom_killed", memory_hog_is_oom_killed),
    (
        "fork_storm_stops_at_pids_limit",
        fork_storm_stops_at_pids_limit,
    ),
    ("exit_codes", exit_codes),
    ("signals_are_forwarded", signals_are_forwarded),
    ("bind_mounts", bind_mounts),
    ("user_and_read_only_root", user_and_read_only_root),
    (
        "setup_failure_is_one_line_and_leaves_nothing",
        setup_failure_is_one_line_and_leaves_nothing,
    ),
    ("host_state_unchanged", host_state_unchanged),
    ("killed_launcher_is_reaped", killed_launcher_is_reaped),
    ("cgroup_namespace_and_mount", cgroup_namespace_and_mount),
    ("init_reaps_and_forwards", init_reaps_and_forwards),
    ("tty_through_a_pty", tty_through_a_pty),
    ("seccomp_profile_file", seccomp_profile_file),
    (
        "seccomp_default_matches_docker",
        seccomp_default_matches_docker,
    ),
    ("spec_sysctl_and_rlimits", spec_sysctl_and_rlimits),
    ("prestarted_helper", prestarted_helper),
    ("workload_starts_clean", workload_starts_clean),
    (
        "helper_binary_cannot_be_overwritten",
        helper_binary_cannot_be_overwritten,
    ),
    ("default_device_rules", default_device_rules),
    ("granted_devices", granted_devices),
    (
        "engine_spec_gets_the_default_devices",
        engine_spec_gets_the_default_devices,
    ),
];

fn status_field<'a>(status: &'a str, field: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .map(str::trim)
}

/// The workload starts with every signal at its default disposition,
/// nothing blocked, and no descriptor of its launcher beyond stdio.
fn workload_starts_clean(env: &Env) -> Result<(), String> {
    // A descriptor this process holds without close-on-exec, as a careless
    // caller of the library might.
    // SAFETY: the path is a 'static C string literal; the fd is ours alone
    // and closed at the end of this function.
    let leaked = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY) };
    ensure!(
        leaked >= 3,
        "open /dev/null: {}",
        std::io::Error::last_os_error()
    );
    let result = (|| {
        for init in [false, true] {
            let o = env.run("clean-status", |b| {
                b.init(init).args(["cat", "/proc/self/status"]);
            })?;
            expect_ok(&o)?;
            for field in ["SigIgn:", "SigBlk:"] {
                ensure!(
                    status_field(&o.stdout, field) == Some("0000000000000000"),
                    "{field} {:?} (init {init})",
                    status_field(&o.stdout, field)
                );
            }
        }
        let o = env.run("clean-fds", |b| {
            b.args(["ls", "/proc/self/fd"]);
        })?;
        expect_ok(&o)?;
        let fds: Vec<&str> = o.stdout.split_whitespace().collect();
        // 3 is ls's own descriptor on the directory it lists.
        ensure!(fds == ["0", "1", "2", "3"], "descriptors {fds:?}");
        // With SIGPIPE at its default, the writer of a closed pipe dies of
        // it (128 + 13) instead of failing with EPIPE.
        let o = env.sh("clean-pipe", "(seq 1000000; echo $? >&2) | head -1")?;
        ensure!(
            o.stdout == "1\n" && o.stderr == "141\n",
            "stdout {:?} stderr {:?}",
            o.stdout,
            o.stderr
        );
        Ok(())
    })();
    // SAFETY: closes the descriptor opened above, owned by nobody else.
    unsafe { libc::close(leaked) };
    result
}

/// CVE-2019-5736 as it is done: from inside a container whose pid 1 is
/// wrun's own executable (`--init`), hold `/proc/1/exe`, make pid 1 exec
/// something else with ptrace, and reopen the handle for writing. The
/// reopen must be refused as read-only (or the file sealed) and the host's
/// binary stay as it was. Without the seal the reopen here fails only with
/// ETXTBSY, because the launcher and the waiting helper still run the
/// binary: luck that a detached container or an OCI `create` does not have,
/// so that answer fails the test too.
fn helper_binary_cannot_be_overwritten(env: &Env) -> Result<(), String> {
    let dir = env.probe("exe_attack")?;
    // The helper the containers run is this test binary.
    let helper = std::env::current_exe().map_err(|e| e.to_string())?;
    let before = fs::read(&helper).map_err(|e| e.to_string())?;
    let o = env.run("exe-attack", |b| {
        b.init(true)
            .volume(Env::probe_volume(&dir))
            .arg("/probe/exe_attack");
    })?;
    let after = fs::read(&helper).map_err(|e| e.to_string())?;
    ensure!(before == after, "the helper binary changed on the host");
    ensure!(
        o.stdout.starts_with("refused: EROFS") || o.stdout.starts_with("sealed"),
        "probe said {:?} {:?} (exit {})",
        o.stdout,
        o.stderr,
        o.status.exit_code()
    );
    Ok(())
}

fn skip_or_fail(reason: &str) -> ExitCode {
    if std::env::var("WRUN_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
        eprintln!("e2e: {reason}, and WRUN_REQUIRE_PRIVILEGED=1: failing");
        ExitCode::FAILURE
    } else {
        println!("e2e: skipped: {reason}");
        ExitCode::SUCCESS
    }
}

fn main() -> ExitCode {
    wrun_native::maybe_init();
    if std::env::var("WRUN_E2E_ROLE").as_deref() == Ok("orphan") {
        return orphan_role();
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return skip_or_fail("not root");
    }
    if !Path::new(BUSYBOX).exists() {
        return skip_or_fail("no static busybox at /bin/busybox (apt-get install busybox-static)");
    }
    // libtest-style arguments (`--nocapture`, `--test-threads`) are ignored;
    // any other argument filters tests by name.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let env = match Env::new() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("e2e: cannot build the test rootfs: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (mut passed, mut failed) = (0, 0);
    for (name, test) in TESTS {
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let started = Instant::now();
        match test(&env) {
            Ok(()) => {
                passed += 1;
                println!("test {name} ... ok ({:.2?})", started.elapsed());
            }
            Err(e) => {
                failed += 1;
                println!("test {name} ... FAILED: {e}");
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
