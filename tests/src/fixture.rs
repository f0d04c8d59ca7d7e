//! Image fixtures written in Rust: layer tars from a list of entries (hostile
//! ones included), gzip/zstd/plain, image configs and manifests, indexes,
//! Wasm artifacts, OCI image layouts and `docker save` archives.

use crate::sha256;
use serde_json::{Map, Value, json};
use std::io::Write;
use std::path::Path;

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// The CNCF Wasm artifact config.
pub const WASM_CONFIG: &str = "application/vnd.wasm.config.v0+json";
/// The CNCF Wasm artifact layer.
pub const WASM_LAYER: &str = "application/wasm";
/// The smallest valid Wasm module: magic and version.
pub const WASM_MODULE: &[u8] = b"\0asm\x01\0\0\0";
/// The start of an ELF executable, enough for magic detection.
pub const ELF_HEAD: &[u8] = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0";

/// A layer's compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

impl Compression {
    /// The OCI layer media type.
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }

    /// Compresses `bytes`.
    pub fn apply(self, bytes: &[u8]) -> Vec<u8> {
        match self {
            Compression::None => bytes.to_vec(),
            Compression::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(bytes).expect("gzip into memory");
                e.finish().expect("finish gzip")
            }
            Compression::Zstd => zstd::encode_all(bytes, 3).expect("zstd into memory"),
        }
    }
}

/// One tar entry, its name given as raw bytes (so hostile names such as
/// `../evil` or `/abs` are written exactly as they are).
#[derive(Debug, Clone)]
pub struct TarEntry {
    name: Vec<u8>,
    kind: tar::EntryType,
    mode: u32,
    data: Vec<u8>,
    link: Vec<u8>,
}

impl TarEntry {
    /// A regular file.
    pub fn file(path: &str, mode: u32, data: &[u8]) -> TarEntry {
        TarEntry::raw(path.as_bytes(), tar::EntryType::Regular, mode, data, b"")
    }

    /// A directory.
    pub fn dir(path: &str, mode: u32) -> TarEntry {
        TarEntry::raw(path.as_bytes(), tar::EntryType::Directory, mode, b"", b"")
    }

    /// A symlink `path -> target`.
    pub fn symlink(path: &str, target: &str) -> TarEntry {
        TarEntry::raw(
            path.as_bytes(),
            tar::EntryType::Symlink,
            0o777,
            b"",
            target.as_bytes(),
        )
    }

    /// A hard link `path` to the entry `target`.
    pub fn hardlink(path: &str, target: &str) -> TarEntry {
        TarEntry::raw(
            path.as_bytes(),
            tar::EntryType::Link,
            0o644,
            b"",
            target.as_bytes(),
        )
    }

    /// An OCI whiteout hiding `path` of the layers below (`dir/.wh.name`).
    pub fn whiteout(path: &str) -> TarEntry {
        let (dir, name) = path.rsplit_once('/').map_or(("", path), |(d, n)| (d, n));
        let wh = if dir.is_empty() {
            format!(".wh.{name}")
        } else {
            format!("{dir}/.wh.{name}")
        };
        TarEntry::file(&wh, 0o644, b"")
    }

    /// An opaque marker: `dir`'s contents in the layers below are hidden.
    pub fn opaque(dir: &str) -> TarEntry {
        TarEntry::file(&format!("{dir}/.wh..wh..opq"), 0o644, b"")
    }

    /// Any entry, with the name and link name bytes written into the header as they are.
    pub fn raw(name: &[u8], kind: tar::EntryType, mode: u32, data: &[u8], link: &[u8]) -> TarEntry {
        TarEntry {
            name: name.to_vec(),
            kind,
            mode,
            data: data.to_vec(),
            link: link.to_vec(),
        }
    }
}

/// A tar of `entries`, each header written by hand (ustar, names up to 100 bytes).
pub fn tar(entries: &[TarEntry]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        assert!(
            e.name.len() <= 100,
            "fixture tar names are at most 100 bytes"
        );
        assert!(
            e.link.len() <= 100,
            "fixture link names are at most 100 bytes"
        );
        let mut h = tar::Header::new_ustar();
        {
            let old = h.as_old_mut();
            old.name = [0; 100];
            old.name[..e.name.len()].copy_from_slice(&e.name);
            old.linkname = [0; 100];
            old.linkname[..e.link.len()].copy_from_slice(&e.link);
        }
        h.set_entry_type(e.kind);
        h.set_mode(e.mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_size(e.data.len() as u64);
        h.set_cksum();
        b.append(&h, e.data.as_slice()).expect("append a tar entry");
    }
    b.into_inner().expect("finish the tar")
}

/// A blob: bytes, their digest and media type.
#[derive(Debug, Clone)]
pub struct Blob {
    /// Media type.
    pub media_type: String,
    /// `sha256:<hex>`.
    pub digest: String,
    /// Content.
    pub bytes: Vec<u8>,
}

impl Blob {
    /// A blob of `bytes`.
    pub fn new(media_type: &str, bytes: Vec<u8>) -> Blob {
        Blob {
            media_type: media_type.to_string(),
            digest: sha256(&bytes),
            bytes,
        }
    }

    /// Its OCI descriptor.
    pub fn descriptor(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.bytes.len()})
    }
}

/// A layer: its blob and, for a tar layer, the diff-id of the uncompressed tar.
#[derive(Debug, Clone)]
pub struct Layer {
    /// The blob as served.
    pub blob: Blob,
    /// The uncompressed tar's digest; `None` for a Wasm module layer.
    pub diff_id: Option<String>,
}

impl Layer {
    /// A tar layer of `entries`.
    pub fn tar(entries: &[TarEntry], compression: Compression) -> Layer {
        let t = tar(entries);
        Layer {
            diff_id: Some(sha256(&t)),
            blob: Blob::new(compression.media_type(), compression.apply(&t)),
        }
    }

    /// A layer with given bytes, media type and diff-id (to lie with).
    pub fn raw(media_type: &str, bytes: Vec<u8>, diff_id: Option<String>) -> Layer {
        Layer {
            blob: Blob::new(media_type, bytes),
            diff_id,
        }
    }

    /// A Wasm module layer (`application/wasm`).
    pub fn wasm(module: &[u8]) -> Layer {
        Layer::raw(WASM_LAYER, module.to_vec(), None)
    }
}

/// An image: manifest, config and layers.
#[derive(Debug, Clone)]
pub struct Image {
    /// The manifest.
    pub manifest: Blob,
    /// The config.
    pub config: Blob,
    /// The layers, bottom first.
    pub layers: Vec<Layer>,
}

impl Image {
    /// Every blob, manifest first.
    pub fn blobs(&self) -> Vec<&Blob> {
        let mut v = vec![&self.manifest, &self.config];
        v.extend(self.layers.iter().map(|l| &l.blob));
        v
    }

    /// The diff-id of layer `i`.
    pub fn diff_id(&self, i: usize) -> &str {
        self.layers[i]
            .diff_id
            .as_deref()
            .expect("a tar layer has a diff-id")
    }
}

/// Builds an [`Image`]; defaults: linux/amd64, OCI media types, no layers.
#[derive(Debug, Clone)]
pub struct ImageBuilder {
    os: String,
    arch: String,
    variant: Option<String>,
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    env: Vec<String>,
    labels: Map<String, Value>,
    annotations: Map<String, Value>,
    layers: Vec<Layer>,
    config_media_type: String,
    config_bytes: Option<Vec<u8>>,
}

impl Default for ImageBuilder {
    fn default() -> Self {
        ImageBuilder::new()
    }
}

impl ImageBuilder {
    /// An empty linux/amd64 image.
    pub fn new() -> ImageBuilder {
        ImageBuilder {
            os: "linux".into(),
            arch: "amd64".into(),
            variant: None,
            entrypoint: None,
            cmd: None,
            env: vec!["PATH=/usr/local/bin:/usr/bin:/bin".into()],
            labels: Map::new(),
            annotations: Map::new(),
            layers: Vec::new(),
            config_media_type: OCI_CONFIG.into(),
            config_bytes: None,
        }
    }

    /// Sets the platform (`os/arch[/variant]`).
    pub fn platform(&mut self, platform: &str) -> &mut Self {
        let mut parts = platform.split('/');
        self.os = parts.next().unwrap_or_default().to_string();
        self.arch = parts.next().unwrap_or_default().to_string();
        self.variant = parts.next().map(str::to_string);
        self
    }

    /// Sets the config's Entrypoint.
    pub fn entrypoint(&mut self, argv: &[&str]) -> &mut Self {
        self.entrypoint = Some(argv.iter().map(|s| s.to_string()).collect());
        self
    }

    /// Sets the config's Cmd.
    pub fn cmd(&mut self, argv: &[&str]) -> &mut Self {
        self.cmd = Some(argv.iter().map(|s| s.to_string()).collect());
        self
    }

    /// Sets an environment variable `K=V` (replacing an earlier `K`).
    pub fn env(&mut self, kv: &str) -> &mut Self {
        let key = kv.split_once('=').map_or(kv, |(k, _)| k);
        self.env
            .retain(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) != key);
        self.env.push(kv.to_string());
        self
    }

    /// Adds a config label.
    pub fn label(&mut self, k: &str, v: &str) -> &mut Self {
        self.labels.insert(k.into(), v.into());
        self
    }

    /// Adds a manifest annotation.
    pub fn annotation(&mut self, k: &str, v: &str) -> &mut Self {
        self.annotations.insert(k.into(), v.into());
        self
    }

    /// Adds a layer on top.
    pub fn layer(&mut self, layer: Layer) -> &mut Self {
        self.layers.push(layer);
        self
    }

    /// Sets the config's media type.
    pub fn config_media_type(&mut self, mt: &str) -> &mut Self {
        self.config_media_type = mt.to_string();
        self
    }

    /// Uses these bytes as the config instead of generating one.
    pub fn config_bytes(&mut self, bytes: &[u8]) -> &mut Self {
        self.config_bytes = Some(bytes.to_vec());
        self
    }

    /// The image.
    pub fn build(&self) -> Image {
        let config_bytes = self.config_bytes.clone().unwrap_or_else(|| {
            let mut c = Map::new();
            c.insert("Env".into(), json!(self.env));
            if let Some(e) = &self.entrypoint {
                c.insert("Entrypoint".into(), json!(e));
            }
            if let Some(e) = &self.cmd {
                c.insert("Cmd".into(), json!(e));
            }
            if !self.labels.is_empty() {
                c.insert("Labels".into(), Value::Object(self.labels.clone()));
            }
            let diff_ids: Vec<&str> = self
                .layers
                .iter()
                .filter_map(|l| l.diff_id.as_deref())
                .collect();
            let mut cfg = json!({
                "created": "2024-01-01T00:00:00Z",
                "architecture": self.arch,
                "os": self.os,
                "config": c,
                "rootfs": {"type": "layers", "diff_ids": diff_ids},
            });
            if let Some(v) = &self.variant {
                cfg["variant"] = json!(v);
            }
            serde_json::to_vec(&cfg).expect("serialize a config")
        });
        let config = Blob::new(&self.config_media_type, config_bytes);
        let mut m = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config.descriptor(),
            "layers": self.layers.iter().map(|l| l.blob.descriptor()).collect::<Vec<_>>(),
        });
        if !self.annotations.is_empty() {
            m["annotations"] = Value::Object(self.annotations.clone());
        }
        Image {
            manifest: Blob::new(
                OCI_MANIFEST,
                serde_json::to_vec(&m).expect("serialize a manifest"),
            ),
            config,
            layers: self.layers.clone(),
        }
    }
}

/// A CNCF Wasm artifact: Wasm config, one `application/wasm` layer.
pub fn wasm_artifact(module: &[u8]) -> Image {
    let layer = Layer::wasm(module);
    let config = json!({
        "created": "2024-01-01T00:00:00Z",
        "architecture": "wasm",
        "os": "wasip1",
        "layerDigests": [layer.blob.digest],
        "component": {"exports": [], "imports": []},
    });
    ImageBuilder::new()
        .config_media_type(WASM_CONFIG)
        .config_bytes(&serde_json::to_vec(&config).expect("serialize a Wasm config"))
        .layer(layer)
        .build()
}

/// A tiny native image: one gzip layer with `/bin/app` (an ELF head) as entrypoint.
pub fn small_image(marker: &str) -> Image {
    ImageBuilder::new()
        .entrypoint(&["/bin/app"])
        .layer(Layer::tar(
            &[
                TarEntry::dir("bin", 0o755),
                TarEntry::file("bin/app", 0o755, &[ELF_HEAD, marker.as_bytes()].concat()),
                TarEntry::file("etc/marker", 0o644, marker.as_bytes()),
            ],
            Compression::Gzip,
        ))
        .build()
}

/// An image index: the platform of each entry and the image.
#[derive(Debug, Clone)]
pub struct Index {
    /// The index itself.
    pub manifest: Blob,
    /// Its images, with their platforms (`os/arch[/variant]`).
    pub images: Vec<(String, Image)>,
}

impl Index {
    /// An index of `images`.
    pub fn new(images: Vec<(&str, Image)>) -> Index {
        let entries: Vec<Value> = images
            .iter()
            .map(|(p, img)| {
                let mut parts = p.split('/');
                let mut platform = json!({
                    "os": parts.next().unwrap_or_default(),
                    "architecture": parts.next().unwrap_or_default(),
                });
                if let Some(v) = parts.next() {
                    platform["variant"] = json!(v);
                }
                let mut d = img.manifest.descriptor();
                d["platform"] = platform;
                d
            })
            .collect();
        let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries});
        Index {
            manifest: Blob::new(
                OCI_INDEX,
                serde_json::to_vec(&index).expect("serialize an index"),
            ),
            images: images
                .into_iter()
                .map(|(p, i)| (p.to_string(), i))
                .collect(),
        }
    }

    /// The image for `platform`.
    pub fn image(&self, platform: &str) -> &Image {
        &self
            .images
            .iter()
            .find(|(p, _)| p == platform)
            .expect("the index has that platform")
            .1
    }
}

/// An image or an index: what a tag can name.
#[derive(Debug, Clone, Copy)]
pub enum Tagged<'a> {
    /// One image.
    Image(&'a Image),
    /// An index and its images.
    Index(&'a Index),
}

impl<'a> Tagged<'a> {
    /// The top manifest (the one the tag names).
    pub fn top(&self) -> &'a Blob {
        match self {
            Tagged::Image(i) => &i.manifest,
            Tagged::Index(x) => &x.manifest,
        }
    }

    /// Every blob, top manifest first.
    pub fn blobs(&self) -> Vec<&'a Blob> {
        match self {
            Tagged::Image(i) => i.blobs(),
            Tagged::Index(x) => {
                let mut v = vec![&x.manifest];
                for (_, i) in &x.images {
                    v.extend(i.blobs());
                }
                v
            }
        }
    }
}

/// Writes an OCI image layout at `dir` holding each `(tag, content)`.
pub fn write_layout(dir: &Path, tagged: &[(&str, Tagged<'_>)]) {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).expect("create the layout's blobs directory");
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)
        .expect("write oci-layout");
    let mut manifests = Vec::new();
    for (tag, t) in tagged {
        for b in t.blobs() {
            std::fs::write(blobs.join(crate::hex_of(&b.digest)), &b.bytes)
                .expect("write a layout blob");
        }
        let mut d = t.top().descriptor();
        d["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
        manifests.push(d);
    }
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&index).expect("serialize index.json"),
    )
    .expect("write index.json");
}

/// A tar of the directory tree `dir` (regular files and directories), as an
/// oci-archive is a tar of a layout.
pub fn tar_dir(dir: &Path) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    b.append_dir_all(".", dir).expect("tar a directory");
    b.into_inner().expect("finish the tar")
}

/// A `docker save` archive of `image` (whose layers must be plain tars):
/// `manifest.json`, `<hex>.json` config, `<hex>/layer.tar` per layer.
pub fn docker_archive(image: &Image, repo_tags: &[&str]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, name, data)
            .expect("append to a docker archive");
    };
    let config_name = format!("{}.json", crate::hex_of(&image.config.digest));
    let mut layers = Vec::new();
    for l in &image.layers {
        let name = format!("{}/layer.tar", crate::hex_of(&l.blob.digest));
        add(&name, &l.blob.bytes);
        layers.push(name);
    }
    add(&config_name, &image.config.bytes);
    let manifest = json!([{"Config": config_name, "RepoTags": repo_tags, "Layers": layers}]);
    add(
        "manifest.json",
        &serde_json::to_vec(&manifest).expect("serialize manifest.json"),
    );
    add("repositories", b"{}");
    b.into_inner().expect("finish the docker archive")
}

/// `len` bytes that do not compress (xorshift).
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
