//! A minimal `wrun run` over unpacked layers, for trying the runtime and
//! measuring its start-up: `run STATE_DIR LAYER... -- COMMAND...`.
//!
//! It shows the wiring the CLI does: `maybe_init` first, reaping of stale
//! state, the one-line error and the exit code (signal forwarding is left
//! to the CLI, which owns the process's signal handlers).

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    wrun_native::maybe_init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(sep) = args.iter().position(|a| a == "--") else {
        eprintln!("usage: run STATE_DIR LAYER... -- COMMAND...");
        return ExitCode::from(125);
    };
    let (paths, command) = (&args[..sep], &args[sep + 1..]);
    let Some((state, layers)) = paths.split_first() else {
        eprintln!("usage: run STATE_DIR LAYER... -- COMMAND...");
        return ExitCode::from(125);
    };
    let layers: Vec<PathBuf> = layers.iter().map(PathBuf::from).collect();
    match run(state, &layers, command) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let mut msg = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                msg.push_str(&format!(": {s}"));
                source = s.source();
            }
            eprintln!("run: {msg}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn run(state: &str, layers: &[PathBuf], command: &[String]) -> Result<u8, wrun_native::Error> {
    wrun_native::reap_stale(state.as_ref())?;
    let id = format!("run-{}", std::process::id());
    let spec = wrun_native::SpecBuilder::new()
        .args(command.iter().cloned())
        .build(&id)?;
    let container = wrun_native::Launcher::new(state).spawn(&id, &spec, layers)?;
    let status = container.wait()?;
    if status.oom_killed() {
        eprintln!("run: the container was killed for lack of memory");
    }
    Ok(u8::try_from(status.exit_code()).unwrap_or(255))
}
