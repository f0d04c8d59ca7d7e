//! The container's root file system: overlayfs over the shared layers, the
//! spec's mounts, default devices, pivot_root, masked and read-only paths.
//!
//! Everything here runs in the container's first process, single-threaded,
//! inside its own mount namespace.
//!
//! # Ambient Authority
//! Opens host paths by name: the layer directories, the state directory,
//! bind-mount sources and the host's device nodes.

use std::ffi::{CString, OsStr};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Mount};

use super::proto::CgroupMount;
use crate::error::Errno;

/// A failed step: what was done, and the error.
pub(crate) type StepResult<T = ()> = Result<T, (String, Errno)>;

pub(crate) fn cstr(p: impl AsRef<OsStr>) -> CString {
    // Paths from the spec and the file system never hold NUL bytes; an
    // interior NUL maps to an empty string, which the kernel refuses.
    CString::new(p.as_ref().as_bytes()).unwrap_or_default()
}

/// mount(2) with the error named after `what`.
pub(crate) fn mount(
    source: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
    what: impl FnOnce() -> String,
) -> StepResult {
    let source = source.map(cstr);
    let target_c = cstr(target);
    let fstype = fstype.map(cstr);
    let data = data.map(cstr);
    // SAFETY: every pointer is either null or a valid NUL-terminated string
    // that lives across the call.
    let r = unsafe {
        libc::mount(
            source.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
            target_c.as_ptr(),
            fstype.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
            flags,
            data.as_ref()
                .map_or(std::ptr::null(), |s| s.as_ptr() as *const libc::c_void),
        )
    };
    if r != 0 {
        return Err((what(), Errno::last()));
    }
    Ok(())
}

/// Resolves `unsafe_path` inside `root` as if `root` were `/`: symlinks
/// (absolute or relative) never lead outside `root`.
pub(crate) fn secure_join(root: &Path, unsafe_path: &Path) -> PathBuf {
    let mut resolved = PathBuf::new();
    let mut links = 0;
    // A stack of the components still to resolve, the next one on top.
    let mut queue: Vec<std::ffi::OsString> = Vec::new();
    for c in unsafe_path.components().rev() {
        match c {
            Component::Normal(n) => queue.push(n.to_os_string()),
            Component::ParentDir => queue.push("..".into()),
            _ => {}
        }
    }
    while let Some(name) = queue.pop() {
        if name == ".." {
            resolved.pop();
            continue;
        }
        let candidate = resolved.join(&name);
        let full = root.join(&candidate);
        match fs::symlink_metadata(&full) {
            Ok(m) if m.file_type().is_symlink() && links < 40 => {
                links += 1;
                let Ok(target) = fs::read_link(&full) else {
                    resolved = candidate;
                    continue;
                };
                if target.is_absolute() {
                    resolved = PathBuf::new();
                }
                for c in target.components().rev() {
                    match c {
                        Component::Normal(n) => queue.push(n.to_os_string()),
                        Component::ParentDir => queue.push("..".into()),
                        _ => {}
                    }
                }
            }
            _ => resolved = candidate,
        }
    }
    root.join(resolved)
}

fn mkdir_all(path: &Path) -> StepResult {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(path)
        .map_err(|e| (format!("create {}", path.display()), Errno::from(e)))
}

fn touch(path: &Path) -> StepResult {
    if let Some(parent) = path.parent() {
        mkdir_all(parent)?;
    }
    if fs::symlink_metadata(path).is_ok() {
        return Ok(());
    }
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map(drop)
        .map_err(|e| (format!("create {}", path.display()), Errno::from(e)))
}

/// Binds a file holding `content` (mode 0644) on `dest` in `rootfs`. The
/// file is written in `stage` and unlinked once bound (the mount keeps it),
/// so nothing of it is left to remove.
pub(crate) fn bind_file(rootfs: &Path, stage: &Path, dest: &Path, content: &str) -> StepResult {
    let shown = dest.display().to_string();
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let src = stage.join(format!(".wrun-{name}"));
    let write = || -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&src)?;
        f.set_permissions(fs::Permissions::from_mode(0o644))?;
        f.write_all(content.as_bytes())
    };
    write().map_err(|e| (format!("write {shown}"), Errno::from(e)))?;
    let target = secure_join(rootfs, dest);
    let bound = touch(&target).and_then(|()| {
        mount(
            Some(&src),
            &target,
            None,
            libc::MS_BIND | libc::MS_REC,
            None,
            || format!("bind mount {shown}"),
        )
    });
    let _ = fs::remove_file(&src);
    bound?;
    mount(
        None,
        &target,
        None,
        libc::MS_REC | libc::MS_PRIVATE,
        None,
        || format!("make {shown} private"),
    )
}

/// Mounts the overlay of `layers` (bottom first) with the container's upper
/// and work directories at `<state>/merged`, and returns that path.
pub(crate) fn mount_overlay(layers: &[PathBuf], state: &Path) -> StepResult<PathBuf> {
    let merged = state.join("merged");
    let lower: Vec<String> = layers
        .iter()
        .rev()
        .map(|l| l.display().to_string())
        .collect();
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        state.join("upper").display(),
        state.join("work").display()
    );
    // `volatile` (Linux 5.10+): the upper layer is thrown away with the
    // container, so overlayfs need not sync it to disk, which otherwise
    // costs a sync of the whole upper file system at unmount (about 100 ms
    // on a busy disk). Older kernels refuse the option: retry without it.
    let volatile = format!("{data},volatile");
    mount(
        Some(Path::new("overlay")),
        &merged,
        Some("overlay"),
        0,
        Some(&volatile),
        String::new,
    )
    .or_else(|_| {
        mount(
            Some(Path::new("overlay")),
            &merged,
            Some("overlay"),
            0,
            Some(&data),
            || format!("mount overlay on {}", merged.display()),
        )
    })?;
    Ok(merged)
}

/// Mount flags and file-system data from the spec's option strings.
pub(crate) struct Options {
    pub flags: libc::c_ulong,
    pub clear: libc::c_ulong,
    pub propagation: Vec<libc::c_ulong>,
    pub data: Vec<String>,
    pub bind: bool,
}

pub(crate) fn parse_options(options: &[String]) -> Options {
    let mut o = Options {
        flags: 0,
        clear: 0,
        propagation: Vec::new(),
        data: Vec::new(),
        bind: false,
    };
    for opt in options {
        let (set, clear): (libc::c_ulong, libc::c_ulong) = match opt.as_str() {
            "ro" => (libc::MS_RDONLY, 0),
            "rw" => (0, libc::MS_RDONLY),
            "nosuid" => (libc::MS_NOSUID, 0),
            "suid" => (0, libc::MS_NOSUID),
            "nodev" => (libc::MS_NODEV, 0),
            "dev" => (0, libc::MS_NODEV),
            "noexec" => (libc::MS_NOEXEC, 0),
            "exec" => (0, libc::MS_NOEXEC),
            "sync" => (libc::MS_SYNCHRONOUS, 0),
            "async" => (0, libc::MS_SYNCHRONOUS),
            "dirsync" => (libc::MS_DIRSYNC, 0),
            "noatime" => (libc::MS_NOATIME, 0),
            "atime" => (0, libc::MS_NOATIME),
            "nodiratime" => (libc::MS_NODIRATIME, 0),
            "diratime" => (0, libc::MS_NODIRATIME),
            "relatime" => (libc::MS_RELATIME, 0),
            "norelatime" => (0, libc::MS_RELATIME),
            "strictatime" => (libc::MS_STRICTATIME, 0),
            "nostrictatime" => (0, libc::MS_STRICTATIME),
            "bind" => {
                o.bind = true;
                (libc::MS_BIND, 0)
            }
            "rbind" => {
                o.bind = true;
                (libc::MS_BIND | libc::MS_REC, 0)
            }
            "private" => {
                o.propagation.push(libc::MS_PRIVATE);
                (0, 0)
            }
            "rprivate" => {
                o.propagation.push(libc::MS_PRIVATE | libc::MS_REC);
                (0, 0)
            }
            "slave" => {
                o.propagation.push(libc::MS_SLAVE);
                (0, 0)
            }
            "rslave" => {
                o.propagation.push(libc::MS_SLAVE | libc::MS_REC);
                (0, 0)
            }
            "shared" => {
                o.propagation.push(libc::MS_SHARED);
                (0, 0)
            }
            "rshared" => {
                o.propagation.push(libc::MS_SHARED | libc::MS_REC);
                (0, 0)
            }
            "unbindable" => {
                o.propagation.push(libc::MS_UNBINDABLE);
                (0, 0)
            }
            "runbindable" => {
                o.propagation.push(libc::MS_UNBINDABLE | libc::MS_REC);
                (0, 0)
            }
            other => {
                o.data.push(other.to_string());
                (0, 0)
            }
        };
        o.flags = (o.flags | set) & !clear;
        o.clear |= clear;
    }
    o
}

/// Mounts one entry of the spec's `mounts` under `rootfs`.
pub(crate) fn mount_entry(rootfs: &Path, m: &Mount, cgroup: &CgroupMount) -> StepResult {
    let options = m.options().clone().unwrap_or_default();
    let o = parse_options(&options);
    let typ = m.typ().clone().unwrap_or_else(|| {
        if o.bind {
            "bind".to_string()
        } else {
            "none".to_string()
        }
    });
    let dest = secure_join(rootfs, m.destination());
    let shown = m.destination().display().to_string();
    if typ == "bind" || o.bind {
        let source = m.source().clone().unwrap_or_default();
        let meta = fs::metadata(&source).map_err(|e| {
            (
                format!("bind mount {} on {shown}", source.display()),
                Errno::from(e),
            )
        })?;
        if meta.is_dir() {
            mkdir_all(&dest)?;
        } else {
            touch(&dest)?;
        }
        let rec = o.flags & libc::MS_REC;
        mount(
            Some(&source),
            &dest,
            None,
            libc::MS_BIND | rec,
            None,
            || format!("bind mount {} on {shown}", source.display()),
        )?;
        let extra = o.flags & !(libc::MS_BIND | libc::MS_REC);
        if extra != 0 {
            mount(
                None,
                &dest,
                None,
                libc::MS_BIND | libc::MS_REMOUNT | extra,
                None,
                || format!("remount {shown}"),
            )?;
        }
    } else if typ == "cgroup" || typ == "cgroup2" {
        mkdir_all(&dest)?;
        let flags = o.flags & !libc::MS_RDONLY;
        match cgroup {
            CgroupMount::V2 => {
                mount(
                    Some(Path::new("cgroup2")),
                    &dest,
                    Some("cgroup2"),
                    o.flags,
                    None,
                    || format!("mount cgroup2 on {shown}"),
                )?;
            }
            CgroupMount::V1(hierarchies) => {
                mount(
                    Some(Path::new("tmpfs")),
                    &dest,
                    Some("tmpfs"),
                    flags,
                    Some("mode=755"),
                    || format!("mount tmpfs on {shown}"),
                )?;
                for h in hierarchies {
                    let sub = dest.join(h);
                    mkdir_all(&sub)?;
                    mount(
                        Some(Path::new("cgroup")),
                        &sub,
                        Some("cgroup"),
                        o.flags,
                        Some(h),
                        || format!("mount cgroup {h} on {shown}/{h}"),
                    )?;
                }
                if o.flags & libc::MS_RDONLY != 0 {
                    mount(
                        None,
                        &dest,
                        None,
                        libc::MS_REMOUNT | o.flags,
                        Some("mode=755"),
                        || format!("remount {shown} read-only"),
                    )?;
                }
            }
        }
    } else {
        mkdir_all(&dest)?;
        let source = m.source().clone().unwrap_or_else(|| PathBuf::from(&typ));
        let data = o.data.join(",");
        let data = (!data.is_empty()).then_some(data);
        let res = mount(
            Some(&source),
            &dest,
            Some(&typ),
            o.flags,
            data.as_deref(),
            || format!("mount {typ} on {shown}"),
        );
        match res {
            // sysfs cannot be mounted outside an own network namespace in
            // some set-ups: fall back to a read-only bind of the host's.
            Err(_) if typ == "sysfs" => {
                mount(
                    Some(Path::new("/sys")),
                    &dest,
                    None,
                    libc::MS_BIND | libc::MS_REC,
                    None,
                    || format!("bind mount /sys on {shown}"),
                )?;
                mount(
                    None,
                    &dest,
                    None,
                    libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | o.flags,
                    None,
                    || format!("remount {shown} read-only"),
                )?;
            }
            other => other?,
        }
    }
    for p in &o.propagation {
        mount(None, &dest, None, *p, None, || {
            format!("set propagation of {shown}")
        })?;
    }
    Ok(())
}

/// The devices every container gets, bind-mounted from the host, and the
/// usual symlinks.
pub(crate) fn default_devices(rootfs: &Path, console: Option<&Path>) -> StepResult {
    let dev = rootfs.join("dev");
    if let Some(console) = console {
        let dest = dev.join("console");
        touch(&dest)?;
        mount(Some(console), &dest, None, libc::MS_BIND, None, || {
            format!("bind mount {} on /dev/console", console.display())
        })?;
    }
    for name in ["null", "zero", "full", "random", "urandom", "tty"] {
        let dest = dev.join(name);
        touch(&dest)?;
        let host = Path::new("/dev").join(name);
        mount(Some(&host), &dest, None, libc::MS_BIND, None, || {
            format!("bind mount {} on /dev/{name}", host.display())
        })?;
    }
    let links = [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
        ("core", "/proc/kcore"),
    ];
    for (name, target) in links {
        let link = dev.join(name);
        if fs::symlink_metadata(&link).is_ok() {
            continue;
        }
        symlink(target, &link).map_err(|e| (format!("create /dev/{name}"), Errno::from(e)))?;
    }
    Ok(())
}

/// Creates the spec's `linux.devices` nodes under `rootfs`, as runc does:
/// after the mounts (a node under /dev lands on the container's /dev
/// tmpfs), mknod with the entry's type and numbers, then its mode (0666 if
/// none, whatever the umask) and owner (root if none). A path that exists
/// already (a default device bound from the host) is left as it is.
pub(crate) fn create_devices(rootfs: &Path, devices: &[LinuxDevice]) -> StepResult {
    for d in devices {
        let shown = d.path().display().to_string();
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => libc::S_IFCHR,
            LinuxDeviceType::B => libc::S_IFBLK,
            LinuxDeviceType::P => libc::S_IFIFO,
            LinuxDeviceType::A => {
                return Err((format!("create device {shown}"), Errno(libc::EINVAL)));
            }
        };
        let dest = secure_join(rootfs, d.path());
        if let Some(parent) = dest.parent() {
            mkdir_all(parent)?;
        }
        let mode = d.file_mode().unwrap_or(0o666) & 0o7777;
        // The launcher checked that the numbers fit in 32 bits.
        let dev = libc::makedev(d.major() as u32, d.minor() as u32);
        let c = cstr(&dest);
        // SAFETY: `c` is an owned CString alive across this call and the two
        // below; mknod reads no other memory.
        if unsafe { libc::mknod(c.as_ptr(), kind | mode, dev) } != 0 {
            let e = Errno::last();
            if e.0 == libc::EEXIST {
                continue;
            }
            return Err((format!("create device {shown}"), e));
        }
        // SAFETY: as above; the node was just made, so it is no symlink.
        if unsafe { libc::chmod(c.as_ptr(), mode) } != 0
            // SAFETY: as above; lchown never follows a symlink.
            || unsafe { libc::lchown(c.as_ptr(), d.uid().unwrap_or(0), d.gid().unwrap_or(0)) }
                != 0
        {
            return Err((format!("set the mode and owner of {shown}"), Errno::last()));
        }
    }
    Ok(())
}

/// Makes `rootfs` the root with pivot_root.
pub(crate) fn pivot_root(rootfs: &Path) -> StepResult {
    // pivot_root, not chroot: chroot only changes the calling process's
    // idea of `/`; the old root stays reachable (a process holding a
    // directory fd, or root with CAP_SYS_CHROOT calling chroot again, walks
    // back out with `..`). pivot_root moves the old root to a mount point we
    // then detach, so nothing of the host's file system is left in this
    // mount namespace. "pivot_root(".", ".")" stacks the old root on the new
    // one, so no temporary directory is needed (runc's trick).
    let root_c = cstr(rootfs);
    // SAFETY: `root_c` is an owned CString alive across the call.
    if unsafe { libc::chdir(root_c.as_ptr()) } != 0 {
        return Err((format!("chdir {}", rootfs.display()), Errno::last()));
    }
    let dot = cstr(".");
    // SAFETY: `dot` is an owned CString alive across the call, passed as both
    // paths; pivot_root (no libc wrapper) only reads them.
    if unsafe { libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) } != 0 {
        return Err(("pivot_root".to_string(), Errno::last()));
    }
    // SAFETY: `dot` is still alive; umount2 only reads the path.
    if unsafe { libc::umount2(dot.as_ptr(), libc::MNT_DETACH) } != 0 {
        return Err(("detach the old root".to_string(), Errno::last()));
    }
    let slash = cstr("/");
    // SAFETY: `slash` is an owned CString alive across the call.
    if unsafe { libc::chdir(slash.as_ptr()) } != 0 {
        return Err(("chdir /".to_string(), Errno::last()));
    }
    Ok(())
}

/// Hides `path` (after pivot_root): /dev/null over files, an empty
/// read-only tmpfs over directories.
pub(crate) fn mask_path(path: &str) -> StepResult {
    let p = Path::new(path);
    match fs::metadata(p) {
        Err(_) => Ok(()),
        Ok(m) if m.is_dir() => mount(
            Some(Path::new("tmpfs")),
            p,
            Some("tmpfs"),
            libc::MS_RDONLY,
            None,
            || format!("mask {path}"),
        ),
        Ok(_) => mount(
            Some(Path::new("/dev/null")),
            p,
            None,
            libc::MS_BIND,
            None,
            || format!("mask {path}"),
        ),
    }
}

/// Makes `path` read-only (after pivot_root).
pub(crate) fn readonly_path(path: &str) -> StepResult {
    let p = Path::new(path);
    if fs::symlink_metadata(p).is_err() {
        return Ok(());
    }
    mount(Some(p), p, None, libc::MS_BIND | libc::MS_REC, None, || {
        format!("bind {path} read-only")
    })?;
    mount(
        None,
        p,
        None,
        libc::MS_BIND
            | libc::MS_REMOUNT
            | libc::MS_RDONLY
            | libc::MS_NOSUID
            | libc::MS_NODEV
            | libc::MS_NOEXEC,
        None,
        || format!("remount {path} read-only"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secure_join_stays_inside_the_root() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path();
        fs::create_dir_all(root.join("a/b")).expect("mkdir");
        symlink("/etc", root.join("a/abs")).expect("symlink");
        symlink("../../../../..", root.join("a/b/up")).expect("symlink");
        assert_eq!(secure_join(root, Path::new("/a/b")), root.join("a/b"));
        assert_eq!(
            secure_join(root, Path::new("/a/abs/passwd")),
            root.join("etc/passwd")
        );
        assert_eq!(secure_join(root, Path::new("/a/b/up/x")), root.join("x"));
        assert_eq!(secure_join(root, Path::new("/../../x")), root.join("x"));
    }

    #[test]
    fn options_split_into_flags_and_data() {
        let o = parse_options(&[
            "nosuid".into(),
            "ro".into(),
            "mode=755".into(),
            "rbind".into(),
            "rprivate".into(),
        ]);
        assert_eq!(
            o.flags,
            libc::MS_NOSUID | libc::MS_RDONLY | libc::MS_BIND | libc::MS_REC
        );
        assert_eq!(o.data, vec!["mode=755".to_string()]);
        assert!(o.bind);
        assert_eq!(o.propagation, vec![libc::MS_PRIVATE | libc::MS_REC]);
    }
}
