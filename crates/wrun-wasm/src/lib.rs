//! The Wasm half of `wrun run`: runs a WebAssembly core module (as a WASI
//! preview 1 command) or component (as a WASI 0.2 `wasi:cli/command`) in a
//! Wasmtime sandbox that grants exactly what a [`wrun_core::Sandbox`] says.
//!
//! ```no_run
//! use wrun_core::{Access, Sandbox};
//! use wrun_wasm::{Config, Job, Payload, WasmRuntime};
//!
//! # fn main() -> Result<(), wrun_wasm::Error> {
//! let runtime = WasmRuntime::new(Config {
//!     cache_dir: Some("/var/lib/wrun/cache/wasm".into()),
//!     debug: false,
//! })?;
//! let mut job = Job::new("tool.wasm", Payload::File("tool.wasm".into()));
//! job.args.push("--help".into());
//! job.sandbox.dir("/srv/data", "/data", Access::ReadOnly);
//! let outcome = runtime.run(&job)?;
//! std::process::exit(outcome.exit_code);
//! # }
//! ```
//!
//! # Why the seam looks like this
//!
//! - **One call, plain data.** A [`Job`] is a value (payload, argv, grants,
//!   stdio) and [`WasmRuntime::run`] returns when the guest is done. The
//!   facade crate maps an image to a `Job`; host apps can build one directly.
//! - **No Wasmtime type in a public signature** outside [`embed`]. Wasmtime
//!   changes its API in most releases (`preview2` → `p2`,
//!   `DirPerms`/`FilePerms` → `FsPerms`); keeping it private means an
//!   upgrade touches this crate (and `wrun-plugin`, the one embedder of
//!   [`embed`]) only.
//! - **Exits are outcomes, faults are errors.** Whatever code the guest exits
//!   with is [`Outcome::exit_code`]; a trap, a timeout or fuel exhaustion is a
//!   typed [`Error`] so the caller picks the exit code (the CLI's choice, for
//!   example 134 for a trap like a native `SIGABRT`, is not made here).
//! - **The runtime is long-lived.** [`WasmRuntime`] owns the engines and
//!   linkers; build it once and call `run` many times, from many threads.
//! - **Startup is the product.** Compiled code is cached per payload digest
//!   and engine settings, checked for integrity before it is trusted.
//! - **No process-wide state.** Nothing here reads or changes the process's
//!   environment, working directory, umask or signal handlers, so the crate
//!   can live inside a host application. (Wasmtime itself installs its trap
//!   handlers once per process, as every embedding of it does.)
//!
//! # What a guest can reach
//!
//! Only what its job grants: `rootfs` read-only at `/`, each
//! [`wrun_core::DirGrant`] at its guest path with its access, the sandbox's
//! environment (none of the host's), stdin only when asked, the host network
//! only with [`wrun_core::Network::Host`]. Paths are resolved by cap-std
//! inside each granted directory, so `..`, absolute paths and symlinks
//! cannot leave it.
//!
//! # Limits
//!
//! - `memory`: the total linear memory of the guest's instances; growth past
//!   it fails inside the guest (`memory.grow` returns -1, `malloc` returns
//!   NULL), it does not trap.
//! - `timeout`: wall-clock time; the guest is interrupted at its next loop
//!   iteration or call and the run fails with [`Error::Timeout`]. A guest
//!   blocked inside a host call (reading stdin, sleeping) is interrupted
//!   only when it returns to Wasm code; the `wrun` crate's launcher stops
//!   waiting for such a guest a second after its timeout and reports it.
//! - `pids`, `cpus`, `cpu_shares`, `memory_swap`: native only; a job that
//!   sets one is refused with [`Error::Unsupported`].
//! - `fuel`: Wasm instructions, roughly; running out is
//!   [`Error::FuelExhausted`]. Fuel metering needs differently compiled
//!   code, so such jobs use a second engine, created on first use.
//!
//! # Working directory
//!
//! `workdir` must be absolute. WASI 0.2 guests see it as
//! `wasi:cli/environment.initial-cwd`, and every guest gets `PWD` set to it
//! (unless the sandbox sets `PWD`). WASI preview 1 has no working
//! directory: wasi-libc starts at `/` and does not read `PWD`, so a preview
//! 1 C program resolves relative paths from `/` whatever `workdir` says.
#![deny(missing_docs)]

mod cache;
mod component;
mod engine;
mod error;
mod limits;
mod module;
mod payload;
mod wasi;

use std::path::PathBuf;
use std::sync::OnceLock;

pub use error::{BoxedSource, Error};
pub use payload::{Flavor, Payload};
pub use wasi::Capture;

/// The pieces of this crate's sandbox that another Wasmtime embedding
/// reuses, so both enforce grants and limits, and read Wasmtime's errors,
/// the same way: `wrun-plugin` builds its plugin host from them.
///
/// Unlike the rest of the crate these speak Wasmtime's own types (a
/// `WasiCtxBuilder`, a `ResourceLimiter`, a `wasmtime::Error`), so they
/// follow the Wasmtime version this crate is built with; an embedder
/// depends on the same version (the workspace pins one).
pub mod embed {
    pub use crate::error::{Fault, boxed, classify};
    pub use crate::limits::MemoryLimiter;
    pub use crate::wasi::{GrantError, fs_perms, grant};

    /// The first limit in `limits` that only a native container can have
    /// (a pids, CPU or swap limit), named for a message: a Wasm guest has
    /// no processes, CPU quota or swap to limit, so a sandbox asking for
    /// one is refused rather than silently run without it.
    pub fn native_only(limits: &wrun_core::Limits) -> Option<&'static str> {
        [
            (limits.pids.is_some(), "a pids limit"),
            (limits.cpus.is_some(), "a cpu quota"),
            (limits.cpu_shares.is_some(), "cpu shares"),
            (limits.memory_swap.is_some(), "a memory+swap limit"),
        ]
        .into_iter()
        .find_map(|(asked, what)| asked.then_some(what))
    }
}

use engine::Backend;
use payload::Binary;

/// How a [`WasmRuntime`] is set up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// Where compiled code is cached (e.g. `<store>/cache/wasm`); created on
    /// first use. `None` compiles every run. The directory must be writable
    /// only by the user running wrun: its entries become executable code.
    pub cache_dir: Option<PathBuf>,
    /// Keep the Wasm backtrace of a trap in [`Error::Trap`].
    pub debug: bool,
}

/// Runs Wasm jobs. Owns the Wasmtime engines: create once, reuse.
pub struct WasmRuntime {
    config: Config,
    plain: OnceLock<Backend>,
    fueled: OnceLock<Backend>,
}

impl std::fmt::Debug for WasmRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmRuntime")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Where a guest's stdin comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Input {
    /// Closed: the guest reads end-of-file.
    #[default]
    Null,
    /// The host process's stdin (`-i`).
    Inherit,
    /// These bytes, then end-of-file.
    Bytes(Vec<u8>),
}

/// Where a guest's stdout or stderr goes.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub enum Output {
    /// The host process's stream.
    #[default]
    Inherit,
    /// Nowhere: output is discarded.
    Null,
    /// Into a buffer the caller reads afterwards.
    Capture(Capture),
}

/// One run of a Wasm program.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Job {
    /// The program.
    pub payload: Payload,
    /// Its name in messages (and `argv[0]` when `args` is empty).
    pub name: String,
    /// The full argv, `argv[0]` included.
    pub args: Vec<String>,
    /// What the guest is granted: directories, environment, network, limits.
    pub sandbox: wrun_core::Sandbox,
    /// A directory of the image's own files, granted read-only at `/`.
    pub rootfs: Option<PathBuf>,
    /// The working directory (absolute); see the crate docs for what it
    /// means to each kind of guest.
    pub workdir: Option<String>,
    /// The guest's stdin.
    pub stdin: Input,
    /// The guest's stdout.
    pub stdout: Output,
    /// The guest's stderr.
    pub stderr: Output,
}

impl Job {
    /// A job that runs `payload` as `name` with `argv = [name]`, granted
    /// nothing (`Sandbox::new()`), with stdin closed and stdout and stderr
    /// inherited.
    pub fn new(name: impl Into<String>, payload: Payload) -> Job {
        let name = name.into();
        Job {
            payload,
            args: vec![name.clone()],
            name,
            sandbox: wrun_core::Sandbox::new(),
            rootfs: None,
            workdir: None,
            stdin: Input::Null,
            stdout: Output::Inherit,
            stderr: Output::Inherit,
        }
    }
}

/// How a run ended, when the guest exited rather than faulted.
#[derive(Debug)]
#[non_exhaustive]
pub struct Outcome {
    /// The guest's exit code: 0 on a normal return, the code it gave
    /// `proc_exit` or `wasi:cli/exit`, 1 when a component's `run` returned
    /// an error.
    pub exit_code: i32,
    /// Whether the payload was compiled for this run (`false`: its compiled
    /// code came from the cache).
    pub compiled: bool,
    /// What the payload was.
    pub flavor: Flavor,
    /// Why freshly compiled code could not be cached, if it could not. The
    /// run went ahead regardless; the next one compiles again.
    pub cache_error: Option<Error>,
}

impl WasmRuntime {
    /// A runtime with `config`. Engines are created on first use.
    pub fn new(config: Config) -> Result<WasmRuntime, Error> {
        Ok(WasmRuntime {
            config,
            plain: OnceLock::new(),
            fueled: OnceLock::new(),
        })
    }

    fn backend(&self, fuel: bool) -> Result<&Backend, Error> {
        let slot = if fuel { &self.fueled } else { &self.plain };
        if let Some(backend) = slot.get() {
            return Ok(backend);
        }
        let backend = Backend::new(&self.config, fuel)?;
        Ok(slot.get_or_init(|| backend))
    }

    /// Runs `job` to completion on the calling thread.
    ///
    /// Returns the guest's exit code when it exits (see [`Outcome`]) and an
    /// [`Error`] when it cannot be loaded or started, traps
    /// ([`Error::Trap`]), runs past its timeout ([`Error::Timeout`]) or out
    /// of fuel ([`Error::FuelExhausted`]).
    pub fn run(&self, job: &Job) -> Result<Outcome, Error> {
        check_limits(job.sandbox.limit_values())?;
        let binary = Binary::load(&job.payload, &job.name)?;
        let backend = self.backend(job.sandbox.limit_values().fuel.is_some())?;
        let (code, compiled, cache_error) = backend.load(&binary, &job.name)?;
        let exit_code = backend.run(&code, job)?;
        Ok(Outcome {
            exit_code,
            compiled,
            flavor: binary.flavor,
            cache_error,
        })
    }

    /// Removes cached code that is of no use any more: every entry compiled
    /// for another Wasmtime version or other engine settings, and every
    /// entry whose payload digest (hex SHA-256 of the Wasm binary) `keep`
    /// rejects. Returns the number of bytes freed. Without a cache
    /// directory, does nothing.
    pub fn prune_cache(&self, keep: impl Fn(&str) -> bool) -> Result<u64, Error> {
        let Some(root) = &self.config.cache_dir else {
            return Ok(0);
        };
        let current = [
            self.backend(false)?.tag.clone(),
            self.backend(true)?.tag.clone(),
        ];
        cache::prune(root, &current, &keep)
    }
}

/// Refuses the limits only native containers have.
fn check_limits(limits: &wrun_core::Limits) -> Result<(), Error> {
    match embed::native_only(limits) {
        Some(what) => Err(Error::Unsupported { what }),
        None => Ok(()),
    }
}
