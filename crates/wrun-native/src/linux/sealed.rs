//! The init helper runs from a sealed view of wrun's executable.
//!
//! Whatever of wrun's binary runs inside a container's namespaces (the init
//! helper until it execs the workload, the `--init` reaper for the whole
//! life of the container) is visible there as `/proc/PID/exe`. A container
//! process that holds that link, waits for the process to exec something
//! else and then reopens it for writing would overwrite the host's binary
//! (CVE-2019-5736). So the helper is never exec'd from the host path:
//!
//! - as runc 1.2 does, the binary is reached through an overlayfs mount made
//!   for the purpose: its directory as the upper of two lower layers, an
//!   empty directory below, no upper layer, mounted read-only. No file there
//!   can be opened for writing, by anyone. The mount is made with
//!   `fsopen`/`fsmount` and never attached to any mount namespace, so no
//!   process can find it to remount it; it lives as long as a descriptor or
//!   a running program refers to it.
//! - where overlayfs cannot be used (a kernel before 5.2, or a file system
//!   overlayfs refuses as a lower layer), the binary is copied into a memfd
//!   sealed against writing, growing and shrinking (runc 1.1's fix), which
//!   costs a copy of the binary per launcher.
//!
//! Either way the launcher execs `/proc/self/fd/N`.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
const MOUNT_ATTR_RDONLY: libc::c_uint = 0x1;
const MOUNT_ATTR_NOSUID: libc::c_uint = 0x2;
const MOUNT_ATTR_NODEV: libc::c_uint = 0x4;
const MFD_EXEC: libc::c_uint = 0x10;

/// How the executable was sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sealing {
    /// Through a detached read-only overlayfs mount.
    Overlay,
    /// A sealed memfd copy.
    Memfd,
}

/// An executable no process can open for writing.
#[derive(Debug)]
pub(crate) struct SealedExe {
    fd: OwnedFd,
    #[cfg_attr(not(test), allow(dead_code))]
    sealing: Sealing,
}

impl SealedExe {
    /// Seals `binary`, using `empty` (an empty directory, created if
    /// missing) as the bottom layer of the overlay.
    ///
    /// # Ambient Authority
    /// Opens `binary` and `empty` by path.
    pub(crate) fn new(binary: &Path, empty: &Path) -> Result<SealedExe> {
        let real = std::fs::canonicalize(binary).map_err(|e| Error::io("resolve", binary, e))?;
        match std::fs::create_dir(empty) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io("create", empty, e)),
        }
        if let Ok(fd) = overlay(&real, empty) {
            return Ok(SealedExe {
                fd,
                sealing: Sealing::Overlay,
            });
        }
        let fd = memfd(&real).map_err(|e| Error::io("seal a copy of", &real, e))?;
        Ok(SealedExe {
            fd,
            sealing: Sealing::Memfd,
        })
    }

    /// The path this process execs the sealed executable by.
    pub(crate) fn path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))
    }

    /// How it was sealed.
    #[cfg(test)]
    pub(crate) fn sealing(&self) -> Sealing {
        self.sealing
    }
}

fn cstring(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// The result of a call that creates a descriptor, owned; the error of
/// the call when it failed (negative).
///
/// # Safety
/// A non-negative `fd` must be a descriptor the call just made, which
/// nothing else owns or closes.
unsafe fn owned(fd: libc::c_long) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the caller guarantees a new descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

/// A lower-directory path as overlayfs parses it: `:` separates layers and
/// `\` escapes.
fn escape_lower(path: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for &b in path.as_os_str().as_bytes() {
        if matches!(b, b':' | b',' | b'\\') {
            out.push(b'\\');
        }
        out.push(b);
    }
    out
}

fn fsconfig_string(ctx: &OwnedFd, key: &str, value: &[u8]) -> io::Result<()> {
    let key = cstring(key.as_bytes())?;
    let value = cstring(value)?;
    // SAFETY: `ctx` is an fs context descriptor; key and value are
    // NUL-terminated strings that outlive the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            ctx.as_raw_fd(),
            FSCONFIG_SET_STRING,
            key.as_ptr(),
            value.as_ptr(),
            0,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn overlay(binary: &Path, empty: &Path) -> io::Result<OwnedFd> {
    let (Some(dir), Some(name)) = (binary.parent(), binary.file_name()) else {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    };
    let fstype = cstring(b"overlay")?;
    // SAFETY: `fstype` is an owned CString alive across the call; fsopen
    // returns a new context fd, which goes straight to `owned`.
    let ctx = unsafe {
        owned(libc::syscall(
            libc::SYS_fsopen,
            fstype.as_ptr(),
            FSOPEN_CLOEXEC,
        ))
    }?;
    let mut lower = escape_lower(dir);
    lower.push(b':');
    lower.extend(escape_lower(empty));
    fsconfig_string(&ctx, "lowerdir", &lower)?;
    // Inode-number translation is of no use here, and where the layers are
    // on different file systems it logs a warning for each mount.
    let _ = fsconfig_string(&ctx, "xino", "off".as_bytes());
    // SAFETY: `ctx` is an fs context descriptor; CMD_CREATE takes no key or
    // value.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            ctx.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fsmount passes no pointer; `ctx` is borrowed, so it stays open
    // for the call, and the detached mount's fd goes straight to `owned`.
    let mnt = unsafe {
        owned(libc::syscall(
            libc::SYS_fsmount,
            ctx.as_raw_fd(),
            FSMOUNT_CLOEXEC,
            MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
        ))
    }?;
    let name = cstring(name.as_bytes())?;
    // SAFETY: `mnt` (borrowed, open for the call) is the mount's root and
    // `name` an owned CString alive across it; the fd goes to `owned`.
    let exe = unsafe {
        owned(libc::openat(
            mnt.as_raw_fd(),
            name.as_ptr(),
            libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        ) as libc::c_long)
    }?;
    Ok(exe)
}

fn memfd(binary: &Path) -> io::Result<OwnedFd> {
    let mut src = File::open(binary)?;
    let name = cstring(b"wrun")?;
    let flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    // Kernels with vm.memfd_noexec want executability asked for (MFD_EXEC);
    // older ones do not know the flag.
    // SAFETY: `name` is an owned CString alive across the call; the result
    // is checked and owned by `owned` below.
    let mut fd = unsafe { libc::memfd_create(name.as_ptr(), flags | MFD_EXEC) };
    if fd < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
        // SAFETY: as above.
        fd = unsafe { libc::memfd_create(name.as_ptr(), flags) };
    }
    // SAFETY: `fd` is memfd_create's result, a new fd nothing else owns.
    let fd = unsafe { owned(fd as libc::c_long) }?;
    let mut copy = File::from(fd);
    io::copy(&mut src, &mut copy)?;
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: F_ADD_SEALS passes no pointer; `copy` owns the memfd and keeps
    // it open for the call, and seals only restrict later writes.
    if unsafe { libc::fcntl(copy.as_raw_fd(), libc::F_ADD_SEALS, seals) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(OwnedFd::from(copy))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;
    use std::io::Write;

    #[test]
    fn lower_paths_are_escaped() {
        assert_eq!(
            escape_lower(Path::new("/a:b,c\\d")),
            b"/a\\:b\\,c\\\\d".to_vec()
        );
    }

    #[test]
    fn a_sealed_memfd_refuses_writes_and_keeps_the_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("prog");
        std::fs::write(&bin, b"\x7fELF original").expect("write");
        let fd = memfd(&bin).expect("memfd");
        let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
        assert_eq!(std::fs::read(&path).expect("read"), b"\x7fELF original");
        let write = OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut f| f.write_all(b"x"));
        assert!(write.is_err(), "a write to the sealed copy went through");
        assert_eq!(std::fs::read(&bin).expect("read"), b"\x7fELF original");
    }

    #[test]
    fn the_overlay_view_cannot_be_opened_for_writing() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: mounting overlayfs needs root");
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("bin")).expect("mkdir");
        let bin = dir.path().join("bin/prog");
        std::fs::write(&bin, b"original").expect("write");
        let sealed = SealedExe::new(&bin, &dir.path().join("empty")).expect("seal");
        assert_eq!(sealed.sealing(), Sealing::Overlay);
        assert_eq!(std::fs::read(sealed.path()).expect("read"), b"original");
        let err = OpenOptions::new()
            .write(true)
            .open(sealed.path())
            .expect_err("opened the sealed view for writing");
        assert_eq!(err.raw_os_error(), Some(libc::EROFS));
        assert_eq!(std::fs::read(&bin).expect("read"), b"original");
    }
}
