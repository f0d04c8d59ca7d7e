//! Core modules, run as WASI preview 1 commands.

use wasmtime::{Linker, Module, Store};
use wasmtime_wasi::p1::{self, WasiP1Ctx};

use crate::engine::{Backend, Stage, outcome_of};
use crate::error::boxed;
use crate::limits::{self, Limited, MemoryLimiter, Timer};
use crate::{Error, Job};

pub(crate) struct P1State {
    wasi: WasiP1Ctx,
    limiter: MemoryLimiter,
}

impl Limited for P1State {
    fn limiter(&mut self) -> &mut MemoryLimiter {
        &mut self.limiter
    }
}

/// The linker every module is instantiated against: `wasi_snapshot_preview1`
/// and nothing else.
pub(crate) fn linker(engine: &wasmtime::Engine) -> Result<Linker<P1State>, Error> {
    let mut linker = Linker::new(engine);
    p1::add_to_linker_sync(&mut linker, |state: &mut P1State| &mut state.wasi)
        .map_err(|err| Error::Engine { source: boxed(err) })?;
    Ok(linker)
}

/// Runs `module`'s `_start` and returns its exit code.
pub(crate) fn run(backend: &Backend, module: &Module, job: &Job) -> Result<i32, Error> {
    let name = &job.name;
    if module.get_export("_start").is_none() {
        return Err(Error::NoStart { name: name.clone() });
    }
    let linker = backend.p1_linker()?;
    let limits = job.sandbox.limit_values();
    let state = P1State {
        wasi: crate::wasi::context(job)?.build_p1(),
        limiter: MemoryLimiter::new(limits.memory),
    };
    let mut store = Store::new(&backend.engine, state);
    limits::apply(&mut store, limits).map_err(|err| Error::Engine { source: boxed(err) })?;
    let _timer = Timer::start(&backend.engine, limits.timeout)?;

    let instance = match linker.instantiate(&mut store, module) {
        Ok(instance) => instance,
        Err(err) => {
            if let Some(import) = module
                .imports()
                .find(|import| linker.get_by_import(&mut store, import).is_none())
            {
                return Err(Error::UnknownImport {
                    name: name.clone(),
                    import: format!("{}::{}", import.module(), import.name()),
                });
            }
            // A start function may also trap, time out or exit.
            return outcome_of(Err(err), job, backend.debug, Stage::Instantiate);
        }
    };
    let start = instance
        .get_typed_func::<(), ()>(&mut store, "_start")
        .map_err(|err| Error::Link {
            name: name.clone(),
            source: boxed(err),
        })?;
    outcome_of(
        start.call(&mut store, ()).map(|()| 0),
        job,
        backend.debug,
        Stage::Run,
    )
}
