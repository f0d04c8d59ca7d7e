//! The native runtime on operating systems other than Linux: the same API
//! as on Linux, where every entry point says it is unsupported.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{ChildStderr, ChildStdin, ChildStdout, Stdio};

use oci_spec::runtime::Spec;

use crate::error::{Error, Result};

/// The hidden first argument of the init helper.
pub const INIT_VERB: &str = "__wrun-init";

/// Unsupported here: prints so and exits 125.
pub fn init_main() -> ! {
    eprintln!("wrun init: {}", Error::Unsupported);
    std::process::exit(125)
}

/// Calls [`init_main`] if this process was started as the init helper.
pub fn maybe_init() {
    if std::env::args_os().nth(1).is_some_and(|a| a == INIT_VERB) {
        init_main()
    }
}

/// Nothing to reap here.
pub fn reap_stale(_state_root: &Path) -> Result<Vec<String>> {
    Ok(Vec::new())
}

/// Unsupported here.
pub fn resize_pty(_master: &File, _rows: u16, _cols: u16) -> Result<()> {
    Err(Error::Unsupported)
}

/// How a container ended (never constructed here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitStatus {
    _private: (),
}

impl ExitStatus {
    /// The workload's exit code, if it exited.
    pub fn code(&self) -> Option<i32> {
        None
    }

    /// The signal that killed the workload, if one did.
    pub fn signal(&self) -> Option<i32> {
        None
    }

    /// Whether the kernel's OOM killer killed a process of the container.
    pub fn oom_killed(&self) -> bool {
        false
    }

    /// The code `wrun run` exits with.
    pub fn exit_code(&self) -> i32 {
        125
    }
}

/// Starts native containers: unsupported on this operating system.
#[derive(Debug)]
pub struct Launcher {
    _state_root: PathBuf,
}

impl Launcher {
    /// A launcher whose every spawn fails with [`Error::Unsupported`].
    pub fn new(state_root: impl Into<PathBuf>) -> Self {
        Launcher {
            _state_root: state_root.into(),
        }
    }

    /// Ignored here.
    pub fn helper(&mut self, _path: impl Into<PathBuf>) -> &mut Self {
        self
    }

    /// Ignored here.
    pub fn cgroup_root(&mut self, _path: impl Into<PathBuf>) -> &mut Self {
        self
    }

    /// Ignored here.
    pub fn stdin(&mut self, _s: impl Into<Stdio>) -> &mut Self {
        self
    }

    /// Ignored here.
    pub fn stdout(&mut self, _s: impl Into<Stdio>) -> &mut Self {
        self
    }

    /// Ignored here.
    pub fn stderr(&mut self, _s: impl Into<Stdio>) -> &mut Self {
        self
    }

    /// Always fails with [`Error::Unsupported`].
    pub fn prestart(&mut self) -> Result<&mut Self> {
        Err(Error::Unsupported)
    }

    /// Always fails with [`Error::Unsupported`].
    pub fn spawn(&mut self, _id: &str, _spec: &Spec, _layers: &[PathBuf]) -> Result<Container> {
        Err(Error::Unsupported)
    }
}

/// A container (never constructed here).
#[derive(Debug)]
pub struct Container {
    _private: (),
}

/// Sends signals to a container (never constructed here).
#[derive(Debug, Clone)]
pub struct Signaller {
    _private: (),
}

impl Signaller {
    /// Unsupported.
    pub fn signal(&self, _sig: i32) -> Result<()> {
        Err(Error::Unsupported)
    }
}

impl Container {
    /// The container's id.
    pub fn id(&self) -> &str {
        ""
    }

    /// The workload's pid.
    pub fn pid(&self) -> u32 {
        0
    }

    /// Unsupported.
    pub fn signal(&self, _sig: i32) -> Result<()> {
        Err(Error::Unsupported)
    }

    /// A handle that sends signals from another thread.
    pub fn signaller(&self) -> Signaller {
        Signaller { _private: () }
    }

    /// Nothing here.
    pub fn take_stdin(&mut self) -> Option<ChildStdin> {
        None
    }

    /// Nothing here.
    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        None
    }

    /// Nothing here.
    pub fn take_stderr(&mut self) -> Option<ChildStderr> {
        None
    }

    /// Nothing here.
    pub fn take_pty(&mut self) -> Option<File> {
        None
    }

    /// Unsupported.
    pub fn resize(&self, _rows: u16, _cols: u16) -> Result<()> {
        Err(Error::Unsupported)
    }

    /// Unsupported.
    pub fn wait(self) -> Result<ExitStatus> {
        Err(Error::Unsupported)
    }
}
