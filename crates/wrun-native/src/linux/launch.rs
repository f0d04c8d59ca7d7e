//! The launcher: prepares the state directory and the cgroup, starts the
//! init helper and follows the container to its end.

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;

use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

use super::cgroup::{Cgroup, Hierarchy};
use super::init::INIT_VERB;
use super::proto::{self, CgroupMount, FromHelper, HELPER_FD, InitConfig, ToHelper};
use super::sealed::SealedExe;
use super::seccomp;
use crate::error::{Errno, Error, Result};

/// How a container ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitStatus {
    code: Option<i32>,
    signal: Option<i32>,
    oom_killed: bool,
}

impl ExitStatus {
    /// The workload's exit code, if it exited.
    pub fn code(&self) -> Option<i32> {
        self.code
    }

    /// The signal that killed the workload, if one did.
    pub fn signal(&self) -> Option<i32> {
        self.signal
    }

    /// Whether the kernel's OOM killer killed a process of the container.
    pub fn oom_killed(&self) -> bool {
        self.oom_killed
    }

    /// The code `wrun run` exits with: the workload's, or 128+N for signal N.
    pub fn exit_code(&self) -> i32 {
        match (self.code, self.signal) {
            (Some(c), _) => c,
            (None, Some(s)) => 128 + s,
            (None, None) => 125,
        }
    }
}

/// What the state file records, for [`reap_stale`].
#[derive(Debug, Serialize, Deserialize)]
struct State {
    id: String,
    /// The launcher's pid and start time (to tell a reused pid).
    owner_pid: i32,
    owner_start: u64,
    cgroup: Option<Cgroup>,
}

/// Starts native containers.
///
/// Defaults: the init helper is `/proc/self/exe` (the running `wrun`
/// binary, which must call [`maybe_init`](crate::maybe_init) first thing in
/// `main`), cgroups under `/sys/fs/cgroup`, and the container's stdio is
/// this process's.
///
/// The helper is never exec'd from its host path but from a view of it no
/// process can open for writing (a detached read-only overlayfs mount, or a
/// sealed memfd copy), made once per launcher: a container process that
/// gets hold of the helper's `/proc/PID/exe` cannot overwrite the host's
/// binary (CVE-2019-5736).
#[derive(Debug)]
pub struct Launcher {
    state_root: PathBuf,
    helper: PathBuf,
    cgroup_root: PathBuf,
    stdin: Option<Stdio>,
    stdout: Option<Stdio>,
    stderr: Option<Stdio>,
    prestarted: Option<Helper>,
    sealed: Option<SealedExe>,
}

/// An init helper that has been started and waits for its configuration.
#[derive(Debug)]
struct Helper {
    child: Child,
    sock: UnixStream,
}

impl Helper {
    /// Stops a helper that was never given a container.
    fn discard(mut self) {
        // SAFETY: kill has no memory-safety preconditions; the pid is our
        // unreaped child.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

impl Launcher {
    /// A launcher keeping per-container state under `state_root` (e.g.
    /// `<store>/containers`). The container's upper and work directories
    /// live there too, so it must be on a file system overlayfs accepts as
    /// upper (not itself an overlay).
    pub fn new(state_root: impl Into<PathBuf>) -> Self {
        Launcher {
            state_root: state_root.into(),
            helper: PathBuf::from("/proc/self/exe"),
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
            stdin: None,
            stdout: None,
            stderr: None,
            prestarted: None,
            sealed: None,
        }
    }

    /// The executable run as the init helper (it must call
    /// [`maybe_init`](crate::maybe_init)).
    pub fn helper(&mut self, path: impl Into<PathBuf>) -> &mut Self {
        self.discard_prestarted();
        self.sealed = None;
        self.helper = path.into();
        self
    }

    /// Starts the init helper now, so that its start (an exec of the
    /// helper executable) overlaps the caller's work until
    /// [`spawn`](Self::spawn), which then hands it the container. Optional:
    /// `spawn` starts one itself when none is waiting.
    ///
    /// The helper takes the stdio set so far, so set it first. Changing the
    /// helper or any stdio afterwards discards the waiting helper together
    /// with the stdio it took (what is not set again is then inherited);
    /// so does spawning a container with a terminal (whose pty becomes the
    /// stdio), and dropping the launcher.
    pub fn prestart(&mut self) -> Result<&mut Self> {
        if self.prestarted.is_none() {
            self.prestarted = Some(self.start_helper(None)?);
        }
        Ok(self)
    }

    fn discard_prestarted(&mut self) {
        if let Some(h) = self.prestarted.take() {
            h.discard();
        }
    }

    /// Runs the helper executable with the configured stdio (or the pty's
    /// slave side) and its end of a socket pair on fd 3.
    fn start_helper(&mut self, pty: Option<&Pty>) -> Result<Helper> {
        let (ours, theirs) = UnixStream::pair().map_err(|e| Error::SpawnHelper {
            path: self.helper.clone(),
            source: e,
        })?;
        let theirs = OwnedFd::from(theirs);
        let their_fd = theirs.as_raw_fd();
        let exe = self.sealed_helper()?.path();
        let mut cmd = Command::new(exe);
        cmd.arg0("wrun").arg(INIT_VERB).env_clear();
        if let Some(s) = self.stdin.take() {
            cmd.stdin(s);
        }
        if let Some(s) = self.stdout.take() {
            cmd.stdout(s);
        }
        if let Some(s) = self.stderr.take() {
            cmd.stderr(s);
        }
        if let Some(pty) = pty {
            // The terminal replaces whatever stdio was configured.
            let dup = |f: &fs::File| {
                f.try_clone()
                    .map(Stdio::from)
                    .map_err(|e| Error::io("duplicate", &pty.path, e))
            };
            cmd.stdin(dup(&pty.slave)?)
                .stdout(dup(&pty.slave)?)
                .stderr(dup(&pty.slave)?);
        }
        // Fork/exec hazard: the caller may be multi-threaded (a tokio
        // runtime, a Wasm engine), and after fork only async-signal-safe
        // calls are sound in the child. So the child does nothing but put
        // the socket on fd 3 (dup2/fcntl, both async-signal-safe) and exec
        // the helper; every complex step (namespaces, mounts, cgroups) runs
        // in the helper, a fresh single-threaded process.
        // SAFETY: the closure calls only dup2 and fcntl, which are
        // async-signal-safe, and allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                if their_fd == HELPER_FD {
                    let flags = libc::fcntl(HELPER_FD, libc::F_GETFD);
                    if flags < 0
                        || libc::fcntl(HELPER_FD, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0
                    {
                        return Err(io::Error::last_os_error());
                    }
                } else if libc::dup2(their_fd, HELPER_FD) < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| Error::SpawnHelper {
            path: self.helper.clone(),
            source: e,
        })?;
        Ok(Helper { child, sock: ours })
    }

    /// The helper executable, sealed (once per launcher).
    fn sealed_helper(&mut self) -> Result<&SealedExe> {
        let sealed = match self.sealed.take() {
            Some(s) => s,
            None => {
                fs::create_dir_all(&self.state_root)
                    .map_err(|e| Error::io("create", &self.state_root, e))?;
                SealedExe::new(&self.helper, &self.state_root.join(".empty"))?
            }
        };
        Ok(self.sealed.insert(sealed))
    }

    /// Where the cgroup file systems are mounted.
    pub fn cgroup_root(&mut self, path: impl Into<PathBuf>) -> &mut Self {
        self.cgroup_root = path.into();
        self
    }

    /// The workload's stdin (default: inherited). Taken by the next spawn
    /// (or [`prestart`](Self::prestart)).
    pub fn stdin(&mut self, s: impl Into<Stdio>) -> &mut Self {
        self.discard_prestarted();
        self.stdin = Some(s.into());
        self
    }

    /// The workload's stdout (default: inherited). Taken by the next spawn
    /// (or [`prestart`](Self::prestart)).
    pub fn stdout(&mut self, s: impl Into<Stdio>) -> &mut Self {
        self.discard_prestarted();
        self.stdout = Some(s.into());
        self
    }

    /// The workload's stderr (default: inherited). Taken by the next spawn
    /// (or [`prestart`](Self::prestart)).
    pub fn stderr(&mut self, s: impl Into<Stdio>) -> &mut Self {
        self.discard_prestarted();
        self.stderr = Some(s.into());
        self
    }

    /// Creates and starts container `id` from `spec` on the unpacked
    /// `layers` (bottom first). Returns once the workload has been exec'd,
    /// or with the error of the set-up step that failed (and nothing left
    /// behind).
    ///
    /// # Ambient Authority
    /// Creates the state directory (and its seccomp cache) and cgroup by
    /// path, reads the host's /etc/resolv.conf, and runs the helper
    /// executable.
    pub fn spawn(&mut self, id: &str, spec: &Spec, layers: &[PathBuf]) -> Result<Container> {
        check_id(id)?;
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err(Error::Rootless);
        }
        if layers.is_empty() {
            return Err(Error::invalid("the image has no layers"));
        }
        check_supported(spec)?;
        // Compiled here (once per profile, see `seccomp`), so the helper
        // only installs it.
        let seccomp = match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
            Some(profile) => Some(seccomp::compile_cached(
                profile,
                &self.state_root.join(SECCOMP_CACHE),
            )?),
            None => None,
        };
        for l in layers {
            let s = l.to_string_lossy();
            if !l.is_absolute() || s.contains(':') || s.contains(',') {
                return Err(Error::invalid(format!(
                    "layer path {s} must be absolute, without ':' or ','"
                )));
            }
            if !l.is_dir() {
                return Err(Error::invalid(format!("layer {s} is not a directory")));
            }
        }
        fs::create_dir_all(&self.state_root)
            .map_err(|e| Error::io("create", &self.state_root, e))?;
        let mut layers = layers.to_vec();
        if fits_mount_points(&layers) {
            layers.push(mount_points_layer(&self.state_root)?);
        }
        let dir = self.state_root.join(id);
        fs::create_dir(&dir).map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                Error::invalid(format!("a container named {id} already exists"))
            } else {
                Error::io("create", &dir, e)
            }
        })?;
        let mut guard = Cleanup {
            dir: Some(dir.clone()),
            cgroup: None,
        };
        let mut state = State {
            id: id.to_string(),
            owner_pid: std::process::id() as i32,
            owner_start: start_time(std::process::id() as i32).unwrap_or(0),
            cgroup: None,
        };
        write_state(&dir, &state)?;
        for sub in ["upper", "work", "merged"] {
            let p = dir.join(sub);
            fs::create_dir(&p).map_err(|e| Error::io("create", &p, e))?;
        }

        let spec = spec.clone();
        let etc_files = etc_files(&spec);

        let hierarchy = Hierarchy::detect(&self.cgroup_root);
        let linux = spec.linux().clone().unwrap_or_default();
        let rel = linux
            .cgroups_path()
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("wrun/{id}")));
        let rel = rel.strip_prefix("/").unwrap_or(&rel).to_path_buf();
        // runc's default device rules follow the spec's, as runc appends
        // them: an engine (podman) may leave them to the runtime, and
        // without them not even /dev/null would open.
        let mut resources = linux.resources().clone().unwrap_or_default();
        let mut rules = resources.devices().clone().unwrap_or_default();
        rules.extend(crate::device::allowed_device_rules());
        resources.set_devices(Some(rules));
        let cgroup = Cgroup::create(&hierarchy, &rel, Some(&resources))?;
        guard.cgroup = Some(cgroup.clone());
        state.cgroup = Some(cgroup.clone());
        write_state(&dir, &state)?;
        let cgroup_mount = match &hierarchy {
            Hierarchy::V2 { .. } => CgroupMount::V2,
            Hierarchy::V1 { controllers } => CgroupMount::V1(
                controllers
                    .iter()
                    .filter_map(|(_, mount)| {
                        let real = fs::canonicalize(mount).unwrap_or_else(|_| mount.clone());
                        real.file_name().map(|n| n.to_string_lossy().into_owned())
                    })
                    .collect(),
            ),
        };

        let terminal = spec
            .process()
            .as_ref()
            .and_then(|p| p.terminal())
            .unwrap_or(false);
        let pty = if terminal {
            let size = spec.process().as_ref().and_then(|p| p.console_size());
            Some(open_pty(
                size.map(|b| (b.height() as u16, b.width() as u16)),
            )?)
        } else {
            None
        };

        let prestarted = self.prestarted.take();
        let Helper {
            mut child,
            sock: ours,
        } = match prestarted {
            Some(h) if pty.is_none() => h,
            other => {
                if let Some(h) = other {
                    h.discard();
                }
                self.start_helper(pty.as_ref())?
            }
        };

        let config = ToHelper::Config(Box::new(InitConfig {
            id: id.to_string(),
            spec,
            layers,
            state_dir: dir.clone(),
            cgroup_join: cgroup.join_files(),
            cgroup_mount,
            console: pty.as_ref().map(|p| p.path.clone()),
            etc_files,
            seccomp,
        }));
        let started = proto::send(&ours, &config)
            .map_err(|e| Error::Protocol {
                reason: format!("send the configuration: {e}"),
            })
            .and_then(|()| {
                proto::recv::<_, FromHelper>(&ours).map_err(|e| Error::Protocol {
                    reason: format!("read the set-up result: {e}"),
                })
            });
        let pid = match started {
            Ok(Some(FromHelper::Started(pid))) => pid,
            other => {
                drop(ours);
                let status = child.wait();
                return Err(match other {
                    Ok(Some(FromHelper::Failed(f))) => match f.exec {
                        Some(path) => Error::Exec {
                            path,
                            source: Errno(f.errno),
                        },
                        None => Error::Setup {
                            step: f.step,
                            source: Errno(f.errno),
                        },
                    },
                    Err(e) => e,
                    _ => Error::Protocol {
                        reason: format!(
                            "exited before the container started ({})",
                            status.map_or_else(|e| e.to_string(), |s| s.to_string())
                        ),
                    },
                });
            }
        };
        guard.disarm();
        Ok(Container {
            id: id.to_string(),
            dir,
            pty: pty.map(|p| p.master),
            child: Some(child),
            sock: Arc::new(ours),
            pid,
            cgroup,
        })
    }
}

impl Drop for Launcher {
    fn drop(&mut self) {
        self.discard_prestarted();
    }
}

/// A running container. Dropping it without [`wait`](Self::wait) kills
/// the container and cleans up.
#[derive(Debug)]
pub struct Container {
    id: String,
    dir: PathBuf,
    pty: Option<fs::File>,
    child: Option<Child>,
    sock: Arc<UnixStream>,
    pid: i32,
    cgroup: Cgroup,
}

/// Sends signals to a container from another thread (e.g. the CLI's
/// signal-forwarding thread, or a timeout).
#[derive(Debug, Clone)]
pub struct Signaller {
    sock: Arc<UnixStream>,
}

impl Signaller {
    /// Sends signal `sig` to the container's pid 1.
    pub fn signal(&self, sig: i32) -> Result<()> {
        send_signal(&self.sock, sig)
    }
}

fn send_signal(sock: &UnixStream, sig: i32) -> Result<()> {
    proto::send(sock, &ToHelper::Signal(sig)).map_err(|e| Error::Protocol {
        reason: format!("send signal {sig}: {e}"),
    })
}

impl Container {
    /// The container's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The workload's pid, as seen from this process's pid namespace.
    pub fn pid(&self) -> u32 {
        self.pid as u32
    }

    /// Sends signal `sig` to the container's pid 1. As for any pid 1, the
    /// kernel drops signals the workload has no handler for, except
    /// SIGKILL and SIGSTOP.
    ///
    /// The library installs no signal handler: a CLI that wants SIGINT,
    /// SIGTERM and SIGHUP forwarded installs its own and calls this (or a
    /// [`Signaller`]).
    pub fn signal(&self, sig: i32) -> Result<()> {
        send_signal(&self.sock, sig)
    }

    /// A handle that sends signals from another thread.
    pub fn signaller(&self) -> Signaller {
        Signaller {
            sock: Arc::clone(&self.sock),
        }
    }

    /// The write end of the workload's stdin, when it was `Stdio::piped()`.
    pub fn take_stdin(&mut self) -> Option<ChildStdin> {
        self.child.as_mut().and_then(|c| c.stdin.take())
    }

    /// The read end of the workload's stdout, when it was `Stdio::piped()`.
    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.child.as_mut().and_then(|c| c.stdout.take())
    }

    /// The read end of the workload's stderr, when it was `Stdio::piped()`.
    pub fn take_stderr(&mut self) -> Option<ChildStderr> {
        self.child.as_mut().and_then(|c| c.stderr.take())
    }

    /// The master side of the workload's terminal, when the spec asked for
    /// one (`process.terminal`). The caller copies between it and its own
    /// terminal (in raw mode); reads fail with EIO once the workload ends.
    pub fn take_pty(&mut self) -> Option<fs::File> {
        self.pty.take()
    }

    /// Sets the terminal's size (on SIGWINCH, say). A no-op without a
    /// terminal or after [`take_pty`](Self::take_pty) (resize the taken
    /// file with [`resize_pty`]).
    pub fn resize(&self, rows: u16, cols: u16) -> Result<()> {
        match &self.pty {
            Some(m) => resize_pty(m, rows, cols),
            None => Ok(()),
        }
    }

    /// Waits for the workload to end, then removes the container (its
    /// cgroup, upper layer and state directory).
    pub fn wait(mut self) -> Result<ExitStatus> {
        let mut status = None;
        loop {
            match proto::recv::<_, FromHelper>(&*self.sock) {
                Ok(Some(FromHelper::Exited(c))) => {
                    status = Some((Some(c), None));
                    break;
                }
                Ok(Some(FromHelper::Signaled(s))) => {
                    status = Some((None, Some(s)));
                    break;
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let helper = self.child.take().map(|mut c| c.wait());
        let oom_killed = self.cgroup.oom_kills() > 0;
        let cleanup = self.cleanup();
        let (code, signal) = match status {
            Some(s) => s,
            None => {
                return Err(Error::Protocol {
                    reason: format!(
                        "exited without the workload's status ({})",
                        match helper {
                            Some(Ok(s)) => s.to_string(),
                            Some(Err(e)) => e.to_string(),
                            None => "not started".into(),
                        }
                    ),
                });
            }
        };
        cleanup?;
        Ok(ExitStatus {
            code,
            signal,
            oom_killed,
        })
    }

    fn cleanup(&mut self) -> Result<()> {
        let mut guard = Cleanup {
            dir: Some(self.dir.clone()),
            cgroup: Some(self.cgroup.clone()),
        };
        guard.run()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = send_signal(&self.sock, libc::SIGKILL);
            let _ = self.sock.shutdown(std::net::Shutdown::Both);
            let _ = child.wait();
            let _ = self.cleanup();
        }
    }
}

/// Sets the window size of a terminal (a pty master from
/// [`Container::take_pty`]).
pub fn resize_pty(master: &fs::File, rows: u16, cols: u16) -> Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize that lives across the call.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) } < 0 {
        return Err(Error::io("resize", "pty", io::Error::last_os_error()));
    }
    Ok(())
}

struct Pty {
    master: fs::File,
    slave: fs::File,
    path: PathBuf,
}

fn open_pty(size: Option<(u16, u16)>) -> Result<Pty> {
    let ptmx = Path::new("/dev/ptmx");
    let err = |e: io::Error| Error::io("open", ptmx, e);
    // SAFETY: posix_openpt takes flags and returns a new fd or -1.
    let fd = unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(err(io::Error::last_os_error()));
    }
    // SAFETY: posix_openpt returned a new fd we own.
    let master = fs::File::from(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) });
    // SAFETY: plain calls on the valid master fd.
    if unsafe { libc::grantpt(fd) } != 0 || unsafe { libc::unlockpt(fd) } != 0 {
        return Err(err(io::Error::last_os_error()));
    }
    let mut buf = [0 as libc::c_char; 128];
    // SAFETY: `buf` is a writable buffer of the length given.
    if unsafe { libc::ptsname_r(fd, buf.as_mut_ptr(), buf.len()) } != 0 {
        return Err(err(io::Error::last_os_error()));
    }
    // SAFETY: ptsname_r NUL-terminated the name in `buf`.
    let name = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
    let path = PathBuf::from(std::ffi::OsStr::from_bytes(name.to_bytes()));
    let slave = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(&path)
        .map_err(|e| Error::io("open", &path, e))?;
    if let Some((rows, cols)) = size {
        resize_pty(&master, rows, cols)?;
    }
    Ok(Pty {
        master,
        slave,
        path,
    })
}

/// Removes what a container left: its cgroup (killing what is still in it),
/// mounts under its state directory, and the directory.
struct Cleanup {
    dir: Option<PathBuf>,
    cgroup: Option<Cgroup>,
}

impl Cleanup {
    fn disarm(&mut self) {
        self.dir = None;
        self.cgroup = None;
    }

    fn run(&mut self) -> Result<()> {
        let mut first = Ok(());
        if let Some(cg) = self.cgroup.take() {
            cg.kill_all();
            if let Err(e) = cg.remove() {
                first = Err(e);
            }
        }
        if let Some(dir) = self.dir.take() {
            unmount_under(&dir);
            if let Err(e) = fs::remove_dir_all(&dir)
                && e.kind() != io::ErrorKind::NotFound
                && first.is_ok()
            {
                first = Err(Error::io("remove", &dir, e));
            }
        }
        first
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = self.run();
    }
}

/// Lazily unmounts every mount at or below `dir` in this mount namespace
/// (normally none: container mounts live in the container's namespace),
/// so removing the directory can never reach through a mount.
fn unmount_under(dir: &Path) {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mountinfo)
        .filter(|p| p.starts_with(dir))
        .collect();
    // Deepest first.
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for p in points {
        let c = super::rootfs::cstr(&p);
        // SAFETY: valid NUL-terminated path.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}

fn unescape_mountinfo(s: &str) -> PathBuf {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    use std::os::unix::ffi::OsStringExt;
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

/// Refuses what the spec asks for and this runtime cannot do yet, rather
/// than ignoring it.
fn check_supported(spec: &Spec) -> Result<()> {
    let unsupported = |what: &str| Err(Error::invalid(format!("{what} is not supported yet")));
    if spec.hooks().is_some() {
        return unsupported("hooks");
    }
    if spec.process().is_none() {
        return Err(Error::invalid("the spec has no process"));
    }
    if let Some(p) = spec.process() {
        if p.apparmor_profile()
            .as_deref()
            .is_some_and(|a| !a.is_empty())
        {
            return unsupported("an AppArmor profile");
        }
        if p.selinux_label().as_deref().is_some_and(|a| !a.is_empty()) {
            return unsupported("an SELinux label");
        }
    }
    if let Some(l) = spec.linux() {
        for d in l.devices().as_deref().unwrap_or_default() {
            use oci_spec::runtime::LinuxDeviceType as T;
            let path = d.path();
            let ok_path = path.is_absolute() && path != Path::new("/");
            let ok_type = matches!(d.typ(), T::C | T::U | T::B | T::P);
            let ok_numbers = u32::try_from(d.major()).is_ok() && u32::try_from(d.minor()).is_ok();
            if !(ok_path && ok_type && ok_numbers) {
                return Err(Error::invalid(format!(
                    "linux.devices entry {}: needs an absolute path, a type of c, u, b or p, and numbers from 0 to 2^32-1",
                    path.display()
                )));
            }
        }
        if l.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
            || l.gid_mappings().as_ref().is_some_and(|m| !m.is_empty())
        {
            return unsupported("a user namespace (uid/gid mappings)");
        }
        if l.personality().is_some() || l.intel_rdt().is_some() {
            return unsupported("linux.personality or linux.intelRdt");
        }
        let namespaces = l.namespaces().clone().unwrap_or_default();
        let has = |t| namespaces.iter().any(|n| n.typ() == t);
        for key in l
            .sysctl()
            .as_ref()
            .map(|s| s.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            let ok = if key.starts_with("net.") {
                has(oci_spec::runtime::LinuxNamespaceType::Network)
            } else if key.starts_with("kernel.msg")
                || key.starts_with("kernel.shm")
                || key == "kernel.sem"
                || key.starts_with("fs.mqueue.")
            {
                has(oci_spec::runtime::LinuxNamespaceType::Ipc)
            } else if key == "kernel.domainname" || key == "kernel.hostname" {
                has(oci_spec::runtime::LinuxNamespaceType::Uts)
            } else {
                false
            };
            if !ok {
                return Err(Error::invalid(format!(
                    "sysctl {key} is not namespaced by this container: it would change the host"
                )));
            }
        }
    }
    Ok(())
}

/// The shared read-only layer, under the state root, that every container
/// whose image allows it gets on top of the image's layers: the mount
/// points the runtime mounts over (/proc, /sys, /dev, /etc/hosts,
/// /etc/hostname, /etc/resolv.conf). Without it, an image that lacks them
/// makes each container create them in its upper directory (a copy-up that
/// costs inodes to create and remove at every start), as docker's
/// per-container init layer does. Container ids never start with `.`.
const MOUNT_POINTS: &str = ".mount-points";
/// Compiled seccomp programs, by digest of libseccomp's version and the
/// profile (see `seccomp::compile_cached`).
const SECCOMP_CACHE: &str = ".seccomp";
const MOUNT_POINT_DIRS: [(&str, u32); 4] = [
    ("proc", 0o555),
    ("sys", 0o555),
    ("dev", 0o755),
    ("etc", 0o755),
];
const MOUNT_POINT_FILES: [&str; 3] = ["etc/hosts", "etc/hostname", "etc/resolv.conf"];

/// Whether the mount-point layer can sit on `layers` without changing what
/// the image shows. Overlayfs shows a directory with the attributes of the
/// topmost layer that has it, so each of the layer's directories that an
/// image layer also has must be there as the same directory (root's, same
/// mode); its files must be regular files (they are mounted over, so their
/// attributes do not show). Anything else (a symlinked /etc, an /etc of
/// another mode) keeps the image as it is.
fn fits_mount_points(layers: &[PathBuf]) -> bool {
    use std::os::unix::fs::MetadataExt;
    layers.iter().all(|l| {
        let dirs = MOUNT_POINT_DIRS.iter().all(|(d, mode)| {
            l.join(d).symlink_metadata().map_or(true, |m| {
                m.is_dir() && m.uid() == 0 && m.gid() == 0 && m.mode() & 0o7777 == *mode
            })
        });
        let files = MOUNT_POINT_FILES
            .iter()
            .all(|f| l.join(f).symlink_metadata().map_or(true, |m| m.is_file()));
        dirs && files
    })
}

/// The mount-point layer, made once per state root: built aside and renamed
/// into place, so a concurrent start sees it whole or not at all. Modes are
/// set explicitly (the process umask is not ours to rely on).
fn mount_points_layer(state_root: &Path) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let dir = state_root.join(MOUNT_POINTS);
    if dir.is_dir() {
        return Ok(dir);
    }
    let tmp = state_root.join(format!("{MOUNT_POINTS}.{}", std::process::id()));
    let build = || -> io::Result<()> {
        if tmp.exists() {
            fs::remove_dir_all(&tmp)?;
        }
        fs::create_dir(&tmp)?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755))?;
        for (d, mode) in MOUNT_POINT_DIRS {
            fs::create_dir(tmp.join(d))?;
            fs::set_permissions(tmp.join(d), fs::Permissions::from_mode(mode))?;
        }
        for f in MOUNT_POINT_FILES {
            fs::write(tmp.join(f), "")?;
            fs::set_permissions(tmp.join(f), fs::Permissions::from_mode(0o644))?;
        }
        fs::rename(&tmp, &dir)
    };
    match build() {
        Ok(()) => Ok(dir),
        // Another start renamed its copy first.
        Err(_) if dir.is_dir() => {
            let _ = fs::remove_dir_all(&tmp);
            Ok(dir)
        }
        Err(e) => {
            let _ = fs::remove_dir_all(&tmp);
            Err(Error::io("create", &dir, e))
        }
    }
}

fn check_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "container id {id:?} must be 1-128 of [A-Za-z0-9_.-]"
        )))
    }
}

fn write_state(dir: &Path, state: &State) -> Result<()> {
    let tmp = dir.join("state.json.tmp");
    let path = dir.join("state.json");
    let body =
        serde_json::to_vec(state).map_err(|e| Error::io("write", &tmp, io::Error::other(e)))?;
    fs::write(&tmp, body).map_err(|e| Error::io("write", &tmp, e))?;
    fs::rename(&tmp, &path).map_err(|e| Error::io("rename", &path, e))
}

/// A process's start time in clock ticks since boot (field 22 of
/// /proc/PID/stat), to tell a live owner from a reused pid.
fn start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

/// The contents of /etc/hostname, /etc/hosts and /etc/resolv.conf, for the
/// helper to bind into the container, except those the spec mounts itself.
fn etc_files(spec: &Spec) -> Vec<(PathBuf, String)> {
    let hostname = spec.hostname().clone().unwrap_or_default();
    let host_network = !spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default()
        .iter()
        .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::Network);
    let hosts = if host_network {
        fs::read_to_string("/etc/hosts").unwrap_or_default()
    } else {
        String::new()
    };
    let hosts = if hosts.is_empty() {
        format!(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname}\n"
        )
    } else {
        hosts
    };
    let resolv = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let files = [
        ("hostname", format!("{hostname}\n")),
        ("hosts", hosts),
        ("resolv.conf", resolv),
    ];
    let mounts = spec.mounts().clone().unwrap_or_default();
    files
        .into_iter()
        .map(|(name, body)| (PathBuf::from("/etc").join(name), body))
        .filter(|(dest, _)| !mounts.iter().any(|m| m.destination() == dest))
        .collect()
}

/// Removes the state of containers whose launcher is gone (a `wrun` that
/// was SIGKILLed): kills what is left in their cgroups, removes the
/// cgroups, unmounts leftovers and removes their directories. Returns the
/// ids reaped. The CLI calls this at start.
///
/// # Ambient Authority
/// Reads and removes directories under `state_root` by path.
pub fn reap_stale(state_root: &Path) -> Result<Vec<String>> {
    let mut reaped = Vec::new();
    let entries = match fs::read_dir(state_root) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(reaped),
        Err(e) => return Err(Error::io("read", state_root, e)),
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        if !dir.is_dir() || entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let state: Option<State> = fs::read(dir.join("state.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let stale = match &state {
            Some(s) => {
                let alive = start_time(s.owner_pid).is_some_and(|t| t == s.owner_start);
                !alive
            }
            // A directory without state is either being created this very
            // moment or abandoned: give it a minute.
            None => entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age.as_secs() > 60),
        };
        if !stale {
            continue;
        }
        let mut cleanup = Cleanup {
            dir: Some(dir.clone()),
            cgroup: state.as_ref().and_then(|s| s.cgroup.clone()),
        };
        cleanup.run()?;
        reaped.push(entry.file_name().to_string_lossy().into_owned());
    }
    Ok(reaped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_point_layer_only_where_it_changes_nothing_the_image_shows() {
        use std::os::unix::fs::{PermissionsExt, symlink};
        let tmp = tempfile::tempdir().expect("tempdir");
        let layer = |name: &str, build: &dyn Fn(&Path)| {
            let l = tmp.path().join(name);
            fs::create_dir_all(&l).expect("layer");
            build(&l);
            l
        };
        let mkdir = |p: PathBuf, mode: u32| {
            fs::create_dir_all(&p).expect("mkdir");
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).expect("chmod");
        };
        let empty = layer("empty", &|_| {});
        let etc_0775 = layer("etc-0775", &|l| mkdir(l.join("etc"), 0o775));
        let etc_link = layer("etc-link", &|l| {
            symlink("usr/etc", l.join("etc")).expect("ln")
        });
        let hosts_dir = layer("hosts-dir", &|l| mkdir(l.join("etc/hosts"), 0o755));
        let plain = layer("plain", &|l| {
            mkdir(l.join("etc"), 0o755);
            mkdir(l.join("proc"), 0o555);
            fs::write(l.join("etc/hosts"), "x").expect("hosts");
        });

        assert!(fits_mount_points(std::slice::from_ref(&empty)));
        assert!(
            !fits_mount_points(&[empty.clone(), etc_0775]),
            "another mode"
        );
        assert!(!fits_mount_points(&[etc_link]), "a symlinked /etc");
        assert!(!fits_mount_points(&[hosts_dir]), "/etc/hosts a directory");
        // Root's directories of the same modes (the files are root's only
        // when the test runs as root).
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            assert!(fits_mount_points(&[empty, plain]));
        } else {
            assert!(!fits_mount_points(&[empty, plain]), "not root's");
        }
    }

    #[test]
    fn exit_codes_follow_the_shell() {
        let s = |code, signal| ExitStatus {
            code,
            signal,
            oom_killed: false,
        };
        assert_eq!(s(Some(3), None).exit_code(), 3);
        assert_eq!(s(None, Some(9)).exit_code(), 137);
        assert_eq!(s(None, Some(15)).exit_code(), 143);
    }

    #[test]
    fn ids_are_checked() {
        assert!(check_id("abc-1_2.3").is_ok());
        for bad in ["", "../x", "a/b", ".hidden", "sp ace"] {
            assert!(check_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mountinfo_paths_are_unescaped() {
        assert_eq!(unescape_mountinfo("/a\\040b"), PathBuf::from("/a b"));
    }

    #[test]
    fn stale_state_of_a_dead_owner_is_reaped() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let live = tmp.path().join("live");
        let dead = tmp.path().join("dead");
        fs::create_dir_all(live.join("upper")).expect("mkdir");
        fs::create_dir_all(dead.join("upper/etc")).expect("mkdir");
        let me = std::process::id() as i32;
        write_state(
            &live,
            &State {
                id: "live".into(),
                owner_pid: me,
                owner_start: start_time(me).expect("start time"),
                cgroup: None,
            },
        )
        .expect("state");
        write_state(
            &dead,
            &State {
                id: "dead".into(),
                owner_pid: me,
                owner_start: 1,
                cgroup: None,
            },
        )
        .expect("state");
        let reaped = reap_stale(tmp.path()).expect("reap");
        assert_eq!(reaped, vec!["dead".to_string()]);
        assert!(live.exists() && !dead.exists());
    }
}
