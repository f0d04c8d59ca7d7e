//! The plugin API against real components (the WAT samples of
//! `samples/plugins`, made components at build time) on a real Wasmtime.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wrun_plugin::{
    Access, Error, GrantError, Grants, HostConfig, LogLevel, Plugin, PluginHost, Request, Response,
};
use wrun_plugin_samples as samples;

fn host() -> PluginHost {
    let mut config = HostConfig::new();
    config.max_instances(64).on_log(|_| {});
    PluginHost::new(&config).expect("plugin host")
}

fn load(host: &PluginHost, sample: samples::Sample) -> Plugin {
    host.load_bytes(sample.name, sample.bytes)
        .unwrap_or_else(|err| panic!("loading {}: {err}", sample.name))
}

#[test]
fn structured_call_round_trips() {
    let host = host();
    let upper = load(&host, samples::UPPER);
    let mut instance = upper.instantiate(&Grants::new()).expect("instance");
    let response = instance
        .call(Request::new("upper", "hello, plugin"))
        .expect("call");
    assert_eq!(
        response,
        Response {
            content_type: "text/plain".into(),
            payload: b"HELLO, PLUGIN".to_vec(),
        }
    );
    // The same instance answers again (its heap is reset after each call).
    let big = vec![b'x'; 200_000];
    let response = instance.call(Request::new("upper", big)).expect("call");
    assert_eq!(response.payload, vec![b'X'; 200_000]);
}

#[test]
fn plugin_error_is_typed_and_instance_stays_usable() {
    let host = host();
    let mut instance = load(&host, samples::UPPER)
        .instantiate(&Grants::new())
        .expect("instance");
    match instance.call(Request::new("lower", "x")) {
        Err(Error::Plugin {
            plugin,
            code,
            message,
        }) => {
            assert_eq!(plugin, "upper");
            assert_eq!(code, 1);
            assert_eq!(message, "unknown operation");
        }
        other => panic!("expected a plugin error, got {other:?}"),
    }
    let response = instance.call(Request::new("upper", "ok")).expect("call");
    assert_eq!(response.payload, b"OK");
}

#[test]
fn config_and_log_reach_the_host() {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    let mut config = HostConfig::new();
    config.max_instances(8).on_log(move |record| {
        sink.lock().expect("log lock").push((
            record.plugin.to_string(),
            record.level,
            record.message.to_string(),
        ));
    });
    let host = PluginHost::new(&config).expect("host");
    let upper = load(&host, samples::UPPER);

    let mut grants = Grants::new();
    grants.config("prefix", "cfg: ");
    let mut configured = upper.instantiate(&grants).expect("instance");
    let mut plain = upper.instantiate(&Grants::new()).expect("instance");

    let response = configured.call(Request::new("upper", "abc")).expect("call");
    assert_eq!(response.payload, b"cfg: ABC");
    // Configuration is per instance.
    let response = plain.call(Request::new("upper", "abc")).expect("call");
    assert_eq!(response.payload, b"ABC");

    let lines = lines.lock().expect("log lock");
    assert_eq!(lines.len(), 2);
    for (plugin, level, message) in lines.iter() {
        assert_eq!(plugin, "upper");
        assert_eq!(*level, LogLevel::Info);
        assert_eq!(message, "upper: handling a request");
    }
}

#[test]
fn wrong_world_is_a_typed_error() {
    let host = host();
    match host.load_bytes("wrong", samples::WRONG_WORLD.bytes) {
        Err(Error::WrongWorld { plugin, missing }) => {
            assert_eq!(plugin, "wrong");
            assert_eq!(missing, "wrun:plugin/handler@0.1.0");
        }
        other => panic!("expected WrongWorld, got {other:?}"),
    }
    match host.load_bytes("bad_call", samples::BAD_CALL.bytes) {
        Err(Error::WrongWorld { missing, .. }) => {
            assert!(missing.contains("#call"), "{missing}");
        }
        other => panic!("expected WrongWorld, got {other:?}"),
    }
}

#[test]
fn foreign_import_is_a_typed_error() {
    let host = host();
    match host.load_bytes("foreign", samples::FOREIGN_IMPORT.bytes) {
        Err(Error::UnsupportedImport { plugin, import }) => {
            assert_eq!(plugin, "foreign");
            assert_eq!(import, "acme:db/query@1.0.0");
        }
        other => panic!("expected UnsupportedImport, got {other:?}"),
    }
}

#[test]
fn not_a_component_is_a_load_error() {
    let host = host();
    for (name, bytes) in [
        ("garbage", &b"not wasm at all"[..]),
        ("core", &b"\0asm\x01\0\0\0"[..]),
        ("truncated", &samples::UPPER.bytes[..100]),
    ] {
        match host.load_bytes(name, bytes) {
            Err(Error::Load { plugin, .. }) => assert_eq!(plugin, name),
            other => panic!("{name}: expected Load, got {other:?}"),
        }
    }
    match host.load_file("/nonexistent/plugin.wasm") {
        Err(Error::Read { .. }) => {}
        other => panic!("expected Read, got {other:?}"),
    }
}

#[test]
fn trap_is_typed_and_the_host_carries_on() {
    let host = host();
    let mut trapping = load(&host, samples::TRAP)
        .instantiate(&Grants::new())
        .expect("instance");
    match trapping.call(Request::new("x", "")) {
        Err(Error::Trap { plugin, message }) => {
            assert_eq!(plugin, "trap");
            assert!(message.contains("unreachable"), "{message}");
        }
        other => panic!("expected Trap, got {other:?}"),
    }
    // The trapped instance is done; a fresh one and other plugins are fine.
    assert!(matches!(
        trapping.call(Request::new("x", "")),
        Err(Error::Poisoned { .. })
    ));
    let mut upper = load(&host, samples::UPPER)
        .instantiate(&Grants::new())
        .expect("instance");
    assert_eq!(
        upper
            .call(Request::new("upper", "still here"))
            .expect("call")
            .payload,
        b"STILL HERE"
    );
}

#[test]
fn infinite_loop_times_out() {
    let host = host();
    let spin = load(&host, samples::SPIN);
    let mut grants = Grants::new();
    grants.timeout(Duration::from_millis(200));
    let mut instance = spin.instantiate(&grants).expect("instance");
    let started = Instant::now();
    match instance.call(Request::new("x", "")) {
        Err(Error::Timeout { plugin, after }) => {
            assert_eq!(plugin, "spin");
            assert_eq!(after, Duration::from_millis(200));
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(200), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    // Another instance of a good plugin is unaffected.
    let mut upper = load(&host, samples::UPPER)
        .instantiate(&Grants::new())
        .expect("instance");
    assert!(upper.call(Request::new("upper", "a")).is_ok());
}

#[test]
fn fuel_runs_out_on_a_metered_host() {
    let mut config = HostConfig::new();
    config.max_instances(4).fuel(true);
    let host = PluginHost::new(&config).expect("host");
    let mut grants = Grants::new();
    grants.fuel(1_000_000);
    let mut instance = load(&host, samples::SPIN)
        .instantiate(&grants)
        .expect("instance");
    assert!(matches!(
        instance.call(Request::new("x", "")),
        Err(Error::FuelExhausted {
            fuel: 1_000_000,
            ..
        })
    ));
    // Without metering, fuel cannot be granted.
    assert!(matches!(
        load(&self::host(), samples::SPIN).instantiate(&grants),
        Err(Error::FuelDisabled)
    ));
}

#[test]
fn memory_hog_hits_its_limit() {
    let host = host();
    let mut grants = Grants::new();
    grants.memory_limit(2 << 20);
    let mut hog = load(&host, samples::HOG)
        .instantiate(&grants)
        .expect("instance");
    match hog.call(Request::new("x", "")) {
        Err(Error::MemoryLimit { plugin, limit }) => {
            assert_eq!(plugin, "hog");
            assert_eq!(limit, 2 << 20);
        }
        other => panic!("expected MemoryLimit, got {other:?}"),
    }
    // Without a grant, the host's per-instance maximum still stops it.
    let mut hog = load(&host, samples::HOG)
        .instantiate(&Grants::new())
        .expect("instance");
    assert!(matches!(
        hog.call(Request::new("x", "")),
        Err(Error::MemoryLimit { limit, .. }) if limit == 64 << 20
    ));
}

#[test]
fn files_reach_only_granted_directories() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("note.txt"), "granted contents").expect("write");
    let outside = tempfile::tempdir().expect("tempdir");
    std::fs::write(outside.path().join("secret.txt"), "secret").expect("write");

    let host = host();
    let files = load(&host, samples::FILES);

    // Nothing granted: the plugin sees no directory at all.
    let mut denied = files.instantiate(&Grants::new()).expect("instance");
    assert!(matches!(
        denied.call(Request::new("read", "note.txt")),
        Err(Error::Plugin { code: 1, .. })
    ));

    let mut grants = Grants::new();
    grants.dir(dir.path(), "/data", Access::ReadOnly);
    let mut granted = files.instantiate(&grants).expect("instance");
    let response = granted
        .call(Request::new("read", "note.txt"))
        .expect("read granted file");
    assert_eq!(response.payload, b"granted contents");

    // Escapes are refused by WASI, as the plugin's own error; the instance
    // carries on.
    let escape = format!(
        "../{}/secret.txt",
        outside
            .path()
            .file_name()
            .and_then(|n| n.to_str())
            .expect("name")
    );
    let absolute = outside.path().join("secret.txt").display().to_string();
    for path in [escape.as_str(), absolute.as_str(), "../../../../etc/passwd"] {
        match granted.call(Request::new("read", path)) {
            Err(Error::Plugin { code, .. }) => {
                assert!((100..200).contains(&code), "{path}: code {code}")
            }
            other => panic!("{path}: expected a refusal, got {other:?}"),
        }
    }
    assert!(granted.call(Request::new("read", "note.txt")).is_ok());
}

#[test]
fn a_thousand_instances_live_at_once() {
    let mut config = HostConfig::new();
    config.max_instances(1000).on_log(|_| {});
    let host = PluginHost::new(&config).expect("host");
    let upper = load(&host, samples::UPPER);
    let mut grants = Grants::new();
    grants.memory_limit(1 << 20);
    let mut instances = Vec::with_capacity(1000);
    for i in 0..1000 {
        grants.config("prefix", format!("{i}:"));
        instances.push(upper.instantiate(&grants).expect("instance"));
    }
    // The pool is full: the next one is a typed error, not a crash.
    assert!(matches!(
        upper.instantiate(&grants),
        Err(Error::PoolExhausted { .. })
    ));
    for (i, instance) in instances.iter_mut().enumerate() {
        let response = instance.call(Request::new("upper", "x")).expect("call");
        assert_eq!(response.payload, format!("{i}:X").into_bytes());
    }
    // Dropping one frees its slot.
    instances.pop();
    assert!(upper.instantiate(&grants).is_ok());
}

#[test]
fn a_sandbox_built_for_wrun_run_grants_the_same() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("note.txt"), "from the sandbox").expect("write");
    let host = host();
    let files = load(&host, samples::FILES);

    let mut sandbox = wrun_plugin::Sandbox::new();
    sandbox.dir(dir.path(), "/data", Access::ReadOnly);
    let mut instance = files
        .instantiate(&Grants::from(sandbox.clone()))
        .expect("instance");
    let response = instance
        .call(Request::new("read", "note.txt"))
        .expect("read granted file");
    assert_eq!(response.payload, b"from the sandbox");

    // Its memory limit holds as a plugin's.
    sandbox.limits(wrun_plugin::Limits {
        memory: Some(2 << 20),
        ..wrun_plugin::Limits::default()
    });
    let mut hog = load(&host, samples::HOG)
        .instantiate(&Grants::from_sandbox(sandbox.clone()))
        .expect("instance");
    assert!(matches!(
        hog.call(Request::new("x", "")),
        Err(Error::MemoryLimit { limit, .. }) if limit == 2 << 20
    ));

    // Bad directory grants are typed, as for `wrun run`.
    let mut grants = Grants::new();
    grants.dir("/nonexistent/wrun-test", "/data", Access::ReadOnly);
    match files.instantiate(&grants) {
        Err(err @ Error::Grant(GrantError::Open { .. })) => {
            assert_eq!(
                err.to_string(),
                "cannot grant /nonexistent/wrun-test at /data"
            );
        }
        other => panic!("expected a grant error, got {other:?}"),
    }
    let mut grants = Grants::new();
    grants.dir(dir.path(), "data", Access::ReadOnly);
    assert!(matches!(
        files.instantiate(&grants),
        Err(Error::Grant(GrantError::NotAbsolute { guest, .. })) if guest == "data"
    ));

    // A limit only native containers have is refused, not ignored.
    sandbox.limits(wrun_plugin::Limits {
        pids: Some(5),
        ..wrun_plugin::Limits::default()
    });
    match files.instantiate(&Grants::from(sandbox)) {
        Err(
            err @ Error::Unsupported {
                what: "a pids limit",
            },
        ) => {
            assert_eq!(err.to_string(), "a pids limit is not supported for plugins");
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }
}
