//! What an instance is granted, and its WASI context: the only place that
//! maps wrun's [`Access`] to Wasmtime's `FsPerms` and that opens granted host
//! directories by name.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder};
use wrun_core::{Access, DirGrant, Network};

use crate::Error;
use crate::error::boxed;

/// The time a call may run when [`Grants::timeout`] is not set.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything one plugin instance is granted.
///
/// `Grants::new()` grants nothing:
/// - no host directory (`wasi:filesystem/preopens` lists none),
/// - no environment variable,
/// - no network (sockets and name lookup are refused),
/// - no configuration value (`config.get` returns `none` for every key),
/// - memory: the host's per-instance maximum
///   ([`HostConfig::max_memory`](crate::HostConfig::max_memory), 64 MiB by default),
/// - time: [`DEFAULT_TIMEOUT`] per call,
/// - fuel: not metered.
///
/// Clocks and random numbers are always available, and the plugin's stdin,
/// stdout and stderr are closed. Each grant is added explicitly, in the style
/// of `std::process::Command`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Grants {
    pub(crate) dirs: Vec<DirGrant>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) network: Network,
    pub(crate) config: BTreeMap<String, String>,
    pub(crate) memory: Option<u64>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) fuel: Option<u64>,
}

impl Grants {
    /// Grants that grant nothing (see the type's documentation).
    pub fn new() -> Grants {
        Grants::default()
    }

    /// Grants the host directory `host` at the absolute path `guest`, with
    /// `access`. The plugin cannot leave it: `..`, absolute paths and
    /// symlinks are resolved inside it.
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

    /// Sets the environment variable `key` (as `wasi:cli/environment` shows
    /// it), replacing an earlier value.
    pub fn env(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        let (key, value) = (key.into(), value.into());
        match self.env.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.env.push((key, value)),
        }
        self
    }

    /// Grants a network: [`Network::Host`] allows TCP, UDP and name lookup.
    pub fn network(&mut self, network: Network) -> &mut Self {
        self.network = network;
        self
    }

    /// Sets the configuration value the plugin reads with `config.get(key)`.
    pub fn config(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.config.insert(key.into(), value.into());
        self
    }

    /// Caps the instance's linear memory, in bytes. Growth beyond it fails in
    /// the plugin (`memory.grow` returns -1); a plugin that traps after that
    /// fails with [`Error::MemoryLimit`]. The host's
    /// [`max_memory`](crate::HostConfig::max_memory) caps it too.
    pub fn memory_limit(&mut self, bytes: u64) -> &mut Self {
        self.memory = Some(bytes);
        self
    }

    /// The wall-clock time each call may run (and instantiation may take).
    /// A call that runs longer is interrupted with [`Error::Timeout`], to
    /// within the host's epoch tick.
    pub fn timeout(&mut self, after: Duration) -> &mut Self {
        self.timeout = Some(after);
        self
    }

    /// The fuel (roughly, Wasm instructions) each call may use; running out
    /// is [`Error::FuelExhausted`]. Needs a host with
    /// [`HostConfig::fuel`](crate::HostConfig::fuel) on, otherwise
    /// instantiation fails with [`Error::FuelDisabled`].
    pub fn fuel(&mut self, fuel: u64) -> &mut Self {
        self.fuel = Some(fuel);
        self
    }
}

/// wrun's access level as Wasmtime's: the one mapping, so upstream renames
/// (such as `DirPerms`/`FilePerms` becoming `FsPerms` in Wasmtime 48) touch
/// one function.
pub(crate) fn fs_perms(access: Access) -> FsPerms {
    match access {
        Access::ReadOnly => FsPerms::ReadOnly,
        Access::ReadWrite => FsPerms::ReadWrite,
    }
}

/// The plugin's view of the world, from `grants` alone.
///
/// Starts from `WasiCtxBuilder::new()`, which grants nothing (no args, no
/// env, no preopens, stdio closed, no sockets), and adds exactly what is
/// granted. Nothing comes from the host process's own environment,
/// arguments or working directory.
///
/// # Ambient Authority
///
/// Opens each granted host directory by name with the process's authority;
/// the plugin then reaches only what lies beneath them (cap-std resolves
/// every path inside its preopen, so `..`, absolute paths and symlinks
/// cannot leave it).
pub(crate) fn wasi_ctx(grants: &Grants) -> Result<WasiCtx, Error> {
    let mut wasi = WasiCtxBuilder::new();
    // Calls run synchronously on the caller's thread: do file I/O there too
    // rather than hopping to a blocking-pool thread per operation.
    wasi.allow_blocking_current_thread(true);
    wasi.envs(&grants.env);
    for grant in &grants.dirs {
        if !grant.guest.starts_with('/') {
            return Err(Error::Grant {
                host: grant.host.clone(),
                guest: grant.guest.clone(),
                source: "the path inside must be absolute".into(),
            });
        }
        wasi.preopened_dir(&grant.host, &grant.guest, fs_perms(grant.access))
            .map_err(|err| Error::Grant {
                host: grant.host.clone(),
                guest: grant.guest.clone(),
                source: boxed(err),
            })?;
    }
    match grants.network {
        Network::Host => {
            wasi.inherit_network()
                .allow_tcp(true)
                .allow_udp(true)
                .allow_ip_name_lookup(true);
        }
        // Deny explicitly rather than rely on the builder's defaults, which
        // have changed between Wasmtime releases.
        _ => {
            wasi.allow_tcp(false)
                .allow_udp(false)
                .allow_ip_name_lookup(false)
                .socket_addr_check(|_, _| Box::pin(async { false }));
        }
    }
    Ok(wasi.build())
}
