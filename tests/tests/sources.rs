//! Local image sources (`oci:DIR:TAG`, `oci-archive:FILE:TAG`,
//! `docker-archive:FILE`) through every entry point (issue 9, part 6):
//! `wrun run` and `wrun pull` (the binary, on its multi-thread runtime),
//! `wrun::Runner` from a current-thread tokio runtime and from synchronous
//! code, and `PluginHost::load_image`. A library that may be called from a
//! current-thread runtime must not panic there, as `block_in_place` does.
//!
//! The sources are made here: images built in Rust are pushed to a real
//! `docker-registry`, and skopeo copies them out into each kind of source,
//! as a user would. A Wasm image (the `exit` sample as its entrypoint file)
//! runs everywhere; a native one (a static busybox) where there is root.

use std::path::Path;
use std::process::Command;
use wrun::{LaunchSpec, Runner, Store, Target};
use wrun_plugin::image::{PullOptions, PullPolicy};
use wrun_plugin::{Grants, HostConfig, PluginHost, Request};
use wrun_tests::fixture::{Compression, Image, ImageBuilder, Layer, TarEntry};
use wrun_tests::{
    Env, Registry, assert_code, have_tools, host_arch, is_root, is_static_elf, wrun_bin,
};

const BUSYBOX: &str = "/bin/busybox";

/// An image whose entrypoint is the Wasm file `program`, in a tar layer.
fn wasm_image(file: &str, program: &[u8]) -> Image {
    ImageBuilder::new()
        .platform("wasip1/wasm")
        .entrypoint(&[&format!("/{file}")])
        .layer(Layer::tar(
            &[TarEntry::file(file, 0o755, program)],
            Compression::Gzip,
        ))
        .build()
}

/// The `exit` sample (exits with its argument) as an image.
fn exit_image() -> Image {
    let module =
        wat::parse_file(Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/wasm/exit.wat"))
            .expect("compile samples/wasm/exit.wat");
    wasm_image("exit.wasm", &module)
}

/// A native image of the host's static busybox, entrypoint `/bin/busybox`;
/// `None` where native containers cannot run here (no root, no static busybox).
fn busybox_image() -> Option<Image> {
    if !is_root() {
        println!("native sources skipped: needs root");
        return None;
    }
    let bin = std::fs::read(BUSYBOX).unwrap_or_default();
    if !is_static_elf(&bin) {
        wrun_tests::skip("no static busybox at /bin/busybox (apt-get install busybox-static)");
        return None;
    }
    Some(
        ImageBuilder::new()
            .platform(&format!("linux/{}", host_arch()))
            .entrypoint(&[BUSYBOX])
            .cmd(&["true"])
            .layer(Layer::tar(
                &[
                    TarEntry::dir("bin", 0o755),
                    TarEntry::file("bin/busybox", 0o755, &bin),
                    TarEntry::dir("tmp", 0o1777),
                ],
                Compression::Gzip,
            ))
            .build(),
    )
}

/// Each kind of local source of one image, made by skopeo from a registry.
struct Sources {
    _dir: tempfile::TempDir,
    /// `oci:DIR:TAG`, `oci-archive:FILE:TAG`, `docker-archive:FILE`.
    all: Vec<String>,
}

/// Copies `name` out of `reg` into an OCI layout, an oci-archive and a
/// docker-archive, as `skopeo copy` writes them.
fn sources(reg: &Registry, name: &str, tag: &str) -> Sources {
    let dir = tempfile::tempdir().expect("create a directory for the sources");
    let layout = dir.path().join(tag);
    let oci_archive = dir.path().join(format!("{tag}-oci.tar"));
    let docker_archive = dir.path().join(format!("{tag}-docker.tar"));
    let all = vec![
        format!("oci:{}:{tag}", layout.display()),
        format!("oci-archive:{}:{tag}", oci_archive.display()),
        format!("docker-archive:{}", docker_archive.display()),
    ];
    let dests = [
        all[0].clone(),
        all[1].clone(),
        format!("{}:example.com/sources/{tag}:1", all[2]),
    ];
    for dest in dests {
        let out = Command::new("skopeo")
            .args([
                "--insecure-policy",
                "copy",
                "--quiet",
                "--src-tls-verify=false",
            ])
            .arg(format!("docker://{}", reg.reference(name)))
            .arg(&dest)
            .output()
            .expect("run skopeo copy");
        assert!(
            out.status.success(),
            "skopeo copy to {dest}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Sources { _dir: dir, all }
}

/// A registry holding the exit image as `sources/exit:1` and, where native
/// images run, the busybox one as `sources/busybox:1`; the sources of each,
/// with how to make each exit 7 (the arguments after the image).
struct Fixture {
    _reg: Registry,
    cases: Vec<(Sources, Vec<&'static str>)>,
}

fn fixture() -> Option<Fixture> {
    if !have_tools(&["docker-registry", "skopeo"]) {
        return None;
    }
    let reg = Registry::start();
    reg.push_image("sources/exit:1", &exit_image());
    let mut cases = vec![(sources(&reg, "sources/exit:1", "exit"), vec!["7"])];
    if let Some(busybox) = busybox_image() {
        reg.push_image("sources/busybox:1", &busybox);
        cases.push((
            sources(&reg, "sources/busybox:1", "busybox"),
            vec!["sh", "-c", "exit 7"],
        ));
    }
    Some(Fixture { _reg: reg, cases })
}

#[test]
fn wrun_run_runs_each_local_source() {
    let Some(fx) = fixture() else { return };
    for (sources, args) in &fx.cases {
        for source in &sources.all {
            let env = Env::new();
            let mut argv = vec!["run", "-q", source.as_str()];
            argv.extend(args);
            let r = env.run(&argv);
            assert_code(&r, 7, &format!("wrun run {source}"));
            env.assert_consistent();
            assert_eq!(env.list("tmp"), Vec::<String>::new(), "{source}");
        }
    }
}

#[test]
fn wrun_pull_stores_each_local_source() {
    let Some(fx) = fixture() else { return };
    for (i, (sources, _)) in fx.cases.iter().enumerate() {
        for source in &sources.all {
            let env = Env::new();
            let r = env.ok(&["pull", "-q", source]);
            let kind = env.inspect(r.line())["kind"].clone();
            assert_eq!(kind, if i == 0 { "wasm" } else { "native" }, "{source}");
            env.assert_consistent();
            assert_eq!(env.list("tmp"), Vec::<String>::new(), "{source}");
        }
    }
}

/// A runner over the store of `env`, its native helper the `wrun` binary.
fn runner(env: &Env) -> Runner {
    let mut runner = Runner::new(
        Store::open(env.root()).expect("open the store"),
        PullOptions::default(),
    );
    runner.helper(wrun_bin());
    runner
}

fn spec(source: &str, args: &[&str]) -> LaunchSpec {
    let mut spec = LaunchSpec::new(Target::Image(source.to_string()));
    spec.args = args.iter().map(|a| a.to_string()).collect();
    spec
}

#[tokio::test(flavor = "current_thread")]
async fn runner_resolves_each_local_source_on_a_current_thread_runtime() {
    let Some(fx) = fixture() else { return };
    for (sources, args) in &fx.cases {
        for source in &sources.all {
            let env = Env::new();
            let runner = runner(&env);
            let spec = spec(source, args);
            let resolved = runner.resolve(&spec).await.expect("resolve the source");
            let exit = runner
                .start(&spec, &resolved)
                .and_then(|l| l.wait())
                .expect("run the image");
            assert_eq!(exit.code, 7, "{source}");
            // The synchronous launch, called from inside this runtime, pulls
            // on a thread of its own: no panic about nested runtimes.
            let fresh = Env::new();
            let exit = runner_for(&fresh, &spec).expect("launch from async code");
            assert_eq!(exit, 7, "{source}, launched from async code");
            env.assert_consistent();
        }
    }
}

fn runner_for(env: &Env, spec: &LaunchSpec) -> Result<i32, wrun::Error> {
    Ok(runner(env).launch(spec)?.wait()?.code)
}

#[test]
fn runner_launches_each_local_source_from_synchronous_code() {
    let Some(fx) = fixture() else { return };
    for (sources, args) in &fx.cases {
        for source in &sources.all {
            let env = Env::new();
            let code = runner_for(&env, &spec(source, args)).expect("launch the source");
            assert_eq!(code, 7, "{source}");
            env.assert_consistent();
            assert_eq!(env.list("tmp"), Vec::<String>::new(), "{source}");
        }
    }
}

fn plugin_host() -> PluginHost {
    let mut config = HostConfig::new();
    config.max_instances(8).on_log(|_| {});
    PluginHost::new(&config).expect("plugin host")
}

/// The sources of the `upper` sample plugin as an image, from `reg`.
fn upper_sources() -> Option<(Registry, Sources)> {
    if !have_tools(&["docker-registry", "skopeo"]) {
        return None;
    }
    let reg = Registry::start();
    reg.push_image(
        "plugins/upper:1",
        &wasm_image("upper.wasm", wrun_plugin_samples::UPPER.bytes),
    );
    let sources = sources(&reg, "plugins/upper:1", "upper");
    Some((reg, sources))
}

fn call_upper(host: &PluginHost, root: &Path, source: &str) -> String {
    let plugin = host
        .load_image(root, source, PullPolicy::Missing, &PullOptions::default())
        .unwrap_or_else(|e| panic!("load the plugin from {source}: {e}"));
    let mut instance = plugin.instantiate(&Grants::new()).expect("instance");
    let response = instance
        .call(Request::new("upper", "from a local source"))
        .expect("call the plugin");
    String::from_utf8(response.payload).expect("a UTF-8 answer")
}

#[test]
fn plugin_host_loads_a_plugin_from_each_local_source() {
    let Some((_reg, sources)) = upper_sources() else {
        return;
    };
    let host = plugin_host();
    for source in &sources.all {
        let env = Env::new();
        assert_eq!(
            call_upper(&host, env.root(), source),
            "FROM A LOCAL SOURCE",
            "{source}"
        );
        env.assert_consistent();
    }
}

#[tokio::test(flavor = "current_thread")]
async fn plugin_host_loads_from_a_local_source_inside_a_current_thread_runtime() {
    let Some((_reg, sources)) = upper_sources() else {
        return;
    };
    let host = plugin_host();
    for source in &sources.all {
        let env = Env::new();
        assert_eq!(
            call_upper(&host, env.root(), source),
            "FROM A LOCAL SOURCE",
            "{source}"
        );
    }
}

#[test]
fn plugin_host_refuses_a_native_image_from_a_local_source() {
    let Some(fx) = fixture() else { return };
    let Some((native, _)) = fx.cases.get(1) else {
        return;
    };
    let host = plugin_host();
    for source in &native.all {
        let env = Env::new();
        match host.load_image(
            env.root(),
            source,
            PullPolicy::Missing,
            &PullOptions::default(),
        ) {
            Err(wrun_plugin::Error::NotAPlugin { reason, .. }) => {
                assert_eq!(reason, "it is a native image", "{source}")
            }
            other => panic!("{source}: expected NotAPlugin, got {other:?}"),
        }
    }
}

/// podman's own archives (issue 12): an image podman pulled from the test's
/// registry, written by `podman save` as a docker-archive (its default,
/// whose `<id>/layer.tar` entries are symlinks to the layer files) and as an
/// oci-archive, loads with `wrun load -i` and runs. Two layers, the second
/// over the first.
#[test]
fn wrun_load_reads_podmans_docker_archive_and_oci_archive() {
    if !have_tools(&["docker-registry", "skopeo", "podman"]) {
        return;
    }
    let Some(busybox) = busybox_image() else {
        return;
    };
    let mut image = ImageBuilder::new();
    image
        .platform(&format!("linux/{}", host_arch()))
        .entrypoint(&[BUSYBOX])
        .cmd(&["true"]);
    for l in busybox.layers {
        image.layer(l);
    }
    let image = image
        .layer(Layer::tar(
            &[
                TarEntry::dir("etc", 0o755),
                TarEntry::file("etc/marker", 0o644, b"second layer\n"),
            ],
            Compression::Gzip,
        ))
        .build();
    let reg = Registry::start();
    reg.push_image("podman/bb:1", &image);
    let reference = reg.reference("podman/bb:1");

    let dir = tempfile::tempdir().expect("create podman's directories");
    let conf = dir.path().join("registries.conf");
    std::fs::write(&conf, "").expect("write an empty registries.conf");
    let podman = |args: &[&str]| {
        let out = Command::new("podman")
            .arg("--root")
            .arg(dir.path().join("root"))
            .arg("--runroot")
            .arg(dir.path().join("run"))
            .args([
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "file",
                "--storage-driver",
                "vfs",
            ])
            .args(args)
            .env("CONTAINERS_REGISTRIES_CONF", &conf)
            .output()
            .expect("run podman");
        assert!(
            out.status.success(),
            "podman {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    podman(&["pull", "--quiet", "--tls-verify=false", &reference]);
    let docker_archive = dir.path().join("docker.tar");
    let oci_archive = dir.path().join("oci.tar");
    let s = |p: &Path| p.to_string_lossy().into_owned();
    podman(&["save", "--quiet", "-o", &s(&docker_archive), &reference]);
    podman(&[
        "save",
        "--quiet",
        "--format",
        "oci-archive",
        "-o",
        &s(&oci_archive),
        &reference,
    ]);
    // The shape that once failed: `<id>/layer.tar` a symlink to a layer file.
    let file = std::fs::File::open(&docker_archive).expect("open podman's docker-archive");
    let mut tar = tar::Archive::new(file);
    let linked = tar
        .entries()
        .expect("read podman's docker-archive")
        .filter_map(Result::ok)
        .filter(|e| {
            e.header().entry_type() == tar::EntryType::Symlink
                && e.path().is_ok_and(|p| p.ends_with("layer.tar"))
        })
        .count();
    assert_eq!(linked, 2, "symlinked layer.tar entries in podman's archive");
    for archive in [&docker_archive, &oci_archive] {
        let env = Env::new();
        let r = env.ok(&["load", "-q", "-i", &s(archive)]);
        assert!(
            r.line().starts_with("sha256:"),
            "load {}: {:?}",
            archive.display(),
            r.stdout
        );
        let r = env.run(&["run", "--pull", "never", &reference, "cat", "/etc/marker"]);
        assert_code(&r, 0, &format!("run the image of {}", archive.display()));
        assert_eq!(r.stdout, "second layer\n", "{}", archive.display());
        env.assert_consistent();
    }
}
