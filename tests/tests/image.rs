//! End-to-end tests of wrun's image commands (issue 2): pull, images,
//! inspect, rmi, prune, save, load, push, login and logout, against a real
//! `docker-registry`, a hostile loopback registry and local layouts. Each
//! test has a store of its own.

use serde_json::Value;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;
use wrun_tests::fixture::{
    self, Compression, ELF_HEAD, Image, ImageBuilder, Index, Layer, Tagged, TarEntry, WASM_MODULE,
};
use wrun_tests::{
    Env, Hostile, Misbehave, Proxy, Registry, assert_failure, have_root, have_tools, hex_of,
    host_arch, wait_until,
};

// ---------------------------------------------------------------- helpers

/// A temporary OCI layout holding `tagged`.
fn layout(tagged: &[(&str, Tagged<'_>)]) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("layout")
        .tempdir()
        .expect("create a layout directory");
    fixture::write_layout(dir.path(), tagged);
    dir
}

/// A registry holding `content` as `name` (`repo:tag`); `None` (skipped) without the tools.
fn registry_with(name: &str, content: Tagged<'_>) -> Option<Registry> {
    if !have_tools(&["docker-registry", "skopeo"]) {
        return None;
    }
    let reg = Registry::start();
    push_fixture(&reg, name, content);
    Some(reg)
}

/// Pushes `content` to `reg` as `name` through a temporary layout.
fn push_fixture(reg: &Registry, name: &str, content: Tagged<'_>) {
    let dir = layout(&[("t", content)]);
    reg.push_layout(dir.path(), "t", name);
}

/// A hostile registry serving `content` as `repo:tag`.
fn hostile_with(repo: &str, tag: &str, content: Tagged<'_>) -> Hostile {
    let h = Hostile::start();
    h.add(repo, tag, content);
    h
}

/// The pid of a process that ran and was reaped.
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true")
        .spawn()
        .expect("spawn true");
    let pid = child.id();
    child.wait().expect("reap true");
    pid
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p)
        .unwrap_or_else(|e| panic!("stat {}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// The `trusted.overlay.opaque` xattr of `p`, if any.
fn opaque_xattr(p: &Path) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt as _;
    let path = std::ffi::CString::new(p.as_os_str().as_bytes()).expect("a path without NUL");
    let name = c"trusted.overlay.opaque";
    let mut buf = [0u8; 16];
    // SAFETY: both strings are NUL-terminated and buf is valid for its length.
    let n = unsafe {
        libc::lgetxattr(
            path.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    (n >= 0).then(|| buf[..n as usize].to_vec())
}

fn names(v: &Value) -> Vec<String> {
    v["names"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// An image whose one layer has files with several modes, a directory, symlinks and a hard link.
fn rich_image() -> Image {
    ImageBuilder::new()
        .entrypoint(&["/bin/app"])
        .cmd(&["--help"])
        .env("GREETING=hello")
        .label("org.example.team", "e2e")
        .layer(Layer::tar(
            &[
                TarEntry::dir("bin", 0o755),
                TarEntry::file("bin/app", 0o755, &[ELF_HEAD, b"rich"].concat()),
                TarEntry::symlink("bin/sh", "/bin/app"),
                TarEntry::dir("etc", 0o755),
                TarEntry::file("etc/secret", 0o600, b"top secret"),
                TarEntry::dir("data", 0o750),
                TarEntry::file("data/readme", 0o644, b"hello"),
                TarEntry::file("data/tool", 0o4755, b"#!/bin/sh\n"),
                TarEntry::symlink("lnk", "data/readme"),
                TarEntry::hardlink("data/hard", "data/readme"),
            ],
            Compression::Gzip,
        ))
        .build()
}

fn check_rich_layer(env: &Env, image: &Image) {
    let dir = env.layer_dir(image.diff_id(0));
    assert!(dir.is_dir(), "layer dir {} missing", dir.display());
    assert_eq!(mode(&dir.join("bin/app")), 0o755);
    assert_eq!(mode(&dir.join("etc/secret")), 0o600);
    assert_eq!(mode(&dir.join("data")), 0o750);
    assert_eq!(mode(&dir.join("data/readme")), 0o644);
    assert_eq!(mode(&dir.join("data/tool")), 0o4755);
    assert_eq!(
        std::fs::read(dir.join("data/readme")).expect("read data/readme"),
        b"hello"
    );
    assert_eq!(
        std::fs::read_link(dir.join("bin/sh")).expect("bin/sh is a symlink"),
        PathBuf::from("/bin/app")
    );
    assert_eq!(
        std::fs::read_link(dir.join("lnk")).expect("lnk is a symlink"),
        PathBuf::from("data/readme")
    );
    let a = std::fs::metadata(dir.join("data/readme")).expect("stat data/readme");
    let b = std::fs::metadata(dir.join("data/hard")).expect("stat data/hard");
    assert_eq!(a.ino(), b.ino(), "data/hard is a hard link of data/readme");
}

// ---------------------------------------------------------------- pulls from the real registry

#[test]
fn pull_by_tag_and_by_digest_from_registry_then_images_and_inspect() {
    let image = rich_image();
    let Some(reg) = registry_with("e2e/app:v1", Tagged::Image(&image)) else {
        return;
    };
    let env = Env::new();
    let by_tag = reg.reference("e2e/app:v1");
    let r = env.ok(&["pull", &by_tag]);
    assert_eq!(
        r.line(),
        image.manifest.digest,
        "pull prints the manifest digest"
    );
    check_rich_layer(&env, &image);
    env.assert_consistent();

    // images, as a table and as JSON.
    let table = env.ok(&["images"]).stdout;
    let row = table
        .lines()
        .find(|l| l.contains(&reg.reference("e2e/app")))
        .unwrap_or_else(|| panic!("no row for the image in:\n{table}"));
    assert!(row.contains("v1"), "{row}");
    assert!(row.contains(&hex_of(&image.manifest.digest)[..12]), "{row}");
    assert!(row.contains("native"), "{row}");
    let list = env.images();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["digest"], image.manifest.digest.as_str());
    assert_eq!(list[0]["platform"], "linux/amd64");
    assert_eq!(list[0]["kind"], "native");
    assert_eq!(names(&list[0]), vec![by_tag.clone()]);
    let quiet = env.ok(&["images", "-q"]).stdout;
    assert_eq!(quiet.trim(), &hex_of(&image.manifest.digest)[..12]);

    // inspect.
    let v = env.inspect(&by_tag);
    assert_eq!(v["digest"], image.manifest.digest.as_str());
    assert_eq!(v["media_type"], fixture::OCI_MANIFEST);
    assert_eq!(v["platform"], "linux/amd64");
    assert_eq!(v["kind"], "native");
    assert_eq!(v["classification"]["kind"], "native");
    assert_eq!(v["classification"]["rule"], "magic");
    assert_eq!(v["classification"]["path"], "/bin/app");
    assert_eq!(v["classification"]["format"], "elf");
    assert_eq!(v["config"]["config"]["Entrypoint"][0], "/bin/app");
    assert_eq!(v["config"]["config"]["Labels"]["org.example.team"], "e2e");
    let layers = v["layers"].as_array().expect("inspect lists layers");
    assert_eq!(layers.len(), 1);
    assert_eq!(layers[0]["digest"], image.layers[0].blob.digest.as_str());
    assert_eq!(layers[0]["diff_id"], image.diff_id(0));
    assert_eq!(layers[0]["size"], image.layers[0].blob.bytes.len());
    assert_eq!(layers[0]["media_type"], Compression::Gzip.media_type());
    let size = image.config.bytes.len() + image.layers[0].blob.bytes.len();
    assert_eq!(v["size"], size);

    // By digest: the same image, under a name with the digest.
    let by_digest = reg.reference(&format!("e2e/app@{}", image.manifest.digest));
    let r = env.ok(&["pull", &by_digest]);
    assert_eq!(r.line(), image.manifest.digest);
    let v = env.inspect(&by_digest);
    assert_eq!(v["digest"], image.manifest.digest.as_str());
    let n = names(&v);
    assert!(n.contains(&by_tag) && n.contains(&by_digest), "{n:?}");
    // Nothing was downloaded again.
    assert!(
        r.stderr.contains("already present") && !r.stderr.contains("pulled"),
        "{}",
        r.stderr
    );
    let r = env.ok(&["pull", &by_tag]);
    assert!(
        r.stderr.contains("already present") && !r.stderr.contains("pulled"),
        "{}",
        r.stderr
    );
    // -q prints the digest and nothing else.
    let r = env.ok(&["pull", "-q", &by_tag]);
    assert_eq!(r.stdout.trim(), image.manifest.digest);
    assert_eq!(r.stderr.trim(), "");
    env.assert_consistent();
}

#[test]
fn second_pull_downloads_no_blob_again() {
    let image = fixture::small_image("second");
    let h = hostile_with("e2e/again", "v1", Tagged::Image(&image));
    let env = Env::new();
    let reference = h.reference("e2e/again:v1");
    env.ok(&["pull", &reference]);
    let blob_paths: Vec<String> = image
        .blobs()
        .iter()
        .skip(1)
        .map(|b| Hostile::blob_path("e2e/again", &b.digest))
        .collect();
    for p in &blob_paths {
        assert_eq!(h.count(p), 1, "first pull fetches {p} once");
    }
    env.ok(&["pull", &reference]);
    for p in &blob_paths {
        assert_eq!(h.count(p), 1, "second pull fetched {p} again");
    }
    env.assert_consistent();
}

#[test]
fn whiteouts_and_opaque_dirs_become_overlay_format() {
    if !have_root("whiteouts are character devices and opaque dirs trusted.* xattrs") {
        return;
    }
    let image = ImageBuilder::new()
        .layer(Layer::tar(
            &[
                TarEntry::dir("a", 0o755),
                TarEntry::file("a/x", 0o644, b"x"),
                TarEntry::file("a/y", 0o644, b"y"),
                TarEntry::dir("d", 0o755),
                TarEntry::file("d/old", 0o644, b"old"),
            ],
            Compression::Gzip,
        ))
        .layer(Layer::tar(
            &[
                TarEntry::dir("a", 0o755),
                TarEntry::whiteout("a/x"),
                TarEntry::dir("d", 0o755),
                TarEntry::opaque("d"),
                TarEntry::file("d/new", 0o644, b"new"),
            ],
            Compression::Gzip,
        ))
        .layer(Layer::tar(
            &[TarEntry::file("top", 0o644, b"top")],
            Compression::Gzip,
        ))
        .build();
    let dir = layout(&[("v1", Tagged::Image(&image))]);
    let env = Env::new();
    env.ok(&["pull", &format!("oci:{}:v1", dir.path().display())]);
    let lower = env.layer_dir(image.diff_id(0));
    let middle = env.layer_dir(image.diff_id(1));
    let upper = env.layer_dir(image.diff_id(2));
    assert!(
        std::fs::metadata(lower.join("a/x"))
            .expect("a/x below")
            .is_file()
    );
    assert_eq!(opaque_xattr(&lower.join("d")), None);
    let wh = std::fs::symlink_metadata(middle.join("a/x")).expect("the whiteout of a/x");
    assert!(wh.file_type().is_char_device(), "a/x is a character device");
    assert_eq!(wh.rdev(), 0, "the whiteout device is 0:0");
    assert!(
        !middle.join("a/.wh.x").exists(),
        "the .wh. file itself is not kept"
    );
    assert!(!middle.join("a/y").exists());
    assert_eq!(opaque_xattr(&middle.join("d")).as_deref(), Some(&b"y"[..]));
    assert!(
        !middle.join("d/.wh..wh..opq").exists(),
        "the opaque marker is not kept"
    );
    assert_eq!(std::fs::read(middle.join("d/new")).expect("d/new"), b"new");
    assert_eq!(std::fs::read(upper.join("top")).expect("top"), b"top");
    env.assert_consistent();
}

#[test]
fn gzip_zstd_and_uncompressed_layers() {
    let layers = [
        (Compression::Gzip, "gz"),
        (Compression::Zstd, "zst"),
        (Compression::None, "plain"),
    ];
    let mut b = ImageBuilder::new();
    for (c, name) in layers {
        b.layer(Layer::tar(
            &[TarEntry::file(
                &format!("files/{name}"),
                0o644,
                &fixture::noise(70_000, name.len() as u64),
            )],
            c,
        ));
    }
    let image = b.build();
    let Some(reg) = registry_with("e2e/compressions:v1", Tagged::Image(&image)) else {
        return;
    };
    let env = Env::new();
    env.ok(&["pull", &reg.reference("e2e/compressions:v1")]);
    let v = env.inspect(&reg.reference("e2e/compressions:v1"));
    for (i, (c, name)) in layers.iter().enumerate() {
        assert_eq!(v["layers"][i]["media_type"], c.media_type());
        assert_eq!(v["layers"][i]["diff_id"], image.diff_id(i));
        let file = env.layer_dir(image.diff_id(i)).join("files").join(name);
        assert_eq!(
            std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display())),
            fixture::noise(70_000, name.len() as u64)
        );
    }
    env.assert_consistent();
}

// ---------------------------------------------------------------- platforms

fn platform_image(platform: &str) -> Image {
    if platform.ends_with("/wasm") {
        return fixture::wasm_artifact(&[WASM_MODULE, platform.as_bytes()].concat());
    }
    ImageBuilder::new()
        .platform(platform)
        .layer(Layer::tar(
            &[TarEntry::file("platform", 0o644, platform.as_bytes())],
            Compression::Gzip,
        ))
        .build()
}

#[test]
fn index_platform_choice() {
    let index = Index::new(vec![
        ("linux/amd64", platform_image("linux/amd64")),
        ("linux/arm64", platform_image("linux/arm64")),
        ("wasip1/wasm", platform_image("wasip1/wasm")),
    ]);
    let wasm_only = Index::new(vec![("wasip1/wasm", platform_image("wasip1/wasm"))]);
    let Some(reg) = registry_with("e2e/multi:v1", Tagged::Index(&index)) else {
        return;
    };
    push_fixture(&reg, "e2e/wasm-only:v1", Tagged::Index(&wasm_only));
    let multi = reg.reference("e2e/multi:v1");
    let env = Env::new();

    // Default: the host's platform.
    let host = format!("linux/{}", host_arch());
    let r = env.ok(&["pull", &multi]);
    assert_eq!(r.line(), index.image(&host).manifest.digest);
    let v = env.inspect(&multi);
    assert_eq!(v["platform"], host.as_str());
    assert_eq!(v["index_digest"], index.manifest.digest.as_str());
    let file = env
        .layer_dir(index.image(&host).diff_id(0))
        .join("platform");
    assert_eq!(
        std::fs::read(file).expect("the platform file"),
        host.as_bytes()
    );

    for p in ["linux/arm64", "linux/amd64", "wasip1/wasm"] {
        let r = env.ok(&["pull", "--platform", p, &multi]);
        assert_eq!(r.line(), index.image(p).manifest.digest, "--platform {p}");
        let v = env.inspect(&index.image(p).manifest.digest);
        assert_eq!(v["platform"], p);
    }
    let v = env.inspect(&index.image("wasip1/wasm").manifest.digest);
    assert_eq!(v["kind"], "wasm");

    // An index with only a Wasm platform: picked by default.
    let fresh = Env::new();
    let r = fresh.ok(&["pull", &reg.reference("e2e/wasm-only:v1")]);
    assert_eq!(r.line(), wasm_only.image("wasip1/wasm").manifest.digest);
    assert_eq!(
        fresh.inspect(&reg.reference("e2e/wasm-only:v1"))["kind"],
        "wasm"
    );

    // A platform the index lacks: the error lists what there is.
    let fresh = Env::new();
    let line = fresh.fail(&["pull", "--platform", "windows/amd64", &multi]);
    assert!(line.contains("windows/amd64"), "{line}");
    assert!(
        line.contains("linux/amd64")
            && line.contains("linux/arm64")
            && line.contains("wasip1/wasm"),
        "{line}"
    );
    fresh.assert_empty_after_failure();
    for bad in ["linux", "linux/", "/amd64", "a/b/c/d"] {
        let line = fresh.fail(&["pull", "--platform", bad, &multi]);
        assert!(line.contains("invalid platform"), "{bad}: {line}");
        assert!(line.contains(bad), "{bad}: {line}");
    }
    fresh.assert_empty_after_failure();
}

// ---------------------------------------------------------------- Wasm and classification

#[test]
fn wasm_artifact_is_kept_as_a_module() {
    let image = fixture::wasm_artifact(WASM_MODULE);
    let Some(reg) = registry_with("e2e/wasm:v1", Tagged::Image(&image)) else {
        return;
    };
    let env = Env::new();
    let reference = reg.reference("e2e/wasm:v1");
    let r = env.ok(&["pull", &reference]);
    assert_eq!(r.line(), image.manifest.digest);
    assert_eq!(
        env.list("layers/sha256"),
        Vec::<String>::new(),
        "no layer dir"
    );
    let module = &image.layers[0].blob;
    assert_eq!(
        std::fs::read(env.blob_path(&module.digest)).expect("the module blob"),
        WASM_MODULE
    );
    let v = env.inspect(&reference);
    assert_eq!(v["kind"], "wasm");
    assert_eq!(v["classification"]["rule"], "media-type");
    assert_eq!(v["classification"]["media_type"], fixture::WASM_CONFIG);
    assert_eq!(v["platform"], "wasip1/wasm");
    assert_eq!(v["layers"][0]["media_type"], fixture::WASM_LAYER);
    assert!(v["layers"][0].get("diff_id").is_none_or(Value::is_null));
    let table = env.ok(&["images"]).stdout;
    assert!(table.contains("wasm"), "{table}");
    env.assert_consistent();
}

#[test]
fn classification_rules() {
    let wasm_file = |path: &str| {
        Layer::tar(
            &[TarEntry::file(path, 0o755, WASM_MODULE)],
            Compression::Gzip,
        )
    };
    let elf_file =
        |path: &str| Layer::tar(&[TarEntry::file(path, 0o755, ELF_HEAD)], Compression::Gzip);
    let platform = ImageBuilder::new()
        .platform("wasip1/wasm")
        .entrypoint(&["/app.wasm"])
        .layer(wasm_file("app.wasm"))
        .build();
    let compat = ImageBuilder::new()
        .annotation("run.oci.handler", "compat")
        .entrypoint(&["/bin/app"])
        .layer(elf_file("bin/app"))
        .build();
    let smart_elf = ImageBuilder::new()
        .annotation("run.oci.handler", "compat-smart")
        .entrypoint(&["/bin/app"])
        .layer(elf_file("bin/app"))
        .build();
    let smart_wasm = ImageBuilder::new()
        .annotation("run.oci.handler", "compat-smart")
        .entrypoint(&["/app.wasm"])
        .layer(wasm_file("app.wasm"))
        .build();
    let magic = ImageBuilder::new()
        .cmd(&["app.wasm"])
        .env("PATH=/opt/bin")
        .layer(wasm_file("opt/bin/app.wasm"))
        .build();
    let default = ImageBuilder::new()
        .layer(Layer::tar(
            &[TarEntry::file("readme", 0o644, b"no entrypoint")],
            Compression::Gzip,
        ))
        .build();
    let cases: [(&str, &Image, &str, &str); 6] = [
        ("platform", &platform, "wasm", "platform"),
        ("compat", &compat, "wasm", "annotation"),
        ("smart-elf", &smart_elf, "native", "annotation"),
        ("smart-wasm", &smart_wasm, "wasm", "annotation"),
        ("magic", &magic, "wasm", "magic"),
        ("default", &default, "native", "default"),
    ];
    let tagged: Vec<(&str, Tagged<'_>)> = cases
        .iter()
        .map(|(tag, img, _, _)| (*tag, Tagged::Image(img)))
        .collect();
    let dir = layout(&tagged);
    let env = Env::new();
    for (tag, img, kind, rule) in cases {
        let r = env.ok(&["pull", &format!("oci:{}:{tag}", dir.path().display())]);
        assert_eq!(r.line(), img.manifest.digest, "{tag}");
        let v = env.inspect(&img.manifest.digest);
        assert_eq!(v["kind"], kind, "{tag}: {v}");
        assert_eq!(v["classification"]["rule"], rule, "{tag}: {v}");
        match tag {
            "platform" => assert_eq!(v["classification"]["platform"], "wasip1/wasm"),
            "compat" | "smart-elf" | "smart-wasm" => {
                assert_eq!(v["classification"]["key"], "run.oci.handler");
            }
            "magic" => {
                assert_eq!(v["classification"]["path"], "/opt/bin/app.wasm");
                assert_eq!(v["classification"]["format"], "wasm");
            }
            _ => {}
        }
    }
    env.assert_consistent();
}

// ---------------------------------------------------------------- rmi and prune

#[test]
fn rmi_by_name_and_short_id_and_prune() {
    let base = Layer::tar(
        &[TarEntry::file("base", 0o644, b"shared base")],
        Compression::Gzip,
    );
    let one = ImageBuilder::new()
        .layer(base.clone())
        .layer(Layer::tar(
            &[TarEntry::file("one", 0o644, b"1")],
            Compression::Gzip,
        ))
        .build();
    let two = ImageBuilder::new()
        .layer(base)
        .layer(Layer::tar(
            &[TarEntry::file("two", 0o644, b"2")],
            Compression::Gzip,
        ))
        .build();
    let dir = layout(&[("one", Tagged::Image(&one)), ("two", Tagged::Image(&two))]);
    let env = Env::new();
    let src = |t: &str| format!("oci:{}:{t}", dir.path().display());
    env.ok(&["pull", &src("one")]);
    env.ok(&["pull", &src("two")]);
    let list = env.images();
    assert_eq!(list.len(), 2, "{list:?}");
    let name_one = names(
        list.iter()
            .find(|v| v["digest"] == one.manifest.digest.as_str())
            .expect("image one is listed"),
    )[0]
    .clone();

    // rmi by name: its record, name, and the blobs and layer only it used go.
    let r = env.ok(&["rmi", &name_one]);
    assert!(r.stdout.contains(&name_one), "{}", r.stdout);
    assert!(!env.refs().contains_key(&name_one));
    assert!(
        !env.root()
            .join("images")
            .join(format!("{}.json", hex_of(&one.manifest.digest)))
            .exists()
    );
    assert!(
        env.layer_dir(one.diff_id(0)).is_dir(),
        "the shared layer stays"
    );
    assert!(
        !env.layer_dir(one.diff_id(1)).exists(),
        "one's own layer went"
    );
    assert!(!env.blob_path(&one.layers[1].blob.digest).exists());
    assert!(env.layer_dir(two.diff_id(1)).is_dir());
    env.assert_consistent();
    let line = env.fail(&["inspect", &name_one]);
    assert!(line.contains(&name_one), "{line}");

    // rmi of an unknown name fails and changes nothing.
    let line = env.fail(&["rmi", "localhost/no-such-image:v9"]);
    assert!(line.contains("no-such-image"), "{line}");
    assert_eq!(env.images().len(), 1);

    // rmi by short id.
    let short = &hex_of(&two.manifest.digest)[..12];
    env.ok(&["rmi", short]);
    assert_eq!(env.images().len(), 0);
    assert_eq!(env.list("layers/sha256"), Vec::<String>::new());
    assert_eq!(env.list("blobs/sha256"), Vec::<String>::new());

    // prune: unreferenced blobs, layer dirs and tmp leftovers go; referenced ones stay.
    env.ok(&["pull", &src("one")]);
    let junk = b"junk blob";
    std::fs::write(env.blob_path(&wrun_tests::sha256(junk)), junk).expect("write a junk blob");
    let fake_layer = env.layer_dir(&wrun_tests::sha256(b"fake layer"));
    std::fs::create_dir_all(fake_layer.join("usr/bin")).expect("make a fake layer");
    std::fs::write(fake_layer.join("usr/bin/x"), b"x").expect("write into the fake layer");
    // Leftovers of a process that is gone (a live one's work is kept: see
    // `prune_keeps_the_work_of_a_process_that_runs`).
    let dead = dead_pid();
    std::fs::write(
        env.root().join(format!("tmp/blob-{dead}-2-3")),
        b"half a blob",
    )
    .expect("tmp leftover");
    std::fs::create_dir_all(env.root().join(format!("tmp/layer-{dead}-2-3/etc")))
        .expect("tmp leftover dir");
    let r = env.ok(&["image", "prune"]);
    assert!(r.stdout.contains("Deleted"), "{}", r.stdout);
    assert!(!env.blob_path(&wrun_tests::sha256(junk)).exists());
    assert!(!fake_layer.exists());
    assert_eq!(env.list("tmp"), Vec::<String>::new());
    assert!(
        !env.list("locks").iter().any(|l| l.starts_with("blob-")),
        "per-blob lock files are pruned: {:?}",
        env.list("locks")
    );
    for b in one.blobs() {
        assert!(env.blob_path(&b.digest).is_file(), "kept {}", b.digest);
    }
    assert!(env.layer_dir(one.diff_id(0)).is_dir());
    assert!(env.layer_dir(one.diff_id(1)).is_dir());
    env.inspect(&one.manifest.digest);
    env.assert_consistent();
}

// ---------------------------------------------------------------- archives and layouts

#[test]
fn save_writes_an_oci_archive_skopeo_reads_and_load_restores() {
    if !have_tools(&["skopeo"]) {
        return;
    }
    let image = rich_image();
    let dir = layout(&[("v1", Tagged::Image(&image))]);
    let env = Env::new();
    env.ok(&["pull", &format!("oci:{}:v1", dir.path().display())]);
    let out = tempfile::tempdir().expect("tempdir");
    let archive = out.path().join("image.tar");
    env.ok(&[
        "save",
        &image.manifest.digest,
        "-o",
        &archive.display().to_string(),
    ]);
    assert!(archive.is_file());
    assert_eq!(
        std::fs::read_dir(out.path()).expect("list").count(),
        1,
        "save leaves no temporary file beside the archive"
    );

    let inspect = std::process::Command::new("skopeo")
        .args(["--insecure-policy", "inspect"])
        .arg(format!("oci-archive:{}", archive.display()))
        .output()
        .expect("run skopeo inspect");
    assert!(
        inspect.status.success(),
        "skopeo inspect: {}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    let v: Value = serde_json::from_slice(&inspect.stdout).expect("skopeo prints JSON");
    assert_eq!(v["Digest"], image.manifest.digest.as_str());
    assert_eq!(v["Layers"][0], image.layers[0].blob.digest.as_str());
    let copy_dir = out.path().join("copy");
    let copy = std::process::Command::new("skopeo")
        .args(["--insecure-policy", "copy", "--quiet"])
        .arg(format!("oci-archive:{}", archive.display()))
        .arg(format!("oci:{}:copied", copy_dir.display()))
        .output()
        .expect("run skopeo copy");
    assert!(
        copy.status.success(),
        "skopeo copy: {}",
        String::from_utf8_lossy(&copy.stderr)
    );
    assert!(
        copy_dir
            .join("blobs/sha256")
            .join(hex_of(&image.layers[0].blob.digest))
            .is_file()
    );

    // load into an empty store.
    let fresh = Env::new();
    let r = fresh.ok(&["load", "-i", &archive.display().to_string()]);
    assert_eq!(r.line(), image.manifest.digest);
    check_rich_layer(&fresh, &image);
    assert_eq!(fresh.inspect(&image.manifest.digest)["kind"], "native");
    fresh.assert_consistent();
    assert_eq!(
        fresh.list("tmp"),
        Vec::<String>::new(),
        "load cleans up after itself"
    );

    // And pull from oci-archive: too.
    let third = Env::new();
    let r = third.ok(&["pull", &format!("oci-archive:{}", archive.display())]);
    assert_eq!(r.line(), image.manifest.digest);
    check_rich_layer(&third, &image);
}

#[test]
fn load_and_pull_a_docker_archive() {
    let image = ImageBuilder::new()
        .entrypoint(&["/bin/app"])
        .layer(Layer::tar(
            &[
                TarEntry::dir("bin", 0o755),
                TarEntry::file("bin/app", 0o755, ELF_HEAD),
            ],
            Compression::None,
        ))
        .layer(Layer::tar(
            &[TarEntry::file("etc/motd", 0o644, b"from docker save")],
            Compression::None,
        ))
        .build();
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = dir.path().join("docker.tar");
    std::fs::write(
        &archive,
        fixture::docker_archive(&image, &["example.com/team/app:v3"]),
    )
    .expect("write the docker archive");
    for verb in ["load", "pull"] {
        let env = Env::new();
        let r = if verb == "load" {
            env.ok(&["load", "-i", &archive.display().to_string()])
        } else {
            env.ok(&["pull", &format!("docker-archive:{}", archive.display())])
        };
        let v = env.inspect("example.com/team/app:v3");
        assert_eq!(v["digest"], r.line(), "{verb}");
        assert_eq!(v["config"]["config"]["Entrypoint"][0], "/bin/app");
        assert_eq!(
            names(&v),
            vec!["example.com/team/app:v3".to_string()],
            "{verb}"
        );
        assert_eq!(v["layers"][0]["diff_id"], image.diff_id(0));
        assert_eq!(v["layers"][1]["diff_id"], image.diff_id(1));
        assert_eq!(
            std::fs::read(env.layer_dir(image.diff_id(1)).join("etc/motd")).expect("etc/motd"),
            b"from docker save"
        );
        assert_eq!(
            mode(&env.layer_dir(image.diff_id(0)).join("bin/app")),
            0o755
        );
        env.assert_consistent();
        assert_eq!(env.list("tmp"), Vec::<String>::new(), "{verb} cleans up");
    }
}

#[test]
fn pull_from_oci_dir_and_oci_archive() {
    let a = fixture::small_image("a");
    let b = fixture::small_image("b");
    let dir = layout(&[("a", Tagged::Image(&a)), ("b", Tagged::Image(&b))]);
    let env = Env::new();
    let r = env.ok(&["pull", &format!("oci:{}:b", dir.path().display())]);
    assert_eq!(r.line(), b.manifest.digest);
    let line = env.fail(&["pull", &format!("oci:{}", dir.path().display())]);
    assert!(line.contains("TAG"), "two images and no tag: {line}");
    let line = env.fail(&["pull", &format!("oci:{}:nope", dir.path().display())]);
    assert!(line.contains("nope"), "{line}");

    let archive_dir = tempfile::tempdir().expect("tempdir");
    let archive = archive_dir.path().join("layout.tar");
    std::fs::write(&archive, fixture::tar_dir(dir.path())).expect("write the oci-archive");
    let r = env.ok(&["pull", &format!("oci-archive:{}:a", archive.display())]);
    assert_eq!(r.line(), a.manifest.digest);
    assert_eq!(
        std::fs::read(env.layer_dir(a.diff_id(0)).join("etc/marker")).expect("marker"),
        b"a"
    );
    assert_eq!(env.images().len(), 2);
    env.assert_consistent();
    assert_eq!(env.list("tmp"), Vec::<String>::new());
}

// ---------------------------------------------------------------- push and auth

#[test]
fn push_to_registry_and_pull_back() {
    if !have_tools(&["docker-registry", "skopeo"]) {
        return;
    }
    let reg = Registry::start();
    let image = rich_image();
    let dir = layout(&[("v1", Tagged::Image(&image))]);
    let env = Env::new();
    env.ok(&["pull", &format!("oci:{}:v1", dir.path().display())]);
    let target = reg.reference("pushed/app:v2");
    let r = env.ok(&["push", &image.manifest.digest, &target]);
    assert_eq!(r.line(), image.manifest.digest);
    let v = reg.skopeo_inspect("pushed/app:v2");
    assert_eq!(v["Digest"], image.manifest.digest.as_str());
    assert_eq!(v["Layers"][0], image.layers[0].blob.digest.as_str());

    let fresh = Env::new();
    let r = fresh.ok(&["pull", &target]);
    assert_eq!(r.line(), image.manifest.digest);
    check_rich_layer(&fresh, &image);
    // A second push sends no blob again and still succeeds.
    env.ok(&["push", &image.manifest.digest, &target]);
}

#[test]
fn auth_login_pull_push_logout() {
    if !have_tools(&["docker-registry", "skopeo", "htpasswd"]) {
        return;
    }
    use base64::Engine as _;
    let (user, pass) = ("alice", "s3cret-pass");
    let reg = Registry::start_with_htpasswd(user, pass);
    let image = fixture::small_image("auth");
    push_fixture(&reg, "private/app:v1", Tagged::Image(&image));
    let env = Env::new();
    let reference = reg.reference("private/app:v1");
    let config = env.docker_config().join("config.json");

    let line = env.fail(&["pull", &reference]);
    assert!(line.to_lowercase().contains("unauthorized"), "{line}");
    env.assert_empty_after_failure();

    let line = env.fail(&["login", "-u", user, "-p", "wrong", &reg.host()]);
    assert!(line.contains(&reg.host()), "{line}");
    let stored = std::fs::read_to_string(&config).unwrap_or_default();
    assert!(
        !stored.contains(&reg.host()),
        "a failed login stored: {stored}"
    );

    let r = env.run_with_stdin(
        &["login", "-u", user, "--password-stdin", &reg.host()],
        Some(&format!("{pass}\n")),
    );
    assert!(r.status.success(), "login: {}", r.stderr);
    let stored: Value =
        serde_json::from_slice(&std::fs::read(&config).expect("login wrote config.json"))
            .expect("config.json is JSON");
    let expected = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    assert_eq!(stored["auths"][reg.host()]["auth"], expected.as_str());

    let r = env.ok(&["pull", &reference]);
    assert_eq!(r.line(), image.manifest.digest);
    let target = reg.reference("private/pushed:v2");
    env.ok(&["push", &image.manifest.digest, &target]);
    assert_eq!(
        reg.skopeo_inspect("private/pushed:v2")["Digest"],
        image.manifest.digest.as_str()
    );

    env.ok(&["logout", &reg.host()]);
    let stored: Value =
        serde_json::from_slice(&std::fs::read(&config).expect("config.json")).expect("JSON");
    assert!(stored["auths"].get(reg.host()).is_none(), "{stored}");
    let line = env.fail(&["pull", &reference]);
    assert!(line.to_lowercase().contains("unauthorized"), "{line}");
    let line = env.fail(&["logout", &reg.host()]);
    assert!(line.contains(&reg.host()), "{line}");
}

#[test]
fn pull_draws_a_bar_per_layer_on_a_terminal() {
    if !have_tools(&["script"]) {
        return;
    }
    let image = fixture::small_image("bars");
    let h = hostile_with("bars/app", "v1", Tagged::Image(&image));
    let env = Env::new();
    // The same command line as `env.run`, on a pseudo-terminal (script(1)).
    let cmd = env.command(&["pull", &h.reference("bars/app:v1")]);
    let quote = |s: &std::ffi::OsStr| format!("'{}'", s.to_string_lossy().replace('\'', r"'\''"));
    let line: Vec<String> = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(quote)
        .collect();
    let mut script = std::process::Command::new("script");
    script
        .args(["-q", "-e", "-c", &line.join(" "), "/dev/null"])
        .stdin(Stdio::null());
    for (key, value) in cmd.get_envs() {
        match value {
            Some(v) => script.env(key, v),
            None => script.env_remove(key),
        };
    }
    let out = script.output().expect("run wrun under script(1)");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{shown}");
    let short = &image.layers[0].blob.digest["sha256:".len()..][..12];
    let full_bar = format!("{short} [{}]", "=".repeat(30));
    assert!(
        shown.contains(&full_bar),
        "no finished bar for {short} in {shown:?}"
    );
    assert!(shown.contains(&image.manifest.digest), "{shown:?}");
    // Off a terminal the same pull reports one line per layer instead.
    env.ok(&["rmi", &h.reference("bars/app:v1")]);
    let r = env.ok(&["pull", &h.reference("bars/app:v1")]);
    assert_eq!(
        r.stderr.lines().next(),
        Some(format!("{short}: pulled").as_str()),
        "{}",
        r.stderr
    );
    assert!(
        !r.stderr.contains(" ["),
        "a bar off a terminal: {}",
        r.stderr
    );
}

#[test]
fn bearer_token_auth_with_credentials_from_config_and_from_a_helper() {
    use base64::Engine as _;
    use std::os::unix::fs::PermissionsExt as _;
    let (user, pass) = ("alice", "t0ken-pass");
    let image = fixture::small_image("bearer");
    let h = hostile_with("private/tok", "v1", Tagged::Image(&image));
    h.require_token(user, pass);
    let reference = h.reference("private/tok:v1");
    let env = Env::new();
    let config = env.docker_config().join("config.json");
    std::fs::create_dir_all(env.docker_config()).expect("create DOCKER_CONFIG");
    let write_config = |v: Value| std::fs::write(&config, v.to_string()).expect("write config");
    let b64 = |s: String| base64::engine::general_purpose::STANDARD.encode(s);

    // Anonymous: the registry's challenge is refused at the token realm.
    let line = env.fail(&["pull", &reference]);
    assert!(line.to_lowercase().contains("unauthorized"), "{line}");
    env.assert_empty_after_failure();

    // A wrong password in config.json: no token, nothing stored.
    write_config(serde_json::json!({"auths": {h.host(): {"auth": b64(format!("{user}:nope"))}}}));
    let line = env.fail(&["pull", &reference]);
    assert!(line.to_lowercase().contains("unauthorized"), "{line}");
    env.assert_empty_after_failure();

    // The right one: the token is fetched with it, and every request
    // carries the token (the gate refuses anything else).
    write_config(serde_json::json!({"auths": {h.host(): {"auth": b64(format!("{user}:{pass}"))}}}));
    let before = h.count("/token");
    let r = env.ok(&["pull", "-q", &reference]);
    assert_eq!(r.line(), image.manifest.digest);
    assert!(h.count("/token") > before, "no token was requested");
    env.ok(&["rmi", &reference]);

    // From a credential helper named in credHelpers, found on PATH.
    let bin = tempfile::tempdir().expect("create a bin directory");
    let helper = bin.path().join("docker-credential-wruntest");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread server\n\
             printf '{{\"ServerURL\":\"%s\",\"Username\":\"{user}\",\"Secret\":\"{pass}\"}}' \"$server\"\n"
        ),
    )
    .expect("write the helper");
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    write_config(serde_json::json!({"credHelpers": {h.host(): "wruntest"}}));
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let before = h.count("/token");
    let out = env
        .command(&["pull", "-q", &reference])
        .env("PATH", &path)
        .output()
        .expect("run wrun pull");
    assert!(
        out.status.success(),
        "pull with a credential helper: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        image.manifest.digest
    );
    assert!(h.count("/token") > before, "no token was requested");
}

// ---------------------------------------------------------------- bad input

/// Pulls `reference` into a fresh store, expects wrun's failure, checks
/// nothing is left behind, and returns the error line.
fn bad_pull(reference: &str, extra: &[&str]) -> String {
    let env = Env::new();
    let mut args = vec!["pull"];
    args.extend_from_slice(extra);
    args.push(reference);
    let line = env.fail(&args);
    println!("{reference}: {line}");
    env.assert_empty_after_failure();
    line
}

#[test]
fn unknown_tag_is_named() {
    let image = fixture::small_image("tag");
    let Some(reg) = registry_with("e2e/known:v1", Tagged::Image(&image)) else {
        return;
    };
    let line = bad_pull(&reg.reference("e2e/known:no-such-tag"), &[]);
    assert!(line.contains("no-such-tag"), "{line}");
    assert!(line.contains("manifest unknown"), "{line}");
    let line = bad_pull(&reg.reference("e2e/no-such-repo:v1"), &[]);
    assert!(line.contains("no-such-repo"), "{line}");
}

#[test]
fn unreachable_host_is_named() {
    let host = format!("127.0.0.1:{}", wrun_tests::closed_port());
    let line = bad_pull(&format!("{host}/x/y:z"), &[]);
    assert!(line.contains(&host), "{line}");
}

#[test]
fn layer_digest_mismatch() {
    let image = fixture::small_image("mismatch");
    let h = hostile_with("e2e/bad", "v1", Tagged::Image(&image));
    let layer = &image.layers[0].blob;
    let mut other = layer.bytes.clone();
    let last = other.len() - 1;
    other[last] ^= 0xff;
    h.misbehave(
        &Hostile::blob_path("e2e/bad", &layer.digest),
        Misbehave::Body(other),
    );
    let line = bad_pull(&h.reference("e2e/bad:v1"), &[]);
    assert!(line.contains("digest mismatch"), "{line}");
    assert!(line.contains(&layer.digest), "{line}");
}

#[test]
fn truncated_blob() {
    let image = ImageBuilder::new()
        .layer(Layer::tar(
            &[TarEntry::file("big", 0o644, &fixture::noise(100_000, 7))],
            Compression::Gzip,
        ))
        .build();
    let h = hostile_with("e2e/trunc", "v1", Tagged::Image(&image));
    let layer = &image.layers[0].blob;
    h.misbehave(
        &Hostile::blob_path("e2e/trunc", &layer.digest),
        Misbehave::Truncate(layer.bytes.len() / 2),
    );
    let path = Hostile::blob_path("e2e/trunc", &layer.digest);
    let line = bad_pull(&h.reference("e2e/trunc:v1"), &[]);
    assert!(line.contains(&layer.digest), "{line}");
    assert!(h.count(&path) >= 2, "a connection cut short is retried");

    // A body shorter than the descriptor says, with a Content-Length to match.
    let short = layer.bytes[..layer.bytes.len() / 2].to_vec();
    h.misbehave(&path, Misbehave::Body(short));
    let before = h.count(&path);
    let line = bad_pull(&h.reference("e2e/trunc:v1"), &[]);
    assert!(line.contains(&layer.digest), "{line}");
    assert!(line.contains("size mismatch"), "{line}");
    assert_eq!(h.count(&path), before + 1, "a lying server is not retried");
}

#[test]
fn manifest_not_matching_the_digest_it_was_pulled_by() {
    let image = fixture::small_image("real");
    let imposter = fixture::small_image("imposter");
    let h = hostile_with("e2e/lie", "v1", Tagged::Image(&image));
    h.add("e2e/lie", "other", Tagged::Image(&imposter));
    h.misbehave(
        &Hostile::manifest_path("e2e/lie", &image.manifest.digest),
        Misbehave::Body(imposter.manifest.bytes.clone()),
    );
    let line = bad_pull(
        &h.reference(&format!("e2e/lie@{}", image.manifest.digest)),
        &[],
    );
    assert!(line.contains("digest mismatch"), "{line}");
    assert!(line.contains("manifest"), "{line}");
    assert!(line.contains(&image.manifest.digest), "{line}");
}

#[test]
fn index_entry_not_matching_its_digest() {
    let index = Index::new(vec![("linux/amd64", platform_image("linux/amd64"))]);
    let imposter = fixture::small_image("imposter");
    let h = hostile_with("e2e/idx", "v1", Tagged::Index(&index));
    let wanted = &index.image("linux/amd64").manifest.digest;
    h.misbehave(
        &Hostile::manifest_path("e2e/idx", wanted),
        Misbehave::Body(imposter.manifest.bytes.clone()),
    );
    let line = bad_pull(&h.reference("e2e/idx:v1"), &["--platform", "linux/amd64"]);
    assert!(
        line.contains("digest mismatch") && line.contains(wanted),
        "{line}"
    );
}

#[test]
fn malformed_manifest_json() {
    let h = Hostile::start();
    let bytes = br#"{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "layers": ["#;
    h.add_raw_manifest(
        "e2e/broken",
        "v1",
        fixture::OCI_MANIFEST,
        &wrun_tests::sha256(bytes),
        bytes,
    );
    let line = bad_pull(&h.reference("e2e/broken:v1"), &[]);
    assert!(line.contains("malformed manifest"), "{line}");
}

#[test]
fn malformed_config_json() {
    let image = ImageBuilder::new()
        .config_bytes(b"{\"architecture\": \"amd64\", \"os\": ")
        .layer(Layer::tar(
            &[TarEntry::file("f", 0o644, b"f")],
            Compression::Gzip,
        ))
        .build();
    let h = hostile_with("e2e/badcfg", "v1", Tagged::Image(&image));
    let line = bad_pull(&h.reference("e2e/badcfg:v1"), &[]);
    assert!(line.contains("malformed config"), "{line}");
    assert!(line.contains(&image.config.digest), "{line}");
}

#[test]
fn unsupported_layer_media_type() {
    let tar = fixture::tar(&[TarEntry::file("f", 0o644, b"f")]);
    let diff = wrun_tests::sha256(&tar);
    let image = ImageBuilder::new()
        .layer(Layer::raw("application/x-unknown-layer", tar, Some(diff)))
        .build();
    let h = hostile_with("e2e/mt", "v1", Tagged::Image(&image));
    let line = bad_pull(&h.reference("e2e/mt:v1"), &[]);
    assert!(line.contains("unsupported media type"), "{line}");
    assert!(line.contains("application/x-unknown-layer"), "{line}");
}

/// Pulls an image whose one layer is `entries` and expects a failure naming `entry`,
/// with nothing written outside the store.
fn hostile_tar(entries: &[TarEntry], entry: &str, sentinel: &Path) -> Env {
    let image = ImageBuilder::new()
        .layer(Layer::tar(entries, Compression::Gzip))
        .build();
    let h = hostile_with("e2e/evil", "v1", Tagged::Image(&image));
    let env = Env::new();
    let line = env.fail(&["pull", &h.reference("e2e/evil:v1")]);
    println!("{entry}: {line}");
    assert!(line.contains(entry), "the error names {entry:?}: {line}");
    assert!(line.contains(&image.layers[0].blob.digest), "{line}");
    assert_eq!(
        std::fs::read_dir(sentinel)
            .expect("list the sentinel")
            .count(),
        0,
        "something was written outside the store"
    );
    env.assert_empty_after_failure();
    env
}

#[test]
fn hostile_tar_entries_are_refused() {
    let outside = tempfile::tempdir().expect("tempdir");
    let sentinel = outside.path().join("sentinel");
    std::fs::create_dir(&sentinel).expect("make the sentinel dir");
    let s = sentinel.display().to_string();

    // `../x` from a layer directory being unpacked in <root>/tmp/<dir>.
    let name = "escaped-by-dotdot";
    let env = hostile_tar(
        &[
            TarEntry::file("ok", 0o644, b"fine"),
            TarEntry::file(&format!("../{name}"), 0o644, b"evil"),
        ],
        &format!("../{name}"),
        &sentinel,
    );
    for dir in [env.root().join("tmp"), env.root().to_path_buf()] {
        assert!(
            !dir.join(name).exists(),
            "{} escaped",
            dir.join(name).display()
        );
    }
    let env = hostile_tar(
        &[TarEntry::file(&format!("../../../{name}"), 0o644, b"evil")],
        name,
        &sentinel,
    );
    let parent = env.root().parent().expect("the store has a parent");
    assert!(!parent.join(name).exists());

    // An absolute path.
    hostile_tar(
        &[TarEntry::file(&format!("{s}/abs"), 0o644, b"evil")],
        &format!("{s}/abs"),
        &sentinel,
    );
    // A symlink out, then a write through it.
    hostile_tar(
        &[
            TarEntry::symlink("esc", &s),
            TarEntry::file("esc/pwned", 0o644, b"evil"),
        ],
        "esc/pwned",
        &sentinel,
    );
    // A relative symlink out, then a write through it.
    hostile_tar(
        &[
            TarEntry::symlink("up", "../../../../../../../../.."),
            TarEntry::file(&format!("up{s}/pwned"), 0o644, b"evil"),
        ],
        "pwned",
        &sentinel,
    );
    // A hard link to a file outside.
    let passwd_before = std::fs::metadata("/etc/passwd").map(|m| m.nlink()).ok();
    hostile_tar(
        &[TarEntry::hardlink("hl", "../../etc/passwd")],
        "hl",
        &sentinel,
    );
    hostile_tar(
        &[TarEntry::hardlink("hl2", &format!("{s}/../../etc/passwd"))],
        "hl2",
        &sentinel,
    );
    assert_eq!(
        std::fs::metadata("/etc/passwd").map(|m| m.nlink()).ok(),
        passwd_before,
        "/etc/passwd gained a link"
    );
    // Raw header bytes: a name that is only `..`.
    hostile_tar(
        &[TarEntry::raw(
            b"..",
            tar::EntryType::Directory,
            0o755,
            b"",
            b"",
        )],
        "..",
        &sentinel,
    );
}

// ---------------------------------------------------------------- retries

#[test]
fn transient_503_is_retried_and_404_is_not() {
    let image = fixture::small_image("retry");
    let h = hostile_with("e2e/retry", "v1", Tagged::Image(&image));
    let path = Hostile::blob_path("e2e/retry", &image.layers[0].blob.digest);
    h.misbehave(&path, Misbehave::FailFirst(2));
    let env = Env::new();
    let r = env.ok(&["pull", &h.reference("e2e/retry:v1")]);
    assert_eq!(r.line(), image.manifest.digest);
    assert_eq!(h.count(&path), 3, "two 503s, then the blob");
    env.assert_consistent();

    let image = fixture::small_image("gone");
    let h = hostile_with("e2e/gone", "v1", Tagged::Image(&image));
    let path = Hostile::blob_path("e2e/gone", &image.layers[0].blob.digest);
    h.misbehave(&path, Misbehave::Status(404));
    let line = bad_pull(&h.reference("e2e/gone:v1"), &[]);
    assert!(line.contains(&image.layers[0].blob.digest), "{line}");
    assert_eq!(h.count(&path), 1, "a 404 is not retried");
}

// ---------------------------------------------------------------- concurrency and crashes

fn layered_image(seed: u64, layers: usize, size: usize) -> Image {
    let mut b = ImageBuilder::new();
    for i in 0..layers {
        b.layer(Layer::tar(
            &[TarEntry::file(
                &format!("layer{i}/data"),
                0o644,
                &fixture::noise(size, seed * 100 + i as u64),
            )],
            Compression::Gzip,
        ));
    }
    b.build()
}

#[test]
fn concurrent_pulls_of_one_image_download_each_blob_once() {
    let image = layered_image(1, 3, 300_000);
    let h = hostile_with("e2e/conc", "v1", Tagged::Image(&image));
    // Slow transfers, so that every process finds every blob missing at first.
    for b in image.blobs().iter().skip(1) {
        h.misbehave(
            &Hostile::blob_path("e2e/conc", &b.digest),
            Misbehave::Trickle {
                chunk: b.bytes.len() / 4 + 1,
                delay: Duration::from_millis(40),
            },
        );
    }
    let env = Env::new();
    let reference = h.reference("e2e/conc:v1");
    let children: Vec<_> = (0..4)
        .map(|_| {
            env.command(&["pull", "-q", &reference])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn wrun pull")
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().expect("wait for wrun pull");
        assert!(
            out.status.success(),
            "a concurrent pull failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            image.manifest.digest
        );
    }
    for b in image.blobs().iter().skip(1) {
        let path = Hostile::blob_path("e2e/conc", &b.digest);
        assert_eq!(
            h.count(&path),
            1,
            "{} ({}) fetched more than once",
            b.digest,
            b.media_type
        );
    }
    assert_eq!(env.images().len(), 1);
    for i in 0..3 {
        assert_eq!(
            std::fs::read(
                env.layer_dir(image.diff_id(i))
                    .join(format!("layer{i}/data"))
            )
            .expect("layer data"),
            fixture::noise(300_000, 100 + i as u64)
        );
    }
    env.assert_consistent();
    env.ok(&["image", "prune"]);
    env.assert_consistent();
    assert_eq!(env.images().len(), 1);
}

#[test]
fn rmi_racing_a_pull_leaves_both_consistent() {
    let shared = Layer::tar(
        &[TarEntry::file(
            "shared",
            0o644,
            &fixture::noise(200_000, 99),
        )],
        Compression::Gzip,
    );
    let a = ImageBuilder::new()
        .layer(shared.clone())
        .layer(Layer::tar(
            &[TarEntry::file("a", 0o644, b"a")],
            Compression::Gzip,
        ))
        .build();
    let b = ImageBuilder::new()
        .layer(shared)
        .layer(Layer::tar(
            &[TarEntry::file("b", 0o644, &fixture::noise(200_000, 98))],
            Compression::Gzip,
        ))
        .build();
    let h = hostile_with("e2e/a", "v1", Tagged::Image(&a));
    h.add("e2e/b", "v1", Tagged::Image(&b));
    // Slow B's own layer down so the removal runs while B's pull is under way.
    h.misbehave(
        &Hostile::blob_path("e2e/b", &b.layers[1].blob.digest),
        Misbehave::Trickle {
            chunk: 32 * 1024,
            delay: Duration::from_millis(20),
        },
    );
    let env = Env::new();
    env.ok(&["pull", &h.reference("e2e/a:v1")]);
    for round in 0..3 {
        if round > 0 {
            env.ok(&["pull", &h.reference("e2e/a:v1")]);
            env.ok(&["rmi", &h.reference("e2e/b:v1")]);
        }
        let pull = env
            .command(&["pull", "-q", &h.reference("e2e/b:v1")])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn wrun pull");
        std::thread::sleep(Duration::from_millis(50 * round));
        let rmi = env.run(&["rmi", &h.reference("e2e/a:v1")]);
        let out = pull.wait_with_output().expect("wait for the pull");
        assert!(rmi.status.success(), "rmi: {}", rmi.stderr);
        assert!(
            out.status.success(),
            "pull: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        env.assert_consistent();
        let list = env.images();
        assert_eq!(list.len(), 1, "{list:?}");
        assert_eq!(list[0]["digest"], b.manifest.digest.as_str());
        assert_eq!(
            std::fs::read(env.layer_dir(b.diff_id(0)).join("shared")).expect("shared"),
            fixture::noise(200_000, 99)
        );
        assert_eq!(
            std::fs::read(env.layer_dir(b.diff_id(1)).join("b")).expect("b"),
            fixture::noise(200_000, 98)
        );
        assert!(!env.layer_dir(a.diff_id(1)).exists());
    }
}

#[test]
fn pull_killed_mid_blob_leaves_nothing_visible_and_the_next_completes() {
    let data = fixture::noise(512 * 1024, 5);
    let image = ImageBuilder::new()
        .layer(Layer::tar(
            &[TarEntry::file("payload", 0o644, &data)],
            Compression::Gzip,
        ))
        .build();
    let h = hostile_with("e2e/kill", "v1", Tagged::Image(&image));
    let layer = &image.layers[0].blob;
    let path = Hostile::blob_path("e2e/kill", &layer.digest);
    h.misbehave(
        &path,
        Misbehave::Trickle {
            chunk: 16 * 1024,
            delay: Duration::from_millis(50),
        },
    );
    let env = Env::new();
    let mut child = env
        .command(&["pull", &h.reference("e2e/kill:v1")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn wrun pull");
    assert!(
        wrun_tests::wait_until(Duration::from_secs(20), || h.sent(&path) >= 64 * 1024),
        "the pull never started on the blob"
    );
    child.kill().expect("SIGKILL the pull");
    child.wait().expect("reap the pull");
    assert!(h.sent(&path) < layer.bytes.len(), "killed before the end");
    assert!(
        !env.blob_path(&layer.digest).exists(),
        "a partial blob is visible"
    );
    assert_eq!(env.list("layers/sha256"), Vec::<String>::new());
    assert_eq!(env.list("images"), Vec::<String>::new());
    assert!(env.refs().is_empty());
    env.assert_consistent();

    h.behave(&path);
    let r = env.ok(&["pull", &h.reference("e2e/kill:v1")]);
    assert_eq!(r.line(), image.manifest.digest);
    assert_eq!(
        std::fs::read(env.layer_dir(image.diff_id(0)).join("payload")).expect("payload"),
        data
    );
    env.assert_consistent();
    env.ok(&["image", "prune"]);
    assert_eq!(env.list("tmp"), Vec::<String>::new());
    env.assert_consistent();
}

#[test]
fn prune_keeps_the_work_of_a_process_that_runs() {
    let env = Env::new();
    env.ok(&["images"]);
    // This test process runs: work named after it is in progress.
    let me = std::process::id();
    let live = env.root().join(format!("tmp/blob-{me}-1-2"));
    std::fs::write(&live, b"in progress").expect("write live work");
    let dead = env.root().join(format!("tmp/blob-{}-1-2", dead_pid()));
    std::fs::write(&dead, b"left behind").expect("write a leftover");
    let r = env.ok(&["image", "prune"]);
    assert!(live.is_file(), "a live process's work was removed");
    assert!(!dead.exists(), "a dead process's leftover was kept");
    assert!(
        r.stdout.contains("1 leftovers") && r.stdout.contains("(11 bytes;"),
        "{}",
        r.stdout
    );
}

// ---------------------------------------------------------------- interrupted pulls

/// The size of the layer of [`big_image`]: 64 MiB of noise.
const BIG: usize = 64 << 20;
/// Where the proxy holds a pull of [`big_image`] back: mid-blob.
const STALL: u64 = 24 << 20;

/// An image of one uncompressed layer holding [`BIG`] bytes that do not compress.
fn big_image() -> &'static Image {
    static IMAGE: OnceLock<Image> = OnceLock::new();
    IMAGE.get_or_init(|| {
        ImageBuilder::new()
            .layer(Layer::tar(
                &[TarEntry::file("payload", 0o644, &fixture::noise(BIG, 64))],
                Compression::None,
            ))
            .build()
    })
}

/// A real registry holding [`big_image`] as `e2e/big:v1`, a proxy in front
/// of it, and the reference through the proxy; `None` (skipped) without the tools.
fn big_behind_proxy() -> Option<(Registry, Proxy, String)> {
    let reg = registry_with("e2e/big:v1", Tagged::Image(big_image()))?;
    let proxy = Proxy::start(reg.port());
    let reference = format!("{}/e2e/big:v1", proxy.host());
    Some((reg, proxy, reference))
}

/// The partial files of the blob `digest` in the store's `tmp/`, with their sizes.
fn partials(env: &Env, digest: &str) -> Vec<(String, u64)> {
    env.list("tmp")
        .into_iter()
        .filter(|n| n.starts_with("partial-") && n.ends_with(hex_of(digest)))
        .map(|n| {
            let len = std::fs::metadata(env.root().join("tmp").join(&n)).map_or(0, |m| m.len());
            (n, len)
        })
        .collect()
}

/// Starts `wrun pull reference`, lets the proxy pass [`STALL`] bytes, waits
/// until the layer's partial blob holds most of them, and sends the pull
/// `sig`. Returns the partial blob's size after the pull died.
fn interrupt_pull(env: &Env, proxy: &Proxy, reference: &str, sig: i32) -> u64 {
    let layer = &big_image().layers[0].blob;
    proxy.reset();
    proxy.stall_at(STALL);
    let mut child = env
        .command(&["pull", reference])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn wrun pull");
    let caught = wait_until(Duration::from_secs(120), || {
        proxy.stalled()
            && partials(env, &layer.digest)
                .iter()
                .any(|(_, len)| *len >= STALL - (4 << 20))
    });
    if !caught {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "the pull never got {STALL} bytes into the blob: {} sent, tmp {:?}",
            proxy.sent(),
            env.list("tmp")
        );
    }
    let pid = i32::try_from(child.id()).expect("a pid fits in i32");
    // SAFETY: kill has no memory-safety preconditions; the pid is our own
    // child's, not yet reaped, so it names no other process.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "signal the pull");
    let status = child.wait().expect("reap the pull");
    assert_eq!(status.signal(), Some(sig), "the pull died of the signal");
    assert!(
        !env.blob_path(&layer.digest).exists(),
        "a partial blob is visible"
    );
    assert_eq!(env.list("images"), Vec::<String>::new());
    env.assert_consistent();
    let left = partials(env, &layer.digest);
    assert_eq!(left.len(), 1, "one partial blob is left: {left:?}");
    left[0].1
}

#[test]
fn a_pull_killed_mid_blob_by_sigterm_or_sigkill_is_resumed_by_the_next() {
    let Some((_reg, proxy, reference)) = big_behind_proxy() else {
        return;
    };
    let image = big_image();
    for sig in [libc::SIGTERM, libc::SIGKILL] {
        let env = Env::new();
        let kept = interrupt_pull(&env, &proxy, &reference, sig);
        assert!(
            env.list("tmp").len() > 1,
            "the half-unpacked layer is left too: {:?}",
            env.list("tmp")
        );

        proxy.reset();
        let r = env.ok(&["pull", &reference]);
        assert_eq!(r.line(), image.manifest.digest, "signal {sig}");
        assert!(
            r.stderr.contains(&format!("resuming after {kept} bytes")),
            "signal {sig}: the next pull does not resume: {}",
            r.stderr
        );
        // Only the rest of the blob came over the network (and the
        // manifest, the config and headers, which are small).
        let rest = BIG as u64 - kept;
        assert!(
            proxy.sent() < rest + (1 << 20),
            "signal {sig}: {} bytes fetched for the {rest} missing",
            proxy.sent()
        );
        assert_eq!(
            env.list("tmp"),
            Vec::<String>::new(),
            "signal {sig}: the leftovers are gone"
        );
        assert_eq!(
            std::fs::read(env.layer_dir(image.diff_id(0)).join("payload")).expect("payload"),
            fixture::noise(BIG, 64),
            "signal {sig}"
        );
        env.assert_consistent();
    }
}

/// SIGKILLs a pull of the big image mid-blob and opens the partial blob it
/// left, for writing: the layer's blob and the file.
fn killed_pulls_partial_blob(
    env: &Env,
    proxy: &Proxy,
    reference: &str,
) -> (&'static fixture::Blob, std::fs::File) {
    interrupt_pull(env, proxy, reference, libc::SIGKILL);
    let layer = &big_image().layers[0].blob;
    let (name, _) = partials(env, &layer.digest).remove(0);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(env.root().join("tmp").join(&name))
        .expect("open the partial blob");
    (layer, f)
}

#[test]
fn a_dead_pulls_leftovers_that_cannot_be_resumed_are_discarded_by_the_next_pull() {
    let Some((_reg, proxy, reference)) = big_behind_proxy() else {
        return;
    };
    let env = Env::new();
    let (layer, f) = killed_pulls_partial_blob(&env, &proxy, &reference);
    // A partial blob longer than the blob can be no prefix of it.
    f.set_len(layer.bytes.len() as u64 + 1)
        .expect("lengthen the partial blob");
    drop(f);

    proxy.reset();
    let r = env.ok(&["pull", &reference]);
    assert!(!r.stderr.contains("resuming"), "{}", r.stderr);
    assert!(
        proxy.sent() > layer.bytes.len() as u64,
        "the whole blob came again"
    );
    assert_eq!(env.list("tmp"), Vec::<String>::new());
    env.assert_consistent();
}

#[test]
fn a_dead_pulls_partial_blob_that_is_not_a_prefix_is_fetched_again() {
    let Some((_reg, proxy, reference)) = big_behind_proxy() else {
        return;
    };
    let env = Env::new();
    let (_, mut f) = killed_pulls_partial_blob(&env, &proxy, &reference);
    // Data a crash lost: the kept bytes are not the blob's.
    use std::io::{Seek as _, Write as _};
    f.seek(std::io::SeekFrom::Start(4 << 20)).expect("seek");
    f.write_all(&[0u8; 4096]).expect("spoil the partial blob");
    drop(f);

    proxy.reset();
    let r = env.ok(&["pull", &reference]);
    assert!(r.stderr.contains("resuming"), "{}", r.stderr);
    assert_eq!(r.line(), big_image().manifest.digest);
    assert_eq!(env.list("tmp"), Vec::<String>::new());
    assert_eq!(
        std::fs::read(env.layer_dir(big_image().diff_id(0)).join("payload")).expect("payload"),
        fixture::noise(BIG, 64)
    );
    env.assert_consistent();
}

/// The bytes of the files under the store's `rel` directories, each file once.
fn bytes_under(env: &Env, rels: &[&str]) -> u64 {
    use std::collections::HashSet;
    fn walk(p: &Path, seen: &mut HashSet<(u64, u64)>) -> u64 {
        let Ok(rd) = std::fs::read_dir(p) else {
            return 0;
        };
        let mut bytes = 0;
        for e in rd.flatten() {
            let Ok(m) = std::fs::symlink_metadata(e.path()) else {
                continue;
            };
            if m.is_dir() {
                bytes += walk(&e.path(), seen);
            } else if seen.insert((m.dev(), m.ino())) {
                bytes += m.len();
            }
        }
        bytes
    }
    let mut seen = HashSet::new();
    rels.iter()
        .map(|r| walk(&env.root().join(r), &mut seen))
        .sum()
}

#[test]
fn image_prune_after_a_killed_pull_reports_the_bytes_it_freed() {
    let Some((_reg, proxy, reference)) = big_behind_proxy() else {
        return;
    };
    let env = Env::new();
    let kept = interrupt_pull(&env, &proxy, &reference, libc::SIGKILL);
    // All of it is unreferenced: the partial blob and layer, and the config blob.
    let there = bytes_under(&env, &["tmp", "blobs", "layers"]);
    assert!(
        there > kept,
        "{there} bytes in the store, {kept} of them the partial blob"
    );

    let r = env.ok(&["image", "prune"]);
    assert!(
        r.stdout.contains(&format!("({there} bytes;")),
        "prune reports what it freed, {there} bytes: {}",
        r.stdout
    );
    assert_eq!(env.list("tmp"), Vec::<String>::new());
    assert_eq!(bytes_under(&env, &["tmp", "blobs", "layers"]), 0);
}

/// A tmpfs mounted for one test; unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("run mount");
        if !out.status.success() {
            wrun_tests::skip(&format!(
                "cannot mount a tmpfs: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
            return None;
        }
        Some(Tmpfs { dir })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[test]
fn full_disk_fails_cleanly() {
    if !have_root("mounting a small tmpfs") {
        return;
    }
    let Some(fs) = Tmpfs::mount("2m") else {
        return;
    };
    let image = ImageBuilder::new()
        .layer(Layer::tar(
            &[TarEntry::file(
                "big",
                0o644,
                &fixture::noise(3 * 1024 * 1024, 11),
            )],
            Compression::None,
        ))
        .build();
    let h = hostile_with("e2e/full", "v1", Tagged::Image(&image));
    let env = Env::at(&fs.dir.path().join("store"));
    let r = env.run(&["pull", &h.reference("e2e/full:v1")]);
    let line = assert_failure(&r, "pull onto a full disk");
    assert!(line.to_lowercase().contains("no space"), "{line}");
    assert_eq!(env.list("images"), Vec::<String>::new());
    assert!(env.refs().is_empty());
    assert_eq!(env.list("layers/sha256"), Vec::<String>::new());
    assert!(!env.blob_path(&image.layers[0].blob.digest).exists());
    env.assert_consistent();
    env.ok(&["image", "prune"]);
    assert_eq!(env.list("tmp"), Vec::<String>::new());
}
