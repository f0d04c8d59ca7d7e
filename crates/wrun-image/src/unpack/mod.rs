//! Safe, fast unpacking of one image layer into a directory.
//!
//! [`unpack_layer`] turns a (possibly compressed) tar stream into a directory tree that can serve
//! as an overlayfs lower directory: whiteouts become overlayfs whiteouts (a `0:0` character
//! device) and opaque markers become the `trusted.overlay.opaque` xattr.
//!
//! # Safety model
//!
//! A layer is hostile input. The unpacker guarantees that nothing is created, changed or removed
//! outside the destination directory, whatever the archive contains:
//!
//! - Every operation happens through the [`cap_std::fs::Dir`] the caller passed in. Entry paths
//!   are split into plain components up front: an entry path that is absolute or contains `..`
//!   is rejected, as is a hard link target of that shape.
//! - The parent of every entry is reached one component at a time with
//!   [`open_dir_nofollow`](cap_fs_ext::DirExt::open_dir_nofollow), so an intermediate component
//!   that is a symlink (`x -> /etc`, then `x/passwd`) is an error naming the entry; no symlink is
//!   ever followed, not even one that would stay inside the layer.
//! - The final component is then created relative to that parent's descriptor (`O_EXCL`,
//!   `mkdirat`, `symlinkat`, `linkat` without `AT_SYMLINK_FOLLOW`, `mknodat`); an existing entry
//!   of that name is removed first, never opened. The calls cap-std lacks are rustix calls either
//!   on a parent descriptor opened through cap-std plus that single final component (`mknodat`,
//!   `fchownat`/`utimensat` with `AT_SYMLINK_NOFOLLOW`, and `fchmodat` right after `mknodat` for
//!   device nodes, which must never be opened), or on a descriptor of the object itself
//!   (`fchown`, `fchmod`, `futimens`, `fsetxattr`; for a directory that descriptor is `.`
//!   reopened relative to cap-std's `O_PATH` handle). No path resolution happens outside cap-std.
//! - A hard link's target is checked like an entry path and reached the same way; it must
//!   already exist in this layer.
//! - Symlink entries may have any target text, absolute ones included (`bin/sh -> /bin/busybox`
//!   is normal in images): they are created, never followed, and are interpreted later inside
//!   the container's root.
//! - Device nodes, FIFOs, whiteouts and opaque markers need root ([`UnpackOptions::privileged`]);
//!   without it they are errors rather than silently dropped entries.
//!
//! # Ambient Authority
//!
//! This module has none: it opens no path by name and only ever acts beneath the `Dir` it is
//! given. It reads, but never changes, the effective uid (to choose the default of
//! [`UnpackOptions`]), and never touches the umask or the working directory: modes are set
//! explicitly with `fchmod` after creation instead.
//!
//! # Speed
//!
//! Decompression and extraction run as a two-thread pipeline: one thread reads and decompresses
//! the stream into owned 256 KiB chunks and hands them over a bounded channel; the calling thread
//! hashes them (the diff ID) and parses and extracts the tar. Nothing is fsynced: the caller makes
//! the finished directory durable (or deletes it) as a whole.

mod extract;
pub(crate) use extract::reopen;
#[cfg(test)]
mod tests;

use std::cell::Cell;
use std::fmt;
use std::io::{self, BufReader, Read};
use std::path::PathBuf;
use std::sync::mpsc;

use cap_std::fs::Dir;
use sha2::{Digest, Sha256};

/// Size of the chunks the decompressor hands to the extractor.
const CHUNK: usize = 256 * 1024;
/// Number of chunks in flight between the two threads (bounds memory to about 1 MiB).
const IN_FLIGHT: usize = 4;

/// The compression of a layer's tar stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Compression {
    /// A plain tar stream.
    None,
    /// A gzip-compressed tar stream (one or more concatenated gzip members).
    Gzip,
    /// A zstd-compressed tar stream (one or more frames).
    Zstd,
}

impl Compression {
    /// Chooses the compression from an OCI or Docker layer media type.
    ///
    /// Accepted: `application/vnd.oci.image.layer.v1.tar`, `…tar+gzip`, `…tar+zstd`, the same
    /// three with `nondistributable.v1`, and Docker's
    /// `application/vnd.docker.image.rootfs.diff.tar`, `…diff.tar.gzip` and
    /// `…foreign.diff.tar.gzip`. Any other media type is [`UnpackError::UnsupportedMediaType`].
    pub fn from_media_type(media_type: &str) -> Result<Self, UnpackError> {
        match media_type {
            "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | "application/vnd.docker.image.rootfs.diff.tar" => Ok(Self::None),
            "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Ok(Self::Gzip),
            "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => Ok(Self::Zstd),
            other => Err(UnpackError::UnsupportedMediaType {
                media_type: other.to_owned(),
            }),
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::None => "uncompressed",
            Self::Gzip => "gzip",
            Self::Zstd => "zstd",
        })
    }
}

/// How [`unpack_layer`] may treat ownership and special files.
///
/// The default ([`UnpackOptions::new`]) is privileged exactly when the process's effective uid is
/// 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnpackOptions {
    privileged: bool,
}

impl UnpackOptions {
    /// Options for the current process: privileged if and only if the effective uid is 0.
    pub fn new() -> Self {
        Self {
            privileged: rustix::process::geteuid().is_root(),
        }
    }

    /// Sets whether the unpacker may act as root.
    ///
    /// Privileged, it sets owners (`lchown` semantics for symlinks), extended attributes from PAX
    /// `SCHILY.xattr.*` records (for instance `security.capability`), creates device nodes and
    /// FIFOs, and converts whiteouts to overlayfs format.
    ///
    /// Unprivileged, entries are owned by the current user, xattrs are not applied, and device
    /// nodes, FIFOs, whiteouts and opaque markers are errors: rootless layer handling (for
    /// instance whiteouts as `user.overlay.*` xattrs for userxattr mounts) is future work.
    pub fn privileged(&mut self, privileged: bool) -> &mut Self {
        self.privileged = privileged;
        self
    }

    /// Whether the unpacker may act as root; see [`UnpackOptions::privileged`].
    pub fn is_privileged(&self) -> bool {
        self.privileged
    }
}

impl Default for UnpackOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// What [`unpack_layer`] found in a layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unpacked {
    /// `sha256:<hex>` of the whole uncompressed tar stream, as listed in the image config's
    /// `rootfs.diff_ids`.
    pub diff_id: String,
    /// Length of the uncompressed tar stream in bytes.
    pub size: u64,
    /// Number of tar entries, whiteouts included; extension headers (PAX records, global PAX
    /// headers, GNU long names) are not counted.
    pub entries: u64,
}

/// Why a layer could not be unpacked.
///
/// Entry paths are reported as they appear in the archive.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UnpackError {
    /// The layer media type is not a tar layer this module knows.
    #[error("unsupported layer media type {media_type:?}")]
    UnsupportedMediaType {
        /// The media type as given.
        media_type: String,
    },
    /// Reading the layer stream or decompressing it failed (for instance a corrupt gzip stream).
    #[error("cannot read the {compression} layer stream")]
    Decompress {
        /// The compression being decoded.
        compression: Compression,
        /// The read or decode error.
        #[source]
        source: io::Error,
    },
    /// The tar stream is malformed (bad header checksum, bad number field …).
    #[error("malformed tar stream")]
    Tar {
        /// The parse error.
        #[source]
        source: io::Error,
    },
    /// The tar stream ended before its end-of-archive marker.
    #[error("tar stream is truncated (no end-of-archive marker)")]
    Truncated,
    /// The tar stream ended, or failed, in the middle of an entry's contents.
    #[error("entry {path:?}: contents are truncated or unreadable")]
    TruncatedEntry {
        /// The entry being read.
        path: PathBuf,
        /// The read error (an unexpected end of file when the stream just stops).
        #[source]
        source: io::Error,
    },
    /// An entry path is absolute or contains `..`.
    #[error("entry {path:?}: path is absolute or contains `..`")]
    UnsafePath {
        /// The entry path.
        path: PathBuf,
    },
    /// A hard link's target is absolute or contains `..`.
    #[error("entry {path:?}: hard link target {target:?} is absolute or contains `..`")]
    UnsafeLinkTarget {
        /// The hard link entry.
        path: PathBuf,
        /// Its target as written in the archive.
        target: PathBuf,
    },
    /// A hard link's target is not an entry of this layer (or is only reachable through a
    /// symlink).
    #[error("entry {path:?}: hard link target {target:?} does not exist in this layer")]
    MissingLinkTarget {
        /// The hard link entry.
        path: PathBuf,
        /// Its target as written in the archive.
        target: PathBuf,
    },
    /// An entry would be written through a symlink (or a non-directory) in its own path, as in
    /// `x -> /etc` followed by `x/passwd`.
    #[error(
        "entry {path:?}: {component:?} is a symlink or not a directory; refusing to write through it"
    )]
    ThroughSymlink {
        /// The entry path.
        path: PathBuf,
        /// The leading part of the path that is not a real directory.
        component: PathBuf,
    },
    /// An entry needs privileges the unpacker was not given (see [`UnpackOptions::privileged`]).
    #[error("entry {path:?}: a {what} needs root to unpack")]
    NeedsPrivilege {
        /// The entry path.
        path: PathBuf,
        /// What the entry is: `character device`, `block device`, `fifo`, `whiteout` or
        /// `opaque whiteout`.
        what: &'static str,
    },
    /// The entry's tar type is not one a layer may contain.
    #[error("entry {path:?}: unsupported tar entry type {entry_type:?}")]
    UnsupportedEntryType {
        /// The entry path.
        path: PathBuf,
        /// The raw type byte from the header, as a character.
        entry_type: char,
    },
    /// The entry is malformed in a way described by `reason`.
    #[error("entry {path:?}: {reason}")]
    InvalidEntry {
        /// The entry path.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A filesystem operation on an entry failed.
    #[error("entry {path:?}: cannot {op}")]
    Io {
        /// The entry path (empty for the layer root).
        path: PathBuf,
        /// The operation, for instance `create file` or `set owner`.
        op: &'static str,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
}

/// Unpacks one layer into `dest`, returning its diff ID, uncompressed size and entry count.
///
/// `reader` yields the layer blob as stored (compressed as `compression`); `dest` should be an
/// empty directory. Nothing outside `dest` is ever touched (see the [module docs](self)). The
/// whole stream is read, including anything after the tar end-of-archive marker, so that the
/// diff ID covers exactly the bytes the image config lists.
///
/// Directory modes and mtimes are applied after everything else, so a read-only directory in the
/// archive does not block its own children and the mtimes are not disturbed by later creations.
/// Parent directories the archive does not list are created with mode 0755. An entry over an
/// existing non-directory replaces it; a directory entry over an existing directory only updates
/// its metadata. Nothing is fsynced.
///
/// # Limits
///
/// - Access times are set to the modification time.
/// - Xattrs are not applied to symlinks, and are dropped on a filesystem that does not support
///   them at all (`EOPNOTSUPP`, as Docker does); `trusted.overlay.*` xattrs in the archive are an
///   error, since overlayfs would interpret them.
/// - GNU sparse files are written out in full.
/// - Hard links must point to an earlier entry of the same layer.
///
/// # Errors
///
/// Any hostile or malformed entry, a corrupt or truncated stream (a tar stream must end with its
/// end-of-archive marker) or a failing filesystem operation. On error `dest` is left partially
/// populated: the caller deletes it.
pub fn unpack_layer<R: Read + Send>(
    reader: R,
    compression: Compression,
    dest: &Dir,
    opts: &UnpackOptions,
) -> Result<Unpacked, UnpackError> {
    let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(IN_FLIGHT);
    // Emptied chunks travel back to the decompressor to be refilled, so the steady state
    // allocates nothing.
    let (recycle_tx, recycle_rx) = mpsc::channel::<Vec<u8>>();

    std::thread::scope(|scope| {
        let decompressor = std::thread::Builder::new()
            .name("wrun-unpack-decompress".to_owned())
            .spawn_scoped(scope, move || {
                decompress(reader, compression, &tx, &recycle_rx)
            })
            .map_err(|source| UnpackError::Io {
                path: PathBuf::new(),
                op: "spawn the decompression thread",
                source,
            })?;

        // On an extraction error `rx` is dropped here, before joining, so a decompressor blocked
        // in `send` wakes up with an error and stops instead of reading the rest of the stream.
        let extracted = extract_stream(rx, recycle_tx, dest, opts);

        let decompressed = match decompressor.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        // A decompression error wins: the extractor only saw the stream end early and would
        // otherwise report a misleading "truncated tar".
        decompressed.map_err(|source| UnpackError::Decompress {
            compression,
            source,
        })?;
        extracted
    })
}

/// The decompressor thread: fills chunks from the decoded stream and sends them on.
///
/// Returns `Ok` at the end of the stream, and also when the extractor hung up (it has an error
/// of its own to report).
fn decompress<R: Read>(
    reader: R,
    compression: Compression,
    tx: &mpsc::SyncSender<Vec<u8>>,
    recycle: &mpsc::Receiver<Vec<u8>>,
) -> io::Result<()> {
    let input = BufReader::with_capacity(128 * 1024, reader);
    let mut decoded: Box<dyn Read> = match compression {
        Compression::None => Box::new(input),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(input)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(input)?),
    };
    loop {
        let mut chunk = recycle
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(CHUNK));
        chunk.resize(CHUNK, 0);
        let mut filled = 0;
        while filled < CHUNK {
            match decoded.read(&mut chunk[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if filled == 0 {
            return Ok(());
        }
        chunk.truncate(filled);
        if tx.send(chunk).is_err() {
            // The extractor stopped; its error is the one to report.
            return Ok(());
        }
        if filled < CHUNK {
            return Ok(());
        }
    }
}

/// The extractor side: hashes every chunk, parses the tar and writes the entries.
fn extract_stream(
    rx: mpsc::Receiver<Vec<u8>>,
    recycle: mpsc::Sender<Vec<u8>>,
    dest: &Dir,
    opts: &UnpackOptions,
) -> Result<Unpacked, UnpackError> {
    let eof = Cell::new(false);
    let mut stream = ChunkReader {
        rx,
        recycle,
        chunk: Vec::new(),
        pos: 0,
        hasher: Sha256::new(),
        size: 0,
        eof: &eof,
    };
    let entries = extract::extract(&mut stream, &eof, dest, opts)?;
    // The diff ID covers the whole stream, including any padding after the end-of-archive
    // marker, so receive (and hash) every remaining chunk.
    while let Ok(chunk) = stream.rx.recv() {
        stream.hasher.update(&chunk);
        stream.size += chunk.len() as u64;
    }
    Ok(Unpacked {
        diff_id: format!("sha256:{}", hex::encode(stream.hasher.finalize())),
        size: stream.size,
        entries,
    })
}

/// Reads the chunks sent by the decompressor, hashing each as it arrives.
struct ChunkReader<'a> {
    rx: mpsc::Receiver<Vec<u8>>,
    recycle: mpsc::Sender<Vec<u8>>,
    chunk: Vec<u8>,
    pos: usize,
    hasher: Sha256,
    size: u64,
    /// Set once the stream has ended (the decompressor finished or failed).
    eof: &'a Cell<bool>,
}

impl Read for ChunkReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.chunk.len() {
            let Ok(next) = self.rx.recv() else {
                self.eof.set(true);
                return Ok(0);
            };
            self.hasher.update(&next);
            self.size += next.len() as u64;
            let done = std::mem::replace(&mut self.chunk, next);
            // The decompressor may already be gone; then the buffer is simply freed.
            let _ = self.recycle.send(done);
            self.pos = 0;
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
