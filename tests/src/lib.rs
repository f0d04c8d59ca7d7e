//! Support for wrun's end-to-end tests: running the `wrun` binary against a
//! store of its own ([`Env`]), a real CNCF distribution registry
//! ([`Registry`]), a hostile loopback registry ([`Hostile`]) for what no
//! honest registry serves, a proxy in front of a real one that can hold a
//! transfer back mid-blob ([`Proxy`]), and image fixtures written in Rust
//! ([`fixture`]).
//!
//! Tests that need a tool or root that is missing print `skipped: <reason>`
//! and return, except when `WRUN_REQUIRE_PRIVILEGED=1` (CI sets it): then a
//! missing capability is a failure, never a silent skip.

pub mod fixture;
pub mod hostile;
pub mod proxy;
pub mod registry;

pub use hostile::{Hostile, Misbehave};
pub use proxy::Proxy;
pub use registry::Registry;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

/// The variable CI sets to turn skips into failures.
pub const REQUIRE_ENV: &str = "WRUN_REQUIRE_PRIVILEGED";

/// wrun's exit code for its own failures.
pub const EXIT_WRUN_FAILED: i32 = 125;

/// `sha256:<hex>` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// The hex part of a `sha256:<hex>` digest.
pub fn hex_of(digest: &str) -> &str {
    digest.split_once(':').map_or(digest, |(_, h)| h)
}

/// The path of the `wrun` binary: `$WRUN_BIN`, else `target/debug/wrun`
/// beside this test binary (`…/target/debug/deps/x` → `…/target/debug/wrun`).
///
/// # Panics
/// If the binary does not exist: build it first with `cargo build -p wrun-cli`.
pub fn wrun_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("WRUN_BIN").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("the path of the running test binary");
    let debug = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in target/<profile>/deps");
    let bin = debug.join("wrun");
    assert!(
        bin.is_file(),
        "{} does not exist: build it first: cargo build -p wrun-cli",
        bin.display()
    );
    bin
}

/// A `Command` for the wrun binary, with nothing else set.
pub fn wrun() -> Command {
    Command::new(wrun_bin())
}

/// The host's architecture in OCI's names (`amd64`, `arm64` …).
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// Whether `b` is a 64-bit little-endian ELF with no program interpreter
/// (static), so it runs in an image that has no libc.
pub fn is_static_elf(b: &[u8]) -> bool {
    if b.len() < 64 || &b[..4] != b"\x7fELF" || b[4] != 2 || b[5] != 1 {
        return false;
    }
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
    let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
    let mut off = [0u8; 8];
    off.copy_from_slice(&b[0x20..0x28]);
    let phoff = u64::from_le_bytes(off) as usize;
    let (size, count) = (u16_at(0x36), u16_at(0x38));
    (0..count).all(|i| {
        let at = phoff + i * size;
        // PT_INTERP = 3
        at + 4 <= b.len() && u32_at(at) != 3
    })
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Whether skips are failures here (CI).
pub fn skips_are_failures() -> bool {
    std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1")
}

/// Reports that a test cannot run here: prints `skipped: <reason>`, or
/// panics when [`REQUIRE_ENV`] is `1`.
pub fn skip(reason: &str) {
    if skips_are_failures() {
        panic!("{REQUIRE_ENV}=1 but this test cannot run: {reason}");
    }
    println!("skipped: {reason}");
}

/// Whether every tool is on `PATH`; if not, [`skip`]s naming the missing ones.
pub fn have_tools(tools: &[&str]) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| !std::env::split_paths(&path).any(|d| d.join(t).is_file()))
        .collect();
    if missing.is_empty() {
        true
    } else {
        skip(&format!("not installed: {}", missing.join(", ")));
        false
    }
}

/// Whether this process is root; if not, [`skip`]s.
pub fn have_root(why: &str) -> bool {
    if is_root() {
        true
    } else {
        skip(&format!("needs root: {why}"));
        false
    }
}

/// What one run of wrun did.
#[derive(Debug)]
pub struct Run {
    /// Its exit status.
    pub status: ExitStatus,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// The stdout's first line, trimmed (`pull` prints the digest there).
    pub fn line(&self) -> &str {
        self.stdout.lines().next().unwrap_or("").trim()
    }
}

/// A store root and a docker credentials directory of one test's own, and
/// the commands to run wrun against them.
#[derive(Debug)]
pub struct Env {
    root: PathBuf,
    docker_config: PathBuf,
    _dirs: Vec<tempfile::TempDir>,
}

impl Env {
    /// A fresh empty store and an empty `DOCKER_CONFIG`, in temporary directories.
    pub fn new() -> Env {
        let store = tempfile::tempdir().expect("create a temporary store root");
        let cfg = Env::config_dir();
        Env {
            root: store.path().join("store"),
            docker_config: cfg.path().join("docker"),
            _dirs: vec![store, cfg],
        }
    }

    /// A store at `root` (which the caller owns), with a temporary `DOCKER_CONFIG`.
    pub fn at(root: &Path) -> Env {
        let cfg = Env::config_dir();
        Env {
            root: root.to_path_buf(),
            docker_config: cfg.path().join("docker"),
            _dirs: vec![cfg],
        }
    }

    /// A temporary directory with an empty wrun configuration file
    /// (`wrun-config.json`) beside where `DOCKER_CONFIG` will be (`docker/`).
    fn config_dir() -> tempfile::TempDir {
        let cfg = tempfile::tempdir().expect("create a temporary DOCKER_CONFIG");
        std::fs::write(cfg.path().join("wrun-config.json"), b"{}")
            .expect("write an empty wrun configuration");
        cfg
    }

    /// The store root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The `DOCKER_CONFIG` directory (may not exist yet).
    pub fn docker_config(&self) -> &Path {
        &self.docker_config
    }

    /// A wrun command with this store and credentials, and no configuration
    /// file or credentials from the machine.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = wrun();
        cmd.arg("--root")
            .arg(&self.root)
            .arg("--config")
            .arg(self.docker_config.with_file_name("wrun-config.json"))
            .args(args)
            .env("DOCKER_CONFIG", &self.docker_config)
            .env_remove("WRUN_ROOT")
            .env_remove("WRUN_CONFIG")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs wrun with `args` and captures everything.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with_stdin(args, None)
    }

    /// Runs wrun with `args`, feeding `stdin` if given.
    pub fn run_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Run {
        let mut cmd = self.command(args);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        if stdin.is_some() {
            cmd.stdin(Stdio::piped());
        }
        let mut child = cmd.spawn().expect("spawn wrun");
        if let Some(input) = stdin {
            use std::io::Write as _;
            let mut pipe = child.stdin.take().expect("wrun's stdin pipe");
            pipe.write_all(input.as_bytes())
                .expect("write wrun's stdin");
        }
        let out = child.wait_with_output().expect("wait for wrun");
        Run {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs wrun and asserts it succeeded.
    pub fn ok(&self, args: &[&str]) -> Run {
        let r = self.run(args);
        assert!(
            r.status.success(),
            "wrun {args:?} failed ({}):\n{}{}",
            r.status,
            r.stdout,
            r.stderr
        );
        r
    }

    /// Runs wrun, asserts it failed as wrun fails (exit 125, one line
    /// `wrun: …` on stderr, no panic) and returns that line.
    pub fn fail(&self, args: &[&str]) -> String {
        let r = self.run(args);
        assert_failure(&r, &format!("wrun {args:?}"))
    }

    /// `wrun inspect NAME`, the one object.
    pub fn inspect(&self, name: &str) -> Value {
        let r = self.ok(&["inspect", name]);
        let v: Value = serde_json::from_str(&r.stdout).expect("inspect prints JSON");
        v.as_array()
            .and_then(|a| a.first())
            .cloned()
            .expect("inspect prints an array of one image")
    }

    /// `wrun images --format json`.
    pub fn images(&self) -> Vec<Value> {
        let r = self.ok(&["images", "--format", "json"]);
        let v: Value = serde_json::from_str(&r.stdout).expect("images prints JSON");
        v.as_array().cloned().expect("images prints an array")
    }

    /// The names in `refs.json` (empty when there is none).
    pub fn refs(&self) -> serde_json::Map<String, Value> {
        match std::fs::read(self.root.join("refs.json")) {
            Ok(bytes) => serde_json::from_slice::<Value>(&bytes)
                .expect("refs.json is JSON")
                .as_object()
                .cloned()
                .expect("refs.json is an object"),
            Err(_) => serde_json::Map::new(),
        }
    }

    /// The entries of a directory of the store (`blobs/sha256`, `tmp` …), sorted.
    pub fn list(&self, rel: &str) -> Vec<String> {
        let mut v: Vec<String> = match std::fs::read_dir(self.root.join(rel)) {
            Ok(rd) => rd
                .map(|e| {
                    e.expect("read a store directory entry")
                        .file_name()
                        .to_string_lossy()
                        .into_owned()
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        v.sort();
        v
    }

    /// The unpacked directory of the layer with this diff-id.
    pub fn layer_dir(&self, diff_id: &str) -> PathBuf {
        self.root.join("layers/sha256").join(hex_of(diff_id))
    }

    /// The path of a blob in the store.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        self.root.join("blobs/sha256").join(hex_of(digest))
    }

    /// Asserts the store holds no image: no record, no name, no unpacked
    /// layer; every blob that is visible is what its name says; and, after
    /// `wrun image prune`, nothing is left in `tmp/` or `blobs/`.
    pub fn assert_empty_after_failure(&self) {
        assert_eq!(self.list("images"), Vec::<String>::new(), "image records");
        assert!(self.refs().is_empty(), "refs: {:?}", self.refs());
        assert_eq!(self.list("layers/sha256"), Vec::<String>::new(), "layers");
        self.assert_consistent();
        self.ok(&["image", "prune"]);
        assert_eq!(self.list("tmp"), Vec::<String>::new(), "tmp after prune");
        assert_eq!(
            self.list("blobs/sha256"),
            Vec::<String>::new(),
            "blobs after prune"
        );
    }

    /// Asserts the store is consistent: every visible blob hashes to its
    /// name; every record's blobs and unpacked layers exist; every name
    /// points at a record.
    pub fn assert_consistent(&self) {
        for name in self.list("blobs/sha256") {
            let bytes = std::fs::read(self.root.join("blobs/sha256").join(&name))
                .expect("read a stored blob");
            assert_eq!(
                sha256(&bytes),
                format!("sha256:{name}"),
                "blob {name} is corrupt"
            );
        }
        for rec in self.list("images") {
            let v: Value = serde_json::from_slice(
                &std::fs::read(self.root.join("images").join(&rec)).expect("read a record"),
            )
            .expect("an image record is JSON");
            let digest = v["digest"].as_str().expect("record digest");
            assert!(self.blob_path(digest).is_file(), "manifest of {rec}");
            let config = v["config"]["digest"].as_str().expect("record config");
            assert!(self.blob_path(config).is_file(), "config of {rec}");
            for l in v["layers"].as_array().expect("record layers") {
                let d = l["digest"].as_str().expect("layer digest");
                assert!(self.blob_path(d).is_file(), "layer blob {d} of {rec}");
                if let Some(diff) = l["diff_id"].as_str() {
                    assert!(self.layer_dir(diff).is_dir(), "layer dir {diff} of {rec}");
                }
            }
        }
        for (name, digest) in self.refs() {
            let d = digest.as_str().expect("refs values are digests");
            assert!(
                self.root
                    .join("images")
                    .join(format!("{}.json", hex_of(d)))
                    .is_file(),
                "name {name} points at a missing record {d}"
            );
        }
    }
}

impl Default for Env {
    fn default() -> Self {
        Env::new()
    }
}

/// Asserts `r` exited with `code` and did not panic.
pub fn assert_code(r: &Run, code: i32, what: &str) {
    assert_eq!(
        r.status.code(),
        Some(code),
        "{what}: expected exit {code}\nstdout: {}\nstderr: {}",
        r.stdout,
        r.stderr
    );
    assert!(
        !r.stderr.contains("panicked"),
        "{what} panicked: {}",
        r.stderr
    );
}

/// Asserts `r` failed as wrun fails: exit 125, one line `wrun: …` on stderr,
/// no panic. Returns that line.
pub fn assert_failure(r: &Run, what: &str) -> String {
    assert_code(r, EXIT_WRUN_FAILED, what);
    let lines: Vec<&str> = r.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let last = lines.last().copied().unwrap_or_default();
    assert!(
        last.starts_with("wrun: "),
        "{what}: the last stderr line is not `wrun: …`: {:?}",
        r.stderr
    );
    assert!(
        lines.iter().filter(|l| l.starts_with("wrun: ")).count() == 1,
        "{what}: more than one error line: {:?}",
        r.stderr
    );
    last.to_string()
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: std::time::Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < timeout {
        if cond() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    cond()
}

/// A loopback port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    l.local_addr().expect("local address").port()
}
