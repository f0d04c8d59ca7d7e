//! `-t`: the user's terminal in raw mode, copied to and from the
//! container's pty, resized when the user's window is.

use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::os::fd::AsRawFd;

/// The size of the terminal on stdout, if it is one.
pub fn size() -> Option<(u16, u16)> {
    let mut ws: libc::winsize = unsafe_zeroed_winsize();
    // SAFETY: TIOCGWINSZ writes one winsize to `ws`, a local alive and
    // writable across the call.
    let r = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) };
    (r == 0 && ws.ws_row > 0).then_some((ws.ws_row, ws.ws_col))
}

fn unsafe_zeroed_winsize() -> libc::winsize {
    libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

/// Puts stdin in raw mode while alive (when it is a terminal).
pub struct RawMode {
    saved: Option<libc::termios>,
}

impl RawMode {
    pub fn enable() -> RawMode {
        let stdin = io::stdin();
        if !stdin.is_terminal() {
            return RawMode { saved: None };
        }
        let fd = stdin.as_raw_fd();
        // SAFETY: termios is plain data, for which all-zero bytes are a value.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: `t` is a local termios, writable across the call; `fd` is
        // stdin's, which std never closes.
        if unsafe { libc::tcgetattr(fd, &mut t) } != 0 {
            return RawMode { saved: None };
        }
        let saved = t;
        // SAFETY: `t` is the local termios tcgetattr filled, alive across both
        // calls; `fd` is still stdin's.
        unsafe {
            libc::cfmakeraw(&mut t);
            libc::tcsetattr(fd, libc::TCSANOW, &t);
        }
        RawMode { saved: Some(saved) }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = &self.saved {
            // SAFETY: `t`, borrowed from self, lives across the call and holds
            // what tcgetattr read from stdin, which std never closes.
            unsafe {
                libc::tcsetattr(io::stdin().as_raw_fd(), libc::TCSANOW, t);
            }
        }
    }
}

/// Copies stdin to the pty (in the background) and the pty to stdout; the
/// returned thread ends when the container's side closes.
pub fn attach(master: File) -> io::Result<std::thread::JoinHandle<()>> {
    let mut input = master.try_clone()?;
    std::thread::Builder::new()
        .name("tty-in".into())
        .spawn(move || {
            let mut buf = [0u8; 4096];
            let mut stdin = io::stdin();
            while let Ok(n) = stdin.read(&mut buf) {
                if n == 0 || input.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        })?;
    let mut output = master;
    std::thread::Builder::new()
        .name("tty-out".into())
        .spawn(move || {
            let mut buf = [0u8; 8192];
            let mut stdout = io::stdout();
            // Reads fail with EIO once the container's side is closed.
            while let Ok(n) = output.read(&mut buf) {
                if n == 0 || stdout.write_all(&buf[..n]).is_err() {
                    break;
                }
                let _ = stdout.flush();
            }
        })
}
