#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod error;
mod native;
mod wasm;

pub use error::Error;
pub use wrun_core::{
    Access, DirGrant, ImageKind, LaunchSpec, Limits, Network, PullPolicy, Sandbox, Seccomp, Target,
};
pub use wrun_image::Store;
pub use wrun_image::pull::PullOptions;

use std::path::PathBuf;
use std::sync::OnceLock;
use wrun_image::{ImageRecord, Platform};

/// Launches workloads from one store.
pub struct Runner {
    store: Store,
    pull: PullOptions,
    wasm: OnceLock<std::sync::Arc<wrun_wasm::WasmRuntime>>,
    debug: bool,
    helper: Option<PathBuf>,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("store", &self.store.root())
            .finish_non_exhaustive()
    }
}

/// How a workload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// The exit code `wrun run` passes on: the workload's own, 128+N for a
    /// native workload killed by signal N.
    pub code: i32,
    /// A native workload was killed by the kernel's OOM killer.
    pub oom_killed: bool,
    /// A Wasm payload was compiled for this run (`Some(false)`: its code
    /// came from the cache).
    pub compiled: Option<bool>,
}

/// A started workload.
#[derive(Debug)]
pub enum Launched {
    /// A Wasm guest, running on its own thread.
    Wasm(wasm::Running),
    /// A native container.
    Native(native::Running),
}

impl Launched {
    /// Waits for the workload to end.
    pub fn wait(self) -> Result<Exit, Error> {
        match self {
            Launched::Wasm(w) => w.wait(),
            Launched::Native(n) => n.wait(),
        }
    }

    /// Sends signal `sig` (e.g. `libc::SIGTERM`) to a native workload; a
    /// Wasm guest has no signals and is stopped by its timeout instead.
    pub fn signal(&self, sig: i32) -> Result<(), Error> {
        match self {
            Launched::Wasm(_) => Err(Error::NoSignals),
            Launched::Native(n) => n.signal(sig),
        }
    }

    /// A handle that signals a native workload from another thread while
    /// this one waits; `None` for Wasm guests.
    pub fn signaller(&self) -> Option<Signaller> {
        match self {
            Launched::Wasm(_) => None,
            Launched::Native(n) => Some(Signaller(n.signaller())),
        }
    }

    /// The master side of a native workload's terminal (with `tty`): the
    /// caller copies between it and its own terminal, and resizes it with
    /// [`resize_terminal`].
    pub fn take_terminal(&mut self) -> Option<std::fs::File> {
        match self {
            Launched::Wasm(_) => None,
            Launched::Native(n) => n.take_terminal(),
        }
    }

    /// The kind of workload.
    pub fn kind(&self) -> ImageKind {
        match self {
            Launched::Wasm(_) => ImageKind::Wasm,
            Launched::Native(_) => ImageKind::Native,
        }
    }
}

/// Sets the size of a terminal from [`Launched::take_terminal`].
pub fn resize_terminal(terminal: &std::fs::File, rows: u16, cols: u16) -> Result<(), Error> {
    Ok(wrun_native::resize_pty(terminal, rows, cols)?)
}

/// Sends signals to a native workload; see [`Launched::signaller`].
#[derive(Debug)]
pub struct Signaller(wrun_native::Signaller);

impl Signaller {
    /// Sends `sig` to the workload's pid 1.
    pub fn signal(&self, sig: i32) -> Result<(), Error> {
        Ok(self.0.signal(sig)?)
    }
}

/// Whether this process could start a native container: it is root.
fn native_possible() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    cfg!(target_os = "linux") && unsafe { libc::geteuid() } == 0
}

/// A pull stopped at a native image this process cannot run is the
/// native runtime's refusal, in its words.
fn refused(e: wrun_image::Error) -> Error {
    match e {
        wrun_image::Error::NativeRefused { .. } => Error::Native(wrun_native::Error::Rootless),
        other => Error::Image(other),
    }
}

/// What [`Runner::resolve`] found for a spec: the image to run, if any.
#[derive(Debug, Clone)]
pub struct Resolved {
    record: Option<ImageRecord>,
}

impl Runner {
    /// A runner over `store`, pulling with `pull`.
    pub fn new(store: Store, pull: PullOptions) -> Runner {
        Runner {
            store,
            pull,
            wasm: OnceLock::new(),
            debug: false,
            helper: None,
        }
    }

    /// Keep Wasm backtraces in trap errors.
    pub fn debug(&mut self, debug: bool) -> &mut Self {
        self.debug = debug;
        self
    }

    /// The executable that sets native containers up (the `wrun` binary;
    /// default: this process's own executable, which must call
    /// `wrun_native::maybe_init` first thing in `main`).
    pub fn helper(&mut self, path: impl Into<PathBuf>) -> &mut Self {
        self.helper = Some(path.into());
        self
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Finds the spec's image in the store, pulling it as its
    /// [`PullPolicy`] says. Async, for callers on a runtime of either
    /// flavour; [`launch`] does this for synchronous callers.
    ///
    /// [`launch`]: Runner::launch
    pub async fn resolve(&self, spec: &LaunchSpec) -> Result<Resolved, Error> {
        let Some(reference) = self.image_of(spec)? else {
            return Ok(Resolved { record: None });
        };
        let opts = self.pull_options(spec)?;
        let record = wrun_image::pull::ensure(&self.store, reference, spec.pull, &opts)
            .await
            .map_err(refused)?;
        Ok(Resolved {
            record: Some(record),
        })
    }

    /// Pulls if needed (see [`resolve`](Runner::resolve)) and starts the
    /// workload. A pull runs on a private runtime on a thread of its own,
    /// so this may be called from any thread, even one inside an async
    /// runtime (which it then blocks, as any blocking call).
    pub fn launch(&self, spec: &LaunchSpec) -> Result<Launched, Error> {
        let resolved = match self.image_of(spec) {
            Ok(Some(reference)) => {
                let opts = self.pull_options(spec)?;
                let record =
                    wrun_image::pull::ensure_blocking(&self.store, reference, spec.pull, &opts)
                        .map_err(refused)?;
                Resolved {
                    record: Some(record),
                }
            }
            // No target: `start` says so.
            Ok(None) | Err(Error::NoTarget) => Resolved { record: None },
            Err(e) => return Err(e),
        };
        self.start(spec, &resolved)
    }

    /// The image reference of the spec; `None` for a file.
    fn image_of<'a>(&self, spec: &'a LaunchSpec) -> Result<Option<&'a str>, Error> {
        match &spec.target {
            Some(Target::Image(r)) => Ok(Some(r)),
            Some(Target::File(_)) => Ok(None),
            None => Err(Error::NoTarget),
        }
    }

    fn pull_options(&self, spec: &LaunchSpec) -> Result<PullOptions, Error> {
        let mut opts = self.pull.clone();
        opts.platform = spec.platform.as_deref().map(Platform::parse).transpose()?;
        // Native containers need root (wrun-native refuses them otherwise):
        // a pull for a launch stops before the layers of an image it could
        // only refuse, where the manifest and config already say native.
        opts.refuse_native |= !native_possible();
        Ok(opts)
    }

    /// Starts the workload `resolved` for `spec`.
    pub fn start(&self, spec: &LaunchSpec, resolved: &Resolved) -> Result<Launched, Error> {
        let kind = match &resolved.record {
            Some(r) => r.classification.kind,
            None => ImageKind::Wasm,
        };
        spec.check(kind)?;
        // The one place the kind is matched.
        match kind {
            ImageKind::Wasm => {
                wasm::start(self, spec, resolved.record.as_ref()).map(Launched::Wasm)
            }
            ImageKind::Native => {
                let record = resolved.record.as_ref().ok_or(Error::NoTarget)?;
                native::start(self, spec, record).map(Launched::Native)
            }
        }
    }

    fn wasm_runtime(&self) -> Result<&std::sync::Arc<wrun_wasm::WasmRuntime>, Error> {
        if let Some(rt) = self.wasm.get() {
            return Ok(rt);
        }
        let rt = wrun_wasm::WasmRuntime::new(wrun_wasm::Config {
            cache_dir: Some(self.store.cache_dir("wasm")?),
            debug: self.debug,
        })?;
        Ok(self.wasm.get_or_init(|| std::sync::Arc::new(rt)))
    }

    /// Removes compiled Wasm code, and merged file trees of multi-layer Wasm
    /// images, that no stored image can use any more. Returns bytes freed
    /// (of compiled code; merged trees are hard links and free little).
    pub fn prune_cache(&self) -> Result<u64, Error> {
        // The cache is keyed by the digest of the Wasm binary: a Wasm
        // layer's, or the entrypoint file's of a tar-layer Wasm image.
        let keep: std::collections::BTreeSet<String> = self
            .store
            .images()?
            .iter()
            .flat_map(|(r, _)| {
                r.layers
                    .iter()
                    .map(|l| l.digest.hex().to_string())
                    .chain(wasm::default_program_digest(&self.store, r))
            })
            .collect();
        let mut freed = self.wasm_runtime()?.prune_cache(|hex| keep.contains(hex))?;
        freed += wrun_image::layers::prune_merged(&self.store)?;
        Ok(freed)
    }
}
