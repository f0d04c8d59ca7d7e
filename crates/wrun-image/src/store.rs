//! The content store: verified blobs, unpacked layers and image records under
//! one root directory, shared safely by concurrent `wrun` processes.
//!
//! Layout (all below the root):
//!
//! ```text
//! blobs/sha256/<hex>     verified blobs: manifests, configs, layers, Wasm modules
//! layers/sha256/<hex>/   one read-only directory per unpacked layer, named by diff-id
//! images/<hex>.json      one record per image, named by manifest digest
//! refs.json              name -> manifest digest
//! tmp/                   work in progress; never visible under the names above
//!                        (`<kind>-<owner>-…`, the owner a process; see [`crate::owner`])
//! locks/                 flock(2) files
//! cache/                 derived data (compiled Wasm), safe to delete
//! ```
//!
//! Every write is temp-file + fsync + rename, so a process killed at any
//! point leaves nothing half-visible. What a dead process left in `tmp/` is
//! removed by the next pull ([`Store::discard_leftovers`]), except its
//! partial layer blobs (`partial-<owner>-<n>-<alg>-<hex>`), which the next
//! pull of the same blob resumes ([`Store::resume_blob_writer`]);
//! [`Store::prune`] removes all of it. Work of a process that still runs is
//! never touched. Pulls hold the store lock shared and each blob's lock
//! exclusively while fetching it, so two pulls of one image download each blob
//! once; removal and pruning hold the store lock exclusively.

use crate::digest::{Digest, Hasher};
use crate::owner::Owner;
use crate::{Error, ImageRecord};
use cap_std::ambient_authority;
use cap_std::fs::{Dir, OpenOptions};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::{self, Read, Seek, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

const REFS: &str = "refs.json";

/// A store rooted at one directory.
///
/// Cloning is cheap: clones share one directory handle.
#[derive(Debug, Clone)]
pub struct Store {
    root: Arc<PathBuf>,
    dir: Arc<Dir>,
}

/// A held lock; released on drop.
#[derive(Debug)]
pub struct Lock {
    _file: cap_std::fs::File,
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Store {
    /// Opens (creating if needed) the store at `root`.
    ///
    /// # Ambient Authority
    /// This is the one place the store opens a host path by name; everything
    /// after goes through the returned store's directory handle.
    pub fn open(root: impl AsRef<Path>) -> Result<Store, Error> {
        let root = root.as_ref();
        std::fs::create_dir_all(root).map_err(Error::io("create store", root))?;
        let root = root.canonicalize().map_err(Error::io("open store", root))?;
        let dir = Dir::open_ambient_dir(&root, ambient_authority())
            .map_err(Error::io("open store", &root))?;
        for sub in [
            "blobs/sha256",
            "blobs/sha512",
            "layers/sha256",
            "layers/sha512",
            "images",
            "tmp",
            "locks",
            "cache",
        ] {
            dir.create_dir_all(sub)
                .map_err(Error::io("create store directory", root.join(sub)))?;
        }
        Ok(Store {
            root: Arc::new(root),
            dir: Arc::new(dir),
        })
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A directory for derived data such as compiled code (`cache/<name>`), created if needed.
    pub fn cache_dir(&self, name: &str) -> Result<PathBuf, Error> {
        let rel = format!("cache/{name}");
        self.dir
            .create_dir_all(&rel)
            .map_err(Error::io("create cache directory", self.root.join(&rel)))?;
        Ok(self.root.join(rel))
    }

    fn blob_rel(digest: &Digest) -> String {
        format!("blobs/{}/{}", digest.algorithm_name(), digest.hex())
    }

    fn layer_rel(diff_id: &Digest) -> String {
        format!("layers/{}/{}", diff_id.algorithm_name(), diff_id.hex())
    }

    /// The host path of a blob (which may not exist).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join(Self::blob_rel(digest))
    }

    /// The host path of an unpacked layer directory (which may not exist).
    pub fn layer_path(&self, diff_id: &Digest) -> PathBuf {
        self.root.join(Self::layer_rel(diff_id))
    }

    /// An unpacked layer directory, opened through the store's capability.
    pub fn open_layer(&self, diff_id: &Digest) -> Result<Dir, Error> {
        let rel = Self::layer_rel(diff_id);
        self.dir
            .open_dir(&rel)
            .map_err(Error::io("open layer", self.root.join(rel)))
    }

    /// The unpacked directories of an image's tar layers, bottom first (a
    /// Wasm module layer, which has no diff-id, has none).
    pub fn layer_paths(&self, record: &ImageRecord) -> Vec<PathBuf> {
        record
            .layers
            .iter()
            .filter_map(|l| l.diff_id.as_ref())
            .map(|d| self.layer_path(d))
            .collect()
    }

    /// Whether the blob is in the store.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.dir.exists(Self::blob_rel(digest))
    }

    /// Whether the layer is unpacked in the store.
    pub fn has_layer(&self, diff_id: &Digest) -> bool {
        self.dir.exists(Self::layer_rel(diff_id))
    }

    /// Reads a whole blob, verifying it against its digest (for small blobs:
    /// manifests, configs, modules).
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>, Error> {
        let rel = Self::blob_rel(digest);
        let bytes = self
            .dir
            .read(&rel)
            .map_err(Error::io("read blob", self.root.join(&rel)))?;
        let actual = {
            let mut h = digest.hasher();
            h.update(&bytes);
            h.finish()
        };
        if actual != *digest {
            return Err(Error::DigestMismatch {
                what: format!("stored blob {digest}"),
                expected: digest.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(bytes)
    }

    /// Opens a blob for streaming reads (not re-verified).
    pub fn open_blob(&self, digest: &Digest) -> Result<cap_std::fs::File, Error> {
        let rel = Self::blob_rel(digest);
        self.dir
            .open(&rel)
            .map_err(Error::io("open blob", self.root.join(&rel)))
    }

    /// Writes a small blob whose bytes are all in memory, verifying them first.
    pub fn put_blob(&self, digest: &Digest, bytes: &[u8]) -> Result<(), Error> {
        if self.has_blob(digest) {
            return Ok(());
        }
        let mut w =
            self.blob_writer(digest.clone(), Some(bytes.len() as u64), digest.to_string())?;
        w.write_all(bytes)
            .map_err(Error::io("write blob", self.blob_path(digest)))?;
        w.commit()
    }

    /// A writer that streams a blob into `tmp/` and, on [`BlobWriter::commit`],
    /// verifies size and digest before making it visible.
    pub fn blob_writer(
        &self,
        expected: Digest,
        size: Option<u64>,
        what: String,
    ) -> Result<BlobWriter, Error> {
        let tmp = self.tmp_name("blob");
        let file = self
            .dir
            .open_with(&tmp, OpenOptions::new().write(true).create_new(true))
            .map_err(Error::io("create", self.root.join(&tmp)))?;
        Ok(BlobWriter {
            store: self.clone(),
            hasher: expected.hasher(),
            expected,
            size,
            what,
            written: 0,
            kept: 0,
            file: Some(io::BufWriter::with_capacity(1 << 20, file)),
            tmp,
        })
    }

    /// [`Store::blob_writer`] for a layer blob that may have been partly
    /// fetched by a process that is gone: its partial file, if one is in
    /// `tmp/`, is taken over, its bytes hashed, and writing goes on at its
    /// end ([`BlobWriter::kept`] says where; the caller fetches the rest).
    /// The partial file of a writer dropped uncommitted is removed, as any
    /// writer's is; a partial file is left behind only by a process that
    /// died, for the next one to resume.
    ///
    /// Must be called with the blob's lock ([`Store::lock_blob`]) held: then
    /// no running process writes that blob. Blocks while it hashes.
    pub fn resume_blob_writer(
        &self,
        expected: Digest,
        size: u64,
        what: String,
    ) -> Result<BlobWriter, Error> {
        let suffix = format!("-{}-{}", expected.algorithm_name(), expected.hex());
        let mut leftovers = Vec::new();
        for entry in self
            .dir
            .read_dir("tmp")
            .map_err(Error::io("list", self.root.join("tmp")))?
        {
            let entry = entry.map_err(Error::io("list", self.root.join("tmp")))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("partial-") && name.ends_with(&suffix) && !owner_alive(&name) {
                let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
                leftovers.push((len, name));
            }
        }
        // The longest partial file that is not too long is the one to go on
        // from; any other is of no use.
        leftovers.sort();
        let chosen = leftovers
            .iter()
            .rev()
            .find(|(len, _)| *len <= size)
            .map(|(_, name)| name.clone());
        for (_, name) in &leftovers {
            if Some(name) != chosen.as_ref() {
                let _ = self.dir.remove_file(format!("tmp/{name}"));
            }
        }
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = format!("tmp/partial-{}-{n}{suffix}", Owner::current());
        let path = self.root.join(&tmp);
        let claimed = chosen.is_some_and(|name| {
            self.dir
                .rename(format!("tmp/{name}"), &self.dir, &tmp)
                .is_ok()
        });
        let mut file = self
            .dir
            .open_with(
                &tmp,
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(!claimed),
            )
            .map_err(Error::io("create", &path))?;
        let mut hasher = expected.hasher();
        let mut kept = 0u64;
        if claimed {
            // Hash the kept prefix first: the digest check at commit covers
            // every byte, those of the dead process as much as ours.
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = file.read(&mut buf).map_err(Error::io("read", &path))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                kept += n as u64;
            }
        }
        file.seek(io::SeekFrom::Start(kept))
            .map_err(Error::io("seek", &path))?;
        Ok(BlobWriter {
            store: self.clone(),
            hasher,
            expected,
            size: Some(size),
            what,
            written: kept,
            kept,
            file: Some(io::BufWriter::with_capacity(1 << 20, file)),
            tmp,
        })
    }

    /// Removes what processes that are gone left in `tmp/`, but for partial
    /// blobs, which a pull resumes (see [`Store::resume_blob_writer`]); best
    /// effort. What every pull does first. The store lock need not be held:
    /// only work of dead processes is touched, and nobody else takes it over.
    pub fn discard_leftovers(&self) {
        let _ = self.sweep("tmp", |name| {
            !name.starts_with("partial-") && !owner_alive(name)
        });
    }

    /// A fresh, empty directory in `tmp/` (to unpack a layer into, then
    /// [`Store::commit_layer`]); removed on drop unless committed.
    pub fn temp_dir(&self) -> Result<TempDir, Error> {
        let rel = self.tmp_name("layer");
        self.dir
            .create_dir(&rel)
            .map_err(Error::io("create", self.root.join(&rel)))?;
        let dir = self
            .dir
            .open_dir(&rel)
            .map_err(Error::io("open", self.root.join(&rel)))?;
        Ok(TempDir {
            store: self.clone(),
            rel: Some(rel),
            dir,
        })
    }

    /// Makes an unpacked layer visible under its diff-id.
    ///
    /// The file system is synced first (one `syncfs`, not an fsync per file),
    /// so a crash after the rename never exposes a layer with missing data.
    pub fn commit_layer(&self, mut layer: TempDir, diff_id: &Digest) -> Result<(), Error> {
        let rel = layer.rel.take().unwrap_or_default();
        let dest = Self::layer_rel(diff_id);
        let handle = self
            .dir
            .open(&rel)
            .map_err(Error::io("open", self.root.join(&rel)))?;
        rustix::fs::syncfs(handle.as_fd())
            .map_err(|e| Error::io("sync", self.root.join(&rel))(e.into()))?;
        if self.dir.exists(&dest) {
            // Someone else committed the same layer; theirs is as good as ours.
            let _ = self.dir.remove_dir_all(&rel);
            return Ok(());
        }
        self.dir
            .rename(&rel, &self.dir, &dest)
            .map_err(Error::io("commit layer", self.root.join(&dest)))?;
        self.sync_dir(&format!("layers/{}", diff_id.algorithm_name()))
    }

    fn sync_dir(&self, rel: &str) -> Result<(), Error> {
        // A directory handle from `open_dir` may be `O_PATH`, which cannot be
        // synced: open it for reading instead.
        let d = self
            .dir
            .open(rel)
            .map_err(Error::io("open", self.root.join(rel)))?;
        d.sync_all().map_err(Error::io("sync", self.root.join(rel)))
    }

    fn tmp_name(&self, kind: &str) -> String {
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        format!("tmp/{kind}-{}-{n}-{nanos:08x}", Owner::current())
    }

    fn lock_file(&self, name: &str, exclusive: bool) -> Result<Lock, Error> {
        let rel = format!("locks/{name}.lock");
        let file = self
            .dir
            .open_with(&rel, OpenOptions::new().write(true).create(true))
            .map_err(Error::io("open lock", self.root.join(&rel)))?;
        let op = if exclusive {
            rustix::fs::FlockOperation::LockExclusive
        } else {
            rustix::fs::FlockOperation::LockShared
        };
        rustix::fs::flock(&file, op)
            .map_err(|e| Error::io("lock", self.root.join(&rel))(e.into()))?;
        Ok(Lock { _file: file })
    }

    /// Holds the store shared: pulls and runs. Blocks while a removal or prune runs.
    pub fn lock_shared(&self) -> Result<Lock, Error> {
        self.lock_file("store", false)
    }

    /// Holds the store exclusively: removal and pruning.
    pub fn lock_exclusive(&self) -> Result<Lock, Error> {
        self.lock_file("store", true)
    }

    /// Holds one blob's download lock.
    pub fn lock_blob(&self, digest: &Digest) -> Result<Lock, Error> {
        self.lock_file(
            &format!("blob-{}-{}", digest.algorithm_name(), digest.hex()),
            true,
        )
    }

    // ---- image records and names ----

    fn read_refs(&self) -> Result<BTreeMap<String, Digest>, Error> {
        match self.dir.read(REFS) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| Error::Malformed {
                what: format!("{}", self.root.join(REFS).display()),
                source,
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(Error::io("read", self.root.join(REFS))(e)),
        }
    }

    fn write_atomic(&self, rel: &str, bytes: &[u8]) -> Result<(), Error> {
        let tmp = self.tmp_name("meta");
        let path = self.root.join(rel);
        let mut f = self
            .dir
            .open_with(&tmp, OpenOptions::new().write(true).create_new(true))
            .map_err(Error::io("create", self.root.join(&tmp)))?;
        f.write_all(bytes).map_err(Error::io("write", &path))?;
        f.sync_all().map_err(Error::io("sync", &path))?;
        self.dir
            .rename(&tmp, &self.dir, rel)
            .map_err(Error::io("rename", &path))?;
        Ok(())
    }

    fn write_refs(&self, refs: &BTreeMap<String, Digest>) -> Result<(), Error> {
        let bytes = serde_json::to_vec_pretty(refs).map_err(|source| Error::Malformed {
            what: REFS.into(),
            source,
        })?;
        self.write_atomic(REFS, &bytes)
    }

    /// Records an image and points `names` at it. The image's blobs must
    /// already be in the store.
    pub fn put_image(&self, record: &ImageRecord, names: &[String]) -> Result<(), Error> {
        let rel = format!("images/{}.json", record.digest.hex());
        let bytes = serde_json::to_vec_pretty(record).map_err(|source| Error::Malformed {
            what: rel.clone(),
            source,
        })?;
        self.write_atomic(&rel, &bytes)?;
        let _refs_lock = self.lock_file("refs", true)?;
        let mut refs = self.read_refs()?;
        for name in names {
            refs.insert(name.clone(), record.digest.clone());
        }
        self.write_refs(&refs)
    }

    /// The record of the image with this manifest digest.
    pub fn image(&self, digest: &Digest) -> Result<ImageRecord, Error> {
        let rel = format!("images/{}.json", digest.hex());
        let bytes = self.dir.read(&rel).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                Error::ImageNotFound {
                    reference: digest.to_string(),
                }
            } else {
                Error::io("read", self.root.join(&rel))(e)
            }
        })?;
        serde_json::from_slice(&bytes).map_err(|source| Error::Malformed {
            what: format!("{}", self.root.join(&rel).display()),
            source,
        })
    }

    /// Every image with the names that point at it, sorted by name.
    pub fn images(&self) -> Result<Vec<(ImageRecord, Vec<String>)>, Error> {
        let refs = self.read_refs()?;
        let mut by_digest: BTreeMap<Digest, Vec<String>> = BTreeMap::new();
        for (name, digest) in refs {
            by_digest.entry(digest).or_default().push(name);
        }
        for entry in self
            .dir
            .read_dir("images")
            .map_err(Error::io("list", self.root.join("images")))?
        {
            let entry = entry.map_err(Error::io("list", self.root.join("images")))?;
            let name = entry.file_name();
            let Some(hex) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            if let Ok(d) = format!("sha256:{hex}").parse::<Digest>() {
                by_digest.entry(d).or_default();
            }
        }
        let mut out = Vec::new();
        for (digest, names) in by_digest {
            match self.image(&digest) {
                Ok(record) => out.push((record, names)),
                Err(Error::ImageNotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        out.sort_by(|a, b| a.1.first().cmp(&b.1.first()));
        Ok(out)
    }

    /// Finds a stored image by name (`busybox`, `host:5000/repo:tag`), by
    /// `name@digest`, by manifest digest, or by a unique prefix of its id.
    pub fn resolve(&self, name: &str) -> Result<(ImageRecord, Option<String>), Error> {
        let refs = self.read_refs()?;
        if let Some(d) = refs.get(name) {
            return Ok((self.image(d)?, Some(name.to_string())));
        }
        if let Ok(r) = crate::reference::normalize(name) {
            if let Some(d) = refs.get(&r) {
                return Ok((self.image(d)?, Some(r)));
            }
            if let Some((_, digest)) = r.split_once('@') {
                let d: Digest = digest.parse()?;
                return Ok((self.image(&d)?, None));
            }
        }
        if let Ok(d) = name.parse::<Digest>() {
            return Ok((self.image(&d)?, None));
        }
        // A unique prefix of the image id (manifest digest hex), as docker accepts.
        let prefix = name.strip_prefix("sha256:").unwrap_or(name);
        if prefix.len() >= 4 && prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
            let matches: BTreeSet<Digest> = self
                .images()?
                .into_iter()
                .map(|(r, _)| r.digest)
                .filter(|d| d.hex().starts_with(prefix))
                .collect();
            match matches.len() {
                1 => {
                    if let Some(d) = matches.into_iter().next() {
                        return Ok((self.image(&d)?, None));
                    }
                }
                0 => {}
                _ => {
                    return Err(Error::Ambiguous {
                        reference: name.to_string(),
                        matches: matches
                            .iter()
                            .map(|d| d.short().to_string())
                            .collect::<Vec<_>>()
                            .join(", "),
                    });
                }
            }
        }
        Err(Error::ImageNotFound {
            reference: name.to_string(),
        })
    }

    /// Removes a name (or, given an id or digest, the image and all its
    /// names), then deletes whatever no image references any more. Returns
    /// the names removed.
    pub fn remove(&self, name: &str) -> Result<Vec<String>, Error> {
        let _lock = self.lock_exclusive()?;
        let (record, matched_name) = self.resolve(name)?;
        let _refs_lock = self.lock_file("refs", true)?;
        let mut refs = self.read_refs()?;
        let mut removed = Vec::new();
        match matched_name {
            Some(n) => {
                refs.remove(&n);
                removed.push(n);
            }
            None => refs.retain(|n, d| {
                let keep = *d != record.digest;
                if !keep {
                    removed.push(n.clone());
                }
                keep
            }),
        }
        if !refs.values().any(|d| *d == record.digest) {
            let rel = format!("images/{}.json", record.digest.hex());
            self.dir
                .remove_file(&rel)
                .map_err(Error::io("remove", self.root.join(&rel)))?;
            if removed.is_empty() {
                removed.push(record.digest.to_string());
            }
        }
        self.write_refs(&refs)?;
        self.collect_garbage()?;
        Ok(removed)
    }

    /// Deletes blobs and unpacked layers that no image references, and
    /// leftovers in `tmp/` of processes that are gone (interrupted pulls),
    /// and reports what went, with the bytes of every file removed.
    pub fn prune(&self) -> Result<PruneReport, Error> {
        let _lock = self.lock_exclusive()?;
        self.collect_garbage()
    }

    /// Removes each entry of the directory `rel` whose name `doomed` picks
    /// (a directory with all it holds). Returns how many went and the
    /// bytes they held: the sizes of the files among them and in them,
    /// counted before removal, each file once however many links it has.
    fn sweep(&self, rel: &str, doomed: impl Fn(&str) -> bool) -> Result<(u64, u64), Error> {
        let (mut count, mut bytes) = (0, 0);
        let mut seen = HashSet::new();
        for entry in self
            .dir
            .read_dir(rel)
            .map_err(Error::io("list", self.root.join(rel)))?
        {
            let entry = entry.map_err(Error::io("list", self.root.join(rel)))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !doomed(&name) {
                continue;
            }
            let path = format!("{rel}/{name}");
            let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
            let res = if is_dir {
                if let Ok(d) = self.dir.open_dir(&path) {
                    bytes += tree_bytes(&d, &mut seen);
                }
                self.dir.remove_dir_all(&path)
            } else {
                if let Ok(m) = entry.metadata() {
                    bytes += file_bytes(&m, &mut seen);
                }
                self.dir.remove_file(&path)
            };
            match res {
                Ok(()) => count += 1,
                // Gone already: another sweeper of dead leftovers was first.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("remove", self.root.join(&path))(e)),
            }
        }
        Ok((count, bytes))
    }

    /// Must be called with the store lock held exclusively.
    fn collect_garbage(&self) -> Result<PruneReport, Error> {
        let mut blobs = BTreeSet::new();
        let mut layers = BTreeSet::new();
        for (record, _) in self.images()? {
            blobs.insert(record.digest.clone());
            blobs.insert(record.config.digest.clone());
            for l in &record.layers {
                blobs.insert(l.digest.clone());
                if let Some(d) = &l.diff_id {
                    layers.insert(d.clone());
                }
            }
        }
        let mut report = PruneReport::default();
        for alg in ["sha256", "sha512"] {
            let unreferenced = |set: &BTreeSet<Digest>, name: &str| {
                !format!("{alg}:{name}")
                    .parse::<Digest>()
                    .is_ok_and(|d| set.contains(&d))
            };
            let (n, bytes) =
                self.sweep(&format!("blobs/{alg}"), |name| unreferenced(&blobs, name))?;
            report.blobs += n;
            report.bytes += bytes;
            let (n, bytes) =
                self.sweep(&format!("layers/{alg}"), |name| unreferenced(&layers, name))?;
            report.layers += n;
            report.bytes += bytes;
        }
        // Per-blob lock files: no pull holds one while the store is held
        // exclusively, so they can go (a later pull creates its own again).
        self.sweep("locks", |name| name.starts_with("blob-"))?;
        // A process that runs may have work in `tmp/` outside the store
        // lock (an archive being read before its import starts): only what
        // dead processes left goes.
        let (n, bytes) = self.sweep("tmp", |name| !owner_alive(name))?;
        report.temporary = n;
        report.bytes += bytes;
        Ok(report)
    }
}

/// What [`Store::prune`] removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PruneReport {
    /// Blobs deleted.
    pub blobs: u64,
    /// Unpacked layer directories deleted.
    pub layers: u64,
    /// Leftovers of interrupted work deleted.
    pub temporary: u64,
    /// Bytes freed: the sizes of the files removed (blobs, unpacked
    /// layers, leftovers), counted before removal, each file once.
    pub bytes: u64,
}

/// Whether the work in `tmp/` named `name` (`<kind>-<owner>-…`) belongs to
/// a process that still runs. A name that names no owner is no process's.
fn owner_alive(name: &str) -> bool {
    name.split('-')
        .nth(1)
        .and_then(Owner::parse)
        .is_some_and(|o| o.is_alive())
}

/// The size of a file not yet counted (see [`Store::sweep`]).
fn file_bytes(meta: &cap_std::fs::Metadata, seen: &mut HashSet<(u64, u64)>) -> u64 {
    use cap_fs_ext::MetadataExt;
    if meta.is_dir() || !seen.insert((meta.dev(), meta.ino())) {
        return 0;
    }
    meta.len()
}

/// The sizes of the files in a tree not yet counted; what cannot be read
/// counts nothing.
fn tree_bytes(dir: &Dir, seen: &mut HashSet<(u64, u64)>) -> u64 {
    let Ok(entries) = dir.entries() else {
        return 0;
    };
    let mut bytes = 0;
    for entry in entries.flatten() {
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if is_dir {
            if let Ok(sub) = entry.open_dir() {
                bytes += tree_bytes(&sub, seen);
            }
        } else if let Ok(m) = entry.metadata() {
            bytes += file_bytes(&m, seen);
        }
    }
    bytes
}

/// A blob being written; see [`Store::blob_writer`]. Dropped without
/// [`commit`](BlobWriter::commit), it deletes its temporary file.
pub struct BlobWriter {
    store: Store,
    expected: Digest,
    size: Option<u64>,
    what: String,
    hasher: Hasher,
    written: u64,
    kept: u64,
    file: Option<io::BufWriter<cap_std::fs::File>>,
    tmp: String,
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("blob writer already committed"))?;
        let n = file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        if let Some(size) = self.size
            && self.written > size
        {
            return Err(io::Error::other(format!(
                "{} is larger than its descriptor's {size} bytes",
                self.what
            )));
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.file.as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

impl BlobWriter {
    /// Bytes written so far (with those [`kept`](BlobWriter::kept)).
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Bytes taken over from a dead process's partial file (see
    /// [`Store::resume_blob_writer`]): the blob's first bytes, already
    /// hashed; what is written goes after them.
    pub fn kept(&self) -> u64 {
        self.kept
    }

    /// Reads the [`kept`](BlobWriter::kept) bytes again from the start (to
    /// unpack them); `None` when nothing was kept.
    pub fn read_kept(&self) -> Result<Option<io::Take<cap_std::fs::File>>, Error> {
        if self.kept == 0 {
            return Ok(None);
        }
        let f = self
            .store
            .dir
            .open(&self.tmp)
            .map_err(Error::io("open", self.store.root.join(&self.tmp)))?;
        Ok(Some(f.take(self.kept)))
    }

    /// Verifies size and digest, syncs, and moves the blob into place.
    pub fn commit(mut self) -> Result<(), Error> {
        let dest = Store::blob_rel(&self.expected);
        let path = self.store.root.join(&dest);
        let file = self.file.take().ok_or_else(|| Error::Io {
            action: "commit",
            path: path.clone(),
            source: io::Error::other("blob writer already committed"),
        })?;
        let file = file
            .into_inner()
            .map_err(|e| Error::io("write", &path)(e.into_error()))?;
        if let Some(size) = self.size
            && self.written != size
        {
            return Err(Error::SizeMismatch {
                what: self.what.clone(),
                expected: size,
                actual: self.written,
            });
        }
        let hasher = std::mem::replace(&mut self.hasher, Hasher::new(self.expected.algorithm()));
        let actual = hasher.finish();
        if actual != self.expected {
            return Err(Error::DigestMismatch {
                what: self.what.clone(),
                expected: self.expected.to_string(),
                actual: actual.to_string(),
            });
        }
        file.sync_all().map_err(Error::io("sync", &path))?;
        drop(file);
        self.store
            .dir
            .rename(&self.tmp, &self.store.dir, &dest)
            .map_err(Error::io("commit blob", &path))?;
        self.tmp.clear();
        self.store
            .sync_dir(&format!("blobs/{}", self.expected.algorithm_name()))
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if !self.tmp.is_empty() {
            let _ = self.store.dir.remove_file(&self.tmp);
        }
    }
}

/// A directory in `tmp/`, removed on drop unless committed.
pub struct TempDir {
    store: Store,
    rel: Option<String>,
    dir: Dir,
}

impl TempDir {
    /// The directory handle to write through.
    pub fn dir(&self) -> &Dir {
        &self.dir
    }

    /// The directory's host path.
    pub fn path(&self) -> PathBuf {
        self.store
            .root
            .join(self.rel.as_deref().unwrap_or_default())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Some(rel) = self.rel.take() {
            let _ = self.store.dir.remove_dir_all(&rel);
        }
    }
}

/// Reads a blob through a hasher and checks it at the end: for callers that
/// stream a stored blob and must not trust it blindly.
pub(crate) struct VerifyingReader<R> {
    inner: R,
    hasher: Option<Hasher>,
    expected: Digest,
}

impl<R: Read> VerifyingReader<R> {
    #[allow(dead_code)]
    pub(crate) fn new(inner: R, expected: Digest) -> Self {
        VerifyingReader {
            hasher: Some(expected.hasher()),
            inner,
            expected,
        }
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 {
            if let Some(h) = self.hasher.take() {
                let actual = h.finish();
                if actual != self.expected {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("digest mismatch: expected {}, got {actual}", self.expected),
                    ));
                }
            }
        } else if let Some(h) = self.hasher.as_mut() {
            h.update(&buf[..n]);
        }
        Ok(n)
    }
}
