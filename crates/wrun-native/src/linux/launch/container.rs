//! A running container: its handle, how it ended, and the signals sent to it.

use std::fs;
use std::io;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout};
use std::sync::Arc;

use super::super::cgroup::Cgroup;
use super::super::proto::{self, FromHelper, ToHelper};
use super::pty::resize_pty;
use super::state::Cleanup;
use crate::error::{Error, Result};

/// How a container ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitStatus {
    pub(super) code: Option<i32>,
    pub(super) signal: Option<i32>,
    pub(super) oom_killed: bool,
}

impl ExitStatus {
    /// The workload's exit code, if it exited.
    pub fn code(&self) -> Option<i32> {
        self.code
    }

    /// The signal that killed the workload, if one did.
    pub fn signal(&self) -> Option<i32> {
        self.signal
    }

    /// Whether the kernel's OOM killer killed a process of the container.
    pub fn oom_killed(&self) -> bool {
        self.oom_killed
    }

    /// The code `wrun run` exits with: the workload's, or 128+N for signal N.
    pub fn exit_code(&self) -> i32 {
        match (self.code, self.signal) {
            (Some(c), _) => c,
            (None, Some(s)) => 128 + s,
            (None, None) => 125,
        }
    }
}

/// A running container. Dropping it without [`wait`](Self::wait) kills
/// the container and cleans up.
#[derive(Debug)]
pub struct Container {
    pub(super) id: String,
    pub(super) dir: PathBuf,
    pub(super) pty: Option<fs::File>,
    pub(super) child: Option<Child>,
    pub(super) sock: Arc<UnixStream>,
    pub(super) pid: i32,
    pub(super) cgroup: Cgroup,
}

/// Sends signals to a container from another thread (e.g. the CLI's
/// signal-forwarding thread, or a timeout).
#[derive(Debug, Clone)]
pub struct Signaller {
    pub(super) sock: Arc<UnixStream>,
}

impl Signaller {
    /// Sends signal `sig` to the container's pid 1.
    pub fn signal(&self, sig: i32) -> Result<()> {
        send_signal(&self.sock, sig)
    }
}

pub(super) fn send_signal(sock: &UnixStream, sig: i32) -> Result<()> {
    proto::send(sock, &ToHelper::Signal(sig)).map_err(|e| Error::Protocol {
        reason: format!("send signal {sig}: {e}"),
    })
}

impl Container {
    /// The container's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The workload's pid, as seen from this process's pid namespace.
    pub fn pid(&self) -> u32 {
        self.pid as u32
    }

    /// Sends signal `sig` to the container's pid 1. As for any pid 1, the
    /// kernel drops signals the workload has no handler for, except
    /// SIGKILL and SIGSTOP.
    ///
    /// The library installs no signal handler: a CLI that wants SIGINT,
    /// SIGTERM and SIGHUP forwarded installs its own and calls this (or a
    /// [`Signaller`]).
    pub fn signal(&self, sig: i32) -> Result<()> {
        send_signal(&self.sock, sig)
    }

    /// A handle that sends signals from another thread.
    pub fn signaller(&self) -> Signaller {
        Signaller {
            sock: Arc::clone(&self.sock),
        }
    }

    /// The write end of the workload's stdin, when it was `Stdio::piped()`.
    pub fn take_stdin(&mut self) -> Option<ChildStdin> {
        self.child.as_mut().and_then(|c| c.stdin.take())
    }

    /// The read end of the workload's stdout, when it was `Stdio::piped()`.
    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.child.as_mut().and_then(|c| c.stdout.take())
    }

    /// The read end of the workload's stderr, when it was `Stdio::piped()`.
    pub fn take_stderr(&mut self) -> Option<ChildStderr> {
        self.child.as_mut().and_then(|c| c.stderr.take())
    }

    /// The master side of the workload's terminal, when the spec asked for
    /// one (`process.terminal`). The caller copies between it and its own
    /// terminal (in raw mode); reads fail with EIO once the workload ends.
    pub fn take_pty(&mut self) -> Option<fs::File> {
        self.pty.take()
    }

    /// Sets the terminal's size (on SIGWINCH, say). A no-op without a
    /// terminal or after [`take_pty`](Self::take_pty) (resize the taken
    /// file with [`resize_pty`]).
    pub fn resize(&self, rows: u16, cols: u16) -> Result<()> {
        match &self.pty {
            Some(m) => resize_pty(m, rows, cols),
            None => Ok(()),
        }
    }

    /// Waits for the workload to end, then removes the container (its
    /// cgroup, upper layer and state directory).
    pub fn wait(mut self) -> Result<ExitStatus> {
        let mut status = None;
        loop {
            match proto::recv::<_, FromHelper>(&*self.sock) {
                Ok(Some(FromHelper::Exited(c))) => {
                    status = Some((Some(c), None));
                    break;
                }
                Ok(Some(FromHelper::Signaled(s))) => {
                    status = Some((None, Some(s)));
                    break;
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let helper = self.child.take().map(|mut c| c.wait());
        let oom_killed = self.cgroup.oom_kills() > 0;
        let cleanup = self.cleanup();
        let (code, signal) = match status {
            Some(s) => s,
            None => {
                return Err(Error::Protocol {
                    reason: format!(
                        "exited without the workload's status ({})",
                        match helper {
                            Some(Ok(s)) => s.to_string(),
                            Some(Err(e)) => e.to_string(),
                            None => "not started".into(),
                        }
                    ),
                });
            }
        };
        cleanup?;
        Ok(ExitStatus {
            code,
            signal,
            oom_killed,
        })
    }

    fn cleanup(&mut self) -> Result<()> {
        let mut guard = Cleanup {
            dir: Some(self.dir.clone()),
            cgroup: Some(self.cgroup.clone()),
        };
        guard.run()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = send_signal(&self.sock, libc::SIGKILL);
            let _ = self.sock.shutdown(std::net::Shutdown::Both);
            let _ = child.wait();
            let _ = self.cleanup();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn exit_codes_follow_the_shell() {
        let s = |code, signal| ExitStatus {
            code,
            signal,
            oom_killed: false,
        };
        assert_eq!(s(Some(3), None).exit_code(), 3);
        assert_eq!(s(None, Some(9)).exit_code(), 137);
        assert_eq!(s(None, Some(15)).exit_code(), 143);
    }
}
