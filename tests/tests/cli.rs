//! End-to-end tests of the command line where a docker user's hands go
//! (issue 12), through the binary: a closed stdout ends wrun quietly, usage
//! errors are one line and exit 125, an empty `WRUN_ROOT` is unset, and a
//! user who is not root is refused a native image, before its layers when
//! its config already says native. (That everything after IMAGE is the workload's is tested in
//! `wasm_run.rs` and `native_run.rs`, beside the other argv tests.)

use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use wrun_tests::fixture::{self, Compression, ImageBuilder, Layer, Tagged, TarEntry};
use wrun_tests::{Env, Registry, Run, assert_code, assert_failure, is_root, wrun};

/// The uid and gid the tests run wrun as when they need a user who is not root.
const NOBODY: u32 = 65534;

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

/// Runs `cmd` and captures everything.
fn capture(mut cmd: Command) -> Run {
    let out = cmd.stdin(Stdio::null()).output().expect("run wrun");
    Run {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
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

/// Makes `cmd` run as nobody when the tests run as root (and gives nobody
/// the directories it needs); as it is otherwise.
fn unprivileged(cmd: &mut Command, dirs: &[&Path]) {
    if is_root() {
        for d in dirs {
            chown_tree(d, NOBODY);
        }
        cmd.uid(NOBODY).gid(NOBODY);
    }
}

fn chown_tree(path: &Path, id: u32) {
    std::os::unix::fs::lchown(path, Some(id), Some(id))
        .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
    if path.is_dir() && !path.is_symlink() {
        for e in std::fs::read_dir(path).expect("read a directory") {
            chown_tree(&e.expect("a directory entry").path(), id);
        }
    }
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

// ------------------------------------------------------------ usage errors

#[test]
fn usage_errors_are_one_line_and_exit_125() {
    let env = Env::new();
    let hello = Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/wasm/hello.wat");
    let hello = hello.to_str().expect("a UTF-8 path");
    for (args, words) in [
        (&["ps"][..], &["unrecognized subcommand 'ps'"][..]),
        (&["run"], &["required", "<IMAGE>", "wrun run --help"]),
        (
            &["run", "--bogus", hello],
            &["'--bogus'", "wrun run --help"],
        ),
        (&["pull"], &["required", "<IMAGE>", "wrun pull --help"]),
        (&["pull", "a", "b"], &["unexpected argument 'b'"]),
        (&["images", "--format", "yaml"], &["'yaml'", "table, json"]),
        (&["--bogus"], &["unexpected argument '--bogus'"]),
        (
            &["image", "pune"],
            &["a similar subcommand exists: 'prune'"],
        ),
        (&["pul", "x"], &["a similar subcommand exists: 'pull'"]),
        (&["imags"], &["'images'"]),
    ] {
        let line = env.fail(args);
        for w in words {
            assert!(line.contains(w), "wrun {args:?}: {line:?} lacks {w:?}");
        }
        assert!(!line.contains("error:"), "wrun {args:?}: {line:?}");
    }
    // `ps` is not a typo of `push`, nor `pul` of `push`.
    let line = env.fail(&["ps"]);
    assert!(!line.contains("push"), "{line}");
    let line = env.fail(&["pul", "x"]);
    assert!(!line.contains("push"), "{line}");

    // No command at all: the help, then the one line (with only global
    // options given, clap's "requires a subcommand").
    for args in [&[][..], &["image"]] {
        let r = capture({
            let mut c = wrun();
            c.args(args);
            c
        });
        let line = assert_failure(&r, &format!("wrun {args:?}"));
        assert!(line.contains("no command"), "{line}");
        assert!(r.stderr.contains("Usage: wrun"), "{}", r.stderr);
    }
    let line = env.fail(&[]);
    assert!(line.contains("requires a subcommand"), "{line}");

    // --help and --version, before IMAGE for run, are no failures.
    for args in [&["--help"][..], &["-h"], &["--version"], &["run", "--help"]] {
        let r = env.run(args);
        assert_code(&r, 0, &format!("wrun {args:?}"));
        assert!(r.stderr.is_empty(), "wrun {args:?}: {}", r.stderr);
        assert!(r.stdout.starts_with("wrun ") || r.stdout.contains("Usage: wrun"));
    }
}

#[test]
fn an_empty_wrun_root_is_unset() {
    let home = tempfile::tempdir().expect("tempdir");
    let data = home.path().join("data");
    std::fs::create_dir(&data).expect("create XDG_DATA_HOME");
    // As nobody (when the tests run as root): the default store is then
    // under XDG_DATA_HOME, never the machine's /var/lib/wrun.
    let mut cmd = wrun();
    cmd.args(["images", "-q"])
        .env("WRUN_ROOT", "")
        .env("WRUN_CONFIG", "")
        .env("HOME", home.path())
        .env("XDG_DATA_HOME", &data)
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env("DOCKER_CONFIG", home.path().join("docker"));
    unprivileged(&mut cmd, &[home.path()]);
    let r = capture(cmd);
    assert_code(&r, 0, "WRUN_ROOT= wrun images");
    assert!(r.stderr.is_empty(), "{}", r.stderr);
    assert!(
        data.join("wrun/blobs").is_dir(),
        "the store is the default one"
    );

    // A WRUN_ROOT that is set is the store.
    let store = home.path().join("store");
    let mut cmd = wrun();
    cmd.args(["images", "-q"])
        .env("WRUN_ROOT", &store)
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env("DOCKER_CONFIG", home.path().join("docker"));
    unprivileged(&mut cmd, &[home.path()]);
    let r = capture(cmd);
    assert_code(&r, 0, "WRUN_ROOT=store wrun images");
    assert!(store.join("blobs").is_dir(), "WRUN_ROOT names the store");
}

// ---------------------------------------------------- native without root

/// `env`'s command for `args`, run as nobody when the tests run as root
/// (with the store and configuration directories given to nobody).
fn as_nobody(env: &Env, args: &[&str]) -> Run {
    let mut cmd = env.command(args);
    let dirs: Vec<&Path> = [env.root().parent(), env.docker_config().parent()]
        .into_iter()
        .flatten()
        .collect();
    unprivileged(&mut cmd, &dirs);
    capture(cmd)
}

#[test]
fn a_user_who_is_not_root_is_refused_a_native_image_before_its_layers() {
    let Some(reg) = Registry::start_if_installed() else {
        return;
    };
    const REFUSED: &str = "rootless native containers are not supported yet";
    // Linux and no program: the config alone says native (rule 5).
    let bare = ImageBuilder::new()
        .layer(Layer::tar(
            &[TarEntry::file(
                "etc/payload",
                0o644,
                &fixture::noise(300_000, 12),
            )],
            Compression::Gzip,
        ))
        .build();
    // An ELF entrypoint: only the file says native (rule 4), as a Wasm
    // module there would say Wasm, so the layers are fetched first.
    let elf = fixture::small_image("cli");
    let hello =
        wat::parse_file(Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/wasm/hello.wat"))
            .expect("compile samples/wasm/hello.wat");
    let wasm = fixture::wasm_artifact(&hello);
    reg.push_image("native/bare:1", &bare);
    reg.push_image("native/elf:1", &elf);
    let env = Env::new();

    let r = as_nobody(
        &env,
        &["run", "-q", &reg.reference("native/bare:1"), "/bin/true"],
    );
    let line = assert_failure(&r, "run a native image without root");
    assert!(line.contains(REFUSED), "{line}");
    assert!(
        !env.blob_path(&bare.layers[0].blob.digest).exists(),
        "the layer was fetched"
    );
    assert_eq!(env.list("layers/sha256"), Vec::<String>::new());
    assert_eq!(env.list("images"), Vec::<String>::new());

    let r = as_nobody(&env, &["run", "-q", &reg.reference("native/elf:1")]);
    let line = assert_failure(&r, "run an ELF-entrypoint image without root");
    assert!(line.contains(REFUSED), "{line}");
    // Stored now: refused again without a pull.
    drop(reg);
    let r = as_nobody(&env, &["run", "--pull", "never", "-q", &elf_name(&env)]);
    let line = assert_failure(&r, "run a stored native image without root");
    assert!(line.contains(REFUSED), "{line}");

    // A Wasm image runs without root.
    let reg = Registry::start();
    reg.push_image("wasm/hello:1", &wasm);
    let r = as_nobody(&env, &["run", "-q", &reg.reference("wasm/hello:1"), "x"]);
    assert_code(&r, 0, "run a wasm image without root");
    assert!(r.stdout.starts_with("hello from wasm\n"), "{}", r.stdout);
}

/// The one name in `env`'s store (the ELF image's).
fn elf_name(env: &Env) -> String {
    let names: Vec<String> = env.refs().keys().cloned().collect();
    assert_eq!(names.len(), 1, "{names:?}");
    names[0].clone()
}
