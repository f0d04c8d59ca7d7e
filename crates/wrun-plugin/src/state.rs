//! What each instance's store holds: its WASI context, its configuration,
//! the log sink, its memory limiter and its call deadline; and the host side
//! of the `log` and `config` interfaces.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wrun_wasm::embed::MemoryLimiter;

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
