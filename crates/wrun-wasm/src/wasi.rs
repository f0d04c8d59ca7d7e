//! A sandbox's grants as a WASI context: the only place that maps wrun's
//! [`Access`] to Wasmtime's [`FsPerms`] and the place that opens granted host
//! directories by name (for `wrun run` and for `wrun-plugin` alike).

use std::path::{Path, PathBuf};

use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};
use wrun_core::{Access, Network, Sandbox};

use crate::error::{BoxedSource, boxed};
use crate::{Error, Input, Job, Output};

/// wrun's access level as Wasmtime's: the one mapping, so upstream renames
/// (such as `DirPerms`/`FilePerms` becoming `FsPerms` in Wasmtime 48) touch
/// one function.
pub fn fs_perms(access: Access) -> FsPerms {
    match access {
        Access::ReadOnly => FsPerms::ReadOnly,
        Access::ReadWrite => FsPerms::ReadWrite,
    }
}

/// A directory grant that could not be given to a guest.
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    /// The path the guest would see is not absolute.
    #[error("guest path `{guest}` is not absolute")]
    NotAbsolute {
        /// The host directory.
        host: PathBuf,
        /// The path as given.
        guest: String,
    },
    /// The host directory could not be opened.
    #[error("cannot grant {} at {guest}", host.display())]
    Open {
        /// The host directory.
        host: PathBuf,
        /// Where the guest would have seen it.
        guest: String,
        /// Why it could not be opened.
        #[source]
        source: BoxedSource,
    },
}

impl From<GrantError> for Error {
    fn from(err: GrantError) -> Error {
        match err {
            GrantError::NotAbsolute { guest, .. } => Error::GuestPath { path: guest },
            GrantError::Open {
                host,
                guest,
                source,
            } => Error::Grant {
                host,
                guest,
                source,
            },
        }
    }
}

/// Adds what `sandbox` grants to `wasi`: its environment, its directories
/// (each at its absolute guest path, with its access) and its network.
/// Limits are not the context's business (see [`MemoryLimiter`](crate::embed::MemoryLimiter)).
///
/// Given a `WasiCtxBuilder::new()`, which grants nothing (no args, no env,
/// no preopens, stdio closed, no sockets), the context then holds exactly
/// the grants; nothing comes from the host process's own environment,
/// arguments or working directory. Without [`Network::Host`] sockets and
/// name lookup are denied explicitly rather than by the builder's defaults,
/// which have changed between Wasmtime releases.
///
/// # Ambient Authority
///
/// Opens each granted host directory by name with the process's authority;
/// the guest then reaches only what lies beneath them (cap-std resolves
/// every guest path inside its preopen, so `..`, absolute paths and
/// symlinks cannot leave it).
pub fn grant(wasi: &mut WasiCtxBuilder, sandbox: &Sandbox) -> Result<(), GrantError> {
    wasi.envs(sandbox.env_vars());
    for dir in sandbox.dirs() {
        if !dir.guest.starts_with('/') {
            return Err(GrantError::NotAbsolute {
                host: dir.host.clone(),
                guest: dir.guest.clone(),
            });
        }
        preopen(wasi, &dir.host, &dir.guest, dir.access)?;
    }
    match sandbox.network_grant() {
        Network::Host => {
            wasi.inherit_network()
                .allow_tcp(true)
                .allow_udp(true)
                .allow_ip_name_lookup(true);
        }
        _ => {
            wasi.allow_tcp(false)
                .allow_udp(false)
                .allow_ip_name_lookup(false)
                .socket_addr_check(|_, _| Box::pin(async { false }));
        }
    }
    Ok(())
}

/// The guest's view of the world, from `job` alone: its argv, working
/// directory, image files and stdio, and its sandbox's [`grant`]s.
///
/// # Ambient Authority
///
/// Opens `job.rootfs` by name with the process's authority (and, through
/// [`grant`], each granted host directory).
pub(crate) fn context(job: &Job) -> Result<WasiCtxBuilder, Error> {
    let mut wasi = WasiCtxBuilder::new();
    // wrun runs guests synchronously on the caller's thread: do file I/O
    // there too rather than hopping to a blocking-pool thread per call.
    wasi.allow_blocking_current_thread(true);

    if job.args.is_empty() {
        wasi.arg(&job.name);
    } else {
        wasi.args(&job.args);
    }

    if let Some(rootfs) = &job.rootfs {
        // Deeper grants are further preopens: wasi-libc resolves a path
        // through the longest matching preopen prefix.
        preopen(&mut wasi, rootfs, "/", Access::ReadOnly)?;
    }
    grant(&mut wasi, &job.sandbox)?;

    if let Some(workdir) = &job.workdir {
        check_absolute(workdir)?;
        // WASI 0.2 guests read it from `wasi:cli/environment.initial-cwd`.
        // WASI preview 1 has no notion of a working directory: wasi-libc
        // starts at "/" and does not read $PWD; $PWD is set for programs that
        // do read it (shells, runtimes of interpreted languages).
        wasi.initial_cwd(workdir);
        if !job.sandbox.env_vars().iter().any(|(k, _)| k == "PWD") {
            wasi.env("PWD", workdir);
        }
    }

    match &job.stdin {
        Input::Null => {}
        Input::Inherit => {
            wasi.inherit_stdin();
        }
        Input::Bytes(bytes) => {
            wasi.stdin(MemoryInputPipe::new(bytes.clone()));
        }
    }
    match &job.stdout {
        Output::Inherit => {
            wasi.inherit_stdout();
        }
        Output::Null => {}
        Output::Capture(capture) => {
            wasi.stdout(capture.pipe.clone());
        }
    }
    match &job.stderr {
        Output::Inherit => {
            wasi.inherit_stderr();
        }
        Output::Null => {}
        Output::Capture(capture) => {
            wasi.stderr(capture.pipe.clone());
        }
    }
    Ok(wasi)
}

fn preopen(
    wasi: &mut WasiCtxBuilder,
    host: &Path,
    guest: &str,
    access: Access,
) -> Result<(), GrantError> {
    wasi.preopened_dir(host, guest, fs_perms(access))
        .map(drop)
        .map_err(|err| GrantError::Open {
            host: host.to_path_buf(),
            guest: guest.to_string(),
            source: boxed(err),
        })
}

fn check_absolute(path: &str) -> Result<(), Error> {
    if path.starts_with('/') {
        Ok(())
    } else {
        Err(Error::GuestPath {
            path: path.to_string(),
        })
    }
}

/// A buffer that collects what the guest writes to stdout or stderr.
///
/// Clones share the buffer: keep one, give the other to a [`Job`], read it
/// with [`Capture::contents`] after the run. Writes beyond `limit` bytes
/// fail in the guest.
#[derive(Debug, Clone)]
pub struct Capture {
    pipe: MemoryOutputPipe,
}

impl Capture {
    /// A buffer holding at most `limit` bytes.
    pub fn new(limit: usize) -> Capture {
        Capture {
            pipe: MemoryOutputPipe::new(limit),
        }
    }

    /// What the guest has written so far.
    pub fn contents(&self) -> Vec<u8> {
        self.pipe.contents().to_vec()
    }
}
