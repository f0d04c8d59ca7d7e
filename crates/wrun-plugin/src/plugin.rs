//! A loaded plugin and its instances.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::ResourceTable;
use wasmtime::{PoolConcurrencyLimitError, Store};
use wrun_wasm::embed::{self, Fault, MemoryLimiter, boxed};

use crate::Error;
use crate::bindings::wrun::plugin::types;
use crate::bindings::{PluginCore, PluginCorePre};
use crate::grants::{DEFAULT_TIMEOUT, Grants, wasi_ctx};
use crate::host::HostInner;
use crate::state::State;

/// What the host asks of a plugin (the WIT's `request`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// The operation, chosen by the host application.
    pub name: String,
    /// The operation's input.
    pub payload: Vec<u8>,
}

impl Request {
    /// A request for the operation `name` with `payload`.
    pub fn new(name: impl Into<String>, payload: impl Into<Vec<u8>>) -> Request {
        Request {
            name: name.into(),
            payload: payload.into(),
        }
    }
}

/// A plugin's answer (the WIT's `response`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response {
    /// A media type for `payload`.
    pub content_type: String,
    /// The output.
    pub payload: Vec<u8>,
}

/// A compiled plugin that fits the `wrun:plugin` world, ready to
/// instantiate any number of times. Cheap to clone; `Send` and `Sync`.
#[derive(Clone)]
pub struct Plugin {
    host: Arc<HostInner>,
    name: Arc<str>,
    pre: PluginCorePre<State>,
}

impl fmt::Debug for Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Plugin {
    pub(crate) fn new(host: Arc<HostInner>, name: &str, pre: PluginCorePre<State>) -> Plugin {
        Plugin {
            host,
            name: name.into(),
            pre,
        }
    }

    /// The plugin's name (given to `load_bytes`, or the file's stem).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A new instance with `grants` and nothing else: its own memory, its
    /// own WASI context, its own configuration.
    ///
    /// Fails with [`Error::Grant`] when a granted directory cannot be
    /// opened, [`Error::Unsupported`] when the grants hold a limit only
    /// native containers have, [`Error::FuelDisabled`] when fuel is granted
    /// on a host that does not meter it, [`Error::PoolExhausted`] when the host already has
    /// [`max_instances`](crate::HostConfig::max_instances) live instances.
    pub fn instantiate(&self, grants: &Grants) -> Result<Instance, Error> {
        let config = &self.host.config;
        let limits = grants.limits();
        if let Some(what) = embed::native_only(limits) {
            return Err(Error::Unsupported { what });
        }
        if limits.fuel.is_some() && !config.fuel_enabled() {
            return Err(Error::FuelDisabled);
        }
        let limit = limits.memory.map_or(config.max_memory_bytes(), |m| {
            m.min(config.max_memory_bytes())
        });
        let state = State {
            wasi: wasi_ctx(grants)?,
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(Some(limit)),
            config: Arc::clone(&grants.config),
            log: config.log_sink(),
            plugin: self.name.clone(),
        };
        let timeout = limits.timeout.unwrap_or(DEFAULT_TIMEOUT);
        let mut store = Store::new(&self.host.engine, state);
        store.limiter(|state| &mut state.limiter);
        let mut instance = Instance {
            plugin: self.name.clone(),
            store,
            bindings: None,
            timeout,
            deadline_ticks: deadline_ticks(timeout, config.tick()),
            fuel: limits.fuel,
            memory: limit,
            metered: config.fuel_enabled(),
            poisoned: false,
        };
        instance.arm()?;
        let result = self.pre.instantiate(&mut instance.store);
        match result {
            Ok(bindings) => {
                instance.bindings = Some(bindings);
                Ok(instance)
            }
            Err(err) if err.is::<PoolConcurrencyLimitError>() => Err(Error::PoolExhausted {
                plugin: self.name.to_string(),
            }),
            Err(err) => Err(match instance.failure(err) {
                Error::Call { plugin, source } => Error::Instantiate { plugin, source },
                other => other,
            }),
        }
    }
}

/// One live instance of a plugin: call it as often as needed, from one
/// thread at a time (it is `Send`; move it to where it is used).
///
/// After a trap, a timeout or a limit, the instance is unusable (later calls
/// fail with [`Error::Poisoned`]); other instances are unaffected.
pub struct Instance {
    plugin: Arc<str>,
    store: Store<State>,
    bindings: Option<PluginCore>,
    timeout: Duration,
    /// Epoch ticks from the start of a call to its deadline.
    deadline_ticks: u64,
    fuel: Option<u64>,
    /// The memory limit its limiter enforces, in bytes.
    memory: u64,
    /// Whether the engine meters fuel (then every call gets fuel).
    metered: bool,
    poisoned: bool,
}

impl fmt::Debug for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Instance")
            .field("plugin", &self.plugin)
            .field("timeout", &self.timeout)
            .field("fuel", &self.fuel)
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

impl Instance {
    /// The name of the plugin this is an instance of.
    pub fn plugin(&self) -> &str {
        &self.plugin
    }

    /// Calls the plugin's `handler.call` with `request`.
    ///
    /// Its own error result is [`Error::Plugin`] (the instance stays
    /// usable). A trap is [`Error::Trap`], running past the granted time
    /// [`Error::Timeout`], out of fuel [`Error::FuelExhausted`], a trap after
    /// a refused memory growth [`Error::MemoryLimit`]; after those the
    /// instance is unusable.
    pub fn call(&mut self, request: Request) -> Result<Response, Error> {
        if self.poisoned {
            return Err(Error::Poisoned {
                plugin: self.plugin.to_string(),
            });
        }
        self.arm()?;
        let input = types::Request {
            name: request.name,
            payload: request.payload,
        };
        let Some(bindings) = &self.bindings else {
            return Err(Error::Poisoned {
                plugin: self.plugin.to_string(),
            });
        };
        let result = bindings
            .wrun_plugin_handler()
            .call_call(&mut self.store, &input);
        match result {
            Ok(Ok(response)) => Ok(Response {
                content_type: response.content_type,
                payload: response.payload,
            }),
            Ok(Err(types::PluginError { code, message })) => Err(Error::Plugin {
                plugin: self.plugin.to_string(),
                code,
                message,
            }),
            Err(err) => {
                self.poisoned = true;
                Err(self.failure(err))
            }
        }
    }

    /// Sets the deadline and the fuel for the next call.
    fn arm(&mut self) -> Result<(), Error> {
        self.store.set_epoch_deadline(self.deadline_ticks);
        if self.metered {
            let fuel = self.fuel.unwrap_or(u64::MAX);
            self.store.set_fuel(fuel).map_err(|err| Error::Call {
                plugin: self.plugin.to_string(),
                source: boxed(err),
            })?;
        }
        Ok(())
    }

    /// The typed error for a failed call or instantiation, read by the same
    /// function that reads `wrun run`'s failures.
    fn failure(&self, err: wasmtime::Error) -> Error {
        let plugin = self.plugin.to_string();
        match embed::classify(err) {
            Fault::Interrupted => Error::Timeout {
                plugin,
                after: self.timeout,
            },
            Fault::OutOfFuel => Error::FuelExhausted {
                plugin,
                fuel: self.fuel.unwrap_or(u64::MAX),
            },
            // Whatever failed after a refused growth failed for want of
            // memory (a trap, or an instantiation that could not get its
            // initial memory).
            _ if self.store.data().limiter.refused() => Error::MemoryLimit {
                plugin,
                limit: self.memory,
            },
            Fault::Trap { message, .. } => Error::Trap { plugin, message },
            // A plugin is called, not run: exiting is a failure of the call.
            Fault::Exit(code) => Error::Call {
                plugin,
                source: format!("the plugin exited with code {code}").into(),
            },
            Fault::Other(source) => Error::Call { plugin, source },
        }
    }
}

/// The epoch ticks after which a call that started at any point of a tick
/// has run for at least `timeout`: the epoch is the engine's, advanced by
/// the host's ticker, so the first tick may come at once. The deadline is
/// the store's own epoch deadline (Wasmtime interrupts the guest when it
/// passes), so arming a call reads no clock.
fn deadline_ticks(timeout: Duration, tick: Duration) -> u64 {
    let tick = tick.as_nanos().max(1);
    let ticks = timeout.as_nanos().div_ceil(tick).saturating_add(1);
    u64::try_from(ticks).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::deadline_ticks;
    use std::time::Duration;

    #[test]
    fn deadline_covers_the_timeout_whatever_the_phase_of_the_tick() {
        let ms = Duration::from_millis;
        assert_eq!(deadline_ticks(ms(100), ms(10)), 11);
        assert_eq!(deadline_ticks(ms(105), ms(10)), 12);
        assert_eq!(deadline_ticks(ms(1), ms(10)), 2);
        assert_eq!(deadline_ticks(Duration::ZERO, ms(10)), 1);
        assert_eq!(deadline_ticks(Duration::MAX, ms(1)), u64::MAX);
    }
}
