//! End-to-end tests of `wrun run` for Wasm (issue 3), through the binary:
//! every image style pulled from a real `docker-registry` and run, argv and
//! environment, directory grants and escapes from them, the image's own
//! files, limits, stdio, exit codes, the compiled-code cache, the network
//! grant, and bad input. Each test has a store of its own.
//!
//! Guests are the samples in `samples/wasm`: WAT compiled here with the `wat`
//! crate (or handed to wrun as `.wat`), and `files.wasm` (C, samples/c).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use wrun_tests::fixture::{self, Compression, Image, ImageBuilder, Layer, Tagged, TarEntry};
use wrun_tests::{Env, Registry, Run, assert_code, assert_failure, have_tools, hex_of};

// ---------------------------------------------------------------- helpers

/// `samples/wasm/<file>`.
fn sample(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../samples/wasm")
        .join(file)
}

/// The sample `<name>.wat` compiled to a binary.
fn wasm(name: &str) -> Vec<u8> {
    wat::parse_file(sample(&format!("{name}.wat")))
        .unwrap_or_else(|e| panic!("compile samples/wasm/{name}.wat: {e}"))
}

/// The C sample `files.wasm` (read PATH | write PATH TEXT | pwd).
fn files_wasm() -> Vec<u8> {
    std::fs::read(sample("files.wasm")).expect("read samples/wasm/files.wasm")
}

/// A path as a `&str` for an argument list.
fn s(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temporary path")
}

/// A registry (or `None`: skipped without docker-registry and skopeo).
fn registry() -> Option<Registry> {
    have_tools(&["docker-registry", "skopeo"]).then(Registry::start)
}

/// Pushes `image` to `reg` as `name` (`repo:tag`) through a temporary OCI layout.
fn push(reg: &Registry, name: &str, image: &Image) {
    let dir = tempfile::tempdir().expect("create a layout directory");
    fixture::write_layout(dir.path(), &[("t", Tagged::Image(image))]);
    reg.push_layout(dir.path(), "t", name);
}

/// Runs a prepared wrun command, feeding `stdin` when given.
fn run_cmd(mut cmd: Command, stdin: Option<&[u8]>) -> Run {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd.spawn().expect("spawn wrun");
    // Write from another thread: a guest that echoes its input fills the
    // stdout pipe while we would still be writing.
    let writer = stdin.map(|input| {
        let mut pipe = child.stdin.take().expect("wrun's stdin pipe");
        let input = input.to_vec();
        std::thread::spawn(move || {
            // A guest that does not read its stdin closes it: EPIPE is fine.
            let _ = pipe.write_all(&input);
        })
    });
    let out = child.wait_with_output().expect("wait for wrun");
    if let Some(w) = writer {
        w.join().expect("the stdin writer");
    }
    Run {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The lines `hello` printed for its arguments (`arg: X` → X).
fn args_of(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("arg: "))
        .collect()
}

/// The lines `hello` printed for its environment (`env: K=V` → K=V).
fn env_of(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("env: "))
        .collect()
}

/// The N of memhog's "grew N pages".
fn pages(r: &Run) -> u32 {
    r.stdout
        .trim()
        .strip_prefix("grew ")
        .and_then(|t| t.strip_suffix(" pages"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("memhog printed {:?} ({})", r.stdout, r.stderr))
}

/// The non-empty lines of stderr.
fn stderr_lines(r: &Run) -> Vec<&str> {
    r.stderr.lines().filter(|l| !l.trim().is_empty()).collect()
}

/// A single-layer image of `files`, with `/bin/app.wasm` = `program` as its
/// entrypoint and `/etc/motd`; `tweak` sets the platform, annotations …
fn tar_image(program: &[u8], tweak: impl FnOnce(&mut ImageBuilder)) -> Image {
    let mut b = ImageBuilder::new();
    b.entrypoint(&["/bin/app.wasm"]).layer(Layer::tar(
        &[
            TarEntry::dir("bin", 0o755),
            TarEntry::file("bin/app.wasm", 0o755, program),
            TarEntry::dir("etc", 0o755),
            TarEntry::file("etc/motd", 0o644, b"motd from the image\n"),
        ],
        Compression::Gzip,
    ));
    tweak(&mut b);
    b.build()
}

/// Every compiled-code cache entry of the store (`cache/wasm/<engine>/<hex>.cwasm`).
fn cache_entries(env: &Env) -> Vec<PathBuf> {
    let mut v = Vec::new();
    let Ok(engines) = std::fs::read_dir(env.root().join("cache/wasm")) else {
        return v;
    };
    for engine in engines {
        let engine = engine.expect("read the cache directory").path();
        if let Ok(entries) = std::fs::read_dir(&engine) {
            for e in entries {
                let p = e.expect("read an engine directory").path();
                if p.extension().is_some_and(|x| x == "cwasm") {
                    v.push(p);
                }
            }
        }
    }
    v.sort();
    v
}

/// The cache entries whose name is the hex digest of `bytes`.
fn cache_entries_of(env: &Env, bytes: &[u8]) -> Vec<PathBuf> {
    let hex = hex_of(&wrun_tests::sha256(bytes)).to_string();
    cache_entries(env)
        .into_iter()
        .filter(|p| p.file_stem().is_some_and(|n| n.to_string_lossy() == hex))
        .collect()
}

// ------------------------------------------------------- image styles

#[test]
fn artifact_with_application_wasm_layer_is_pulled_and_run() {
    let Some(reg) = registry() else { return };
    let hello = wasm("hello");
    push(&reg, "tools/hello:1", &fixture::wasm_artifact(&hello));
    let env = Env::new();
    let image = reg.reference("tools/hello:1");

    let r = env.run(&["run", "-q", &image, "a", "b c"]);
    assert_code(&r, 0, "run the artifact");
    assert!(
        r.stdout.starts_with("hello from wasm\n"),
        "stdout: {}",
        r.stdout
    );
    // argv[0] is the repository's last path component, then ARGS.
    assert_eq!(args_of(&r.stdout), ["hello", "a", "b c"]);
    // Nothing of the host's environment.
    assert_eq!(env_of(&r.stdout), Vec::<&str>::new());

    let v = env.inspect(&image);
    assert_eq!(v["kind"], "wasm");
    assert_eq!(v["classification"]["rule"], "media-type");
    assert_eq!(
        v["classification"]["media_type"],
        fixture::WASM_CONFIG,
        "{v:#}"
    );
    // The run pulled it: the layer blob is the module itself.
    assert_eq!(
        std::fs::read(env.blob_path(&wrun_tests::sha256(&hello))).expect("the module blob"),
        hello
    );
}

#[test]
fn component_layer_of_another_wasm_media_type_is_pulled_and_run() {
    let Some(reg) = registry() else { return };
    let component = wasm("hello_component");
    let mt = "application/vnd.bytecodealliance.wasm.component.layer.v0+wasm";
    let image = ImageBuilder::new()
        .platform("wasip2/wasm")
        .layer(Layer::raw(mt, component, None))
        .build();
    push(&reg, "acme/greeter:v2", &image);
    let env = Env::new();
    let name = reg.reference("acme/greeter:v2");

    let r = env.run(&["run", "-q", &name]);
    assert_code(&r, 0, "run the component");
    assert_eq!(r.stdout, "hello from component\n");
    // It returns `err` (exit 1) when given more than argv[0].
    let r = env.run(&["run", "-q", &name, "extra"]);
    assert_code(&r, 1, "run the component with an argument");

    let v = env.inspect(&name);
    assert_eq!(v["kind"], "wasm");
    assert_eq!(v["classification"]["rule"], "media-type");
    assert_eq!(v["classification"]["media_type"], mt);
}

#[test]
fn tar_layer_image_with_wasip1_platform_runs_its_entrypoint_file() {
    let Some(reg) = registry() else { return };
    let image = tar_image(&files_wasm(), |b| {
        b.platform("wasip1/wasm");
    });
    push(&reg, "files/platform:1", &image);
    let env = Env::new();
    let name = reg.reference("files/platform:1");

    let r = env.run(&["run", "-q", &name, "read", "/etc/motd"]);
    assert_code(&r, 0, "read the image's own file");
    assert_eq!(r.stdout, "motd from the image\n");

    let v = env.inspect(&name);
    assert_eq!(v["kind"], "wasm");
    assert_eq!(v["classification"]["rule"], "platform");
    assert_eq!(v["classification"]["platform"], "wasip1/wasm");
}

#[test]
fn multi_layer_wasm_image_sees_its_layers_merged_as_overlayfs_would() {
    let Some(reg) = registry() else { return };
    let mut b = ImageBuilder::new();
    b.platform("wasip1/wasm")
        .entrypoint(&["/bin/app.wasm"])
        .layer(Layer::tar(
            &[
                TarEntry::dir("bin", 0o755),
                TarEntry::file("bin/app.wasm", 0o755, &files_wasm()),
                TarEntry::dir("etc", 0o755),
                TarEntry::file("etc/motd", 0o644, b"motd from layer 1\n"),
                TarEntry::dir("data", 0o755),
                TarEntry::file("data/keep.txt", 0o644, b"kept\n"),
                TarEntry::file("data/gone.txt", 0o644, b"hidden by layer 2\n"),
                TarEntry::dir("old", 0o755),
                TarEntry::file("old/below.txt", 0o644, b"hidden by the opaque dir\n"),
            ],
            Compression::Gzip,
        ))
        .layer(Layer::tar(
            &[
                TarEntry::dir("etc", 0o755),
                TarEntry::file("etc/motd", 0o644, b"motd from layer 2\n"),
                TarEntry::dir("data", 0o755),
                TarEntry::whiteout("data/gone.txt"),
                TarEntry::dir("old", 0o755),
                TarEntry::opaque("old"),
                TarEntry::file("old/above.txt", 0o644, b"above\n"),
            ],
            Compression::Gzip,
        ));
    let image = b.build();
    push(&reg, "files/layers:1", &image);
    let env = Env::new();
    let name = reg.reference("files/layers:1");

    let read = |path: &str| env.run(&["run", "-q", &name, "read", path]);
    let r = read("/etc/motd");
    assert_code(&r, 0, "read a file the upper layer replaced");
    assert_eq!(r.stdout, "motd from layer 2\n");
    let r = read("/data/keep.txt");
    assert_code(&r, 0, "read a file of the lower layer");
    assert_eq!(r.stdout, "kept\n");
    let r = read("/old/above.txt");
    assert_code(&r, 0, "read a file of the opaque directory");
    assert_eq!(r.stdout, "above\n");
    for hidden in ["/data/gone.txt", "/old/below.txt"] {
        let r = read(hidden);
        assert_ne!(
            r.status.code(),
            Some(0),
            "{hidden} must be hidden: {}",
            r.stdout
        );
        assert!(!r.stdout.contains("hidden by"), "{hidden}: {}", r.stdout);
    }
    // The merge is read-only to the guest, and the shared layers are untouched.
    let r = env.run(&["run", "-q", &name, "write", "/etc/motd", "changed"]);
    assert_ne!(
        r.status.code(),
        Some(0),
        "write to the merged root: {}",
        r.stdout
    );
    let r = read("/etc/motd");
    assert_eq!(r.stdout, "motd from layer 2\n");

    // The merge is kept per image and pruned with it. A merge in progress
    // (its process alive: this one) survives a prune; an interrupted one
    // (its process gone) does not.
    let merged = env.root().join("cache/rootfs");
    assert_eq!(env.list("cache/rootfs").len(), 1, "one merged tree");
    let mut gone = Command::new("true").spawn().expect("run true");
    let gone_pid = gone.id();
    gone.wait().expect("wait for true");
    let live = merged.join(format!(".tmp-{}-0123456789ab", std::process::id()));
    let dead = merged.join(format!(".tmp-{gone_pid}-0123456789ab"));
    for d in [&live, &dead] {
        std::fs::create_dir_all(d.join("etc")).expect("create a merge in progress");
    }
    env.ok(&["rmi", &name]);
    env.ok(&["image", "prune"]);
    assert_eq!(
        env.list("cache/rootfs"),
        [live
            .file_name()
            .expect("a name")
            .to_string_lossy()
            .into_owned()],
        "only the merge in progress is left"
    );
}

#[test]
fn tar_layer_image_annotated_compat_is_wasm() {
    let Some(reg) = registry() else { return };
    let image = tar_image(&wasm("hello"), |b| {
        b.annotation("run.oci.handler", "compat");
    });
    push(&reg, "hello/compat:1", &image);
    let env = Env::new();
    let name = reg.reference("hello/compat:1");

    let r = env.run(&["run", "-q", &name, "x"]);
    assert_code(&r, 0, "run the compat image");
    assert!(r.stdout.starts_with("hello from wasm\n"), "{}", r.stdout);
    assert_eq!(args_of(&r.stdout), ["/bin/app.wasm", "x"]);

    let v = env.inspect(&name);
    assert_eq!(v["kind"], "wasm");
    assert_eq!(v["classification"]["rule"], "annotation");
    assert_eq!(v["classification"]["key"], "run.oci.handler");
    assert_eq!(v["classification"]["value"], "compat");
}

#[test]
fn tar_layer_image_annotated_compat_smart_is_wasm_when_the_entrypoint_is() {
    let Some(reg) = registry() else { return };
    let image = tar_image(&wasm("exit"), |b| {
        b.annotation("run.oci.handler", "compat-smart").cmd(&["7"]);
    });
    push(&reg, "exit/smart:1", &image);
    let env = Env::new();
    let name = reg.reference("exit/smart:1");

    // Entrypoint + Cmd: exit 7.
    let r = env.run(&["run", "-q", &name]);
    assert_code(&r, 7, "run the compat-smart image");
    // ARGS replace Cmd.
    let r = env.run(&["run", "-q", &name, "42"]);
    assert_code(&r, 42, "run the compat-smart image with ARGS");

    let v = env.inspect(&name);
    assert_eq!(v["kind"], "wasm");
    assert_eq!(v["classification"]["rule"], "annotation");
    assert_eq!(v["classification"]["value"], "compat-smart");
}

#[test]
fn tar_layer_image_whose_entrypoint_starts_with_wasm_magic_is_wasm() {
    let Some(reg) = registry() else { return };
    // linux/amd64, no annotation: only the entrypoint file's bytes say Wasm.
    let image = tar_image(&wasm("hello"), |_| {});
    push(&reg, "hello/magic:1", &image);
    let env = Env::new();
    let name = reg.reference("hello/magic:1");

    let r = env.run(&["run", "-q", &name]);
    assert_code(&r, 0, "run the magic image");
    assert_eq!(args_of(&r.stdout), ["/bin/app.wasm"]);
    assert_eq!(env_of(&r.stdout), ["PATH=/usr/local/bin:/usr/bin:/bin"]);

    let v = env.inspect(&name);
    assert_eq!(v["kind"], "wasm");
    assert_eq!(v["classification"]["rule"], "magic");
    assert_eq!(v["classification"]["path"], "/bin/app.wasm");
    assert_eq!(v["classification"]["format"], "wasm");
}

#[test]
fn image_files_are_visible_read_only_at_root() {
    let Some(reg) = registry() else { return };
    let image = tar_image(&files_wasm(), |b| {
        b.platform("wasip1/wasm");
    });
    push(&reg, "files/ro:1", &image);
    let env = Env::new();
    let name = reg.reference("files/ro:1");

    let r = env.run(&["run", "-q", &name, "read", "/bin/app.wasm"]);
    assert_code(&r, 0, "read the program itself");
    assert!(
        r.stdout.len() > 8,
        "the program is visible at /bin/app.wasm"
    );

    for path in ["/etc/motd", "/etc/new", "/new"] {
        let r = env.run(&["run", "-q", &name, "write", path, "overwritten"]);
        assert_code(&r, 1, &format!("write {path} in the image"));
        assert!(
            r.stderr.contains(&format!("error: open {path}:")),
            "{}",
            r.stderr
        );
    }
    let layer = env.layer_dir(image.diff_id(0));
    assert_eq!(
        std::fs::read(layer.join("etc/motd")).expect("the unpacked motd"),
        b"motd from the image\n"
    );
    assert!(!layer.join("etc/new").exists());
    assert!(!layer.join("new").exists());
    let r = env.run(&["run", "-q", &name, "read", "/etc/motd"]);
    assert_eq!(r.stdout, "motd from the image\n");
}

// ---------------------------------------------------------- argv, env

#[test]
fn argv_follows_entrypoint_cmd_args_and_entrypoint_override() {
    let Some(reg) = registry() else { return };
    let hello = wasm("hello");
    let image = ImageBuilder::new()
        .platform("wasip1/wasm")
        .entrypoint(&["/bin/hello", "-v"])
        .cmd(&["serve", "--port=1"])
        .layer(Layer::tar(
            &[
                TarEntry::dir("bin", 0o755),
                TarEntry::file("bin/hello", 0o755, &hello),
                TarEntry::file("bin/other", 0o755, &hello),
            ],
            Compression::Gzip,
        ))
        .build();
    push(&reg, "argv/hello:1", &image);
    let env = Env::new();
    let name = reg.reference("argv/hello:1");

    let r = env.ok(&["run", "-q", &name]);
    assert_eq!(
        args_of(&r.stdout),
        ["/bin/hello", "-v", "serve", "--port=1"]
    );
    let r = env.ok(&["run", "-q", &name, "check", "-x"]);
    assert_eq!(args_of(&r.stdout), ["/bin/hello", "-v", "check", "-x"]);
    // --entrypoint replaces the Entrypoint and drops the image's Cmd.
    let r = env.ok(&["run", "-q", "--entrypoint", "/bin/other", &name]);
    assert_eq!(args_of(&r.stdout), ["/bin/other"]);
    let r = env.ok(&["run", "-q", "--entrypoint", "/bin/other", &name, "z"]);
    assert_eq!(args_of(&r.stdout), ["/bin/other", "z"]);

    // An artifact: argv[0] is the repository's last component; --entrypoint replaces it.
    push(&reg, "deep/path/greeter:2", &fixture::wasm_artifact(&hello));
    let art = reg.reference("deep/path/greeter:2");
    let r = env.ok(&["run", "-q", &art]);
    assert_eq!(args_of(&r.stdout), ["greeter"]);
    let r = env.ok(&["run", "-q", &art, "one", "two"]);
    assert_eq!(args_of(&r.stdout), ["greeter", "one", "two"]);
    let r = env.ok(&["run", "-q", "--entrypoint", "g0", &art, "one"]);
    assert_eq!(args_of(&r.stdout), ["g0", "one"]);
}

#[test]
fn local_file_args_follow_its_name() {
    let env = Env::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("greet.wasm");
    std::fs::write(&file, wasm("hello")).expect("write greet.wasm");
    let r = env.ok(&["run", s(&file), "a", "-e", "X=1"]);
    // Everything after FILE is the guest's, flags included.
    assert_eq!(args_of(&r.stdout), ["greet.wasm", "a", "-e", "X=1"]);
    assert!(env_of(&r.stdout).is_empty(), "{}", r.stdout);
    // A .wat file is compiled by wrun itself.
    let r = env.ok(&["run", s(&sample("hello.wat")), "b"]);
    assert_eq!(args_of(&r.stdout), ["hello.wat", "b"]);
}

/// The argument lists item 1 of issue 12 is about: flags of wrun's own
/// (`--help`, `-e`, `-v`, `-c` is nobody's), and `--`, which docker and
/// podman pass on to the workload when it comes after the image.
const AFTER_IMAGE: &[&[&str]] = &[
    &["--help"],
    &["-e", "X=1"],
    &["-v", "X:Y"],
    &["-c", "echo hi"],
    &["--"],
    &["--", "a"],
    &["a", "--", "-q"],
];

#[test]
fn everything_after_a_local_file_is_the_guests_flags_and_dashes_included() {
    let env = Env::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("greet.wasm");
    std::fs::write(&file, wasm("hello")).expect("write greet.wasm");
    let wat = sample("hello.wat");
    for after in AFTER_IMAGE {
        for (path, argv0) in [(s(&file), "greet.wasm"), (s(&wat), "hello.wat")] {
            let mut args = vec!["run", path];
            args.extend_from_slice(after);
            let r = env.run(&args);
            assert_code(&r, 0, &format!("run {path} {after:?}"));
            let mut want = vec![argv0];
            want.extend_from_slice(after);
            assert_eq!(args_of(&r.stdout), want, "{after:?}");
            // None of it was taken as wrun's: no help, no -e, no -v.
            assert!(env_of(&r.stdout).is_empty(), "{after:?}: {}", r.stdout);
            assert!(!r.stdout.contains("Usage:"), "{after:?}: {}", r.stdout);
        }
        // --entrypoint replaces argv[0] and the rest still follows.
        let mut args = vec!["run", "--entrypoint", "e0", s(&file)];
        args.extend_from_slice(after);
        let r = env.ok(&args);
        let mut want = vec!["e0"];
        want.extend_from_slice(after);
        assert_eq!(args_of(&r.stdout), want, "--entrypoint e0 {after:?}");
    }
    // Options before the file are still wrun's, `--` before it ends them.
    let r = env.ok(&["run", "-e", "X=1", s(&file), "-e", "Y=2"]);
    assert_eq!(env_of(&r.stdout), ["X=1"]);
    assert_eq!(args_of(&r.stdout), ["greet.wasm", "-e", "Y=2"]);
    let r = env.ok(&["run", "-e", "X=1", "--", s(&file), "--help"]);
    assert_eq!(env_of(&r.stdout), ["X=1"]);
    assert_eq!(args_of(&r.stdout), ["greet.wasm", "--help"]);
    // --help before the file is wrun's own.
    let r = env.ok(&["run", "--help"]);
    assert!(
        r.stdout
            .contains("Usage: wrun run [OPTIONS] IMAGE|FILE [ARG]..."),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("--entrypoint"), "{}", r.stdout);
}

#[test]
fn everything_after_a_wasm_image_is_the_guests_flags_and_dashes_included() {
    let Some(reg) = registry() else { return };
    let hello = wasm("hello");
    let image = ImageBuilder::new()
        .platform("wasip1/wasm")
        .entrypoint(&["/bin/hello"])
        .cmd(&["default"])
        .layer(Layer::tar(
            &[
                TarEntry::dir("bin", 0o755),
                TarEntry::file("bin/hello", 0o755, &hello),
                TarEntry::file("bin/other", 0o755, &hello),
            ],
            Compression::Gzip,
        ))
        .build();
    push(&reg, "after/hello:1", &image);
    push(&reg, "after/art:1", &fixture::wasm_artifact(&hello));
    let env = Env::new();
    let name = reg.reference("after/hello:1");
    let art = reg.reference("after/art:1");
    env.ok(&["pull", "-q", &name]);
    env.ok(&["pull", "-q", &art]);
    for after in AFTER_IMAGE {
        for (image, argv0) in [(name.as_str(), "/bin/hello"), (art.as_str(), "art")] {
            let mut args = vec!["run", image];
            args.extend_from_slice(after);
            let r = env.run(&args);
            assert_code(&r, 0, &format!("run {image} {after:?}"));
            let mut want = vec![argv0];
            want.extend_from_slice(after);
            assert_eq!(args_of(&r.stdout), want, "{image} {after:?}");
            // The image's own PATH only: `-e X=1` was not taken as wrun's.
            assert!(
                env_of(&r.stdout).iter().all(|e| e.starts_with("PATH=")),
                "{after:?}: {}",
                r.stdout
            );
        }
        let mut args = vec!["run", "--entrypoint", "/bin/other", &name];
        args.extend_from_slice(after);
        let r = env.ok(&args);
        let mut want = vec!["/bin/other"];
        want.extend_from_slice(after);
        assert_eq!(args_of(&r.stdout), want, "--entrypoint {after:?}");
    }
    // wrun's options before the image, the guest's after it.
    let r = env.ok(&["run", "-e", "X=1", &art, "-e", "Y=2"]);
    assert_eq!(env_of(&r.stdout), ["X=1"]);
    assert_eq!(args_of(&r.stdout), ["art", "-e", "Y=2"]);
    let r = env.ok(&["run", "-e", "X=1", &name, "-e", "Y=2"]);
    assert!(env_of(&r.stdout).contains(&"X=1"), "{}", r.stdout);
    assert!(!env_of(&r.stdout).contains(&"Y=2"), "{}", r.stdout);
    assert_eq!(args_of(&r.stdout), ["/bin/hello", "-e", "Y=2"]);
}

#[test]
fn env_is_image_env_then_e_then_host_then_env_file() {
    let Some(reg) = registry() else { return };
    let image = tar_image(&wasm("hello"), |b| {
        b.platform("wasip1/wasm")
            .env("GREETING=from-image")
            .env("FOO=image")
            .env("KEEP=image");
    });
    push(&reg, "env/hello:1", &image);
    let env = Env::new();
    let name = reg.reference("env/hello:1");

    let dir = tempfile::tempdir().expect("tempdir");
    let env_file = dir.path().join("vars.env");
    std::fs::write(
        &env_file,
        "# a comment\n\nFROM_FILE=yes\nFOO=file\nSPACED=a b\n",
    )
    .expect("write the env file");

    let mut cmd = env.command(&[
        "run",
        "-q",
        "--env-file",
        s(&env_file),
        "-e",
        "FOO=cli",
        "-e",
        "HOSTVAR",
        "-e",
        "UNSET_ON_HOST_XYZ",
        "-e",
        "EMPTY=",
        &name,
    ]);
    cmd.env("HOSTVAR", "from-host")
        .env("NOT_GRANTED", "leak")
        .env_remove("UNSET_ON_HOST_XYZ");
    let r = run_cmd(cmd, None);
    assert_code(&r, 0, "run with env");
    let vars = env_of(&r.stdout);
    for want in [
        "PATH=/usr/local/bin:/usr/bin:/bin",
        "GREETING=from-image",
        "KEEP=image",
        "FROM_FILE=yes",
        "SPACED=a b",
        "FOO=cli",
        "HOSTVAR=from-host",
        "EMPTY=",
    ] {
        assert!(vars.contains(&want), "{want} missing from {vars:?}");
    }
    assert_eq!(
        vars.iter().filter(|v| v.starts_with("FOO=")).count(),
        1,
        "FOO once, -e winning over the env file and the image: {vars:?}"
    );
    assert!(
        !vars.iter().any(|v| v.starts_with("NOT_GRANTED")),
        "{vars:?}"
    );
    assert!(
        !vars.iter().any(|v| v.starts_with("UNSET_ON_HOST_XYZ")),
        "a bare -e K the host lacks is skipped: {vars:?}"
    );

    // Without -e, --env-file still overrides the image.
    let r = env.ok(&["run", "-q", "--env-file", s(&env_file), &name]);
    let vars = env_of(&r.stdout);
    assert!(vars.contains(&"FOO=file"), "{vars:?}");
    assert!(!vars.contains(&"FOO=image"), "{vars:?}");

    // A missing env file is an error.
    let missing = dir.path().join("nope.env");
    let line = env.fail(&["run", "-q", "--env-file", s(&missing), &name]);
    assert!(line.contains("nope.env"), "{line}");
}

// ------------------------------------------------------------- mounts

/// A directory to grant, holding `in.txt`, and a sentinel file outside it
/// (in another temporary directory) with symlinks to it inside the grant.
struct Grant {
    dir: tempfile::TempDir,
    outside: tempfile::TempDir,
}

impl Grant {
    fn new() -> Grant {
        let dir = tempfile::tempdir().expect("tempdir");
        let outside = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("in.txt"), "inside\n").expect("write in.txt");
        std::fs::write(outside.path().join("sentinel"), "sentinel\n").expect("write sentinel");
        std::os::unix::fs::symlink(outside.path().join("sentinel"), dir.path().join("abs-link"))
            .expect("symlink");
        // A relative symlink that climbs out of the grant.
        let rel = Path::new("..")
            .join(outside.path().file_name().expect("a name"))
            .join("sentinel");
        std::os::unix::fs::symlink(&rel, dir.path().join("rel-link")).expect("symlink");
        std::os::unix::fs::symlink(outside.path(), dir.path().join("dir-link")).expect("symlink");
        Grant { dir, outside }
    }

    fn sentinel(&self) -> PathBuf {
        self.outside.path().join("sentinel")
    }

    fn assert_sentinel_intact(&self) {
        assert_eq!(
            std::fs::read_to_string(self.sentinel()).expect("read the sentinel"),
            "sentinel\n"
        );
        let names: Vec<_> = std::fs::read_dir(self.outside.path())
            .expect("list the outside directory")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["sentinel"], "nothing was created outside");
    }
}

#[test]
fn read_only_mount_can_be_read_not_written() {
    let env = Env::new();
    let g = Grant::new();
    let files = sample("files.wasm");
    let vol = format!("{}:/data:ro", s(g.dir.path()));

    let r = env.run(&["run", "-v", &vol, s(&files), "read", "/data/in.txt"]);
    assert_code(&r, 0, "read a ro mount");
    assert_eq!(r.stdout, "inside\n");

    for path in ["/data/in.txt", "/data/new.txt"] {
        let r = env.run(&["run", "-v", &vol, s(&files), "write", path, "x"]);
        assert_code(&r, 1, &format!("write {path} on a ro mount"));
        assert!(
            r.stderr.contains(&format!("error: open {path}")),
            "{}",
            r.stderr
        );
    }
    assert_eq!(
        std::fs::read_to_string(g.dir.path().join("in.txt")).expect("read in.txt"),
        "inside\n"
    );
    assert!(!g.dir.path().join("new.txt").exists());
}

#[test]
fn read_write_mount_writes_land_on_the_host() {
    let env = Env::new();
    let g = Grant::new();
    let files = sample("files.wasm");
    let vol = format!("{}:/data", s(g.dir.path()));

    let r = env.run(&[
        "run",
        "-v",
        &vol,
        s(&files),
        "write",
        "/data/out.txt",
        "written",
    ]);
    assert_code(&r, 0, "write a rw mount");
    assert_eq!(
        std::fs::read_to_string(g.dir.path().join("out.txt")).expect("the file landed"),
        "written"
    );
    let r = env.run(&[
        "run",
        "-v",
        &vol,
        s(&files),
        "write",
        "/data/in.txt",
        "changed",
    ]);
    assert_code(&r, 0, "overwrite a rw mount's file");
    assert_eq!(
        std::fs::read_to_string(g.dir.path().join("in.txt")).expect("read in.txt"),
        "changed"
    );
    // Explicit :rw, and -w: $PWD is the working directory.
    let vol_rw = format!("{}:/data:rw", s(g.dir.path()));
    let r = env.run(&["run", "-v", &vol_rw, "-w", "/data", s(&files), "pwd"]);
    assert_code(&r, 0, "pwd");
    assert!(r.stdout.contains("PWD=/data\n"), "{}", r.stdout);
}

#[test]
fn escapes_from_a_mount_fail_and_the_sentinel_is_unchanged() {
    let env = Env::new();
    let g = Grant::new();
    let files = sample("files.wasm");
    let outside_name = g
        .outside
        .path()
        .file_name()
        .expect("a name")
        .to_string_lossy()
        .into_owned();
    let dotdot = format!("/data/../{outside_name}/sentinel");
    let dotdot_new = format!("/data/../{outside_name}/created");
    let sentinel = s(&g.sentinel()).to_string();
    let abs_new = s(&g.outside.path().join("created")).to_string();

    for vol in [
        format!("{}:/data", s(g.dir.path())),
        format!("{}:/data:ro", s(g.dir.path())),
    ] {
        for path in [
            dotdot.as_str(),
            "/data/../../../../etc/passwd",
            sentinel.as_str(),
            "/etc/passwd",
            "/data/abs-link",
            "/data/rel-link",
            "/data/dir-link/sentinel",
        ] {
            let r = env.run(&["run", "-v", &vol, s(&files), "read", path]);
            assert_code(&r, 1, &format!("read {path} with {vol}"));
            assert!(r.stdout.is_empty(), "read {path}: {}", r.stdout);
            assert!(r.stderr.starts_with("error: open "), "{}", r.stderr);
        }
        for path in [
            dotdot.as_str(),
            dotdot_new.as_str(),
            sentinel.as_str(),
            abs_new.as_str(),
            "/data/abs-link",
            "/data/rel-link",
            "/data/dir-link/sentinel",
            "/data/dir-link/created",
        ] {
            let r = env.run(&["run", "-v", &vol, s(&files), "write", path, "pwned"]);
            assert_code(&r, 1, &format!("write {path} with {vol}"));
            g.assert_sentinel_intact();
        }
    }
    // The links themselves are still links, the grant still works.
    assert!(
        std::fs::symlink_metadata(g.dir.path().join("abs-link"))
            .expect("abs-link")
            .file_type()
            .is_symlink()
    );
    let vol = format!("{}:/data", s(g.dir.path()));
    let r = env.run(&["run", "-v", &vol, s(&files), "read", "/data/in.txt"]);
    assert_eq!(r.stdout, "inside\n");
}

// ------------------------------------------------------------- limits

#[test]
fn memory_limit_makes_growth_fail_inside_the_guest() {
    let env = Env::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let memhog = dir.path().join("memhog.wasm");
    std::fs::write(&memhog, wasm("memhog")).expect("write memhog.wasm");

    let free = env.run(&["run", s(&memhog)]);
    assert_code(&free, 0, "memhog unlimited");
    let limited = env.run(&["run", "--memory", "1m", s(&memhog)]);
    assert_code(&limited, 0, "memhog with --memory 1m");
    let limited_4 = env.run(&["run", "--memory", "4m", s(&memhog)]);
    assert_code(&limited_4, 0, "memhog with --memory 4m");
    // 1 initial page + N grown = limit / 64 KiB.
    assert_eq!(pages(&limited), 15, "{}", limited.stdout);
    assert_eq!(pages(&limited_4), 63, "{}", limited_4.stdout);
    assert!(pages(&free) > 1000, "unlimited grew only {}", pages(&free));
}

#[test]
fn timeout_interrupts_a_spinning_guest_with_exit_124() {
    let env = Env::new();
    let start = Instant::now();
    let r = env.run(&["run", "--timeout", "300ms", s(&sample("spin.wat"))]);
    let took = start.elapsed();
    assert_code(&r, 124, "spin with --timeout 300ms");
    assert!(took >= Duration::from_millis(300), "stopped after {took:?}");
    assert!(
        took < Duration::from_secs(20),
        "stopped only after {took:?}"
    );
    let lines = stderr_lines(&r);
    assert_eq!(lines.len(), 1, "{:?}", r.stderr);
    assert!(lines[0].starts_with("wrun: "), "{}", lines[0]);
    assert!(lines[0].contains("timed out after 300ms"), "{}", lines[0]);

    // A guest that ends in time is not affected.
    let r = env.run(&["run", "--timeout", "30s", s(&sample("exit.wat")), "5"]);
    assert_code(&r, 5, "exit 5 within its timeout");
}

#[test]
fn timeout_ends_a_guest_blocked_reading_stdin() {
    let env = Env::new();
    let cat = s(&sample("cat.wat")).to_string();
    // stdin stays open and empty: the guest blocks in a host call, where
    // the engine's interruption cannot reach it.
    let mut cmd = env.command(&["run", "-i", "--timeout", "300ms", &cat]);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn wrun");
    let held_open = child.stdin.take().expect("wrun's stdin pipe");
    // Not a time assertion: a guard so that a broken timeout fails the
    // test instead of hanging it.
    let guard = Instant::now();
    while child.try_wait().expect("poll wrun").is_none() {
        if guard.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("wrun still waits for a guest blocked on stdin after its timeout");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(held_open);
    let out = child.wait_with_output().expect("collect wrun's output");
    let r = Run {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert_code(&r, 124, "cat -i --timeout 300ms on an open, empty stdin");
    let lines = stderr_lines(&r);
    assert_eq!(lines.len(), 1, "{:?}", r.stderr);
    assert!(lines[0].contains("timed out after 300ms"), "{}", lines[0]);
}

#[test]
fn fuel_exhaustion_exits_134_and_enough_fuel_runs() {
    let env = Env::new();
    let r = env.run(&["run", "--fuel", "100000", s(&sample("spin.wat"))]);
    assert_code(&r, 134, "spin with --fuel");
    let lines = stderr_lines(&r);
    assert_eq!(lines.len(), 1, "{:?}", r.stderr);
    assert!(
        lines[0].contains("ran out of fuel (100000 units)"),
        "{}",
        lines[0]
    );

    let r = env.run(&["run", "--fuel", "100000000", s(&sample("hello.wat")), "x"]);
    assert_code(&r, 0, "hello with plenty of fuel");
    assert_eq!(args_of(&r.stdout), ["hello.wat", "x"]);
}

#[test]
fn trap_exits_134_with_one_line_and_a_backtrace_with_debug() {
    let env = Env::new();
    let trap = s(&sample("trap.wat")).to_string();
    let r = env.run(&["run", &trap]);
    assert_code(&r, 134, "trap");
    let lines = stderr_lines(&r);
    assert_eq!(lines.len(), 1, "one line: {:?}", r.stderr);
    assert!(lines[0].starts_with("wrun: "), "{}", lines[0]);
    assert!(lines[0].contains("trapped"), "{}", lines[0]);
    assert!(lines[0].contains("unreachable"), "{}", lines[0]);

    let r = env.run(&["run", "--debug", &trap]);
    assert_code(&r, 134, "trap --debug");
    assert!(r.stderr.contains("unreachable"), "{}", r.stderr);
    assert!(
        stderr_lines(&r).len() > 2,
        "--debug adds a backtrace: {:?}",
        r.stderr
    );
    assert!(
        r.stderr.contains("fail"),
        "the trapping function is named: {}",
        r.stderr
    );
}

#[test]
fn exit_codes_propagate() {
    let env = Env::new();
    let exit = s(&sample("exit.wat")).to_string();
    for code in [0, 1, 3, 42, 125] {
        let r = env.run(&["run", &exit, &code.to_string()]);
        assert_code(&r, code, &format!("exit {code}"));
        assert!(r.stderr.is_empty(), "exit {code}: {}", r.stderr);
    }
    let r = env.run(&["run", &exit]);
    assert_code(&r, 0, "exit with no argument");
    // WASI preview 1 (wasmtime-wasi) refuses exit statuses of 126 and more:
    // a clear one-line failure, not a silent wrong code.
    let r = env.run(&["run", &exit, "200"]);
    let line = assert_failure(&r, "exit 200");
    assert!(line.contains("invalid exit status"), "{line}");
}

// -------------------------------------------------------------- stdio

#[test]
fn interactive_pipes_stdin_and_without_it_stdin_is_closed() {
    let env = Env::new();
    let cat = s(&sample("cat.wat")).to_string();
    let input: Vec<u8> = (0..20_000u32)
        .flat_map(|i| format!("line {i}\n").into_bytes())
        .collect();

    let r = run_cmd(env.command(&["run", "-i", &cat]), Some(&input));
    assert_code(&r, 0, "cat -i");
    assert_eq!(r.stdout.as_bytes(), input.as_slice(), "cat copies stdin");

    let r = run_cmd(env.command(&["run", &cat]), Some(b"should not be read\n"));
    assert_code(&r, 0, "cat without -i");
    assert_eq!(r.stdout, "", "without -i the guest reads end-of-file");
}

// -------------------------------------------------------------- cache

#[test]
fn compiled_code_is_cached_corruption_is_rebuilt_and_prune_removes_it() {
    let Some(reg) = registry() else { return };
    let hello = wasm("hello");
    push(&reg, "cache/hello:1", &fixture::wasm_artifact(&hello));
    let env = Env::new();
    let name = reg.reference("cache/hello:1");

    let r = env.ok(&["run", "-q", "--debug", &name]);
    assert!(r.stderr.contains("wasm code compiled"), "{}", r.stderr);
    assert!(!r.stderr.contains("from cache"), "{}", r.stderr);
    let entries = cache_entries_of(&env, &hello);
    assert_eq!(entries.len(), 1, "one entry: {:?}", cache_entries(&env));
    let entry = entries[0].clone();
    assert!(entry.starts_with(env.root().join("cache/wasm")));

    let r = env.ok(&["run", "-q", "--debug", &name]);
    assert!(
        r.stderr.contains("wasm code loaded from cache"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("compiled"), "{}", r.stderr);
    assert!(r.stdout.starts_with("hello from wasm\n"));

    // Damage the entry in the middle of its code: detected, discarded, rebuilt.
    let mut bytes = std::fs::read(&entry).expect("read the entry");
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 64] {
        *b ^= 0x5a;
    }
    std::fs::write(&entry, &bytes).expect("corrupt the entry");
    let r = env.ok(&["run", "-q", "--debug", &name, "after"]);
    assert!(r.stderr.contains("wasm code compiled"), "{}", r.stderr);
    assert_eq!(args_of(&r.stdout), ["hello", "after"]);
    assert_ne!(
        std::fs::read(&entry).expect("the rebuilt entry"),
        bytes,
        "the damaged entry was replaced"
    );
    let r = env.ok(&["run", "-q", "--debug", &name]);
    assert!(r.stderr.contains("loaded from cache"), "{}", r.stderr);

    // Truncated to nothing: the same.
    std::fs::write(&entry, b"").expect("truncate the entry");
    let r = env.ok(&["run", "-q", "--debug", &name]);
    assert!(r.stderr.contains("wasm code compiled"), "{}", r.stderr);

    // prune keeps the entry of a stored image …
    env.ok(&["image", "prune"]);
    assert!(entry.is_file(), "prune kept the stored image's entry");
    let r = env.ok(&["run", "-q", "--debug", &name]);
    assert!(r.stderr.contains("loaded from cache"), "{}", r.stderr);
    // … and removes it once the image is gone.
    env.ok(&["rmi", &name]);
    assert!(entry.is_file(), "rmi alone leaves the cache to prune");
    env.ok(&["image", "prune"]);
    assert!(!entry.exists(), "prune removed {}", entry.display());
    assert_eq!(cache_entries(&env), Vec::<PathBuf>::new());
}

#[test]
fn component_cache_hit_and_corruption() {
    let env = Env::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let component = wasm("hello_component");
    let file = dir.path().join("greeter.wasm");
    std::fs::write(&file, &component).expect("write greeter.wasm");

    let r = env.ok(&["run", "--debug", s(&file)]);
    assert!(r.stderr.contains("wasm code compiled"), "{}", r.stderr);
    let r = env.ok(&["run", "--debug", s(&file)]);
    assert!(r.stderr.contains("loaded from cache"), "{}", r.stderr);
    assert_eq!(r.stdout, "hello from component\n");

    let entries = cache_entries_of(&env, &component);
    assert_eq!(entries.len(), 1, "{:?}", cache_entries(&env));
    let mut bytes = std::fs::read(&entries[0]).expect("read the entry");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&entries[0], &bytes).expect("corrupt the trailer");
    let r = env.ok(&["run", "--debug", s(&file)]);
    assert!(r.stderr.contains("wasm code compiled"), "{}", r.stderr);
    assert_eq!(r.stdout, "hello from component\n");
}

#[test]
fn tar_layer_image_cache_survives_prune_while_the_image_is_stored() {
    let Some(reg) = registry() else { return };
    let hello = wasm("hello");
    push(&reg, "cache/tar:1", &tar_image(&hello, |_| {}));
    let env = Env::new();
    let name = reg.reference("cache/tar:1");

    let r = env.ok(&["run", "-q", "--debug", &name]);
    assert!(r.stderr.contains("wasm code compiled"), "{}", r.stderr);
    assert_eq!(cache_entries_of(&env, &hello).len(), 1);
    env.ok(&["image", "prune"]);
    let r = env.ok(&["run", "-q", "--debug", &name]);
    assert!(
        r.stderr.contains("loaded from cache"),
        "prune dropped a stored image's compiled code: {}",
        r.stderr
    );
    env.ok(&["rmi", &name]);
    env.ok(&["image", "prune"]);
    assert_eq!(cache_entries_of(&env, &hello), Vec::<PathBuf>::new());
}

// ------------------------------------------------------------ network

#[test]
fn network_is_denied_by_default_and_granted_with_host() {
    let env = Env::new();
    let net = s(&sample("net_component.wat")).to_string();
    for op in ["tcp", "dns"] {
        let r = env.run(&["run", &net, op]);
        assert_code(&r, 1, &format!("{op} with no network"));
        let r = env.run(&["run", "--network", "none", &net, op]);
        assert_code(&r, 1, &format!("{op} with --network none"));
        let r = env.run(&["run", "--network", "host", &net, op]);
        assert_code(&r, 0, &format!("{op} with --network host"));
    }
    let line = env.fail(&["run", "--network", "bridge", &net, "tcp"]);
    assert!(line.contains("bridge"), "{line}");
}

// ---------------------------------------------------------- bad input

#[test]
fn bad_local_files_fail_with_one_clear_line() {
    let env = Env::new();
    let dir = tempfile::tempdir().expect("tempdir");

    let not_wasm = dir.path().join("x.wasm");
    std::fs::write(&not_wasm, b"#!/bin/sh\necho I am not wasm\n").expect("write x.wasm");
    let line = env.fail(&["run", s(&not_wasm)]);
    assert!(
        line.contains("x.wasm is not a wasm module or component"),
        "{line}"
    );

    let files = files_wasm();
    let truncated = dir.path().join("truncated.wasm");
    std::fs::write(&truncated, &files[..files.len() / 3]).expect("write truncated.wasm");
    let line = env.fail(&["run", s(&truncated)]);
    assert!(
        line.contains("truncated.wasm is not a valid wasm module"),
        "{line}"
    );

    let short = dir.path().join("short.wasm");
    std::fs::write(&short, b"\0asm\x01").expect("write short.wasm");
    let line = env.fail(&["run", s(&short)]);
    assert!(line.contains("short.wasm"), "{line}");

    let importer = dir.path().join("importer.wasm");
    let bytes = wat::parse_str(
        r#"(module
             (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
             (import "acme_host" "launch_missiles" (func))
             (memory (export "memory") 1)
             (func (export "_start")))"#,
    )
    .expect("compile the importer");
    std::fs::write(&importer, bytes).expect("write importer.wasm");
    let line = env.fail(&["run", s(&importer)]);
    assert!(line.contains("acme_host::launch_missiles"), "{line}");
    assert!(line.contains("does not provide"), "{line}");

    let line = env.fail(&["run", s(&sample("not_a_command.wat"))]);
    assert!(line.contains("wasi:cli/run"), "{line}");
    assert!(line.contains("greet"), "{line}");

    let bad_wat = dir.path().join("bad.wat");
    std::fs::write(&bad_wat, "(module (func (i32.bogus)))").expect("write bad.wat");
    let line = env.fail(&["run", s(&bad_wat)]);
    assert!(line.contains("bad.wat"), "{line}");

    // ./nope.wasm relative to the working directory.
    let mut cmd = env.command(&["run", "./nope.wasm"]);
    cmd.current_dir(dir.path());
    let r = run_cmd(cmd, None);
    let line = assert_failure(&r, "run ./nope.wasm");
    assert!(line.contains("nope.wasm"), "{line}");
    assert!(line.contains("no such file"), "{line}");

    // What does not compile leaves nothing in the cache. (The importer and
    // not_a_command are valid code that fails later: their entries may stay.)
    assert_eq!(
        cache_entries_of(&env, &files[..files.len() / 3]),
        Vec::<PathBuf>::new()
    );
    assert_eq!(cache_entries(&env).len(), 2, "{:?}", cache_entries(&env));
}

#[test]
fn bad_options_fail_with_one_clear_line() {
    let env = Env::new();
    let hello = s(&sample("hello.wat")).to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let gone = dir.path().join("gone");
    let vol = format!("{}:/data", s(&gone));

    let line = env.fail(&["run", "-v", &vol, &hello]);
    assert!(line.contains(s(&gone)), "{line}");
    assert!(line.contains("does not exist"), "{line}");
    assert!(!gone.exists(), "a missing source is not created");

    let line = env.fail(&["run", "-v", &format!("{}:relative", s(dir.path())), &hello]);
    assert!(line.contains("relative"), "{line}");

    let line = env.fail(&["run", "--memory", "12q", &hello]);
    assert!(line.contains("12q"), "{line}");
    let line = env.fail(&["run", "--timeout", "forever", &hello]);
    assert!(line.contains("forever"), "{line}");
    for (flag, value) in [
        ("--pids-limit", Some("5")),
        ("--cap-add", Some("NET_ADMIN")),
        ("--user", Some("1000")),
        ("--tty", None),
        ("--cpus", Some("1")),
        ("--privileged", None),
        ("--tmpfs", Some("/scratch:size=1m,exec")),
    ] {
        let mut args = vec!["run", flag];
        args.extend(value);
        args.push(&hello);
        let line = env.fail(&args);
        assert!(line.contains(flag), "{flag}: {line}");
        assert!(line.contains("not supported for wasm"), "{flag}: {line}");
    }
}

#[test]
fn native_only_flags_on_a_wasm_image_and_pull_never_fail_cleanly() {
    let Some(reg) = registry() else { return };
    push(
        &reg,
        "flags/hello:1",
        &fixture::wasm_artifact(&wasm("hello")),
    );
    let env = Env::new();
    let name = reg.reference("flags/hello:1");

    // --pull never of an image not in the store: nothing is fetched.
    let line = env.fail(&["run", "--pull", "never", &name]);
    assert!(line.contains("not in the store"), "{line}");
    assert!(line.contains(&name), "{line}");
    assert_eq!(env.list("images"), Vec::<String>::new());
    assert_eq!(env.list("blobs/sha256"), Vec::<String>::new());

    // Refused before anything runs, after the pull.
    let r = env.run(&["run", "-q", "--pids-limit", "5", &name]);
    let line = assert_failure(&r, "--pids-limit on a wasm image");
    assert!(
        line.contains("--pids-limit is not supported for wasm"),
        "{line}"
    );
    assert!(!r.stdout.contains("hello from wasm"), "{}", r.stdout);
    let r = env.run(&["run", "-q", "--device", "/dev/fuse", &name]);
    let line = assert_failure(&r, "--device on a wasm image");
    assert!(
        line.contains("--device is not supported for wasm"),
        "{line}"
    );
    assert!(!r.stdout.contains("hello from wasm"), "{}", r.stdout);

    // Now stored: --pull never runs it without the registry.
    drop(reg);
    let r = env.ok(&["run", "--pull", "never", &name]);
    assert!(r.stdout.starts_with("hello from wasm\n"), "{}", r.stdout);
    let line = env.fail(&["run", "--pull", "sometimes", &name]);
    assert!(line.contains("sometimes"), "{line}");
}
