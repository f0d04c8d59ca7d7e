//! The tar side of the unpacker: parses entries and writes them beneath the destination `Dir`.
//!
//! Every entry goes through the same two steps: [`walk`] reaches its parent directory one
//! component at a time without following symlinks, then the final component is created
//! relative to that parent. See the parent module for the safety model.

use std::cell::Cell;
use std::ffi::{OsStr, OsString};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use cap_fs_ext::DirExt;
use cap_std::fs::{Dir, OpenOptions, OpenOptionsExt};
use rustix::fd::OwnedFd;
use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid, XattrFlags};

use super::{UnpackError, UnpackOptions};

/// Size of the buffer file contents are copied through.
const COPY_BUF: usize = 256 * 1024;
/// The overlayfs whiteout prefix (`.wh.NAME` hides `NAME` of lower layers).
const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// Prefix of whiteout metadata names (aufs leftovers such as `.wh..wh.plnk`); never created.
const WHITEOUT_META_PREFIX: &[u8] = b".wh..wh.";
/// The opaque-directory marker: hides everything lower layers have in its directory.
const WHITEOUT_OPAQUE: &[u8] = b".wh..wh..opq";
/// The deepest entry path accepted, in components (real layers stay far below it).
const MAX_DEPTH: usize = 256;
/// PAX record prefix carrying extended attributes.
const PAX_XATTR: &[u8] = b"SCHILY.xattr.";
/// Xattrs overlayfs itself interprets: a layer must not smuggle them in (a forged
/// `trusted.overlay.redirect` or `…metacopy` changes what the merged view shows).
const OVERLAY_XATTR_PREFIX: &[u8] = b"trusted.overlay.";

/// Extracts every entry of the tar stream `stream` into `dest` and returns the entry count.
///
/// `eof` is set by the stream once it has run dry; the tar parser treats a clean end of input as
/// the end of the archive, so this is how a stream cut short is told apart from a finished one.
pub(super) fn extract<R: Read>(
    stream: R,
    eof: &Cell<bool>,
    dest: &Dir,
    opts: &UnpackOptions,
) -> Result<u64, UnpackError> {
    let mut archive = tar::Archive::new(stream);
    let mut extractor = Extractor {
        root: dest,
        privileged: opts.privileged,
        parents: Vec::new(),
        deferred: Vec::new(),
        buf: vec![0; COPY_BUF],
    };
    let mut count = 0;
    let truncated_or = |source: io::Error| {
        if eof.get() {
            UnpackError::Truncated
        } else {
            UnpackError::Tar { source }
        }
    };
    for entry in archive.entries().map_err(truncated_or)? {
        let mut entry = entry.map_err(truncated_or)?;
        if entry.header().entry_type() == tar::EntryType::XGlobalHeader {
            // Global PAX records (typically only a comment) are not an entry of their own.
            continue;
        }
        count += 1;
        extractor.entry(&mut entry, eof)?;
    }
    if eof.get() {
        // The parser saw the input end instead of the two zero blocks that close an archive.
        return Err(UnpackError::Truncated);
    }
    extractor.finish()?;
    Ok(count)
}

/// A directory whose mode and mtime are applied at the end.
struct DeferredDir {
    /// Components below the root; empty for the root itself.
    path: Vec<OsString>,
    mode: u32,
    mtime: Timespec,
}

/// Ownership, mode, time and xattrs of one entry.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: Timespec,
    xattrs: Vec<(OsString, Vec<u8>)>,
}

impl Meta {
    fn times(&self) -> Timestamps {
        Timestamps {
            last_access: self.mtime,
            last_modification: self.mtime,
        }
    }
}

struct Extractor<'d> {
    root: &'d Dir,
    privileged: bool,
    /// The directories from the root down to the previous entry's parent, each opened without
    /// following symlinks. Consecutive entries mostly share their parent, so this saves almost
    /// every `openat`. It only ever holds the chain to the current parent, so removing an
    /// entry *inside* that parent (to replace it) cannot leave a stale handle here.
    parents: Vec<(OsString, Dir)>,
    deferred: Vec<DeferredDir>,
    buf: Vec<u8>,
}

impl Extractor<'_> {
    fn entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        eof: &Cell<bool>,
    ) -> Result<(), UnpackError> {
        let path = PathBuf::from(OsStr::from_bytes(&entry.path_bytes()));
        let mut entry_type = entry.header().entry_type();
        if entry.header().as_old().linkflag[0] == 0 && path.as_os_str().as_bytes().ends_with(b"/") {
            // Pre-POSIX archives mark directories only by a trailing slash on a "regular"
            // (NUL type) entry, as GNU tar and Go's archive/tar read them.
            entry_type = tar::EntryType::Directory;
        }
        let Some(comps) = plain_components(&path) else {
            return Err(UnpackError::UnsafePath { path });
        };
        if comps.len() > MAX_DEPTH {
            // Every level of the current parent chain holds a descriptor (see `walk`), so an
            // absurdly deep path would otherwise exhaust the process's descriptors.
            return Err(UnpackError::InvalidEntry {
                path,
                reason: "path is more than 256 components deep",
            });
        }
        let meta = read_meta(entry, &path)?;

        let Some((name, parent)) = comps.split_last() else {
            // `./` (or `.`): the layer root itself.
            return self.root_entry(entry_type, meta, path);
        };
        let name = *name;

        let privileged = self.privileged;
        let dir =
            walk(self.root, &mut self.parents, parent, true).map_err(|e| e.into_unpack(&path))?;
        let io_err = |op| {
            let path = path.clone();
            move |source| UnpackError::Io { path, op, source }
        };

        let name_bytes = name.as_bytes();
        if let Some(hidden) = name_bytes.strip_prefix(WHITEOUT_PREFIX) {
            // Whatever the entry's type, a `.wh.` name is a whiteout marker and is never
            // created under that name.
            if name_bytes == WHITEOUT_OPAQUE {
                if !privileged {
                    return Err(UnpackError::NeedsPrivilege {
                        path,
                        what: "opaque whiteout",
                    });
                }
                reopen(dir)
                    .and_then(|fd| {
                        rustix::fs::fsetxattr(
                            fd,
                            "trusted.overlay.opaque",
                            b"y",
                            XattrFlags::empty(),
                        )
                        .map_err(io::Error::from)
                    })
                    .map_err(io_err("mark the directory opaque"))?;
                return Ok(());
            }
            if name_bytes.starts_with(WHITEOUT_META_PREFIX) {
                // aufs-specific metadata (`.wh..wh.plnk`, `.wh..wh.aufs`): meaningless to
                // overlayfs, skipped as containerd and Docker do.
                return Ok(());
            }
            // `.wh..` would otherwise whiteout `.` and `.wh...` would name `..`.
            if hidden.is_empty() || hidden == b"." || hidden == b".." {
                return Err(UnpackError::InvalidEntry {
                    path,
                    reason: "whiteout names no entry",
                });
            }
            if !privileged {
                return Err(UnpackError::NeedsPrivilege {
                    path,
                    what: "whiteout",
                });
            }
            let hidden = OsStr::from_bytes(hidden);
            let full = full_path(parent, hidden);
            replacing(dir, hidden, &full, &mut self.deferred, || {
                mknod(dir, hidden, FileType::CharacterDevice, 0, 0, 0)
            })
            .map_err(io_err("create whiteout device"))?;
            return Ok(());
        }

        let full = full_path(parent, name);
        match entry_type {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let file = replacing(dir, name, &full, &mut self.deferred, || {
                    // O_EXCL: never opens (or follows) whatever already has this name. The
                    // final mode is set with fchmod below, independent of the umask.
                    dir.open_with(
                        name,
                        OpenOptions::new().write(true).create_new(true).mode(0o600),
                    )
                })
                .map_err(io_err("create file"))?;
                copy_contents(entry, &file, &mut self.buf, eof, &path)?;
                if privileged {
                    // Before fchmod: chown clears setuid/setgid, and before the xattrs: it also
                    // drops `security.capability`.
                    rustix::fs::fchown(
                        &file,
                        Some(Uid::from_raw(meta.uid)),
                        Some(Gid::from_raw(meta.gid)),
                    )
                    .map_err(io::Error::from)
                    .map_err(io_err("set owner"))?;
                }
                rustix::fs::fchmod(&file, mode(meta.mode))
                    .map_err(io::Error::from)
                    .map_err(io_err("set mode"))?;
                if privileged {
                    for (key, value) in &meta.xattrs {
                        set_xattr(&file, key, value).map_err(io_err("set extended attribute"))?;
                    }
                }
                rustix::fs::futimens(&file, &meta.times())
                    .map_err(io::Error::from)
                    .map_err(io_err("set mtime"))?;
            }
            tar::EntryType::Directory => {
                match dir.create_dir(name) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        // A directory over a directory only updates its metadata; over anything
                        // else it replaces it.
                        let existing = dir
                            .symlink_metadata(name)
                            .map_err(io_err("inspect existing entry"))?;
                        if !existing.is_dir() {
                            dir.remove_file(name)
                                .map_err(io_err("remove existing entry"))?;
                            dir.create_dir(name).map_err(io_err("create directory"))?;
                        }
                    }
                    Err(e) => return Err(io_err("create directory")(e)),
                }
                if privileged {
                    chown_nofollow(dir, name, &meta).map_err(io_err("set owner"))?;
                    if !meta.xattrs.is_empty() {
                        let sub = dir
                            .open_dir_nofollow(name)
                            .and_then(|sub| reopen(&sub))
                            .map_err(io_err("open directory"))?;
                        for (key, value) in &meta.xattrs {
                            set_xattr(&sub, key, value)
                                .map_err(io_err("set extended attribute"))?;
                        }
                    }
                }
                self.deferred.push(DeferredDir {
                    path: full.iter().map(|c| c.to_os_string()).collect(),
                    mode: meta.mode,
                    mtime: meta.mtime,
                });
            }
            tar::EntryType::Symlink => {
                let target = match entry.link_name_bytes() {
                    Some(target) if !target.is_empty() => PathBuf::from(OsStr::from_bytes(&target)),
                    _ => {
                        return Err(UnpackError::InvalidEntry {
                            path,
                            reason: "symlink has no target",
                        });
                    }
                };
                // `symlink_contents` stores the target text as is (absolute targets included);
                // nothing here or later in this module resolves it.
                replacing(dir, name, &full, &mut self.deferred, || {
                    dir.symlink_contents(&target, name)
                })
                .map_err(io_err("create symlink"))?;
                if privileged {
                    chown_nofollow(dir, name, &meta).map_err(io_err("set owner"))?;
                }
                // Xattrs are not applied to symlinks: there is no descriptor-based call for a
                // symlink itself (only path-based `lsetxattr`), and Linux refuses `user.*`
                // xattrs on symlinks anyway.
                rustix::fs::utimensat(dir, name, &meta.times(), AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(io::Error::from)
                    .map_err(io_err("set mtime"))?;
            }
            tar::EntryType::Link => {
                let raw_target = match entry.link_name_bytes() {
                    Some(target) if !target.is_empty() => PathBuf::from(OsStr::from_bytes(&target)),
                    _ => {
                        return Err(UnpackError::InvalidEntry {
                            path,
                            reason: "hard link has no target",
                        });
                    }
                };
                let Some(target) = plain_components(&raw_target) else {
                    return Err(UnpackError::UnsafeLinkTarget {
                        path,
                        target: raw_target,
                    });
                };
                if target.is_empty() {
                    return Err(UnpackError::InvalidEntry {
                        path,
                        reason: "hard link target is the layer root",
                    });
                }
                if target == full {
                    // A link to itself: the file is already there.
                    return Ok(());
                }
                let missing = || UnpackError::MissingLinkTarget {
                    path: path.clone(),
                    target: raw_target.clone(),
                };
                let Some((target_name, target_parent)) = target.split_last() else {
                    return Err(missing());
                };
                // The target's parent is reached like any entry's, never through a symlink,
                // and without creating anything: the target must already be in this layer.
                let mut target_chain = Vec::new();
                let target_dir = walk(self.root, &mut target_chain, target_parent, false)
                    .map_err(|_| missing())?;
                match target_dir.symlink_metadata(target_name) {
                    Ok(m) if !m.is_dir() => {}
                    Ok(_) => {
                        return Err(UnpackError::InvalidEntry {
                            path,
                            reason: "hard link target is a directory",
                        });
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(missing()),
                    Err(e) => return Err(io_err("inspect hard link target")(e)),
                }
                // `linkat` without AT_SYMLINK_FOLLOW: a target that is a symlink is linked
                // itself, never resolved.
                replacing(dir, name, &full, &mut self.deferred, || {
                    target_dir.hard_link(target_name, dir, name)
                })
                .map_err(io_err("create hard link"))?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let (file_type, what) = match entry_type {
                    tar::EntryType::Char => (FileType::CharacterDevice, "character device"),
                    tar::EntryType::Block => (FileType::BlockDevice, "block device"),
                    _ => (FileType::Fifo, "fifo"),
                };
                if !privileged {
                    return Err(UnpackError::NeedsPrivilege { path, what });
                }
                let (major, minor) = if entry_type == tar::EntryType::Fifo {
                    (0, 0)
                } else {
                    let Some(numbers) = device_numbers(entry.header()) else {
                        return Err(UnpackError::InvalidEntry {
                            path,
                            reason: "malformed device number",
                        });
                    };
                    numbers
                };
                replacing(dir, name, &full, &mut self.deferred, || {
                    mknod(dir, name, file_type, meta.mode, major, minor)
                })
                .map_err(io_err("create special file"))?;
                chown_nofollow(dir, name, &meta).map_err(io_err("set owner"))?;
                // mknodat applied the umask, so set the mode again. There is no portable
                // no-follow chmod, but the name was created by mknodat just above in this
                // directory, which only this unpacker writes, so it is that node and not a symlink.
                rustix::fs::chmodat(dir, name, mode(meta.mode), AtFlags::empty())
                    .map_err(io::Error::from)
                    .map_err(io_err("set mode"))?;
                rustix::fs::utimensat(dir, name, &meta.times(), AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(io::Error::from)
                    .map_err(io_err("set mtime"))?;
            }
            other => {
                return Err(UnpackError::UnsupportedEntryType {
                    path,
                    entry_type: char::from(other.as_byte()),
                });
            }
        }
        Ok(())
    }

    /// Handles the `./` entry: only a directory makes sense there, and its metadata applies to
    /// the destination itself.
    fn root_entry(
        &mut self,
        entry_type: tar::EntryType,
        meta: Meta,
        path: PathBuf,
    ) -> Result<(), UnpackError> {
        if entry_type != tar::EntryType::Directory {
            return Err(UnpackError::InvalidEntry {
                path,
                reason: "the layer root is not a directory",
            });
        }
        if self.privileged {
            let io_err = |op| {
                let path = path.clone();
                move |source| UnpackError::Io { path, op, source }
            };
            let root = reopen(self.root).map_err(io_err("open the layer root"))?;
            rustix::fs::fchown(
                &root,
                Some(Uid::from_raw(meta.uid)),
                Some(Gid::from_raw(meta.gid)),
            )
            .map_err(io::Error::from)
            .map_err(io_err("set owner"))?;
            for (key, value) in &meta.xattrs {
                set_xattr(&root, key, value).map_err(io_err("set extended attribute"))?;
            }
        }
        self.deferred.push(DeferredDir {
            path: Vec::new(),
            mode: meta.mode,
            mtime: meta.mtime,
        });
        Ok(())
    }

    /// Applies the deferred directory modes and mtimes, deepest first: a directory's mtime is
    /// only final once all its children exist, and a directory made read-only (or
    /// unsearchable) must not block the ones below it.
    fn finish(mut self) -> Result<(), UnpackError> {
        let mut deferred = std::mem::take(&mut self.deferred);
        deferred.sort_by_key(|d| std::cmp::Reverse(d.path.len()));
        self.parents.clear();
        for d in &deferred {
            let path: PathBuf = d.path.iter().collect();
            let io_err = |op| {
                let path = path.clone();
                move |source| UnpackError::Io { path, op, source }
            };
            let times = Timestamps {
                last_access: d.mtime,
                last_modification: d.mtime,
            };
            let comps: Vec<&OsStr> = d.path.iter().map(OsString::as_os_str).collect();
            let target = match comps.split_last() {
                None => reopen(self.root),
                Some((name, parent)) => {
                    let parent_dir = walk(self.root, &mut self.parents, parent, false)
                        .map_err(|e| e.into_unpack(&path))?;
                    parent_dir
                        .open_dir_nofollow(name)
                        .and_then(|dir| reopen(&dir))
                }
            }
            .map_err(io_err("open directory"))?;
            rustix::fs::fchmod(&target, mode(d.mode))
                .map_err(io::Error::from)
                .map_err(io_err("set mode"))?;
            rustix::fs::futimens(&target, &times)
                .map_err(io::Error::from)
                .map_err(io_err("set mtime"))?;
        }
        Ok(())
    }
}

/// Splits an entry path into its plain components, or `None` if it is absolute or has `..`.
///
/// `.` components (a leading `./`, as `tar -C dir .` writes) are dropped; an empty result is the
/// layer root.
fn plain_components(path: &Path) -> Option<Vec<&OsStr>> {
    let mut out = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(name) => out.push(name),
            Component::CurDir => {}
            Component::RootDir | Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

fn full_path<'a>(parent: &[&'a OsStr], name: &'a OsStr) -> Vec<&'a OsStr> {
    let mut full = parent.to_vec();
    full.push(name);
    full
}

/// Why [`walk`] could not reach a directory; the index is that of the offending component.
enum WalkError {
    /// A symlink or other non-directory sits where a directory must be.
    NotDirectory(usize),
    /// The component does not exist (only when not creating).
    Missing(usize),
    Io(io::Error),
}

impl WalkError {
    fn into_unpack(self, path: &Path) -> UnpackError {
        let prefix = |i: usize| path_prefix(path, i);
        match self {
            Self::NotDirectory(i) => UnpackError::ThroughSymlink {
                path: path.to_owned(),
                component: prefix(i),
            },
            Self::Missing(i) => UnpackError::Io {
                path: path.to_owned(),
                op: "open parent directory",
                source: io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{:?} does not exist", prefix(i)),
                ),
            },
            Self::Io(source) => UnpackError::Io {
                path: path.to_owned(),
                op: "open parent directory",
                source,
            },
        }
    }
}

/// The first `i + 1` plain components of `path`, for error messages.
fn path_prefix(path: &Path, i: usize) -> PathBuf {
    plain_components(path)
        .unwrap_or_default()
        .into_iter()
        .take(i + 1)
        .collect()
}

/// Opens the directory `comps` below `root` one component at a time, never following a
/// symlink, creating missing ones (0755) if `create`.
///
/// `chain` caches the directories opened by the previous call; only the part of `comps` that
/// differs from it is opened again.
fn walk<'a>(
    root: &'a Dir,
    chain: &'a mut Vec<(OsString, Dir)>,
    comps: &[&OsStr],
    create: bool,
) -> Result<&'a Dir, WalkError> {
    let common = chain
        .iter()
        .zip(comps)
        .take_while(|((have, _), want)| have.as_os_str() == **want)
        .count();
    chain.truncate(common);
    for (i, name) in comps.iter().enumerate().skip(common) {
        let base = chain.last().map_or(root, |(_, dir)| dir);
        let dir = match base.open_dir_nofollow(name) {
            Ok(dir) => dir,
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                create_missing_dir(base, name).map_err(WalkError::Io)?
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(WalkError::Missing(i)),
            // O_NOFOLLOW|O_DIRECTORY on a symlink gives ELOOP, on a file ENOTDIR: either way
            // the entry would be written through something that is not a real directory.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) => {
                return Err(WalkError::NotDirectory(i));
            }
            Err(e) => return Err(WalkError::Io(e)),
        };
        chain.push((name.to_os_string(), dir));
    }
    Ok(chain.last().map_or(root, |(_, dir)| dir))
}

/// Creates a parent directory the archive did not list, with mode 0755 whatever the umask.
fn create_missing_dir(base: &Dir, name: &OsStr) -> io::Result<Dir> {
    base.create_dir(name)?;
    let dir = base.open_dir_nofollow(name)?;
    rustix::fs::fchmod(reopen(&dir)?, Mode::from_raw_mode(0o755))?;
    Ok(dir)
}

/// Opens a readable descriptor of the directory `dir` itself.
///
/// cap-std opens directories with `O_PATH`, on which `fchmod`, `fchown`, `futimens` and
/// `fsetxattr` fail with `EBADF`. Opening `.` relative to the directory resolves no path beyond
/// it (`O_NOFOLLOW`, and `.` cannot be a symlink), so this stays within cap-std's guarantees.
pub(crate) fn reopen(dir: &Dir) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Runs `create`; if the name is taken, removes what is there (never following it) and runs
/// `create` once more. A removed directory's deferred metadata is dropped with it.
fn replacing<T>(
    dir: &Dir,
    name: &OsStr,
    full: &[&OsStr],
    deferred: &mut Vec<DeferredDir>,
    mut create: impl FnMut() -> io::Result<T>,
) -> io::Result<T> {
    match create() {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            if dir.symlink_metadata(name)?.is_dir() {
                // cap-std's remove_dir_all works beneath `dir` and does not follow symlinks.
                dir.remove_dir_all(name)?;
                deferred.retain(|d| {
                    !(d.path.len() >= full.len() && d.path.iter().zip(full).all(|(a, b)| a == b))
                });
            } else {
                dir.remove_file(name)?;
            }
            create()
        }
        other => other,
    }
}

/// Copies an entry's contents into `file` through `buf`, in large writes.
fn copy_contents<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    mut file: &cap_std::fs::File,
    buf: &mut [u8],
    eof: &Cell<bool>,
    path: &Path,
) -> Result<(), UnpackError> {
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            match entry.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(UnpackError::TruncatedEntry {
                        path: path.to_owned(),
                        source,
                    });
                }
            }
        }
        if filled > 0 {
            file.write_all(&buf[..filled])
                .map_err(|source| UnpackError::Io {
                    path: path.to_owned(),
                    op: "write file contents",
                    source,
                })?;
        }
        if filled < buf.len() {
            break;
        }
    }
    // The entry reader stops quietly at the end of input; only the stream knows whether the
    // contents were cut short.
    if eof.get() {
        return Err(UnpackError::TruncatedEntry {
            path: path.to_owned(),
            source: io::ErrorKind::UnexpectedEof.into(),
        });
    }
    Ok(())
}

/// Reads mode, owner, mtime and xattrs from the header and PAX records.
fn read_meta<R: Read>(entry: &mut tar::Entry<'_, R>, path: &Path) -> Result<Meta, UnpackError> {
    let invalid = |reason| UnpackError::InvalidEntry {
        path: path.to_owned(),
        reason,
    };
    let header = entry.header();
    let raw = header.as_old();
    let mode = numeric(header.mode(), &raw.mode).ok_or_else(|| invalid("malformed mode field"))?;
    // tar has already applied PAX `uid`/`gid` records to the header.
    let uid = numeric(header.uid(), &raw.uid).ok_or_else(|| invalid("malformed uid field"))?;
    let gid = numeric(header.gid(), &raw.gid).ok_or_else(|| invalid("malformed gid field"))?;
    let uid = u32::try_from(uid).map_err(|_| invalid("uid out of range"))?;
    let gid = u32::try_from(gid).map_err(|_| invalid("gid out of range"))?;
    let secs =
        numeric(header.mtime(), &raw.mtime).ok_or_else(|| invalid("malformed mtime field"))?;
    let mut mtime = Timespec {
        tv_sec: i64::try_from(secs).map_err(|_| invalid("mtime out of range"))?,
        tv_nsec: 0,
    };
    let mut xattrs = Vec::new();
    if let Some(pax) = entry
        .pax_extensions()
        .map_err(|_| invalid("malformed PAX records"))?
    {
        for record in pax {
            let record = record.map_err(|_| invalid("malformed PAX records"))?;
            let key = record.key_bytes();
            if let Some(name) = key.strip_prefix(PAX_XATTR) {
                if name.starts_with(OVERLAY_XATTR_PREFIX) {
                    return Err(invalid(
                        "carries a trusted.overlay.* xattr, which is reserved for overlayfs",
                    ));
                }
                xattrs.push((
                    OsStr::from_bytes(name).to_os_string(),
                    record.value_bytes().to_vec(),
                ));
            } else if key == b"mtime" {
                mtime = parse_pax_time(record.value_bytes())
                    .ok_or_else(|| invalid("malformed PAX mtime"))?;
            }
        }
    }
    Ok(Meta {
        mode,
        uid,
        gid,
        mtime,
        xattrs,
    })
}

/// A numeric header field as tar parsed it, except that a blank field (all NULs or spaces, as
/// some writers leave fields they consider irrelevant) reads as 0, as in GNU tar and Go's
/// archive/tar.
fn numeric<T: Default>(parsed: io::Result<T>, raw: &[u8]) -> Option<T> {
    match parsed {
        Ok(value) => Some(value),
        Err(_) if raw.iter().all(|&b| b == 0 || b == b' ') => Some(T::default()),
        Err(_) => None,
    }
}

/// The device numbers of a character or block device entry (0:0 in a pre-POSIX header).
fn device_numbers(header: &tar::Header) -> Option<(u32, u32)> {
    let (raw_major, raw_minor): (&[u8], &[u8]) = if let Some(h) = header.as_ustar() {
        (&h.dev_major, &h.dev_minor)
    } else if let Some(h) = header.as_gnu() {
        (&h.dev_major, &h.dev_minor)
    } else {
        return Some((0, 0));
    };
    let major = numeric(header.device_major(), raw_major)?.unwrap_or(0);
    let minor = numeric(header.device_minor(), raw_minor)?.unwrap_or(0);
    Some((major, minor))
}

/// Parses a PAX time such as `1700000000.5` or `-1.25`.
fn parse_pax_time(value: &[u8]) -> Option<Timespec> {
    let value = std::str::from_utf8(value).ok()?;
    let (secs, frac) = value.split_once('.').unwrap_or((value, ""));
    let negative = secs.starts_with('-');
    let mut tv_sec: i64 = secs.parse().ok()?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Nanosecond precision at most; further digits are dropped.
    let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
    let mut tv_nsec: i64 = digits.parse().ok()?;
    if negative && tv_nsec > 0 {
        tv_sec = tv_sec.checked_sub(1)?;
        tv_nsec = 1_000_000_000 - tv_nsec;
    }
    Some(Timespec { tv_sec, tv_nsec })
}

/// The permission bits of a tar mode, setuid, setgid and sticky included.
fn mode(mode: u32) -> Mode {
    Mode::from_raw_mode(mode & 0o7777)
}

fn mknod(
    dir: &Dir,
    name: &OsStr,
    file_type: FileType,
    perm: u32,
    major: u32,
    minor: u32,
) -> io::Result<()> {
    rustix::fs::mknodat(
        dir,
        name,
        file_type,
        mode(perm),
        rustix::fs::makedev(major, minor),
    )
    .map_err(io::Error::from)
}

/// `lchown` of `dir/name`: the owner of a symlink is set on the link itself.
fn chown_nofollow(dir: &Dir, name: &OsStr, meta: &Meta) -> io::Result<()> {
    rustix::fs::chownat(
        dir,
        name,
        Some(Uid::from_raw(meta.uid)),
        Some(Gid::from_raw(meta.gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(io::Error::from)
}

/// Sets one xattr on an open file or directory.
///
/// A filesystem without xattr support (`EOPNOTSUPP`) is tolerated, as Docker does: the layer
/// still unpacks, without those attributes.
fn set_xattr(fd: impl rustix::fd::AsFd, key: &OsStr, value: &[u8]) -> io::Result<()> {
    match rustix::fs::fsetxattr(fd, key, value, XattrFlags::empty()) {
        Err(rustix::io::Errno::OPNOTSUPP) => Ok(()),
        other => other.map_err(io::Error::from),
    }
}
