//! Runs a Wasm file the way `wrun run` will, for measuring start-up:
//!
//!     cargo run -p wrun-wasm --example wasm-run -- CACHE_DIR FILE [ARGS...]
//!
//! Prints nothing of its own unless `WRUN_WASM_TIMING` is set, in which case
//! it reports on stderr whether the code was compiled and how long
//! `WasmRuntime::new` plus `run` took in-process.
use std::process::ExitCode;

use wrun_wasm::{Config, Job, Payload, WasmRuntime};

fn main() -> ExitCode {
    let started = std::time::Instant::now();
    let mut args = std::env::args().skip(1);
    let (Some(cache), Some(file)) = (args.next(), args.next()) else {
        eprintln!("usage: run CACHE_DIR FILE [ARGS...]");
        return ExitCode::from(125);
    };
    let runtime = match WasmRuntime::new(Config {
        cache_dir: Some(cache.into()),
        debug: false,
    }) {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(125);
        }
    };
    let mut job = Job::new(file.clone(), Payload::File(file.into()));
    job.args.extend(args);
    match runtime.run(&job) {
        Ok(outcome) => {
            if std::env::var_os("WRUN_WASM_TIMING").is_some() {
                eprintln!(
                    "compiled: {}, in-process: {:?}",
                    outcome.compiled,
                    started.elapsed()
                );
            }
            ExitCode::from(u8::try_from(outcome.exit_code).unwrap_or(1))
        }
        Err(err) => {
            let mut message = err.to_string();
            let mut source = std::error::Error::source(&err);
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            eprintln!("error: {message}");
            ExitCode::from(125)
        }
    }
}
