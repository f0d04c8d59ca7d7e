//! Image layouts and archives: `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]` and
//! `docker-archive:FILE` (what `docker save` writes) as pull sources, and
//! `save` to an oci-archive that skopeo and podman read.

use crate::digest::Digest;
use crate::pull::{Fetch, PullOptions, Pulled, choose_platform, is_index, store_image};
use crate::reference::Source;
use crate::store::Store;
use crate::{Blob, Error, ImageRecord, media};
use cap_std::fs::Dir;
use serde_json::{Value, json};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Imports an image from a local source into the store.
pub(crate) async fn import(
    store: &Store,
    source: Source,
    opts: &PullOptions,
) -> Result<Pulled, Error> {
    match source {
        Source::OciDir(dir, tag) => import_layout(store, &dir, tag.as_deref(), opts).await,
        Source::OciArchive(file, tag) => {
            let tmp = store.temp_dir()?;
            untar(&file, tmp.dir())?;
            let path = tmp.path();
            import_layout(store, &path, tag.as_deref(), opts)
                .await
                .map_err(|e| relabel(e, &path, &file))
        }
        Source::DockerArchive(file) => import_docker_archive(store, &file, opts).await,
        Source::Registry(_) => unreachable!("registry sources are pulled, not imported"),
    }
}

/// An error about a temporary extraction, said about the archive instead.
fn relabel(e: Error, tmp: &Path, archive: &Path) -> Error {
    match e {
        Error::InvalidArchive { path, reason } if path.starts_with(tmp) => Error::InvalidArchive {
            path: archive.to_path_buf(),
            reason,
        },
        e => e,
    }
}

/// Reads `file` (a tar) into `dest`: an archive of an image is just its
/// files, so only regular files and directories are accepted, through a
/// capability that cannot leave `dest`.
fn untar(file: &Path, dest: &Dir) -> Result<(), Error> {
    let f = std::fs::File::open(file).map_err(Error::io("open archive", file))?;
    let bad = |reason: String| Error::InvalidArchive {
        path: file.to_path_buf(),
        reason,
    };
    let mut ar = tar::Archive::new(io::BufReader::new(f));
    for entry in ar.entries().map_err(|e| bad(e.to_string()))? {
        let mut entry = entry.map_err(|e| bad(e.to_string()))?;
        let path = entry.path().map_err(|e| bad(e.to_string()))?.into_owned();
        let rel: PathBuf = path
            .components()
            .filter(|c| !matches!(c, std::path::Component::CurDir))
            .collect();
        if rel.as_os_str().is_empty() {
            continue;
        }
        if rel
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(bad(format!("entry {:?} leaves the archive", path)));
        }
        match entry.header().entry_type() {
            tar::EntryType::Directory => dest
                .create_dir_all(&rel)
                .map_err(|e| bad(format!("{}: {e}", rel.display())))?,
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) {
                    dest.create_dir_all(parent)
                        .map_err(|e| bad(format!("{}: {e}", rel.display())))?;
                }
                let mut out = dest
                    .create(&rel)
                    .map_err(|e| bad(format!("{}: {e}", rel.display())))?;
                io::copy(&mut entry, &mut out)
                    .map_err(|e| bad(format!("{}: {e}", rel.display())))?;
            }
            // docker save links identical layers, and skopeo links each
            // `<id>/layer.tar` to its blob (with no entry for `<id>/`
            // before it); followed within the archive.
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(|e| bad(e.to_string()))?
                    .ok_or_else(|| bad(format!("entry {path:?} has no link target")))?;
                if let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) {
                    dest.create_dir_all(parent)
                        .map_err(|e| bad(format!("{}: {e}", rel.display())))?;
                }
                dest.symlink(&target, &rel)
                    .map_err(|e| bad(format!("{}: {e}", rel.display())))?;
            }
            other => {
                return Err(bad(format!(
                    "entry {path:?} has unsupported type {other:?}"
                )));
            }
        }
    }
    Ok(())
}

struct LayoutFetch {
    dir: Dir,
    path: PathBuf,
}

impl LayoutFetch {
    fn open(path: &Path) -> Result<LayoutFetch, Error> {
        // # Ambient Authority: the user named this directory.
        let dir = Dir::open_ambient_dir(path, cap_std::ambient_authority())
            .map_err(Error::io("open", path))?;
        Ok(LayoutFetch {
            dir,
            path: path.to_path_buf(),
        })
    }

    fn blob_rel(d: &Digest) -> String {
        format!("blobs/{}/{}", d.algorithm_name(), d.hex())
    }

    fn read(&self, rel: &str) -> Result<Vec<u8>, Error> {
        self.dir.read(rel).map_err(|e| Error::InvalidArchive {
            path: self.path.clone(),
            reason: format!("{rel}: {e}"),
        })
    }

    fn read_blob(&self, d: &Digest) -> Result<Vec<u8>, Error> {
        let bytes = self.read(&Self::blob_rel(d))?;
        if !d.matches(&bytes) {
            return Err(Error::DigestMismatch {
                what: format!("blob {d} in {}", self.path.display()),
                expected: d.to_string(),
                actual: Digest::sha256_of(&bytes).to_string(),
            });
        }
        Ok(bytes)
    }
}

impl Fetch for LayoutFetch {
    async fn small(&self, store: &Store, blob: &Blob) -> Result<Vec<u8>, Error> {
        let bytes = self.read_blob(&blob.digest)?;
        store.put_blob(&blob.digest, &bytes)?;
        Ok(bytes)
    }

    async fn stream(
        &self,
        blob: &Blob,
        offset: u64,
        tx: tokio::sync::mpsc::Sender<bytes::Bytes>,
    ) -> Result<(), Error> {
        let rel = Self::blob_rel(&blob.digest);
        let mut f = self.dir.open(&rel).map_err(|e| Error::InvalidArchive {
            path: self.path.clone(),
            reason: format!("{rel}: {e}"),
        })?;
        let path = self.path.join(&rel);
        f.seek(io::SeekFrom::Start(offset))
            .map_err(Error::io("read", &path))?;
        // Blocking reads go to the blocking pool, never `block_in_place`:
        // that panics on a current-thread runtime, which a library's
        // caller may well use.
        let reading = tokio::task::spawn_blocking(move || {
            loop {
                let mut buf = vec![0u8; 1 << 20];
                let n = f.read(&mut buf).map_err(Error::io("read", &path))?;
                if n == 0 {
                    return Ok(());
                }
                buf.truncate(n);
                if tx.blocking_send(bytes::Bytes::from(buf)).is_err() {
                    return Ok(());
                }
            }
        });
        reading.await.map_err(|e| {
            Error::io("read", self.path.join(Self::blob_rel(&blob.digest)))(io::Error::other(e))
        })?
    }
}

async fn import_layout(
    store: &Store,
    path: &Path,
    tag: Option<&str>,
    opts: &PullOptions,
) -> Result<Pulled, Error> {
    let layout = LayoutFetch::open(path)?;
    let bad = |reason: String| Error::InvalidArchive {
        path: path.to_path_buf(),
        reason,
    };
    let index_bytes = layout.read("index.json")?;
    let index: Value = serde_json::from_slice(&index_bytes).map_err(|source| Error::Malformed {
        what: format!("{}/index.json", path.display()),
        source,
    })?;
    let manifests = index
        .get("manifests")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("index.json has no manifests".into()))?;
    let entry = match tag {
        Some(t) => manifests
            .iter()
            .find(|m| {
                m.pointer("/annotations/org.opencontainers.image.ref.name")
                    .and_then(Value::as_str)
                    == Some(t)
            })
            .ok_or_else(|| bad(format!("no image tagged {t:?}")))?,
        None if manifests.len() == 1 => &manifests[0],
        None => {
            return Err(bad(format!(
                "{} images: name one with :TAG",
                manifests.len()
            )));
        }
    };
    let digest: Digest = entry
        .get("digest")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("index entry has no digest".into()))?
        .parse()?;
    let mut bytes = layout.read_blob(&digest)?;
    let mut manifest_digest = digest;
    let _shared = store.lock_shared()?;
    if is_index(&bytes, &manifest_digest)? {
        let chosen = choose_platform(
            &bytes,
            &manifest_digest,
            &path.display().to_string(),
            opts.platform.as_ref(),
        )?;
        store.put_blob(&manifest_digest, &bytes)?;
        bytes = layout.read_blob(&chosen.digest)?;
        manifest_digest = chosen.digest;
    }
    let record = store_image(store, &layout, &bytes, &manifest_digest, None, opts).await?;
    let name = entry
        .pointer("/annotations/org.opencontainers.image.ref.name")
        .and_then(Value::as_str)
        .and_then(|n| {
            // A full reference is a name; a bare tag names the layout's image.
            if n.contains('/') || n.contains(':') {
                crate::reference::normalize(n).ok()
            } else {
                None
            }
        })
        .unwrap_or_else(|| {
            format!(
                "localhost/{}:{}",
                layout_name(path),
                tag.unwrap_or("latest")
            )
        });
    store.put_image(&record, std::slice::from_ref(&name))?;
    Ok(Pulled { record, name })
}

fn layout_name(path: &Path) -> String {
    let raw = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let name = name
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string();
    if name.is_empty() {
        "image".to_string()
    } else {
        name
    }
}

async fn import_docker_archive(
    store: &Store,
    file: &Path,
    opts: &PullOptions,
) -> Result<Pulled, Error> {
    let tmp = store.temp_dir()?;
    untar(file, tmp.dir())?;
    let root = tmp.path();
    // Docker 25+ writes an OCI layout beside manifest.json: prefer it.
    if tmp.dir().exists("index.json") && tmp.dir().exists("oci-layout") {
        let pulled = import_layout(store, &root, None, opts)
            .await
            .map_err(|e| relabel(e, &root, file))?;
        let names = docker_repo_tags(tmp.dir(), file)?;
        if !names.is_empty() {
            store.put_image(&pulled.record, &names)?;
            return Ok(Pulled {
                name: names[0].clone(),
                record: pulled.record,
            });
        }
        return Ok(pulled);
    }
    let bad = |reason: String| Error::InvalidArchive {
        path: file.to_path_buf(),
        reason,
    };
    let manifest: Value = serde_json::from_slice(
        &tmp.dir()
            .read("manifest.json")
            .map_err(|e| bad(format!("manifest.json: {e}")))?,
    )
    .map_err(|source| Error::Malformed {
        what: format!("manifest.json in {}", file.display()),
        source,
    })?;
    let first = manifest
        .as_array()
        .and_then(|a| a.first())
        .ok_or_else(|| bad("manifest.json lists no image".into()))?;
    let config_rel = first
        .get("Config")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("manifest.json has no Config".into()))?;
    let layer_rels: Vec<&str> = first
        .get("Layers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    // Build an OCI layout from the archive's files: each file becomes a blob by its digest.
    let layout = store.temp_dir()?;
    layout
        .dir()
        .create_dir_all("blobs/sha256")
        .map_err(Error::io("create", layout.path()))?;
    let add = |rel: &str| -> Result<(Digest, u64), Error> {
        let mut src = tmp
            .dir()
            .open(rel)
            .map_err(|e| bad(format!("{rel}: {e}")))?;
        let mut h = crate::digest::Hasher::new(crate::digest::Algorithm::Sha256);
        let mut buf = vec![0u8; 1 << 20];
        let mut size = 0u64;
        let staging = format!("blobs/staging-{}", rel.replace('/', "_"));
        let mut out = layout
            .dir()
            .create(&staging)
            .map_err(Error::io("create", layout.path()))?;
        loop {
            let n = src.read(&mut buf).map_err(|e| bad(format!("{rel}: {e}")))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            out.write_all(&buf[..n])
                .map_err(Error::io("write", layout.path()))?;
            size += n as u64;
        }
        let d = h.finish();
        layout
            .dir()
            .rename(&staging, layout.dir(), format!("blobs/sha256/{}", d.hex()))
            .map_err(Error::io("write", layout.path()))?;
        Ok((d, size))
    };
    let (config_digest, config_size) = add(config_rel)?;
    let mut layers = Vec::new();
    for rel in layer_rels {
        let (d, size) = add(rel)?;
        let mut head = [0u8; 4];
        let n = tmp
            .dir()
            .open(rel)
            .and_then(|mut f| f.read(&mut head))
            .unwrap_or(0);
        let media_type = if head[..n].starts_with(&[0x1f, 0x8b]) {
            "application/vnd.oci.image.layer.v1.tar+gzip"
        } else if head[..n].starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            "application/vnd.oci.image.layer.v1.tar+zstd"
        } else {
            "application/vnd.oci.image.layer.v1.tar"
        };
        layers.push(json!({"mediaType": media_type, "digest": d.to_string(), "size": size}));
    }
    let oci_manifest = json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": {"mediaType": media::OCI_CONFIG, "digest": config_digest.to_string(), "size": config_size},
        "layers": layers,
    });
    let manifest_bytes = serde_json::to_vec(&oci_manifest).map_err(|source| Error::Malformed {
        what: "generated manifest".into(),
        source,
    })?;
    let manifest_digest = Digest::sha256_of(&manifest_bytes);
    let fetch = LayoutFetch {
        dir: layout
            .dir()
            .try_clone()
            .map_err(Error::io("open", layout.path()))?,
        path: file.to_path_buf(),
    };
    let _shared = store.lock_shared()?;
    let record = store_image(store, &fetch, &manifest_bytes, &manifest_digest, None, opts).await?;
    let mut names = docker_repo_tags(tmp.dir(), file)?;
    if names.is_empty() {
        names.push(format!("localhost/{}:latest", layout_name(file)));
    }
    store.put_image(&record, &names)?;
    Ok(Pulled {
        name: names[0].clone(),
        record,
    })
}

fn docker_repo_tags(dir: &Dir, file: &Path) -> Result<Vec<String>, Error> {
    let Ok(bytes) = dir.read("manifest.json") else {
        return Ok(Vec::new());
    };
    let v: Value = serde_json::from_slice(&bytes).map_err(|source| Error::Malformed {
        what: format!("manifest.json in {}", file.display()),
        source,
    })?;
    Ok(v.pointer("/0/RepoTags")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .filter_map(|t| crate::reference::normalize(t).ok())
                .collect()
        })
        .unwrap_or_default())
}

/// Writes a stored image as an oci-archive (a tar of an OCI image layout),
/// tagged `name` in its index, as `skopeo copy … oci-archive:FILE` writes.
pub fn save(
    store: &Store,
    record: &ImageRecord,
    name: Option<&str>,
    out: &Path,
) -> Result<(), Error> {
    let tmp_path = out.with_extension(format!("tmp{}", std::process::id()));
    let file = std::fs::File::create(&tmp_path).map_err(Error::io("create", &tmp_path))?;
    let result = write_archive(
        store,
        record,
        name,
        io::BufWriter::with_capacity(1 << 20, file),
        &tmp_path,
    );
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp_path);
        return Err(e);
    }
    std::fs::rename(&tmp_path, out).map_err(Error::io("write", out))
}

fn write_archive(
    store: &Store,
    record: &ImageRecord,
    name: Option<&str>,
    w: io::BufWriter<std::fs::File>,
    path: &Path,
) -> Result<(), Error> {
    type W = io::BufWriter<std::fs::File>;
    let mut ar = tar::Builder::new(w);
    let add_bytes = |ar: &mut tar::Builder<W>, rel: &str, bytes: &[u8]| -> Result<(), Error> {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        ar.append_data(&mut h, rel, bytes)
            .map_err(Error::io("write", path))
    };
    add_bytes(&mut ar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let manifest = store.read_blob(&record.digest)?;
    let mut annotations = serde_json::Map::new();
    if let Some(n) = name {
        annotations.insert(REF_NAME.into(), Value::String(n.to_string()));
    }
    let index = json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_INDEX,
        "manifests": [{
            "mediaType": record.media_type,
            "digest": record.digest.to_string(),
            "size": manifest.len(),
            "annotations": annotations,
        }],
    });
    let index_bytes = serde_json::to_vec(&index).map_err(|source| Error::Malformed {
        what: "index.json".into(),
        source,
    })?;
    add_bytes(&mut ar, "index.json", &index_bytes)?;
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o755);
    h.set_size(0);
    for d in ["blobs/", "blobs/sha256/"] {
        ar.append_data(&mut h.clone(), d, io::empty())
            .map_err(Error::io("write", path))?;
    }
    add_bytes(
        &mut ar,
        &format!("blobs/sha256/{}", record.digest.hex()),
        &manifest,
    )?;
    let config = store.read_blob(&record.config.digest)?;
    add_bytes(
        &mut ar,
        &format!(
            "blobs/{}/{}",
            record.config.digest.algorithm_name(),
            record.config.digest.hex()
        ),
        &config,
    )?;
    for l in &record.layers {
        let f = store.open_blob(&l.digest)?;
        let len = f
            .metadata()
            .map_err(Error::io("read", store.blob_path(&l.digest)))?
            .len();
        let mut h = tar::Header::new_gnu();
        h.set_size(len);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        let verifying = crate::store::VerifyingReader::new(f, l.digest.clone());
        ar.append_data(
            &mut h,
            format!("blobs/{}/{}", l.digest.algorithm_name(), l.digest.hex()),
            verifying,
        )
        .map_err(Error::io("write", path))?;
    }
    let w = ar.into_inner().map_err(Error::io("write", path))?;
    let file = w
        .into_inner()
        .map_err(|e| Error::io("write", path)(e.into_error()))?;
    file.sync_all().map_err(Error::io("sync", path))
}

/// Loads a `docker save` or oci-archive file, whichever it is.
pub async fn load(store: &Store, file: &Path, opts: &PullOptions) -> Result<Pulled, Error> {
    let f = std::fs::File::open(file).map_err(Error::io("open archive", file))?;
    let mut ar = tar::Archive::new(io::BufReader::new(f));
    let mut docker = false;
    for entry in ar.entries().map_err(|e| Error::InvalidArchive {
        path: file.to_path_buf(),
        reason: e.to_string(),
    })? {
        let entry = entry.map_err(|e| Error::InvalidArchive {
            path: file.to_path_buf(),
            reason: e.to_string(),
        })?;
        if entry
            .path()
            .is_ok_and(|p| p.as_os_str() == "manifest.json" || p.as_os_str() == "./manifest.json")
        {
            docker = true;
            break;
        }
    }
    let source = if docker {
        Source::DockerArchive(file.to_path_buf())
    } else {
        Source::OciArchive(file.to_path_buf(), None)
    };
    store.discard_leftovers();
    import(store, source, opts).await
}
