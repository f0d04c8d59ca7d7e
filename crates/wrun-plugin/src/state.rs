//! What each instance's store holds: its WASI context, its configuration,
//! the log sink, its memory limiter and its call deadline; and the host side
//! of the `log` and `config` interfaces.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::wrun::plugin::{config, log, types};
use crate::host::{LogLevel, LogRecord, LogSink};

/// The data of one instance's store.
pub(crate) struct State {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) config: Arc<BTreeMap<String, String>>,
    pub(crate) log: LogSink,
    pub(crate) plugin: Arc<str>,
    /// When the running call (or instantiation) must stop; checked at every
    /// epoch tick.
    pub(crate) deadline: Option<Instant>,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for State {}

impl log::Host for State {
    fn log(&mut self, level: log::Level, message: String) {
        let level = match level {
            log::Level::Trace => LogLevel::Trace,
            log::Level::Debug => LogLevel::Debug,
            log::Level::Info => LogLevel::Info,
            log::Level::Warn => LogLevel::Warn,
            log::Level::Error => LogLevel::Error,
        };
        (self.log)(&LogRecord {
            plugin: &self.plugin,
            level,
            message: &message,
        });
    }
}

impl config::Host for State {
    fn get(&mut self, key: String) -> Option<String> {
        self.config.get(&key).cloned()
    }
}

/// Caps the total linear memory of an instance (every memory of its
/// component counts).
///
/// Growth past the cap is refused, which the plugin sees as `memory.grow`
/// returning -1: a failure it may recover from. `refused` remembers it, so a
/// trap that follows is reported as [`Error::MemoryLimit`](crate::Error).
pub(crate) struct MemoryLimiter {
    pub(crate) limit: u64,
    used: usize,
    pub(crate) refused: bool,
}

impl MemoryLimiter {
    pub(crate) fn new(limit: u64) -> MemoryLimiter {
        MemoryLimiter {
            limit,
            used: 0,
            refused: false,
        }
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let limit = usize::try_from(self.limit).unwrap_or(usize::MAX);
        let grown = self.used.saturating_add(desired.saturating_sub(current));
        if maximum.is_some_and(|max| desired > max) || grown > limit {
            self.refused = true;
            return Ok(false);
        }
        self.used = grown;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(maximum.is_none_or(|max| desired <= max))
    }
}
