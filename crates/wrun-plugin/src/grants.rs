//! What an instance is granted, and its WASI context, built by the same
//! function that builds `wrun run`'s (`wrun_wasm::embed::grant`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use wasmtime_wasi::{WasiCtx, WasiCtxBuilder};
use wrun_core::{Access, Limits, Network, Sandbox};
use wrun_wasm::embed;

use crate::Error;

/// The time a call may run when [`Grants::timeout`] is not set.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything one plugin instance is granted: a [`wrun_core::Sandbox`] (the
/// same value `wrun run` grants a workload) plus the plugin's configuration.
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
/// of `std::process::Command`, or comes from a `Sandbox` built elsewhere
/// ([`Grants::from_sandbox`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Grants {
    pub(crate) sandbox: Sandbox,
    /// Shared with every instance made from these grants (no copy per
    /// instance).
    pub(crate) config: Arc<BTreeMap<String, String>>,
}

impl From<Sandbox> for Grants {
    fn from(sandbox: Sandbox) -> Grants {
        Grants::from_sandbox(sandbox)
    }
}

impl Grants {
    /// Grants that grant nothing (see the type's documentation).
    pub fn new() -> Grants {
        Grants::default()
    }

    /// Grants what `sandbox` grants (directories, environment, network,
    /// memory, time and fuel) and no configuration, so a host can reuse a
    /// `Sandbox` built for `wrun run`. A limit only native containers have
    /// (pids, CPU, swap) makes [`Plugin::instantiate`](crate::Plugin::instantiate)
    /// fail with [`Error::Unsupported`] rather than run without it.
    pub fn from_sandbox(sandbox: Sandbox) -> Grants {
        Grants {
            sandbox,
            config: Arc::default(),
        }
    }

    /// The sandbox part of the grants: everything but the configuration.
    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
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
        self.sandbox.dir(host, guest, access);
        self
    }

    /// Sets the environment variable `key` (as `wasi:cli/environment` shows
    /// it), replacing an earlier value.
    pub fn env(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.sandbox.env(key, value);
        self
    }

    /// Grants a network: [`Network::Host`] allows TCP, UDP and name lookup.
    pub fn network(&mut self, network: Network) -> &mut Self {
        self.sandbox.network(network);
        self
    }

    /// Sets the configuration value the plugin reads with `config.get(key)`.
    pub fn config(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        Arc::make_mut(&mut self.config).insert(key.into(), value.into());
        self
    }

    /// Caps the instance's linear memory, in bytes. Growth beyond it fails in
    /// the plugin (`memory.grow` returns -1); a plugin that traps after that
    /// fails with [`Error::MemoryLimit`]. The host's
    /// [`max_memory`](crate::HostConfig::max_memory) caps it too.
    pub fn memory_limit(&mut self, bytes: u64) -> &mut Self {
        self.limit(|limits| limits.memory = Some(bytes))
    }

    /// The wall-clock time each call may run (and instantiation may take).
    /// A call that runs longer is interrupted with [`Error::Timeout`], to
    /// within the host's epoch tick.
    pub fn timeout(&mut self, after: Duration) -> &mut Self {
        self.limit(|limits| limits.timeout = Some(after))
    }

    /// The fuel (roughly, Wasm instructions) each call may use; running out
    /// is [`Error::FuelExhausted`]. Needs a host with
    /// [`HostConfig::fuel`](crate::HostConfig::fuel) on, otherwise
    /// instantiation fails with [`Error::FuelDisabled`].
    pub fn fuel(&mut self, fuel: u64) -> &mut Self {
        self.limit(|limits| limits.fuel = Some(fuel))
    }

    fn limit(&mut self, set: impl FnOnce(&mut Limits)) -> &mut Self {
        let mut limits = self.sandbox.limit_values().clone();
        set(&mut limits);
        self.sandbox.limits(limits);
        self
    }

    pub(crate) fn limits(&self) -> &Limits {
        self.sandbox.limit_values()
    }
}

/// The plugin's view of the world, from `grants` alone: a WASI context that
/// starts from nothing and holds exactly the sandbox's grants (see
/// `wrun_wasm::embed::grant`).
///
/// # Ambient Authority
///
/// Opens each granted host directory by name with the process's authority;
/// the plugin then reaches only what lies beneath them.
pub(crate) fn wasi_ctx(grants: &Grants) -> Result<WasiCtx, Error> {
    let mut wasi = WasiCtxBuilder::new();
    // Calls run synchronously on the caller's thread: do file I/O there too
    // rather than hopping to a blocking-pool thread per operation.
    wasi.allow_blocking_current_thread(true);
    embed::grant(&mut wasi, &grants.sandbox)?;
    Ok(wasi.build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_are_a_sandbox_plus_configuration() {
        let mut sandbox = Sandbox::new();
        sandbox
            .dir("/srv", "/data", Access::ReadWrite)
            .env("A", "1")
            .network(Network::Host)
            .limits(Limits {
                memory: Some(1 << 20),
                timeout: Some(Duration::from_secs(2)),
                ..Limits::default()
            });
        let mut built = Grants::new();
        built
            .dir("/srv", "/data", Access::ReadWrite)
            .env("A", "0")
            .env("A", "1")
            .network(Network::Host)
            .memory_limit(1 << 20)
            .timeout(Duration::from_secs(2));
        assert_eq!(Grants::from(sandbox.clone()), built);
        assert_eq!(built.sandbox(), &sandbox);

        built.config("k", "v");
        assert_eq!(
            built.sandbox(),
            &sandbox,
            "configuration is not a sandbox grant"
        );
    }
}
