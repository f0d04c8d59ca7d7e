//! The launcher: prepares the state directory and the cgroup, starts the
//! init helper and hands back the running [`Container`]; the container
//! handle, the terminal and the on-disk state are modules of their own.

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use oci_spec::runtime::Spec;

use super::cgroup::{Cgroup, Hierarchy};
use super::init::INIT_VERB;
use super::proto::{self, CgroupMount, FromHelper, HELPER_FD, InitConfig, ToHelper};
use super::sealed::SealedExe;
use super::seccomp;
use crate::error::{Errno, Error, Result};

mod container;
mod pty;
mod state;

pub use container::{Container, ExitStatus, Signaller};
pub use pty::resize_pty;
pub use state::reap_stale;

use pty::{Pty, open_pty};
use state::{
    Cleanup, SECCOMP_CACHE, State, fits_mount_points, mount_points_layer, start_time, write_state,
};

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

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn ids_are_checked() {
        assert!(check_id("abc-1_2.3").is_ok());
        for bad in ["", "../x", "a/b", ".hidden", "sp ace"] {
            assert!(check_id(bad).is_err(), "{bad}");
        }
    }
}
