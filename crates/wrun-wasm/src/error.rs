//! The one error type of this crate.

use std::path::PathBuf;
use std::time::Duration;

/// A boxed error from Wasmtime or WASI, kept as the `source` of a variant.
///
/// Wasmtime's own error type is not a `std::error::Error`; it is converted
/// with `into_boxed_dyn_error` so callers can walk the chain with
/// `Error::source` (and `anyhow`'s `{:#}` prints it) without this crate
/// exposing a Wasmtime type.
pub type BoxedSource = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a Wasm workload could not be loaded, started or finished.
///
/// An exit of the guest (normal return, `proc_exit`, `wasi:cli/exit`, a
/// component's `run` returning an error) is not an error: it is an
/// [`Outcome`](crate::Outcome) with an exit code. Traps, timeouts and fuel
/// exhaustion are errors, each with its own variant, so the caller decides
/// which exit code to give them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The payload file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The payload is neither a Wasm binary nor WAT text.
    #[error("{name} is not a wasm module or component")]
    NotWasm {
        /// The payload's name.
        name: String,
    },

    /// The payload is WAT text that does not parse.
    #[error("{name} is not valid wasm text")]
    Wat {
        /// The payload's name.
        name: String,
        /// The parser's error, with line and column, on one line.
        #[source]
        source: BoxedSource,
    },

    /// The payload starts like Wasm but is truncated, malformed or uses a
    /// feature the engine does not support.
    #[error("{name} is not a valid wasm {kind}")]
    Invalid {
        /// The payload's name.
        name: String,
        /// `module` or `component`.
        kind: &'static str,
        /// What the validator or compiler said.
        #[source]
        source: BoxedSource,
    },

    /// A core module imports something wrun does not provide (wrun provides
    /// `wasi_snapshot_preview1` to modules, WASI 0.2 to components).
    #[error("{name} imports `{import}`, which wrun does not provide")]
    UnknownImport {
        /// The payload's name.
        name: String,
        /// The import, as `module::name` for a core module or the interface
        /// name (e.g. `wasi:http/types@0.2.0`) for a component.
        import: String,
    },

    /// The payload's imports could not be satisfied for another reason
    /// (for instance an import of the right name with the wrong type).
    #[error("cannot link {name}")]
    Link {
        /// The payload's name.
        name: String,
        /// Wasmtime's explanation.
        #[source]
        source: BoxedSource,
    },

    /// A core module without a `_start` export: a library or a reactor, not a
    /// WASI command.
    #[error("{name} has no `_start` export, so it is not a wasi command module")]
    NoStart {
        /// The payload's name.
        name: String,
    },

    /// A component that does not export `wasi:cli/run`, so it is not of the
    /// `wasi:cli/command` world.
    #[error(
        "{name} does not export wasi:cli/run, so it is not a wasi:cli/command component (it exports: {})",
        if exports.is_empty() { "nothing".to_string() } else { exports.join(", ") }
    )]
    NotACommand {
        /// The payload's name.
        name: String,
        /// What the component exports instead.
        exports: Vec<String>,
    },

    /// The job asks for something only native containers have (a pids,
    /// CPU or swap limit): refused rather than silently ignored.
    #[error("{what} is not supported for wasm workloads")]
    Unsupported {
        /// What was asked for, e.g. "a pids limit".
        what: &'static str,
    },

    /// A guest path (of a directory grant or the working directory) is not
    /// absolute.
    #[error("guest path `{path}` is not absolute")]
    GuestPath {
        /// The path as given.
        path: String,
    },

    /// A granted host directory could not be opened.
    #[error("cannot grant {} at {guest}", host.display())]
    Grant {
        /// The host directory.
        host: PathBuf,
        /// Where the guest would have seen it.
        guest: String,
        /// Why it could not be opened.
        #[source]
        source: BoxedSource,
    },

    /// Instantiation failed (for instance the initial memory is larger than
    /// the memory limit, or a start function trapped).
    #[error("cannot instantiate {name}")]
    Instantiate {
        /// The payload's name.
        name: String,
        /// Wasmtime's explanation.
        #[source]
        source: BoxedSource,
    },

    /// The guest trapped: a fault in the guest, not in wrun.
    ///
    /// The message is one line; the Wasm backtrace is kept apart, and only
    /// when [`Config::debug`](crate::Config::debug) is set.
    #[error("{name} trapped: {message}")]
    Trap {
        /// The payload's name.
        name: String,
        /// What happened, e.g. "wasm `unreachable` instruction executed".
        message: String,
        /// The guest's call stack, one frame a line (with `debug` only).
        backtrace: Option<String>,
    },

    /// The guest ran longer than its timeout and was interrupted.
    #[error("{name} timed out after {after:?}")]
    Timeout {
        /// The payload's name.
        name: String,
        /// The timeout that was exceeded.
        after: Duration,
    },

    /// The guest used up its fuel.
    #[error("{name} ran out of fuel ({fuel} units)")]
    FuelExhausted {
        /// The payload's name.
        name: String,
        /// The fuel it was given.
        fuel: u64,
    },

    /// The guest failed in a way that is neither an exit nor a trap (for
    /// instance a host-side WASI error).
    #[error("{name} failed")]
    Guest {
        /// The payload's name.
        name: String,
        /// Wasmtime's explanation.
        #[source]
        source: BoxedSource,
    },

    /// The Wasm engine could not be configured.
    #[error("cannot configure the wasm engine")]
    Engine {
        /// Wasmtime's explanation.
        #[source]
        source: BoxedSource,
    },

    /// The thread that enforces the timeout could not be started.
    #[error("cannot start the timeout timer")]
    Timer {
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The compiled-code cache could not be read or written.
    #[error("compiled-code cache at {} is unusable", path.display())]
    Cache {
        /// The cache file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Converts a Wasmtime error into a `source`: its chain of messages on one
/// line, without the Wasm backtrace Wasmtime attaches as context (a trap's
/// backtrace is kept apart, see [`Fault::Trap`]).
pub fn boxed(err: wasmtime::Error) -> BoxedSource {
    let backtrace = err
        .downcast_ref::<wasmtime::WasmBacktrace>()
        .map(|bt| bt.to_string());
    let message = err
        .chain()
        .map(|cause| cause.to_string())
        .filter(|cause| Some(cause) != backtrace.as_ref())
        .collect::<Vec<_>>()
        .join(": ");
    Box::new(Cause(message))
}

/// Why a guest stopped, read from the error a Wasmtime call returned:
/// what [`classify`] makes of it. Each embedder turns it into its own
/// error (a `wrun run` exit code, a plugin's `Error`), so the reading of
/// Wasmtime's errors lives in one place.
#[derive(Debug)]
pub enum Fault {
    /// The guest exited through `proc_exit` or `wasi:cli/exit` with this
    /// code: not a fault for a command, one for a plugin.
    Exit(i32),
    /// It was interrupted at an epoch deadline: its time was up.
    Interrupted,
    /// It used up its fuel.
    OutOfFuel,
    /// It trapped for another reason.
    Trap {
        /// What happened, on one line, without Wasmtime's `wasm trap: `
        /// prefix, e.g. "wasm `unreachable` instruction executed".
        message: String,
        /// The guest's call stack, one frame a line, when Wasmtime kept it.
        backtrace: Option<String>,
    },
    /// Not a trap: a host-side error (WASI, linking, instantiation),
    /// flattened by [`boxed`].
    Other(BoxedSource),
}

/// Reads `err`, as returned by instantiating or calling a guest.
pub fn classify(err: wasmtime::Error) -> Fault {
    if let Some(exit) = err.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return Fault::Exit(exit.0);
    }
    match err.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => Fault::Interrupted,
        Some(wasmtime::Trap::OutOfFuel) => Fault::OutOfFuel,
        Some(trap) => {
            let text = trap.to_string();
            Fault::Trap {
                message: text
                    .strip_prefix("wasm trap: ")
                    .unwrap_or(&text)
                    .to_string(),
                backtrace: err
                    .downcast_ref::<wasmtime::WasmBacktrace>()
                    .map(|bt| bt.to_string()),
            }
        }
        None => Fault::Other(boxed(err)),
    }
}

/// Wasmtime's explanation of a failure, flattened to one line.
#[derive(Debug)]
struct Cause(String);

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Cause {}
