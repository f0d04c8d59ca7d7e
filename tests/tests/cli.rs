//! End-to-end tests of the command line where a docker user's hands go
//! (issue 12), through the binary: a closed stdout ends wrun quietly. (That everything after IMAGE is the workload's is tested in
//! `wasm_run.rs` and `native_run.rs`, beside the other argv tests.)

use std::path::Path;
use std::process::{Command, Stdio};
use wrun_tests::fixture::{self, Tagged};
use wrun_tests::{Env, Run, assert_code};

/// Runs `cmd` with its stdout a pipe whose reading end is already closed,
/// as `wrun … | head -0` is once head has gone.
fn with_closed_stdout(mut cmd: Command) -> Run {
    let (reader, writer) = std::io::pipe().expect("create a pipe");
    drop(reader);
    let out = cmd
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("run wrun");
    Run {
        status: out.status,
        stdout: String::new(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// An OCI layout at `dir` with a Wasm artifact tagged `wasm` and a native
/// image tagged `native`.
fn two_images(dir: &Path) {
    let wasm = fixture::wasm_artifact(fixture::WASM_MODULE);
    let native = fixture::small_image("cli");
    fixture::write_layout(
        dir,
        &[
            ("wasm", Tagged::Image(&wasm)),
            ("native", Tagged::Image(&native)),
        ],
    );
}

// ------------------------------------------------------- a closed stdout

#[test]
fn a_closed_stdout_ends_every_command_quietly() {
    let env = Env::new();
    let dir = tempfile::tempdir().expect("tempdir");
    two_images(dir.path());
    let layout = dir.path().to_str().expect("a UTF-8 path");
    let wasm = format!("oci:{layout}:wasm");
    let native = format!("oci:{layout}:native");

    // The pull completes before the digest is printed: the image is stored.
    for source in [&wasm, &native] {
        let r = with_closed_stdout(env.command(&["pull", "-q", source]));
        assert_code(&r, 0, &format!("pull {source} | true"));
        assert!(!r.stderr.contains("Broken pipe"), "{}", r.stderr);
    }
    let ids: Vec<String> = env
        .images()
        .iter()
        .filter_map(|i| i["digest"].as_str().map(str::to_string))
        .collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    let (wasm_id, native_id) = (ids[0].as_str(), ids[1].as_str());

    for args in [
        &["inspect", wasm_id, native_id][..],
        &["images"],
        &["images", "-q"],
        &["images", "--format", "json"],
        &["image", "ls"],
        &["--help"],
        &["--version"],
        &["run", "--help"],
        &["pull", "-q", &wasm],
        &["image", "prune"],
    ] {
        let r = with_closed_stdout(env.command(args));
        assert_code(&r, 0, &format!("wrun {args:?} | true"));
        assert!(r.stderr.is_empty(), "wrun {args:?}: {}", r.stderr);
    }

    // rmi removes every name it was given, printed or not.
    let r = with_closed_stdout(env.command(&["rmi", wasm_id, native_id]));
    assert_code(&r, 0, "rmi A B | true");
    assert!(r.stderr.is_empty(), "{}", r.stderr);
    assert_eq!(env.images().len(), 0, "both images removed");
}
