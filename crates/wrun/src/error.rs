/// Why a launch failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A spec with no image or file.
    #[error("nothing to run: the launch names no image or file")]
    NoTarget,
    /// No command: neither the image nor the spec gives one.
    #[error("no command: the image has no entrypoint or command, and none was given")]
    NoCommand,
    /// An option the chosen kind cannot honour.
    #[error(transparent)]
    Unsupported(#[from] wrun_core::Unsupported),
    /// A native workload ran past its `--timeout` and was killed.
    #[error("container killed after its timeout of {after:?}")]
    Timeout {
        /// The timeout.
        after: std::time::Duration,
    },
    /// Wasm guests have no signals.
    #[error("wasm guests cannot be signalled; give them a --timeout")]
    NoSignals,
    /// The async runtime used for pulls could not start.
    #[error("start async runtime")]
    Runtime {
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The Wasm guest's thread panicked.
    #[error("wasm guest thread failed")]
    GuestThread,
    /// Store and registry errors.
    #[error(transparent)]
    Image(#[from] wrun_image::Error),
    /// Wasm errors: loading, traps, limits.
    #[error(transparent)]
    Wasm(#[from] wrun_wasm::Error),
    /// Native container errors.
    #[error(transparent)]
    Native(#[from] wrun_native::Error),
}

impl Error {
    /// The exit code a command line reports for this error: 127 when the
    /// program does not exist and 126 when it cannot be run (as docker);
    /// 124 for a timeout (as `timeout(1)`); 134 for a Wasm trap or running
    /// out of fuel (as the wasmtime CLI); 125 for wrun's own failures.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Native(e) => i32::from(e.exit_code()),
            Error::Image(wrun_image::Error::ProgramNotFound { .. }) => 127,
            Error::Timeout { .. } | Error::Wasm(wrun_wasm::Error::Timeout { .. }) => 124,
            Error::Wasm(wrun_wasm::Error::Trap { .. } | wrun_wasm::Error::FuelExhausted { .. }) => {
                134
            }
            _ => 125,
        }
    }
}
