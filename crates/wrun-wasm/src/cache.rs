//! The compiled-code cache: precompiled machine code per payload digest and
//! engine, verified before it is trusted.
//!
//! Layout: `<cache_dir>/<engine tag>/<sha256 of the wasm binary>.cwasm`. The
//! engine tag hashes everything that decides whether compiled code fits an
//! engine (the Wasmtime version and compiler settings, via
//! `Engine::precompile_compatibility_hash`, plus this crate's format
//! version), so code compiled for another Wasmtime or with fuel metering
//! never meets the wrong engine: it lives in another directory, which
//! `prune` removes.
//!
//! Each entry is the bytes of `Module::serialize`/`Component::serialize` (an
//! ELF image), then a trailer: their SHA-256 and `MAGIC`. Entries are written
//! to a temporary file, fsynced and renamed into place, so a reader sees a
//! whole entry or none; the digest catches damage after that (a bad disk, a
//! truncated copy, a stray edit). The code comes first so that Wasmtime can
//! map the file itself (`deserialize_open_file`): no copy of the code, and
//! data segments are mapped copy-on-write from the file instead of being
//! copied into a fresh memfd on every start. ELF readers ignore the trailer.

use std::fs;
use std::hash::{Hash, Hasher};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::Error;

const MAGIC: &[u8; 8] = b"WRUNCW02";
const TRAILER: u64 = 32 + MAGIC.len() as u64;

/// The cache directory of one engine.
#[derive(Debug)]
pub(crate) struct Cache {
    dir: PathBuf,
}

/// An entry that passed the integrity check: an open file holding serialized
/// code and then the trailer.
pub(crate) struct Entry {
    pub(crate) file: fs::File,
}

impl Entry {
    /// The code, read into memory (for loaders that cannot map a file).
    pub(crate) fn read_code(mut self) -> std::io::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        self.file.read_to_end(&mut bytes)?;
        let code_len = bytes.len().saturating_sub(TRAILER as usize);
        bytes.truncate(code_len);
        Ok(bytes)
    }
}

impl Cache {
    pub(crate) fn new(root: &Path, engine_tag: &str) -> Cache {
        Cache {
            dir: root.join(engine_tag),
        }
    }

    fn path(&self, digest: &str) -> PathBuf {
        self.dir.join(format!("{digest}.cwasm"))
    }

    /// The entry for `digest`, if there is one and it is intact.
    ///
    /// The check reads the very file (the open descriptor, so the same inode)
    /// that is later mapped; entries are only ever replaced by rename, never
    /// written in place, so what was checked is what gets mapped.
    /// A damaged entry is removed and reported as absent: the caller then
    /// compiles again and stores a fresh one.
    pub(crate) fn load(&self, digest: &str) -> Option<Entry> {
        let mut file = fs::File::open(self.path(digest)).ok()?;
        if verify(&mut file).unwrap_or(false) {
            Some(Entry { file })
        } else {
            self.discard(digest);
            None
        }
    }

    /// Removes the entry for `digest` (best effort: a missing entry is fine).
    pub(crate) fn discard(&self, digest: &str) {
        let _ = fs::remove_file(self.path(digest));
    }

    /// Stores `code` as the entry for `digest`: temp file, fsync, rename.
    pub(crate) fn store(&self, digest: &str, code: &[u8]) -> Result<(), Error> {
        let cache_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Cache { path, source }
        };
        fs::create_dir_all(&self.dir).map_err(cache_err(&self.dir))?;
        let tmp = self.dir.join(format!(
            ".tmp-{digest}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let write = || -> std::io::Result<()> {
            let mut file = fs::File::create(&tmp)?;
            file.write_all(code)?;
            file.write_all(&Sha256::digest(code))?;
            file.write_all(MAGIC)?;
            file.sync_all()?;
            fs::rename(&tmp, self.path(digest))?;
            // Make the rename itself durable.
            fs::File::open(&self.dir)?.sync_all()
        };
        write().map_err(|source| {
            let _ = fs::remove_file(&tmp);
            Error::Cache {
                path: self.path(digest),
                source,
            }
        })
    }
}

/// Whether `file` is code followed by a trailer holding the code's SHA-256.
fn verify(file: &mut fs::File) -> std::io::Result<bool> {
    let len = file.metadata()?.len();
    let Some(code_len) = len.checked_sub(TRAILER) else {
        return Ok(false);
    };
    let mut hasher = Sha256::new();
    let copied = std::io::copy(&mut Read::by_ref(file).take(code_len), &mut hasher)?;
    let mut trailer = [0; TRAILER as usize];
    file.read_exact(&mut trailer)?;
    file.seek(SeekFrom::Start(0))?;
    Ok(copied == code_len && trailer[32..] == MAGIC[..] && trailer[..32] == hasher.finalize()[..])
}

/// Removes from `root` every engine directory not in `current`, and from the
/// current ones every entry (and leftover temporary file) whose digest
/// `keep` rejects. Returns the bytes freed.
pub(crate) fn prune(
    root: &Path,
    current: &[String],
    keep: &dyn Fn(&str) -> bool,
) -> Result<u64, Error> {
    let cache_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Cache { path, source }
    };
    let mut freed = 0;
    let engines = match fs::read_dir(root) {
        Ok(engines) => engines,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(cache_err(root)(e)),
    };
    for engine in engines {
        let engine = engine.map_err(cache_err(root))?;
        let path = engine.path();
        let is_current = current.iter().any(|tag| engine.file_name() == tag.as_str());
        if !is_current {
            freed += size_of_tree(&path);
            let removed = if path.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            removed.map_err(cache_err(&path))?;
            continue;
        }
        for entry in fs::read_dir(&path).map_err(cache_err(&path))? {
            let entry = entry.map_err(cache_err(&path))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let wanted = name
                .strip_suffix(".cwasm")
                .is_some_and(|digest| !digest.starts_with('.') && keep(digest));
            if !wanted {
                freed += entry.metadata().map(|m| m.len()).unwrap_or(0);
                fs::remove_file(entry.path()).map_err(cache_err(&entry.path()))?;
            }
        }
    }
    Ok(freed)
}

fn size_of_tree(path: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    fs::read_dir(path)
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| size_of_tree(&entry.path()))
                .sum()
        })
        .unwrap_or(0)
}

/// The hex SHA-256 of `bytes`.
pub(crate) fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The engine tag: a short hex hash of everything that makes compiled code
/// fit an engine.
pub(crate) fn engine_tag(engine: &wasmtime::Engine, fuel: bool) -> String {
    let mut hasher = Sha256Hasher(Sha256::new());
    "wrun-wasm cache v1".hash(&mut hasher);
    env!("CARGO_PKG_VERSION").hash(&mut hasher);
    fuel.hash(&mut hasher);
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hex::encode(&hasher.0.finalize()[..8])
}

/// Feeds `Hash` output into SHA-256, so the tag is stable across processes
/// (unlike `DefaultHasher`, whose algorithm is unspecified).
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        unreachable!("only the SHA-256 state is read")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_loads_and_rejects_damage() {
        let root = tempfile::tempdir().expect("tempdir");
        let cache = Cache::new(root.path(), "tag");
        assert!(cache.load("d").is_none());
        cache.store("d", b"code").expect("store");
        let mut entry = cache.load("d").expect("entry");
        let mut bytes = Vec::new();
        entry.file.read_to_end(&mut bytes).expect("read");
        assert_eq!(&bytes[..4], b"code", "the code comes first");
        assert_eq!(bytes.len() as u64, 4 + TRAILER);

        let path = root.path().join("tag/d.cwasm");
        for damage in [0, 4, bytes.len() - 1] {
            let mut damaged = bytes.clone();
            damaged[damage] ^= 1;
            fs::write(&path, &damaged).expect("write");
            assert!(cache.load("d").is_none(), "damage at {damage}");
            assert!(!path.exists(), "a damaged entry is removed");
        }
        for short in [&bytes[..bytes.len() - 1], &b"WRUN"[..], &[][..]] {
            fs::write(&path, short).expect("write");
            assert!(cache.load("d").is_none());
        }
    }

    #[test]
    fn prune_keeps_current_wanted_entries_only() {
        let root = tempfile::tempdir().expect("tempdir");
        let cache = Cache::new(root.path(), "now");
        cache.store("keep", b"1").expect("store");
        cache.store("drop", b"22").expect("store");
        Cache::new(root.path(), "old")
            .store("keep", b"333")
            .expect("store");
        fs::write(root.path().join("now/.tmp-x-1-2"), b"4444").expect("write");

        let freed = prune(root.path(), &["now".to_string()], &|d| d == "keep").expect("prune");
        assert_eq!(freed, (TRAILER + 2) + (TRAILER + 3) + 4);
        assert!(cache.load("keep").is_some());
        assert!(cache.load("drop").is_none());
        assert!(!root.path().join("old").exists());
    }
}
