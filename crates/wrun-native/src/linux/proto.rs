//! The messages between the launcher and the init helper, over a Unix
//! socket pair: a little-endian `u32` length, then JSON.

use std::io::{self, Read, Write};
use std::path::PathBuf;

use oci_spec::runtime::Spec;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::seccomp::Program;

/// The file descriptor the helper finds its socket on.
pub(crate) const HELPER_FD: i32 = 3;

/// What the helper needs to set up the container.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct InitConfig {
    pub id: String,
    pub spec: Spec,
    /// Unpacked layers, bottom first; never written.
    pub layers: Vec<PathBuf>,
    /// Holds upper/, work/ and merged/.
    pub state_dir: PathBuf,
    /// The files (`tasks` on v1, `cgroup.procs` on v2) the workload writes
    /// `0` into to join its cgroup, before anything else.
    pub cgroup_join: Vec<PathBuf>,
    /// How to mount /sys/fs/cgroup inside the container.
    pub cgroup_mount: CgroupMount,
    /// The pty slave bound on /dev/console, with a terminal.
    pub console: Option<PathBuf>,
    /// Files bound into the container (/etc/hosts …), with their contents.
    pub etc_files: Vec<(PathBuf, String)>,
    /// The spec's `linux.seccomp`, compiled by the launcher.
    pub seccomp: Option<Program>,
}

/// The cgroup file system the container sees.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum CgroupMount {
    /// A cgroup2 mount (its root is the container's cgroup, thanks to the
    /// cgroup namespace).
    V2,
    /// A tmpfs with one v1 mount per hierarchy, named as on the host
    /// (`memory`, `cpu,cpuacct` …).
    V1(Vec<String>),
}

/// Launcher → helper.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ToHelper {
    Config(Box<InitConfig>),
    Signal(i32),
}

/// A failed set-up step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Failure {
    pub step: String,
    pub errno: i32,
    /// The failure was the final execve (exit 126/127).
    pub exec: Option<String>,
}

/// Helper → launcher.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum FromHelper {
    /// The workload was exec'd; its pid in the launcher's pid namespace.
    Started(i32),
    Failed(Failure),
    Exited(i32),
    Signaled(i32),
}

pub(crate) fn send<W: Write, T: Serialize>(mut w: W, msg: &T) -> io::Result<()> {
    let body = serde_json::to_vec(msg).map_err(io::Error::other)?;
    let len = u32::try_from(body.len()).map_err(io::Error::other)?;
    let mut buf = Vec::with_capacity(body.len() + 4);
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&body);
    w.write_all(&buf)
}

/// `Ok(None)` on a clean end of stream.
pub(crate) fn recv<R: Read, T: DeserializeOwned>(mut r: R) -> io::Result<Option<T>> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut len[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > 64 << 20 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "message too large",
        ));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let mut buf = Vec::new();
        send(&mut buf, &FromHelper::Started(42)).expect("send");
        send(&mut buf, &FromHelper::Exited(3)).expect("send");
        let mut r = buf.as_slice();
        assert!(matches!(
            recv(&mut r).expect("recv"),
            Some(FromHelper::Started(42))
        ));
        assert!(matches!(
            recv(&mut r).expect("recv"),
            Some(FromHelper::Exited(3))
        ));
        assert!(recv::<_, FromHelper>(&mut r).expect("eof").is_none());
        let truncated = [9u8, 0, 0, 0, b'{'];
        assert!(recv::<_, FromHelper>(&mut &truncated[..]).is_err());
    }
}
