//! A small host application: loads two sample plugins (`upper` and
//! `files`), calls them, and shows what a plugin is denied and what happens
//! when one misbehaves. Exits 0 when everything behaved as expected.
//!
//! `cargo run -p plugin-host`

use std::process::ExitCode;
use std::time::{Duration, Instant};

use wrun_plugin::{Access, Error, Grants, HostConfig, PluginHost, Request};
use wrun_plugin_samples as samples;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprint!("plugin-host: {err}");
            let mut source = err.source();
            while let Some(cause) = source {
                eprint!(": {cause}");
                source = cause.source();
            }
            eprintln!();
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = HostConfig::new();
    config.max_instances(16).on_log(|record| {
        println!(
            "  log   [{}] {}: {}",
            record.plugin, record.level, record.message
        );
    });
    let host = PluginHost::new(&config)?;

    // 1. `upper`: structured call, configuration, logging.
    let upper = host.load_file(samples::UPPER.path)?;
    let mut grants = Grants::new();
    grants.config("prefix", "upper says: ");
    let mut instance = upper.instantiate(&grants)?;
    println!("upper: call(upper, \"hello, plugins\")");
    let response = instance.call(Request::new("upper", "hello, plugins"))?;
    println!(
        "  ok    {} {:?}",
        response.content_type,
        String::from_utf8_lossy(&response.payload)
    );
    println!("upper: call(lower, \"x\")");
    match instance.call(Request::new("lower", "x")) {
        Err(err @ Error::Plugin { .. }) => println!("  error {err}"),
        other => return Err(format!("expected the plugin's own error, got {other:?}").into()),
    }

    // 2. `files`: reads through WASI only what it was granted.
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("hello.txt"), "a file the host granted\n")?;
    let files = host.load_file(samples::FILES.path)?;

    println!("files: no grants, call(read, \"hello.txt\")");
    let mut denied = files.instantiate(&Grants::new())?;
    match denied.call(Request::new("read", "hello.txt")) {
        Err(err @ Error::Plugin { code: 1, .. }) => println!("  denied {err}"),
        other => return Err(format!("expected a denial, got {other:?}").into()),
    }

    let mut grants = Grants::new();
    grants.dir(dir.path(), "/data", Access::ReadOnly);
    let mut granted = files.instantiate(&grants)?;
    println!(
        "files: {} granted read-only, call(read, \"hello.txt\")",
        dir.path().display()
    );
    let response = granted.call(Request::new("read", "hello.txt"))?;
    println!("  ok    {:?}", String::from_utf8_lossy(&response.payload));
    println!("files: call(read, \"../../../etc/passwd\") (an escape attempt)");
    match granted.call(Request::new("read", "../../../etc/passwd")) {
        Err(err @ Error::Plugin { .. }) => println!("  denied {err}"),
        other => return Err(format!("expected a denial, got {other:?}").into()),
    }

    // 3. A misbehaving plugin is stopped; the host carries on.
    let spin = host.load_bytes(samples::SPIN.name, samples::SPIN.bytes)?;
    let mut grants = Grants::new();
    grants.timeout(Duration::from_millis(100));
    let mut spinning = spin.instantiate(&grants)?;
    println!("spin: call with a 100 ms timeout");
    let started = Instant::now();
    match spinning.call(Request::new("spin", "")) {
        Err(err @ Error::Timeout { .. }) => {
            println!("  error {err} (stopped after {:?})", started.elapsed())
        }
        other => return Err(format!("expected a timeout, got {other:?}").into()),
    }
    println!("upper: call(upper, \"still running\")");
    let response = instance.call(Request::new("upper", "still running"))?;
    println!("  ok    {:?}", String::from_utf8_lossy(&response.payload));
    Ok(())
}
