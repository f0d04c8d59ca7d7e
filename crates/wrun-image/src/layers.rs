//! The one view of an image's files: its unpacked layers as capability
//! directories, read as overlayfs would show them.
//!
//! Every read of an image's content goes through a [`LayerStack`]: the
//! entrypoint's first bytes for classification, the Wasm program, the
//! users and groups of `--user` and the image's `User`, and the merged tree
//! a multi-layer Wasm image is granted. Lookups honour whiteouts and opaque
//! directories, and resolve symlinks (absolute or relative, in any
//! component) inside the image's root: `/etc -> /etc`, `/etc -> /cfg` or
//! `passwd -> ../../../etc/passwd` all stay in the image. No host path is
//! ever opened by name here; each layer is reached only through its own
//! capability.

use std::ffi::OsStr;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use cap_fs_ext::DirExt;
use cap_std::fs::{Dir, Metadata};
use wrun_core::{Identity, ImageDefaults};

use crate::{Error, ImageRecord, Layer, Store, classify};

/// How many symlinks one lookup follows before giving up (Linux's limit).
const MAX_SYMLINKS: usize = 40;

/// The most of `/etc/passwd` or `/etc/group` that is read.
const MAX_DATABASE: u64 = 16 << 20;

/// An image's root file system, read-only, as the stack of its unpacked
/// layers (top first).
#[derive(Debug)]
pub struct LayerStack {
    layers: Vec<Dir>,
}

impl LayerStack {
    /// The view of a stored image's tar layers (a Wasm module layer, kept
    /// as a blob, has no files and is left out).
    pub fn open(store: &Store, record: &ImageRecord) -> Result<LayerStack, Error> {
        Self::open_layers(store, &record.layers)
    }

    /// The view of `layers` (bottom first) of the store.
    pub(crate) fn open_layers(store: &Store, layers: &[Layer]) -> Result<LayerStack, Error> {
        let layers = layers
            .iter()
            .rev()
            .filter_map(|l| l.diff_id.as_ref())
            .map(|d| store.open_layer(d))
            .collect::<Result<_, _>>()?;
        Ok(LayerStack { layers })
    }

    /// A view of the given layer directories, top first.
    pub fn from_dirs(top_first: Vec<Dir>) -> LayerStack {
        LayerStack { layers: top_first }
    }

    /// Up to `n` bytes of the regular file at the absolute `path`; `None`
    /// when there is no such file (missing, hidden by a whiteout, not a
    /// regular file, or a symlink loop).
    pub fn read_head(&self, path: &str, n: u64) -> Option<Vec<u8>> {
        let (layer, rel) = self.resolve(path)?;
        let f = layer.open(&rel).ok()?;
        let mut buf = Vec::new();
        f.take(n).read_to_end(&mut buf).ok()?;
        Some(buf)
    }

    /// The whole regular file at `path` (see [`read_head`](Self::read_head)).
    pub fn read(&self, path: &str) -> Option<Vec<u8>> {
        self.read_head(path, u64::MAX)
    }

    /// Whether `path` is a regular file of the image.
    pub fn is_file(&self, path: &str) -> bool {
        self.resolve(path).is_some()
    }

    /// Resolves `user` (`name`, `uid`, `name:group`, `uid:gid`) through the
    /// image's own `/etc/passwd` and `/etc/group`, as docker does; an image
    /// without them knows only numeric users.
    pub fn identity(&self, user: &str) -> Result<Identity, Error> {
        let text = |p: &str| {
            self.read_head(p, MAX_DATABASE)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default()
        };
        wrun_core::resolve_user(user, &text("/etc/passwd"), &text("/etc/group"))
            .map_err(|source| Error::UnknownUser { source })
    }

    /// Where `program` (argv\[0\]) is in the image, as a shell finds it
    /// (see [`classify::resolve_program`]), and its bytes.
    pub fn find_program(
        &self,
        program: &str,
        defaults: &ImageDefaults,
        workdir: Option<&str>,
    ) -> Result<(String, Vec<u8>), Error> {
        let not_found = |path: &str| Error::ProgramNotFound {
            path: path.to_string(),
        };
        let found = classify::resolve_program(
            program,
            defaults.working_dir(workdir),
            defaults.path(),
            &|p| self.is_file(p),
        )
        .ok_or_else(|| not_found(program))?;
        let bytes = self.read(&found).ok_or_else(|| not_found(&found))?;
        Ok((found, bytes))
    }

    /// The regular file `path` resolves to: its layer and its path there,
    /// every symlink on the way followed inside the image's root.
    fn resolve(&self, path: &str) -> Option<(&Dir, PathBuf)> {
        let mut target = normalize(Path::new(path))?;
        for _ in 0..MAX_SYMLINKS {
            let mut redirected = None;
            // Component by component, so a symlinked directory on the way is
            // resolved at the image's root, not inside one layer.
            let mut prefix = PathBuf::new();
            let comps: Vec<_> = target.components().collect();
            for (i, c) in comps.iter().enumerate() {
                prefix.push(c);
                let (layer, meta) = self.find(&prefix)?;
                if meta.file_type().is_symlink() {
                    let link = layer.read_link_contents(&prefix).ok()?;
                    let mut next = if link.is_absolute() {
                        PathBuf::new()
                    } else {
                        prefix.parent().map(Path::to_path_buf).unwrap_or_default()
                    };
                    next.push(link.strip_prefix("/").unwrap_or(&link));
                    for rest in &comps[i + 1..] {
                        next.push(rest);
                    }
                    redirected = Some(normalize(&Path::new("/").join(next))?);
                    break;
                }
                if i + 1 == comps.len() {
                    return meta.is_file().then_some((layer, prefix));
                }
                if !meta.is_dir() {
                    return None;
                }
            }
            target = redirected?;
        }
        None
    }

    /// The topmost entry at `rel` (whose parent directory is known to
    /// exist in the merged view): `None` when no layer has it, or a
    /// whiteout or an opaque directory above hides the lower ones.
    fn find(&self, rel: &Path) -> Option<(&Dir, Metadata)> {
        for layer in &self.layers {
            match layer.symlink_metadata(rel) {
                Ok(meta) if is_whiteout(&meta) => return None,
                Ok(meta) => return Some((layer, meta)),
                Err(_) => {
                    // A layer whose copy of the parent is opaque hides the
                    // entries of every layer below it.
                    let parent = rel.parent().filter(|p| !p.as_os_str().is_empty());
                    if let Some(parent) = parent
                        && layer.open_dir_nofollow(parent).is_ok_and(|d| is_opaque(&d))
                    {
                        return None;
                    }
                }
            }
        }
        None
    }

    /// Lays the layers, bottom first, into `dst` as overlayfs would show
    /// them (upper layers win, whiteouts hide, opaque directories hide what
    /// is below). Regular files are hard links to the layers' files where
    /// the file system allows (copies otherwise); devices, FIFOs and
    /// sockets are left out.
    pub fn merge_into(&self, dst: &Dir) -> io::Result<()> {
        for layer in self.layers.iter().rev() {
            merge(layer, dst)?;
        }
        Ok(())
    }
}

/// The image's files as one directory a Wasm guest is granted read-only at
/// `/`: its single layer as it is, or, for several layers, their merge
/// ([`LayerStack::merge_into`]), built once per image under
/// `cache/rootfs/<manifest hex>`. The merge's files are hard links to the
/// shared layers' files, so it costs directory entries, not data.
///
/// Concurrent callers each build into `.tmp-<owner>-…` and the first rename
/// wins; [`prune_merged`] leaves the temporary tree of a live process alone.
pub fn merged_root(store: &Store, record: &ImageRecord) -> Result<PathBuf, Error> {
    let layers: Vec<&crate::Digest> = record
        .layers
        .iter()
        .filter_map(|l| l.diff_id.as_ref())
        .collect();
    if let [one] = layers.as_slice() {
        return Ok(store.layer_path(one));
    }
    let cache = store.cache_dir(MERGED)?;
    let dest = cache.join(record.digest.hex());
    if dest.is_dir() {
        return Ok(dest);
    }
    let merge_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Merge { path, source }
    };
    let stack = LayerStack::open(store, record)?;
    let tmp = cache.join(format!(
        "{TMP_PREFIX}{}-{}",
        crate::owner::Owner::current(),
        record.digest.short()
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir(&tmp).map_err(merge_err(&tmp))?;
    let built = Dir::open_ambient_dir(&tmp, cap_std::ambient_authority())
        .and_then(|dst| stack.merge_into(&dst))
        .map_err(merge_err(&tmp));
    if let Err(e) = built {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    match std::fs::rename(&tmp, &dest) {
        Ok(()) => Ok(dest),
        // Another wrun merged the same image first; theirs is as good.
        Err(_) if dest.is_dir() => {
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(dest)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Err(merge_err(&dest)(e))
        }
    }
}

/// The cache directory of merged trees.
const MERGED: &str = "rootfs";

/// The name prefix of a merge in progress.
const TMP_PREFIX: &str = ".tmp-";

/// Whether `name` is the temporary tree of a merge whose process runs
/// (`.tmp-<owner>-…`; the one rule of [`crate::owner`]).
fn merging(name: &str) -> bool {
    name.strip_prefix(TMP_PREFIX)
        .and_then(|rest| rest.split('-').next())
        .and_then(crate::owner::Owner::parse)
        .is_some_and(|o| o.is_alive())
}

/// Removes the merged trees (see [`merged_root`]) of images no longer
/// stored, and leftovers of merges that were interrupted; a merge in
/// progress is left alone. Returns 0: their files are hard links to
/// layers, so removing them frees no data of its own.
pub fn prune_merged(store: &Store) -> Result<u64, Error> {
    let cache = store.cache_dir(MERGED)?;
    let stored: std::collections::BTreeSet<String> = store
        .images()?
        .iter()
        .map(|(r, _)| r.digest.hex().to_string())
        .collect();
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Merge { path, source }
    };
    let dir = Dir::open_ambient_dir(&cache, cap_std::ambient_authority()).map_err(err(&cache))?;
    for entry in dir.entries().map_err(err(&cache))? {
        let name = entry.map_err(err(&cache))?.file_name();
        let text = name.to_string_lossy();
        if !stored.contains(text.as_ref()) && !merging(&text) {
            remove_any(&dir, &name).map_err(err(&cache.join(&name)))?;
        }
    }
    Ok(0)
}

fn merge(src: &Dir, dst: &Dir) -> io::Result<()> {
    for entry in src.entries()? {
        let name = entry?.file_name();
        let meta = src.symlink_metadata(&name)?;
        let ft = meta.file_type();
        if is_whiteout(&meta) {
            remove_any(dst, &name)?;
            continue;
        }
        if ft.is_dir() {
            let from = src.open_dir_nofollow(&name)?;
            if is_opaque(&from) {
                remove_any(dst, &name)?;
            }
            match dst.symlink_metadata(&name) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    remove_any(dst, &name)?;
                    dst.create_dir(&name)?;
                }
                Err(_) => dst.create_dir(&name)?,
            }
            dst.set_permissions(&name, meta.permissions())?;
            merge(&from, &dst.open_dir_nofollow(&name)?)?;
            continue;
        }
        remove_any(dst, &name)?;
        if ft.is_symlink() {
            dst.symlink_contents(src.read_link_contents(&name)?, &name)?;
        } else if ft.is_file() && src.hard_link(&name, dst, &name).is_err() {
            src.copy(&name, dst, &name)?;
        }
    }
    Ok(())
}

fn remove_any(dir: &Dir, name: &OsStr) -> io::Result<()> {
    match dir.symlink_metadata(name) {
        Ok(m) if m.is_dir() => dir.remove_dir_all(name),
        Ok(_) => dir.remove_file(name),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// An overlayfs whiteout: a 0:0 character device.
fn is_whiteout(meta: &Metadata) -> bool {
    use cap_std::fs::{FileTypeExt, MetadataExt};
    meta.file_type().is_char_device() && meta.rdev() == 0
}

/// Whether an unpacked layer directory is opaque (`trusted.overlay.opaque`
/// is `y`, as the unpacker marks it).
#[cfg(target_os = "linux")]
fn is_opaque(dir: &Dir) -> bool {
    // cap-std's directory descriptors are O_PATH, which fgetxattr refuses.
    let Ok(fd) = crate::unpack::reopen(dir) else {
        return false;
    };
    let mut value = [0u8; 1];
    rustix::fs::fgetxattr(&fd, "trusted.overlay.opaque", &mut value).is_ok_and(|n| n == 1)
        && value[0] == b'y'
}

/// Layers are unpacked with overlayfs's whiteouts only on Linux.
#[cfg(not(target_os = "linux"))]
fn is_opaque(_dir: &Dir) -> bool {
    false
}

/// `/a/./b/../c` → `a/c`, relative to the root; `..` never climbs above it.
fn normalize(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir => {}
            Component::Prefix(_) => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn open(p: &Path) -> Dir {
        Dir::open_ambient_dir(p, cap_std::ambient_authority()).expect("open")
    }

    fn write(p: PathBuf, content: &str) {
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, content).expect("write");
    }

    #[test]
    fn reads_through_layers_and_symlinks() {
        let lower = tempfile::tempdir().expect("tempdir");
        let upper = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(lower.path().join("usr/bin")).expect("mkdir");
        std::fs::write(lower.path().join("usr/bin/real"), b"\0asm\x01\0\0\0").expect("write");
        std::fs::create_dir_all(upper.path().join("bin")).expect("mkdir");
        // An absolute link in the upper layer resolves in the merged root, not on the host.
        symlink("/usr/bin/real", upper.path().join("bin/app")).expect("symlink");
        symlink("/etc/passwd", upper.path().join("bin/escape")).expect("symlink");
        let stack = LayerStack::from_dirs(vec![open(upper.path()), open(lower.path())]);
        assert_eq!(
            stack.read_head("/bin/app", 4).as_deref(),
            Some(&b"\0asm"[..])
        );
        assert_eq!(stack.read_head("/bin/escape", 4), None);
        assert_eq!(
            stack.read_head("/../../usr/bin/real", 2).as_deref(),
            Some(&b"\0a"[..])
        );
        assert!(!stack.is_file("/usr/bin"));
    }

    const PASSWD: &str =
        "root:x:0:0:root:/root:/bin/sh\n_apt:x:4242:65534::/nonexistent:/bin/false\n";

    #[test]
    fn users_come_from_the_image_even_through_symlinked_etc() {
        // /etc is an absolute symlink inside the image: its users are found.
        let img = tempfile::tempdir().expect("tempdir");
        write(img.path().join("cfg/passwd"), PASSWD);
        write(img.path().join("cfg/group"), "root:x:0:\n");
        symlink("/cfg", img.path().join("etc")).expect("symlink");
        let stack = LayerStack::from_dirs(vec![open(img.path())]);
        let apt = stack.identity("_apt").expect("_apt");
        assert_eq!(
            (apt.uid, apt.gid, apt.home.as_str()),
            (4242, 65534, "/nonexistent")
        );

        // /etc points at /etc, and passwd out of the image: never the host's.
        for (etc, passwd) in [
            (Some("/etc"), None),
            (None, Some("../../../../../etc/passwd")),
        ] {
            let img = tempfile::tempdir().expect("tempdir");
            match (etc, passwd) {
                (Some(t), _) => symlink(t, img.path().join("etc")).expect("symlink"),
                (_, Some(t)) => {
                    std::fs::create_dir(img.path().join("etc")).expect("mkdir");
                    symlink(t, img.path().join("etc/passwd")).expect("symlink");
                }
                _ => unreachable!(),
            }
            let stack = LayerStack::from_dirs(vec![open(img.path())]);
            // The host has root in its /etc/passwd; the image has no passwd.
            let err = stack
                .identity("root")
                .expect_err("resolved through the host");
            assert!(err.to_string().contains("no matching entries"), "{err}");
            assert_eq!(stack.identity("0").expect("uid 0").uid, 0);
        }
    }

    #[test]
    fn whiteouts_and_opaque_directories_hide_lower_files() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: whiteouts and trusted xattrs need root");
            return;
        }
        let lower = tempfile::tempdir().expect("tempdir");
        let upper = tempfile::tempdir().expect("tempdir");
        write(lower.path().join("etc/passwd"), PASSWD);
        write(lower.path().join("opt/old/file"), "old");
        write(lower.path().join("keep/file"), "kept");
        // Upper: /etc/passwd whited out, /opt/old opaque and empty.
        std::fs::create_dir_all(upper.path().join("etc")).expect("mkdir");
        let dev = std::ffi::CString::new(
            upper
                .path()
                .join("etc/passwd")
                .into_os_string()
                .into_encoded_bytes(),
        )
        .expect("cstring");
        // SAFETY: `dev` is an owned CString alive across the call; mknod reads
        // no other memory.
        let r = unsafe { libc::mknod(dev.as_ptr(), libc::S_IFCHR, 0) };
        assert_eq!(r, 0, "mknod: {}", io::Error::last_os_error());
        std::fs::create_dir_all(upper.path().join("opt/old")).expect("mkdir");
        rustix::fs::setxattr(
            upper.path().join("opt/old"),
            "trusted.overlay.opaque",
            b"y",
            rustix::fs::XattrFlags::empty(),
        )
        .expect("setxattr");
        let stack = LayerStack::from_dirs(vec![open(upper.path()), open(lower.path())]);
        assert_eq!(stack.read("/etc/passwd"), None);
        assert_eq!(stack.read("/opt/old/file"), None);
        assert_eq!(stack.read("/keep/file").as_deref(), Some(&b"kept"[..]));

        let merged = tempfile::tempdir().expect("tempdir");
        stack.merge_into(&open(merged.path())).expect("merge");
        assert!(!merged.path().join("etc/passwd").exists());
        assert!(merged.path().join("opt/old").is_dir());
        assert!(!merged.path().join("opt/old/file").exists());
        assert_eq!(
            std::fs::read_to_string(merged.path().join("keep/file")).expect("read"),
            "kept"
        );
    }
}
