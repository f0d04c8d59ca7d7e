//! Real guests on a real Wasmtime: the samples in `samples/wasm`.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use wrun_core::{Access, Limits, Network};
use wrun_wasm::{
    Capture, Config, Error, Flavor, Input, Job, Outcome, Output, Payload, WasmRuntime,
};

const HELLO: &str = include_str!("../../../samples/wasm/hello.wat");
const EXIT: &str = include_str!("../../../samples/wasm/exit.wat");
const TRAP: &str = include_str!("../../../samples/wasm/trap.wat");
const SPIN: &str = include_str!("../../../samples/wasm/spin.wat");
const MEMHOG: &str = include_str!("../../../samples/wasm/memhog.wat");
const CAT: &str = include_str!("../../../samples/wasm/cat.wat");
const HELLO_COMPONENT: &str = include_str!("../../../samples/wasm/hello_component.wat");
const NET_COMPONENT: &str = include_str!("../../../samples/wasm/net_component.wat");
const NOT_A_COMMAND: &str = include_str!("../../../samples/wasm/not_a_command.wat");
const FILES: &[u8] = include_bytes!("../../../samples/wasm/files.wasm");

fn runtime(cache: Option<&Path>) -> WasmRuntime {
    WasmRuntime::new(Config {
        cache_dir: cache.map(Path::to_path_buf),
        debug: false,
    })
    .expect("runtime")
}

fn job(name: &str, source: impl AsRef<[u8]>, args: &[&str]) -> Job {
    let mut job = Job::new(name, Payload::Bytes(source.as_ref().to_vec()));
    job.args.extend(args.iter().map(|a| a.to_string()));
    job
}

/// Runs `job` with stdout and stderr captured.
fn run(rt: &WasmRuntime, mut job: Job) -> (Result<Outcome, Error>, String, String) {
    let (out, err) = (Capture::new(1 << 20), Capture::new(1 << 20));
    job.stdout = Output::Capture(out.clone());
    job.stderr = Output::Capture(err.clone());
    let result = rt.run(&job);
    let text = |c: &Capture| String::from_utf8(c.contents()).expect("utf-8");
    (result, text(&out), text(&err))
}

fn exit_code(result: Result<Outcome, Error>) -> i32 {
    result.expect("the guest exits").exit_code
}

#[test]
fn hello_prints_its_args_and_only_the_granted_env() {
    let rt = runtime(None);
    let mut job = job("hello", HELLO, &["a", "b c"]);
    job.sandbox.env("GREETING", "hi");
    let (result, out, _) = run(&rt, job);
    let outcome = result.expect("runs");
    assert_eq!(outcome.exit_code, 0);
    assert_eq!(outcome.flavor, Flavor::Module);
    assert!(outcome.compiled);
    assert_eq!(
        out,
        "hello from wasm\narg: hello\narg: a\narg: b c\nenv: GREETING=hi\n"
    );
}

#[test]
fn exit_codes_propagate() {
    let rt = runtime(None);
    for code in [0, 3, 42, 125] {
        let (result, _, _) = run(&rt, job("exit", EXIT, &[&code.to_string()]));
        assert_eq!(exit_code(result), code);
    }
    // WASI preview 1 reserves codes from 126 up; Wasmtime refuses them.
    let err = rt
        .run(&job("exit", EXIT, &["200"]))
        .expect_err("an invalid exit status");
    assert!(matches!(err, Error::Guest { .. }), "{err:?}");
    let cause = std::error::Error::source(&err)
        .expect("a cause")
        .to_string();
    assert_eq!(cause, "exit with invalid exit status outside of [0..126)");
}

#[test]
fn stdin_bytes_reach_the_guest() {
    let rt = runtime(None);
    let mut job = job("cat", CAT, &[]);
    job.stdin = Input::Bytes(b"line one\nline two\n".to_vec());
    let (result, out, _) = run(&rt, job);
    assert_eq!(exit_code(result), 0);
    assert_eq!(out, "line one\nline two\n");
}

#[test]
fn closed_stdin_reads_as_end_of_file() {
    let rt = runtime(None);
    let (result, out, _) = run(&rt, job("cat", CAT, &[]));
    assert_eq!(exit_code(result), 0);
    assert_eq!(out, "");
}

#[test]
fn a_wasi_p2_command_component_runs() {
    let rt = runtime(None);
    let (result, out, _) = run(&rt, job("hello-component", HELLO_COMPONENT, &[]));
    let outcome = result.expect("runs");
    assert_eq!(outcome.flavor, Flavor::Component);
    assert_eq!(outcome.exit_code, 0);
    assert_eq!(out, "hello from component\n");

    // With an argument, `run` returns `err`: exit code 1.
    let (result, out, _) = run(&rt, job("hello-component", HELLO_COMPONENT, &["x"]));
    assert_eq!(exit_code(result), 1);
    assert_eq!(out, "hello from component\n");
}

#[test]
fn no_network_unless_granted() {
    let rt = runtime(None);
    for what in ["tcp", "dns"] {
        let (result, _, _) = run(&rt, job("net", NET_COMPONENT, &[what]));
        assert_eq!(exit_code(result), 1, "{what} must be refused by default");

        let mut granted = job("net", NET_COMPONENT, &[what]);
        granted.sandbox.network(Network::Host);
        let (result, _, _) = run(&rt, granted);
        assert_eq!(
            exit_code(result),
            0,
            "{what} must work with the host network"
        );
    }
}

fn files_job(args: &[&str]) -> Job {
    job("files", FILES, args)
}

#[test]
fn a_read_only_grant_reads_but_does_not_write() {
    let host = tempfile::tempdir().expect("tempdir");
    fs::write(host.path().join("in.txt"), "granted\n").expect("write");
    let rt = runtime(None);

    let mut read = files_job(&["read", "/data/in.txt"]);
    read.sandbox.dir(host.path(), "/data", Access::ReadOnly);
    let (result, out, _) = run(&rt, read);
    assert_eq!(exit_code(result), 0);
    assert_eq!(out, "granted\n");

    for target in ["/data/new.txt", "/data/in.txt"] {
        let mut write = files_job(&["write", target, "overwritten"]);
        write.sandbox.dir(host.path(), "/data", Access::ReadOnly);
        let (result, _, err) = run(&rt, write);
        assert_eq!(exit_code(result), 1, "{target}: {err}");
        assert!(err.starts_with("error: open"), "{err}");
    }
    assert!(!host.path().join("new.txt").exists());
    assert_eq!(
        fs::read_to_string(host.path().join("in.txt")).expect("read"),
        "granted\n"
    );
}

#[test]
fn a_read_write_grant_writes_to_the_host() {
    let host = tempfile::tempdir().expect("tempdir");
    let rt = runtime(None);
    let mut write = files_job(&["write", "/data/sub-less.txt", "from the guest"]);
    write.sandbox.dir(host.path(), "/data", Access::ReadWrite);
    let (result, _, err) = run(&rt, write);
    assert_eq!(exit_code(result), 0, "{err}");
    assert_eq!(
        fs::read_to_string(host.path().join("sub-less.txt")).expect("read"),
        "from the guest"
    );
}

#[test]
fn nothing_outside_the_grants_is_reachable() {
    // outside/secret.txt must stay unread and unchanged; outside/granted is
    // granted read-write at /data and holds symlinks pointing out.
    let outside = tempfile::tempdir().expect("tempdir");
    let secret = outside.path().join("secret.txt");
    fs::write(&secret, "secret").expect("write");
    let granted = outside.path().join("granted");
    fs::create_dir(&granted).expect("mkdir");
    std::os::unix::fs::symlink("../secret.txt", granted.join("up")).expect("symlink");
    std::os::unix::fs::symlink(&secret, granted.join("abs")).expect("symlink");
    std::os::unix::fs::symlink("/", granted.join("root")).expect("symlink");
    let rt = runtime(None);

    let attempts: &[&[&str]] = &[
        &["read", "/data/../secret.txt"],
        &["read", "/data/../../secret.txt"],
        &["read", "../secret.txt"],
        &["read", "/etc/passwd"],
        &["read", secret.to_str().expect("utf-8 path")],
        &["read", "/data/up"],
        &["read", "/data/abs"],
        &["read", "/data/root/etc/passwd"],
        &["write", "/data/up", "pwned"],
        &["write", "/data/abs", "pwned"],
        &["write", "/data/../secret.txt", "pwned"],
        &["write", "/data/../planted.txt", "pwned"],
    ];
    for args in attempts {
        let mut job = files_job(args);
        job.sandbox.dir(&granted, "/data", Access::ReadWrite);
        let (result, out, err) = run(&rt, job);
        assert_eq!(
            exit_code(result),
            1,
            "{args:?} must fail: out={out} err={err}"
        );
        assert!(!out.contains("secret"), "{args:?} leaked: {out}");
        // Refused when opening (EPERM / ENOTCAPABLE), not later.
        assert!(err.starts_with("error: open"), "{args:?}: {err}");
    }
    assert_eq!(fs::read_to_string(&secret).expect("read"), "secret");
    assert!(!outside.path().join("planted.txt").exists());
}

#[test]
fn the_rootfs_is_read_only_at_the_root_and_grants_sit_beneath_it() {
    let rootfs = tempfile::tempdir().expect("tempdir");
    fs::create_dir(rootfs.path().join("etc")).expect("mkdir");
    fs::write(rootfs.path().join("etc/motd"), "from the image\n").expect("write");
    let data = tempfile::tempdir().expect("tempdir");
    let rt = runtime(None);
    let with_root = |args: &[&str]| {
        let mut job = files_job(args);
        job.rootfs = Some(rootfs.path().to_path_buf());
        job.sandbox.dir(data.path(), "/data", Access::ReadWrite);
        job
    };

    let (result, out, _) = run(&rt, with_root(&["read", "/etc/motd"]));
    assert_eq!(exit_code(result), 0);
    assert_eq!(out, "from the image\n");

    let (result, _, _) = run(&rt, with_root(&["write", "/etc/motd", "changed"]));
    assert_eq!(exit_code(result), 1);
    let (result, _, _) = run(&rt, with_root(&["read", "/../../../etc/passwd"]));
    assert_eq!(exit_code(result), 1);
    assert_eq!(
        fs::read_to_string(rootfs.path().join("etc/motd")).expect("read"),
        "from the image\n"
    );

    // The deeper, read-write grant wins over the read-only root.
    let (result, _, err) = run(&rt, with_root(&["write", "/data/x", "y"]));
    assert_eq!(exit_code(result), 0, "{err}");
    assert_eq!(
        fs::read_to_string(data.path().join("x")).expect("read"),
        "y"
    );
}

#[test]
fn workdir_sets_pwd_and_must_be_absolute() {
    let rt = runtime(None);
    let mut job = files_job(&["pwd"]);
    job.workdir = Some("/data".into());
    let (result, out, _) = run(&rt, job);
    assert_eq!(exit_code(result), 0);
    assert!(out.contains("PWD=/data\n"), "{out}");

    let mut job = files_job(&["pwd"]);
    job.workdir = Some("data".into());
    let (result, _, _) = run(&rt, job);
    assert!(matches!(result, Err(Error::GuestPath { path }) if path == "data"));
}

#[test]
fn a_preview1_guest_resolves_relative_paths_from_the_root() {
    // What `workdir` cannot do for WASI preview 1 (see the crate docs):
    // wasi-libc starts at "/" and never reads $PWD.
    let data = tempfile::tempdir().expect("tempdir");
    fs::write(data.path().join("in.txt"), "here").expect("write");
    let rt = runtime(None);
    let mut relative = files_job(&["read", "in.txt"]);
    relative.workdir = Some("/data".into());
    relative.sandbox.dir(data.path(), "/data", Access::ReadOnly);
    let (result, _, err) = run(&rt, relative);
    assert_eq!(exit_code(result), 1, "{err}");

    let mut from_root = files_job(&["read", "data/in.txt"]);
    from_root.workdir = Some("/data".into());
    from_root
        .sandbox
        .dir(data.path(), "/data", Access::ReadOnly);
    let (result, out, err) = run(&rt, from_root);
    assert_eq!(exit_code(result), 0, "{err}");
    assert_eq!(out, "here");
}

#[test]
fn a_grant_of_a_missing_directory_is_an_error() {
    let rt = runtime(None);
    let mut job = job("hello", HELLO, &[]);
    job.sandbox
        .dir("/nonexistent/wrun-test", "/data", Access::ReadOnly);
    let err = rt.run(&job).expect_err("must fail");
    assert!(matches!(err, Error::Grant { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "cannot grant /nonexistent/wrun-test at /data"
    );
}

#[test]
fn the_memory_limit_fails_growth_inside_the_guest() {
    let rt = runtime(None);
    let mut job = job("memhog", MEMHOG, &[]);
    job.sandbox.limits(Limits {
        memory: Some(1 << 20), // 16 pages of 64 KiB; the module starts with 1
        ..Limits::default()
    });
    let (result, out, _) = run(&rt, job);
    assert_eq!(exit_code(result), 0);
    assert_eq!(out, "grew 15 pages\n");
}

#[test]
fn a_memory_limit_below_the_initial_memory_fails_instantiation() {
    let rt = runtime(None);
    let mut job = job("hello", HELLO, &[]);
    job.sandbox.limits(Limits {
        memory: Some(64 * 1024), // hello declares 2 pages
        ..Limits::default()
    });
    let err = rt.run(&job).expect_err("must fail");
    assert!(matches!(err, Error::Instantiate { .. }), "{err:?}");
}

#[test]
fn native_only_limits_are_refused_not_ignored() {
    let rt = runtime(None);
    let mut job = job("hello", HELLO, &[]);
    job.sandbox.limits(Limits {
        pids: Some(10),
        ..Limits::default()
    });
    let err = rt.run(&job).expect_err("must be refused");
    assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "a pids limit is not supported for wasm workloads"
    );
}

#[test]
fn a_timeout_interrupts_a_spinning_guest() {
    let rt = runtime(None);
    let mut job = job("spin", SPIN, &[]);
    job.sandbox.limits(Limits {
        timeout: Some(Duration::from_millis(200)),
        ..Limits::default()
    });
    let started = Instant::now();
    let err = rt.run(&job).expect_err("must time out");
    let took = started.elapsed();
    assert!(
        matches!(err, Error::Timeout { after, .. } if after == Duration::from_millis(200)),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "spin timed out after 200ms");
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_secs(5),
        "{took:?}"
    );
}

#[test]
fn a_timeout_does_not_touch_a_guest_that_finishes() {
    let rt = runtime(None);
    let mut job = job("hello", HELLO, &[]);
    job.sandbox.limits(Limits {
        timeout: Some(Duration::from_secs(30)),
        ..Limits::default()
    });
    let started = Instant::now();
    let (result, _, _) = run(&rt, job);
    assert_eq!(exit_code(result), 0);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the timer must not delay the return"
    );
}

#[test]
fn fuel_runs_out_on_a_spinning_guest_and_suffices_for_a_short_one() {
    let rt = runtime(None);
    let fuel = |fuel| Limits {
        fuel: Some(fuel),
        ..Limits::default()
    };
    let mut spin = job("spin", SPIN, &[]);
    spin.sandbox.limits(fuel(100_000));
    let err = rt.run(&spin).expect_err("must run out");
    assert!(
        matches!(err, Error::FuelExhausted { fuel: 100_000, .. }),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "spin ran out of fuel (100000 units)");

    let mut hello = job("hello", HELLO, &[]);
    hello.sandbox.limits(fuel(10_000_000));
    let (result, out, _) = run(&rt, hello);
    assert_eq!(exit_code(result), 0);
    assert!(out.starts_with("hello from wasm\n"));
}

#[test]
fn a_trap_is_an_error_with_a_one_line_message() {
    let err = runtime(None)
        .run(&job("trap", TRAP, &[]))
        .expect_err("must trap");
    let Error::Trap {
        message, backtrace, ..
    } = &err
    else {
        panic!("expected a trap, got {err:?}");
    };
    assert_eq!(message, "wasm `unreachable` instruction executed");
    assert!(backtrace.is_none(), "no backtrace without debug");
    assert_eq!(
        err.to_string(),
        "trap trapped: wasm `unreachable` instruction executed"
    );

    let debug = WasmRuntime::new(Config {
        cache_dir: None,
        debug: true,
    })
    .expect("runtime");
    let err = debug.run(&job("trap", TRAP, &[])).expect_err("must trap");
    let Error::Trap { backtrace, .. } = &err else {
        panic!("expected a trap, got {err:?}");
    };
    let backtrace = backtrace.as_deref().expect("a backtrace with debug");
    assert!(backtrace.contains("fail"), "{backtrace}");
    assert!(!err.to_string().contains('\n'));
}

#[test]
fn what_is_not_wasm_is_named() {
    let rt = runtime(None);
    let elf = job("tool", b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0", &[]);
    let err = rt.run(&elf).expect_err("must fail");
    assert!(matches!(err, Error::NotWasm { .. }));
    assert_eq!(err.to_string(), "tool is not a wasm module or component");

    let missing = Job::new("gone", Payload::File("/nonexistent/gone.wasm".into()));
    let err = rt.run(&missing).expect_err("must fail");
    assert!(matches!(err, Error::Read { .. }));
    assert_eq!(err.to_string(), "cannot read /nonexistent/gone.wasm");
}

#[test]
fn a_truncated_binary_is_invalid_and_named() {
    let rt = runtime(None);
    let whole = wat::parse_str(HELLO).expect("wat");
    let cut = job("hello.wasm", &whole[..whole.len() / 2], &[]);
    let err = rt.run(&cut).expect_err("must fail");
    assert!(
        matches!(err, Error::Invalid { kind: "module", .. }),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "hello.wasm is not a valid wasm module");
    let cause = std::error::Error::source(&err)
        .expect("a cause")
        .to_string();
    assert!(!cause.is_empty());
}

#[test]
fn bad_wat_is_named() {
    let rt = runtime(None);
    let err = rt
        .run(&job("bad.wat", "(module (func (i32.bogus)))", &[]))
        .expect_err("must fail");
    assert!(matches!(err, Error::Wat { .. }), "{err:?}");
    assert_eq!(err.to_string(), "bad.wat is not valid wasm text");
}

#[test]
fn a_wat_file_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("exit.wat");
    fs::write(&path, EXIT).expect("write");
    let mut job = Job::new("exit.wat", Payload::File(path));
    job.args.push("7".into());
    assert_eq!(exit_code(runtime(None).run(&job)), 7);
}

#[test]
fn an_unknown_import_is_named() {
    let rt = runtime(None);
    let module = r#"(module
        (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
        (import "env" "host_magic" (func))
        (func (export "_start")))"#;
    let err = rt.run(&job("magic", module, &[])).expect_err("must fail");
    assert!(
        matches!(&err, Error::UnknownImport { import, .. } if import == "env::host_magic"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "magic imports `env::host_magic`, which wrun does not provide"
    );

    let component = r#"(component
        (import "wasi:http/outgoing-handler@0.2.0" (instance
            (export "handle" (func))))
        (core module $M (func (export "run") (result i32) i32.const 0))
        (core instance $m (instantiate $M))
        (func $run (result (result)) (canon lift (core func $m "run")))
        (instance $i (export "run" (func $run)))
        (export "wasi:cli/run@0.2.0" (instance $i)))"#;
    let err = rt.run(&job("http", component, &[])).expect_err("must fail");
    assert!(
        matches!(&err, Error::UnknownImport { import, .. } if import == "wasi:http/outgoing-handler@0.2.0#handle"),
        "{err:?}"
    );
}

#[test]
fn a_module_without_start_is_not_a_command() {
    let err = runtime(None)
        .run(&job("lib", "(module (func (export \"add\")))", &[]))
        .expect_err("must fail");
    assert!(matches!(err, Error::NoStart { .. }), "{err:?}");
}

#[test]
fn a_component_of_another_world_is_named() {
    let err = runtime(None)
        .run(&job("greeter", NOT_A_COMMAND, &[]))
        .expect_err("must fail");
    assert!(
        matches!(&err, Error::NotACommand { exports, .. } if exports == &["greet"]),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "greeter does not export wasi:cli/run, so it is not a wasi:cli/command component (it exports: greet)"
    );
}

fn cwasm_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for engine in fs::read_dir(dir).expect("cache dir") {
        for entry in fs::read_dir(engine.expect("entry").path()).expect("engine dir") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "cwasm") {
                found.push(path);
            }
        }
    }
    found
}

#[test]
fn the_cache_skips_compilation_and_survives_corruption() {
    let cache = tempfile::tempdir().expect("tempdir");
    let rt = runtime(Some(cache.path()));
    let hello = || job("hello", HELLO, &[]);

    let (first, _, _) = run(&rt, hello());
    let first = first.expect("runs");
    assert!(first.compiled);
    assert!(first.cache_error.is_none(), "{:?}", first.cache_error);
    let (second, out, _) = run(&rt, hello());
    let second = second.expect("runs");
    assert!(!second.compiled, "the second run loads cached code");
    assert!(out.starts_with("hello from wasm\n"));

    // A new runtime (a new process, in effect) finds the same entry.
    let (third, _, _) = run(&runtime(Some(cache.path())), hello());
    assert!(!third.expect("runs").compiled);

    // Flip one byte of the cached code: detected, recompiled, rewritten.
    let files = cwasm_files(cache.path());
    assert_eq!(files.len(), 1, "{files:?}");
    let mut bytes = fs::read(&files[0]).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    fs::write(&files[0], &bytes).expect("write");
    let (fourth, out, _) = run(&rt, hello());
    let fourth = fourth.expect("runs");
    assert!(fourth.compiled, "a corrupt entry is never used");
    assert!(out.starts_with("hello from wasm\n"));
    let (fifth, _, _) = run(&rt, hello());
    assert!(!fifth.expect("runs").compiled, "the entry was rewritten");

    // Truncated to nothing: the same.
    fs::write(&files[0], b"").expect("write");
    assert!(run(&rt, hello()).0.expect("runs").compiled);
}

#[test]
fn fuel_uses_separately_cached_code() {
    let cache = tempfile::tempdir().expect("tempdir");
    let rt = runtime(Some(cache.path()));
    assert!(run(&rt, job("hello", HELLO, &[])).0.expect("runs").compiled);
    let mut fueled = job("hello", HELLO, &[]);
    fueled.sandbox.limits(Limits {
        fuel: Some(10_000_000),
        ..Limits::default()
    });
    assert!(run(&rt, fueled.clone()).0.expect("runs").compiled);
    assert!(!run(&rt, fueled).0.expect("runs").compiled);
    assert_eq!(cwasm_files(cache.path()).len(), 2);
}

#[test]
fn components_are_cached_too() {
    let cache = tempfile::tempdir().expect("tempdir");
    let rt = runtime(Some(cache.path()));
    let hello = || job("hello-component", HELLO_COMPONENT, &[]);
    assert!(run(&rt, hello()).0.expect("runs").compiled);
    let (again, out, _) = run(&rt, hello());
    let again = again.expect("runs");
    assert!(!again.compiled);
    assert_eq!(again.flavor, Flavor::Component);
    assert_eq!(out, "hello from component\n");
}

#[test]
fn prune_drops_unwanted_and_foreign_entries() {
    let cache = tempfile::tempdir().expect("tempdir");
    let rt = runtime(Some(cache.path()));
    run(&rt, job("hello", HELLO, &[])).0.expect("runs");
    run(&rt, job("exit", EXIT, &[])).0.expect("runs");
    let foreign = cache.path().join("0123456789abcdef");
    fs::create_dir(&foreign).expect("mkdir");
    fs::write(foreign.join("x.cwasm"), b"old").expect("write");

    let hello_digest = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(wat::parse_str(HELLO).expect("wat")))
    };
    let freed = rt
        .prune_cache(|digest| digest == hello_digest)
        .expect("prune");
    assert!(freed > 3);
    assert!(!foreign.exists());
    assert_eq!(cwasm_files(cache.path()).len(), 1);
    assert!(!run(&rt, job("hello", HELLO, &[])).0.expect("runs").compiled);
    assert!(run(&rt, job("exit", EXIT, &[])).0.expect("runs").compiled);
}

#[test]
fn the_runtime_is_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<WasmRuntime>();
    let rt = runtime(None);
    std::thread::scope(|s| {
        for code in 1..=4 {
            let rt = &rt;
            s.spawn(move || {
                let (result, _, _) = run(rt, job("exit", EXIT, &[&code.to_string()]));
                assert_eq!(exit_code(result), code);
            });
        }
    });
}
