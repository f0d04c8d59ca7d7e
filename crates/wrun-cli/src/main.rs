//! `wrun`: pull OCI images and run them, Wasm in Wasmtime and Linux natively.

mod cli;
mod commands;
mod context;
mod progress;
mod terminal;
mod usage;

use clap::Parser;
use std::io::Write;
use std::process::ExitCode;

/// wrun's own failures exit 125, as docker's and podman's do, so they are
/// never mistaken for a workload's exit code.
const EXIT_WRUN_FAILED: u8 = 125;

fn main() -> ExitCode {
    // The native runtime re-executes this binary as its container set-up
    // helper; that path must run before anything else (no threads yet).
    wrun_native::maybe_init();
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage::report(&e),
    };
    match commands::dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            // A closed stdout (`wrun inspect X | head -1`) ends wrun quietly,
            // as ripgrep does: the reader has what it wanted.
            if is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            let _ = writeln!(std::io::stderr(), "wrun: {e:#}");
            ExitCode::from(EXIT_WRUN_FAILED)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
