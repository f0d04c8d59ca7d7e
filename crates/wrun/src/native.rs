//! Launching a native workload: a runtime spec built from the image config
//! and the launch spec, run by `wrun-native` on the image's shared layers.

use crate::{Error, Exit, Runner};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;
use wrun_core::{LaunchSpec, Seccomp};
use wrun_image::ImageRecord;
use wrun_native::{Container, Device, SeccompPolicy, SpecBuilder, Tmpfs, Volume};

/// A running native container.
#[derive(Debug)]
pub struct Running {
    container: Container,
    timeout: Option<Watchdog>,
}

#[derive(Debug)]
struct Watchdog {
    stop: mpsc::Sender<()>,
    fired: Arc<AtomicBool>,
    after: Duration,
}

impl Running {
    pub(crate) fn wait(self) -> Result<Exit, Error> {
        let status = self.container.wait()?;
        if let Some(w) = self.timeout {
            let _ = w.stop.send(());
            if w.fired.load(Ordering::SeqCst) {
                return Err(Error::Timeout { after: w.after });
            }
        }
        Ok(Exit {
            code: status.exit_code(),
            oom_killed: status.oom_killed(),
            compiled: None,
        })
    }

    pub(crate) fn take_terminal(&mut self) -> Option<std::fs::File> {
        self.container.take_pty()
    }

    pub(crate) fn signaller(&self) -> wrun_native::Signaller {
        self.container.signaller()
    }

    pub(crate) fn signal(&self, sig: i32) -> Result<(), Error> {
        Ok(self.container.signal(sig)?)
    }
}

fn container_id() -> String {
    let mut bytes = [0u8; 8];
    let filled = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .is_ok();
    if !filled {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        bytes = ((nanos as u64) ^ u64::from(std::process::id()).rotate_left(32)).to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn start(
    runner: &Runner,
    spec: &LaunchSpec,
    record: &ImageRecord,
) -> Result<Running, Error> {
    let store = runner.store();
    let state_root = store.root().join("containers");
    let mut launcher = wrun_native::Launcher::new(state_root.clone());
    if let Some(h) = &runner.helper {
        launcher.helper(h.clone());
    }
    if !spec.stdin && !spec.tty {
        launcher.stdin(std::process::Stdio::null());
    }
    if !spec.tty {
        // The helper's exec overlaps building the runtime spec; a helper
        // that fails to start here is started (and reported) by spawn.
        let _ = launcher.prestart();
    }
    let defaults = wrun_image::program::defaults(store, record)?;
    // The image's files are opened only to look a user up.
    let identity = match spec.user.as_deref().or(defaults.user.as_deref()) {
        Some(u) => wrun_image::LayerStack::open(store, record)?.identity(u)?,
        None => wrun_core::Identity::root(),
    };
    let mut b = SpecBuilder::new();
    b.args(defaults.argv(spec.entrypoint.as_deref(), &spec.args))
        .identity(identity);
    for (k, v) in defaults.env(spec.sandbox.env_vars()) {
        b.env(k, v);
    }
    if let Some(w) = defaults.working_dir(spec.workdir.as_deref()) {
        b.workdir(w);
    }
    if let Some(h) = &spec.hostname {
        b.hostname(h.clone());
    }
    for d in spec.sandbox.dirs() {
        b.volume(Volume {
            host: d.host.clone(),
            container: d.guest.clone(),
            access: d.access,
        });
    }
    for t in &spec.tmpfs {
        b.tmpfs(Tmpfs::parse(t)?);
    }
    for d in &spec.devices {
        b.device(Device::parse(d)?);
    }
    let limits = spec.sandbox.limit_values();
    b.limits(limits)
        .network(spec.sandbox.network_grant())
        .read_only(spec.read_only)
        .privileged(spec.privileged)
        .tty(spec.tty)
        .init(spec.init)
        .seccomp(match &spec.seccomp {
            Seccomp::Default => SeccompPolicy::Default,
            Seccomp::Unconfined => SeccompPolicy::Unconfined,
            Seccomp::Profile(p) => SeccompPolicy::Profile(p.clone()),
        });
    for c in &spec.cap_add {
        b.cap_add(c.clone());
    }
    for c in &spec.cap_drop {
        b.cap_drop(c.clone());
    }
    if let Some((rows, cols)) = spec.terminal_size {
        b.console_size(rows, cols);
    }
    let layers = store.layer_paths(record);
    let id = container_id();
    let oci = b.build(&id)?;
    // Remove what a SIGKILLed wrun left behind (its state directory,
    // cgroup and mounts); a failure here must not stop this run.
    let _ = wrun_native::reap_stale(&state_root);
    let container = launcher.spawn(&id, &oci, &layers)?;
    let timeout = limits.timeout.map(|after| {
        let (stop, rx) = mpsc::channel::<()>();
        let fired = Arc::new(AtomicBool::new(false));
        let signaller = container.signaller();
        let flag = Arc::clone(&fired);
        std::thread::spawn(move || {
            // This thread only waits: a signal sent to the process (a
            // SIGINT the caller forwards to the container, say) must go to
            // one of the caller's threads, never here, where its default
            // action would end the caller.
            block_signals_in_this_thread();
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(after) {
                flag.store(true, Ordering::SeqCst);
                let _ = signaller.signal(libc::SIGKILL);
            }
        });
        Watchdog { stop, fired, after }
    });
    Ok(Running { container, timeout })
}

/// Blocks every signal the caller may want in the calling thread (a thread
/// of this library's own); the process's other threads are untouched.
fn block_signals_in_this_thread() {
    // SAFETY: `set` is a local sigset_t that sigfillset initialises before
    // pthread_sigmask reads it; the mask changed is this thread's own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}
