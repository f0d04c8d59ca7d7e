use std::path::PathBuf;
use std::time::Duration;

/// How much of a granted directory a workload may use.
///
/// wrun's own two-valued type, mapped at the edge: to Wasmtime's `FsPerms`
/// in `wrun-wasm`, to a read-only bind remount in `wrun-native`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Access {
    /// Read and list only.
    #[default]
    ReadOnly,
    /// Read, write, create and remove.
    ReadWrite,
}

/// A host directory granted to a workload at a path of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirGrant {
    /// The directory on the host.
    pub host: PathBuf,
    /// Where the workload sees it (an absolute path).
    pub guest: String,
    /// What the workload may do there.
    pub access: Access,
}

impl DirGrant {
    /// Parses docker's `-v HOST:GUEST[:ro|rw]`. Both paths must be absolute
    /// (named volumes do not exist in wrun); the default is read-write, as
    /// docker's.
    pub fn parse(spec: &str) -> Result<DirGrant, InvalidMount> {
        let bad = |reason: &'static str| InvalidMount {
            spec: spec.to_string(),
            reason,
        };
        let parts: Vec<&str> = spec.split(':').collect();
        let (host, guest, access) = match parts.as_slice() {
            [h, g] => (*h, *g, Access::ReadWrite),
            [h, g, "ro"] => (*h, *g, Access::ReadOnly),
            [h, g, "rw"] => (*h, *g, Access::ReadWrite),
            [_, _, _] => return Err(bad("the mode must be ro or rw")),
            _ => return Err(bad("expected HOST:PATH[:ro|rw]")),
        };
        if !host.starts_with('/') {
            return Err(bad(
                "the host path must be absolute (named volumes are not supported)",
            ));
        }
        if !guest.starts_with('/') {
            return Err(bad("the path inside must be absolute"));
        }
        if guest.split('/').any(|c| c == "..") {
            return Err(bad("the path inside must not contain `..`"));
        }
        Ok(DirGrant {
            host: PathBuf::from(host),
            guest: guest.to_string(),
            access,
        })
    }
}

/// A `-v` that does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid mount {spec:?}: {reason}")]
pub struct InvalidMount {
    /// The text given.
    pub spec: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// The network a workload may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Network {
    /// None: Wasm gets no sockets; a native container gets a namespace with
    /// only loopback.
    #[default]
    None,
    /// The host's network: WASI sockets and name lookup for Wasm, the host's
    /// network namespace for native containers.
    Host,
}

/// Resource limits. `None` means "no limit was asked for".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limits {
    /// Memory in bytes (linear memory for Wasm, the cgroup limit for native).
    pub memory: Option<u64>,
    /// Memory plus swap in bytes (native only); -1 means unlimited swap.
    pub memory_swap: Option<i64>,
    /// Number of processes (native only).
    pub pids: Option<i64>,
    /// CPU quota in CPUs (native only).
    pub cpus: Option<f64>,
    /// CPU shares, relative weight (native only).
    pub cpu_shares: Option<u64>,
    /// Wall-clock time after which the workload is stopped.
    pub timeout: Option<Duration>,
    /// Wasm fuel: instructions the guest may execute (Wasm only).
    pub fuel: Option<u64>,
}

/// Everything a workload is granted.
///
/// `Sandbox::default()` grants nothing:
/// - no host directory,
/// - no environment variable,
/// - no network,
/// - no resource limit beyond the runtime's defaults.
///
/// Each grant is added explicitly, in the style of `std::process::Command`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sandbox {
    dirs: Vec<DirGrant>,
    env: Vec<(String, String)>,
    network: Network,
    limits: Limits,
}

impl Sandbox {
    /// A sandbox that grants nothing (see the type's documentation).
    pub fn new() -> Self {
        Self::default()
    }

    /// Grants the host directory `host` at `guest` with `access`.
    pub fn dir(
        &mut self,
        host: impl Into<PathBuf>,
        guest: impl Into<String>,
        access: Access,
    ) -> &mut Self {
        self.dirs.push(DirGrant {
            host: host.into(),
            guest: guest.into(),
            access,
        });
        self
    }

    /// Sets the environment variable `key` to `value`, replacing an earlier value.
    pub fn env(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        let key = key.into();
        let value = value.into();
        match self.env.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.env.push((key, value)),
        }
        self
    }

    /// Sets several environment variables, in order.
    pub fn envs<I, K, V>(&mut self, vars: I) -> &mut Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        for (k, v) in vars {
            self.env(k, v);
        }
        self
    }

    /// Grants a network.
    pub fn network(&mut self, network: Network) -> &mut Self {
        self.network = network;
        self
    }

    /// Sets the resource limits.
    pub fn limits(&mut self, limits: Limits) -> &mut Self {
        self.limits = limits;
        self
    }

    /// The granted directories, in the order they were granted.
    pub fn dirs(&self) -> &[DirGrant] {
        &self.dirs
    }

    /// The environment, in the order it was set.
    pub fn env_vars(&self) -> &[(String, String)] {
        &self.env
    }

    /// The granted network.
    pub fn network_grant(&self) -> Network {
        self.network
    }

    /// The resource limits.
    pub fn limit_values(&self) -> &Limits {
        &self.limits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mounts() {
        assert_eq!(
            DirGrant::parse("/a:/b:ro"),
            Ok(DirGrant {
                host: "/a".into(),
                guest: "/b".into(),
                access: Access::ReadOnly
            })
        );
        assert_eq!(
            DirGrant::parse("/a:/b").map(|g| g.access),
            Ok(Access::ReadWrite)
        );
        for bad in ["a:/b", "/a:b", "/a", "/a:/b:rx", "/a:/b/../c", "/a:/b:ro:x"] {
            assert!(DirGrant::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn new_grants_nothing() {
        let s = Sandbox::new();
        assert!(s.dirs().is_empty());
        assert!(s.env_vars().is_empty());
        assert_eq!(s.network_grant(), Network::None);
        assert_eq!(s.limit_values(), &Limits::default());
    }

    #[test]
    fn env_replaces_earlier_value_in_place() {
        let mut s = Sandbox::new();
        s.env("A", "1").env("B", "2").env("A", "3");
        assert_eq!(
            s.env_vars(),
            &[
                ("A".to_string(), "3".to_string()),
                ("B".to_string(), "2".to_string())
            ]
        );
    }
}
