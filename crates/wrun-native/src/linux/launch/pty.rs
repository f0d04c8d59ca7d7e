//! The terminal a container with `process.terminal` gets.

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Sets the window size of a terminal (a pty master from
/// [`Container::take_pty`]).
pub fn resize_pty(master: &fs::File, rows: u16, cols: u16) -> Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize that lives across the call.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) } < 0 {
        return Err(Error::io("resize", "pty", io::Error::last_os_error()));
    }
    Ok(())
}

pub(super) struct Pty {
    pub(super) master: fs::File,
    pub(super) slave: fs::File,
    pub(super) path: PathBuf,
}

pub(super) fn open_pty(size: Option<(u16, u16)>) -> Result<Pty> {
    let ptmx = Path::new("/dev/ptmx");
    let err = |e: io::Error| Error::io("open", ptmx, e);
    // SAFETY: posix_openpt passes no pointer; the result is checked for -1
    // below before it is owned.
    let fd = unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(err(io::Error::last_os_error()));
    }
    // SAFETY: posix_openpt returned a new fd we own.
    let master = fs::File::from(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) });
    // SAFETY: neither call takes a pointer; `fd` is owned by `master`, alive
    // to the end of this function, so it still names our pty master.
    if unsafe { libc::grantpt(fd) } != 0 || unsafe { libc::unlockpt(fd) } != 0 {
        return Err(err(io::Error::last_os_error()));
    }
    let mut buf = [0 as libc::c_char; 128];
    // SAFETY: `buf` is a writable buffer of the length given.
    if unsafe { libc::ptsname_r(fd, buf.as_mut_ptr(), buf.len()) } != 0 {
        return Err(err(io::Error::last_os_error()));
    }
    // SAFETY: ptsname_r NUL-terminated the name in `buf`.
    let name = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
    let path = PathBuf::from(std::ffi::OsStr::from_bytes(name.to_bytes()));
    let slave = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(&path)
        .map_err(|e| Error::io("open", &path, e))?;
    if let Some((rows, cols)) = size {
        resize_pty(&master, rows, cols)?;
    }
    Ok(Pty {
        master,
        slave,
        path,
    })
}
