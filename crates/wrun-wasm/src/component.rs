//! Components, run as WASI 0.2 commands through `wasi:cli/run`.

use wasmtime::Store;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime_wasi::p2::bindings::sync::CommandPre;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::engine::{Backend, Stage, outcome_of};
use crate::error::boxed;
use crate::limits::{self, Limited, MemoryLimiter, Timer};
use crate::{Error, Job};

pub(crate) struct P2State {
    ctx: WasiCtx,
    table: ResourceTable,
    limiter: MemoryLimiter,
}

impl WasiView for P2State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }
}

impl Limited for P2State {
    fn limiter(&mut self) -> &mut MemoryLimiter {
        &mut self.limiter
    }
}

/// The linker every component is instantiated against: WASI 0.2 and
/// nothing else.
pub(crate) fn linker(engine: &wasmtime::Engine) -> Result<Linker<P2State>, Error> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
        .map_err(|err| Error::Engine { source: boxed(err) })?;
    Ok(linker)
}

/// The interface a `wasi:cli/command` exports, without its version.
const RUN: &str = "wasi:cli/run";

/// Runs `component`'s `wasi:cli/run` and returns its exit code: 0 when `run`
/// returns `ok`, 1 when it returns `err`, the code given to `wasi:cli/exit`
/// when it exits.
pub(crate) fn run(backend: &Backend, component: &Component, job: &Job) -> Result<i32, Error> {
    let name = &job.name;
    let engine = &backend.engine;
    let ty = component.component_type();
    let exports_run = ty.exports(engine).any(|(export, _)| {
        export == RUN
            || export
                .strip_prefix(RUN)
                .is_some_and(|version| version.starts_with("@0.2."))
    });
    if !exports_run {
        return Err(Error::NotACommand {
            name: name.clone(),
            exports: ty.exports(engine).map(|(e, _)| e.to_string()).collect(),
        });
    }

    let linker = backend.p2_linker()?;
    let pre = linker
        .instantiate_pre(component)
        .map_err(|err| link_error(err, name))?;
    let pre = CommandPre::new(pre).map_err(|err| Error::Link {
        name: name.clone(),
        source: boxed(err),
    })?;

    let limits = job.sandbox.limit_values();
    let state = P2State {
        ctx: crate::wasi::context(job)?.build(),
        table: ResourceTable::new(),
        limiter: MemoryLimiter::new(limits.memory),
    };
    let mut store = Store::new(engine, state);
    limits::apply(&mut store, limits).map_err(|err| Error::Engine { source: boxed(err) })?;
    let _timer = Timer::start(engine, limits.timeout)?;

    let command = match pre.instantiate(&mut store) {
        Ok(command) => command,
        Err(err) => return outcome_of(Err(err), job, backend.debug, Stage::Instantiate),
    };
    let result = command
        .wasi_cli_run()
        .call_run(&mut store)
        .map(|ran| if ran.is_ok() { 0 } else { 1 });
    outcome_of(result, job, backend.debug, Stage::Run)
}

/// An import the linker could not satisfy, as [`Error::UnknownImport`] when
/// something is simply not provided, else as [`Error::Link`].
///
/// Wasmtime reports it as a chain: "component imports instance `NAME`, but a
/// matching implementation was not found in the linker", then "instance
/// export `MEMBER` has the wrong type" per level, ending in "... implementation
/// is missing" when nothing was there at all.
fn link_error(err: wasmtime::Error, name: &str) -> Error {
    let chain: Vec<String> = err.chain().map(|cause| cause.to_string()).collect();
    let quoted = |text: &str| text.split('`').nth(1).map(str::to_string);
    let missing = chain
        .last()
        .is_some_and(|root| root.ends_with("implementation is missing"));
    let import = chain
        .first()
        .filter(|top| top.starts_with("component imports "))
        .and_then(|top| quoted(top));
    match import {
        Some(mut import) if missing => {
            for member in chain[1..]
                .iter()
                .filter(|cause| cause.starts_with("instance export `"))
                .filter_map(|cause| quoted(cause))
            {
                import.push('#');
                import.push_str(&member);
            }
            Error::UnknownImport {
                name: name.to_string(),
                import,
            }
        }
        _ => Error::Link {
            name: name.to_string(),
            source: boxed(err),
        },
    }
}
