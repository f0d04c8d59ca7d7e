//! The plugin host: one engine with a pooling allocator, one linker, and the
//! thread that advances the engine's epoch for timeouts.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::component::types::{self, ComponentItem, Type};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::bindings::{PluginCore, PluginCorePre};
use crate::plugin::Plugin;
use crate::state::State;
use crate::{Error, HANDLER};
use wrun_wasm::embed::boxed;

/// How important a plugin's log line is (the WIT's `log.level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected the plugin handled.
    Warn,
    /// A failure.
    Error,
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        })
    }
}

/// One line a plugin logged through the `log` interface.
#[derive(Debug, Clone, Copy)]
pub struct LogRecord<'a> {
    /// The name of the plugin that logged it.
    pub plugin: &'a str,
    /// Its level.
    pub level: LogLevel,
    /// The text, as the plugin wrote it.
    pub message: &'a str,
}

/// Where plugins' log lines go.
pub(crate) type LogSink = Arc<dyn Fn(&LogRecord<'_>) + Send + Sync>;

/// How a [`PluginHost`] is set up.
///
/// `HostConfig::new()`:
/// - room for [`max_instances`](Self::max_instances) = 1,000 live instances,
/// - at most [`max_memory`](Self::max_memory) = 64 MiB of linear memory per instance,
/// - an epoch tick of 10 ms (the granularity of timeouts),
/// - no fuel metering,
/// - log lines to stderr as `[plugin NAME] LEVEL: MESSAGE`.
#[derive(Clone)]
pub struct HostConfig {
    max_instances: u32,
    max_memory: u64,
    tick: Duration,
    fuel: bool,
    log: LogSink,
}

impl fmt::Debug for HostConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostConfig")
            .field("max_instances", &self.max_instances)
            .field("max_memory", &self.max_memory)
            .field("tick", &self.tick)
            .field("fuel", &self.fuel)
            .finish_non_exhaustive()
    }
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            max_instances: 1000,
            max_memory: 64 << 20,
            tick: Duration::from_millis(10),
            fuel: false,
            log: Arc::new(|record: &LogRecord<'_>| {
                eprintln!(
                    "[plugin {}] {}: {}",
                    record.plugin, record.level, record.message
                );
            }),
        }
    }
}

impl HostConfig {
    /// The defaults listed on the type.
    pub fn new() -> HostConfig {
        HostConfig::default()
    }

    /// How many plugin instances may be alive at once. The pooling allocator
    /// reserves (virtual) room for this many up front; instantiating beyond
    /// it fails with [`Error::PoolExhausted`].
    pub fn max_instances(&mut self, count: u32) -> &mut Self {
        self.max_instances = count.max(1);
        self
    }

    /// The most linear memory any instance may have, in bytes; the pool's
    /// slot size. [`Grants::memory_limit`](crate::Grants::memory_limit)
    /// lowers it per instance.
    pub fn max_memory(&mut self, bytes: u64) -> &mut Self {
        self.max_memory = bytes;
        self
    }

    /// How often the engine's epoch advances: the granularity of timeouts.
    pub fn epoch_tick(&mut self, tick: Duration) -> &mut Self {
        self.tick = tick.max(Duration::from_millis(1));
        self
    }

    /// Whether to meter fuel, so that [`Grants::fuel`](crate::Grants::fuel)
    /// can be used. Metering makes compiled code slower.
    pub fn fuel(&mut self, on: bool) -> &mut Self {
        self.fuel = on;
        self
    }

    pub(crate) fn tick(&self) -> Duration {
        self.tick
    }

    pub(crate) fn fuel_enabled(&self) -> bool {
        self.fuel
    }

    pub(crate) fn max_memory_bytes(&self) -> u64 {
        self.max_memory
    }

    pub(crate) fn log_sink(&self) -> LogSink {
        self.log.clone()
    }

    /// Sends plugins' log lines to `sink` instead of stderr. It is called
    /// on the thread that runs the plugin, during the call.
    pub fn on_log(&mut self, sink: impl Fn(&LogRecord<'_>) + Send + Sync + 'static) -> &mut Self {
        self.log = Arc::new(sink);
        self
    }
}

/// Loads plugins and runs their instances.
///
/// Build one per process (or per kind of plugin) and share it: it owns the
/// Wasmtime engine, the instance pool and a thread that ticks the epoch for
/// timeouts; the thread stops when the host and every [`Plugin`] and
/// [`Instance`](crate::Instance) from it are dropped. `PluginHost` is cheap
/// to clone and can be used from many threads.
#[derive(Clone)]
pub struct PluginHost {
    pub(crate) inner: Arc<HostInner>,
}

impl fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginHost")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

pub(crate) struct HostInner {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<State>,
    pub(crate) config: HostConfig,
    ticker: Ticker,
}

impl Drop for HostInner {
    fn drop(&mut self) {
        self.ticker.stop();
    }
}

impl PluginHost {
    /// A host set up as `config` says.
    pub fn new(config: &HostConfig) -> Result<PluginHost, Error> {
        let engine = engine(config).map_err(|err| Error::Engine { source: boxed(err) })?;
        let linker = linker(&engine).map_err(|err| Error::Engine { source: boxed(err) })?;
        let ticker = Ticker::start(engine.clone(), config.tick).map_err(|err| Error::Engine {
            source: Box::new(err),
        })?;
        Ok(PluginHost {
            inner: Arc::new(HostInner {
                engine,
                linker,
                config: config.clone(),
                ticker,
            }),
        })
    }

    /// Loads the plugin in the component file at `path`, named after the
    /// file's stem. See [`load_bytes`](Self::load_bytes).
    ///
    /// # Ambient Authority
    ///
    /// Reads `path` with the process's authority.
    pub fn load_file(&self, path: impl AsRef<Path>) -> Result<Plugin, Error> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        self.load_bytes(&name, &bytes)
    }

    /// Compiles the component `bytes` (binary) as the plugin `name` and checks
    /// that it fits the `wrun:plugin` world: it imports nothing beyond the
    /// world's `log`, `config` and WASI 0.2 interfaces
    /// ([`Error::UnsupportedImport`] otherwise) and exports
    /// `wrun:plugin/handler@0.1.0` with the right `call`
    /// ([`Error::WrongWorld`] otherwise).
    ///
    /// Compilation happens once here; instances are then cheap.
    pub fn load_bytes(&self, name: &str, bytes: &[u8]) -> Result<Plugin, Error> {
        let inner = &self.inner;
        let component = Component::new(&inner.engine, bytes).map_err(|err| Error::Load {
            plugin: name.to_string(),
            source: boxed(err),
        })?;
        let ty = component.component_type();
        let pre = inner.linker.instantiate_pre(&component).map_err(|err| {
            let foreign = ty
                .imports(&inner.engine)
                .map(|(import, _)| import)
                .find(|import| !is_offered(import));
            match foreign {
                Some(import) => Error::UnsupportedImport {
                    plugin: name.to_string(),
                    import: import.to_string(),
                },
                None => Error::Load {
                    plugin: name.to_string(),
                    source: boxed(err),
                },
            }
        })?;
        if !ty
            .exports(&inner.engine)
            .any(|(export, _)| export == HANDLER)
        {
            return Err(Error::WrongWorld {
                plugin: name.to_string(),
                missing: HANDLER.to_string(),
            });
        }
        let wrong_call = || Error::WrongWorld {
            plugin: name.to_string(),
            missing: format!("{HANDLER}#call of type {CALL_TYPE}"),
        };
        if call_type(&inner.engine, &ty).as_deref() != Some(CALL_TYPE) {
            return Err(wrong_call());
        }
        let pre = PluginCorePre::new(pre).map_err(|_| wrong_call())?;
        Ok(Plugin::new(self.inner.clone(), name, pre))
    }
}

/// The type `handler.call` must have, as [`call_type`] spells it.
const CALL_TYPE: &str = "func(record{name: string, payload: list<u8>}) -> \
    result<record{content-type: string, payload: list<u8>}, record{code: u32, message: string}>";

/// The type of the component's `handler.call`, spelled structurally (type
/// names are not part of a component's type), if it exports one.
///
/// Checked at load time because the generated `…Pre::new` only looks the
/// export up; a mistyped `call` would otherwise fail at its first call.
fn call_type(engine: &Engine, component: &types::Component) -> Option<String> {
    let ComponentItem::ComponentInstance(handler) = component.get_export(engine, HANDLER)?.ty
    else {
        return None;
    };
    let ComponentItem::ComponentFunc(call) = handler.get_export(engine, "call")?.ty else {
        return None;
    };
    let params: Vec<String> = call.params().map(|(_, ty)| spell(&ty)).collect();
    let results: Vec<String> = call.results().map(|ty| spell(&ty)).collect();
    Some(format!(
        "func({}) -> {}",
        params.join(", "),
        results.join(", ")
    ))
}

/// A component value type, spelled in WIT-like syntax (records by their
/// fields, since names are not part of the type).
fn spell(ty: &Type) -> String {
    match ty {
        Type::U8 => "u8".into(),
        Type::U32 => "u32".into(),
        Type::String => "string".into(),
        Type::List(list) => format!("list<{}>", spell(&list.ty())),
        Type::Record(record) => {
            let fields: Vec<String> = record
                .fields()
                .map(|field| format!("{}: {}", field.name, spell(&field.ty)))
                .collect();
            format!("record{{{}}}", fields.join(", "))
        }
        Type::Result(result) => {
            let side = |ty: Option<Type>| ty.map_or_else(|| "_".to_string(), |ty| spell(&ty));
            format!("result<{}, {}>", side(result.ok()), side(result.err()))
        }
        other => format!("{other:?}"),
    }
}

/// Whether a host of this crate offers the import `name`: the world's own
/// interfaces and WASI 0.2 (which `wasmtime-wasi` provides in full; grants
/// decide what it can reach).
fn is_offered(name: &str) -> bool {
    name.starts_with("wrun:plugin/") || name.starts_with("wasi:")
}

/// The engine: epoch interruption always on (timeouts), fuel when asked, and
/// the pooling allocator sized for `max_instances`.
fn engine(config: &HostConfig) -> wasmtime::Result<Engine> {
    let n = config.max_instances;
    let mut pool = PoolingAllocationConfig::default();
    // A plugin made by wit-component is up to three core instances (the
    // module, and a shim and fix-up module for imports that return strings
    // or lists) with one memory and one table; leave headroom for
    // hand-made components with a few more.
    pool.total_component_instances(n)
        .total_core_instances(n.saturating_mul(4))
        .total_memories(n.saturating_mul(2))
        .total_tables(n.saturating_mul(2))
        .max_memory_size(usize::try_from(config.max_memory).unwrap_or(usize::MAX));
    let mut settings = wasmtime::Config::new();
    settings
        .epoch_interruption(true)
        .consume_fuel(config.fuel)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&settings)
}

/// The linker every instance is made with: the world's `log` and `config`
/// from [`State`], and all of WASI 0.2 from `wasmtime-wasi` (what it can
/// reach is each instance's `WasiCtx`, built from its grants).
fn linker(engine: &Engine) -> wasmtime::Result<Linker<State>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    PluginCore::add_to_linker::<State, HasSelf<State>>(&mut linker, |state| state)?;
    Ok(linker)
}

/// A thread that advances the engine's epoch every tick until stopped.
struct Ticker {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    fn start(engine: Engine, tick: Duration) -> std::io::Result<Ticker> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("wrun-plugin-epoch".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(tick) {
                    engine.increment_epoch();
                }
            })?;
        Ok(Ticker {
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    fn stop(&mut self) {
        // Dropping the sender wakes the thread with `Disconnected`.
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
