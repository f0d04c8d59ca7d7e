//! The crate's one error type.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// An operating-system error number, displayed the way wrun prints errors:
/// lowercase, without the "(os error N)" suffix (`permission denied`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i32);

impl Errno {
    /// The calling thread's last error (`errno`).
    pub fn last() -> Self {
        Errno(io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = io::Error::from_raw_os_error(self.0).to_string();
        // std renders "Permission denied (os error 13)".
        let text = text
            .rsplit_once(" (os error ")
            .map_or(text.as_str(), |(head, _)| head);
        let mut chars = text.chars();
        match chars.next() {
            Some(first) => write!(f, "{}{}", first.to_lowercase(), chars.as_str()),
            None => write!(f, "error {}", self.0),
        }
    }
}

impl std::error::Error for Errno {}

impl From<io::Error> for Errno {
    fn from(e: io::Error) -> Self {
        Errno(e.raw_os_error().unwrap_or(libc::EIO))
    }
}

/// Everything that can go wrong building or running a native container.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The native runtime exists only on Linux.
    #[error("native containers are unsupported on this operating system")]
    Unsupported,

    /// Native containers need root for now; a user namespace for rootless
    /// use is not implemented yet.
    #[error("rootless native containers are not supported yet: run wrun as root")]
    Rootless,

    /// The run options or the runtime spec are not usable.
    #[error("invalid container configuration: {reason}")]
    InvalidSpec {
        /// What is wrong, in a few words.
        reason: String,
    },

    /// A `--tmpfs PATH[:OPTIONS]` argument could not be parsed.
    #[error("invalid tmpfs mount {spec:?}")]
    InvalidTmpfs {
        /// The argument as given.
        spec: String,
        /// Why it is refused.
        #[source]
        source: crate::spec::TmpfsError,
    },
    /// A `-v HOST:CTR[:ro|rw]` argument could not be parsed.
    #[error("invalid mount spec {spec:?}: {reason}")]
    InvalidMount {
        /// The argument as given.
        spec: String,
        /// Why it is refused.
        reason: String,
    },

    /// A `--device HOST[:CONTAINER][:PERMS]` argument could not be parsed.
    #[error("invalid device {spec:?}: {reason}")]
    InvalidDevice {
        /// The argument as given.
        spec: String,
        /// Why it is refused.
        reason: String,
    },

    /// A path given as a device (`--device`) is not a character or block
    /// device.
    #[error("{path} is not a device")]
    NotADevice {
        /// The path as given.
        path: PathBuf,
    },

    /// A capability name is not known.
    #[error("unknown capability {name:?}")]
    UnknownCapability {
        /// The name as given.
        name: String,
    },

    /// A seccomp profile could not be read, parsed or compiled.
    #[error("seccomp profile {path}: {reason}")]
    SeccompProfile {
        /// The profile file (or `<default>`).
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// libseccomp could not compile a seccomp filter (`add a rule for
    /// mount` …).
    #[error("compile seccomp filter: {what}")]
    SeccompCompile {
        /// The step that failed.
        what: String,
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// A host file operation of the launcher failed.
    #[error("{action} {path}")]
    Io {
        /// What was being done (`create`, `remove`, `read` …).
        action: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A cgroup could not be created, configured, or removed.
    #[error("cgroup {path}: {action}")]
    Cgroup {
        /// What was being done (`set memory.max to 1048576` …).
        action: String,
        /// The cgroup file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: Errno,
    },

    /// The init helper could not be started.
    #[error("start init helper {path}")]
    SpawnHelper {
        /// The helper executable.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A step of the container set-up in the init helper failed,
    /// e.g. `mount /proc` with `permission denied`.
    #[error("{step}")]
    Setup {
        /// The step that failed, naming what it acted on.
        step: String,
        /// The underlying error.
        #[source]
        source: Errno,
    },

    /// The workload itself could not be executed; `wrun run` exits 127 for
    /// a missing binary and 126 for any other failure, as docker does.
    #[error("exec {path}")]
    Exec {
        /// The command as given in the spec's args\[0\].
        path: String,
        /// The underlying error.
        #[source]
        source: Errno,
    },

    /// The launcher and the init helper disagreed on the protocol between
    /// them, or the helper died without a word.
    #[error("init helper: {reason}")]
    Protocol {
        /// What happened.
        reason: String,
    },
}

impl Error {
    /// The exit code `wrun run` should use for this error, as docker does:
    /// 127 when the command does not exist, 126 when it cannot be executed,
    /// 125 for every failure of wrun itself.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Exec { source, .. } if source.0 == libc::ENOENT => 127,
            Error::Exec { .. } => 126,
            _ => 125,
        }
    }

    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        Error::InvalidSpec {
            reason: reason.into(),
        }
    }

    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_is_lowercase_without_suffix() {
        assert_eq!(Errno(libc::EACCES).to_string(), "permission denied");
        assert_eq!(Errno(libc::ENOENT).to_string(), "no such file or directory");
    }

    #[test]
    fn exec_exit_codes_follow_docker() {
        let missing = Error::Exec {
            path: "/bin/nope".into(),
            source: Errno(libc::ENOENT),
        };
        assert_eq!(missing.exit_code(), 127);
        let denied = Error::Exec {
            path: "/etc/passwd".into(),
            source: Errno(libc::EACCES),
        };
        assert_eq!(denied.exit_code(), 126);
        assert_eq!(Error::Unsupported.exit_code(), 125);
    }
}
