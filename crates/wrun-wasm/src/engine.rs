//! Engines, compilation through the cache, and turning a run's result into
//! an exit code or an error.

use std::sync::OnceLock;

use wasmtime::component::Component;
use wasmtime::{Engine, Module};

use crate::cache::{self, Cache};
use crate::component::{self, P2State};
use crate::error::{Fault, boxed, classify};
use crate::module::{self, P1State};
use crate::payload::Binary;
use crate::{Config, Error, Flavor, Job};

/// One engine with its settings, its cache directory and its linkers.
///
/// Fuel metering changes the generated code, so a runtime keeps one backend
/// without fuel and, when a job asks for fuel, one with it.
pub(crate) struct Backend {
    pub(crate) engine: Engine,
    pub(crate) debug: bool,
    pub(crate) tag: String,
    cache: Option<Cache>,
    p1: OnceLock<wasmtime::Linker<P1State>>,
    p2: OnceLock<wasmtime::component::Linker<P2State>>,
}

/// Compiled code, ready to instantiate.
pub(crate) enum Code {
    Module(Module),
    Component(Component),
}

impl Backend {
    pub(crate) fn new(config: &Config, fuel: bool) -> Result<Backend, Error> {
        let mut settings = wasmtime::Config::new();
        // Timeouts interrupt guests at epoch checks compiled into loops and
        // function entries; always on, so a job's timeout needs no other
        // engine (the cost is a load and compare per check).
        settings.epoch_interruption(true);
        settings.consume_fuel(fuel);
        let engine = Engine::new(&settings).map_err(|err| Error::Engine { source: boxed(err) })?;
        let tag = cache::engine_tag(&engine, fuel);
        let cache = config
            .cache_dir
            .as_deref()
            .map(|root| Cache::new(root, &tag));
        Ok(Backend {
            engine,
            debug: config.debug,
            tag,
            cache,
            p1: OnceLock::new(),
            p2: OnceLock::new(),
        })
    }

    pub(crate) fn p1_linker(&self) -> Result<&wasmtime::Linker<P1State>, Error> {
        if let Some(linker) = self.p1.get() {
            return Ok(linker);
        }
        let linker = module::linker(&self.engine)?;
        Ok(self.p1.get_or_init(|| linker))
    }

    pub(crate) fn p2_linker(&self) -> Result<&wasmtime::component::Linker<P2State>, Error> {
        if let Some(linker) = self.p2.get() {
            return Ok(linker);
        }
        let linker = component::linker(&self.engine)?;
        Ok(self.p2.get_or_init(|| linker))
    }

    /// Compiled code for `binary`, from the cache when an intact entry is
    /// there. Returns the code, whether it was compiled now, and why the
    /// cache could not be written, if it could not.
    pub(crate) fn load(
        &self,
        binary: &Binary,
        name: &str,
    ) -> Result<(Code, bool, Option<Error>), Error> {
        let Some(cache) = &self.cache else {
            return Ok((self.compile(binary, name)?, true, None));
        };
        let digest = cache::digest(&binary.bytes);
        if let Some(entry) = cache.load(&digest) {
            // SAFETY: `deserialize_open_file` and `deserialize` trust the
            // file (or bytes) to hold code that Wasmtime produced for a
            // compatible engine, and a mapped file to stay unchanged while the
            // code is in use; arbitrary bytes could make them run arbitrary
            // machine code. That holds here:
            // - `cache.load` just checked the SHA-256 in the entry's trailer
            //   against its code, reading through this very descriptor, so the
            //   inode about to be mapped holds what `store` below wrote, not a
            //   torn write or a damaged block;
            // - `store` wrote the output of `serialize` from an engine with
            //   this backend's tag, and the tag (part of the path) hashes the
            //   Wasmtime version and every code-affecting setting, so the
            //   engine is compatible (Wasmtime checks this too and fails
            //   cleanly, which the fallback below handles);
            // - entries are only replaced by rename and removed by unlink,
            //   never written in place, so a mapped inode never changes;
            // - the cache directory is the user's own, like the binary that
            //   runs this code: whoever can write it can already run code as
            //   the user.
            let loaded = unsafe {
                match binary.flavor {
                    Flavor::Module => {
                        Module::deserialize_open_file(&self.engine, entry.file).map(Code::Module)
                    }
                    // Wasmtime 48 has no `Component::deserialize_open_file`;
                    // read the same descriptor rather than reopen the path.
                    Flavor::Component => match entry.read_code() {
                        Ok(code) => Component::deserialize(&self.engine, code).map(Code::Component),
                        Err(err) => Err(err.into()),
                    },
                }
            };
            match loaded {
                Ok(code) => return Ok((code, false, None)),
                Err(_) => cache.discard(&digest),
            }
        }
        let code = self.compile(binary, name)?;
        let serialized = match &code {
            Code::Module(module) => module.serialize(),
            Code::Component(component) => component.serialize(),
        };
        let cache_error = match serialized {
            Ok(bytes) => cache.store(&digest, &bytes).err(),
            Err(err) => Some(Error::Engine { source: boxed(err) }),
        };
        Ok((code, true, cache_error))
    }

    fn compile(&self, binary: &Binary, name: &str) -> Result<Code, Error> {
        let invalid = |err| Error::Invalid {
            name: name.to_string(),
            kind: binary.flavor.noun(),
            source: boxed(err),
        };
        match binary.flavor {
            Flavor::Module => Module::from_binary(&self.engine, &binary.bytes)
                .map(Code::Module)
                .map_err(invalid),
            Flavor::Component => Component::from_binary(&self.engine, &binary.bytes)
                .map(Code::Component)
                .map_err(invalid),
        }
    }

    pub(crate) fn run(&self, code: &Code, job: &Job) -> Result<i32, Error> {
        match code {
            Code::Module(m) => module::run(self, m, job),
            Code::Component(c) => component::run(self, c, job),
        }
    }
}

/// Where a guest failed, for errors that are neither exits nor traps.
pub(crate) enum Stage {
    Instantiate,
    Run,
}

/// The exit code of a finished guest, or the error that stopped it.
///
/// An `I32Exit` (from `proc_exit` or `wasi:cli/exit`) is an exit, whatever
/// its code. A trap is an error: `Trap`, or `Timeout` and `FuelExhausted`
/// for the two traps wrun causes on purpose.
pub(crate) fn outcome_of(
    result: wasmtime::Result<i32>,
    job: &Job,
    debug: bool,
    stage: Stage,
) -> Result<i32, Error> {
    let err = match result {
        Ok(code) => return Ok(code),
        Err(err) => err,
    };
    let name = job.name.clone();
    let limits = job.sandbox.limit_values();
    match classify(err) {
        Fault::Exit(code) => Ok(code),
        Fault::Interrupted => Err(Error::Timeout {
            name,
            after: limits.timeout.unwrap_or_default(),
        }),
        Fault::OutOfFuel => Err(Error::FuelExhausted {
            name,
            fuel: limits.fuel.unwrap_or_default(),
        }),
        Fault::Trap { message, backtrace } => Err(Error::Trap {
            name,
            message,
            backtrace: backtrace.filter(|_| debug),
        }),
        Fault::Other(source) => Err(match stage {
            Stage::Instantiate => Error::Instantiate { name, source },
            Stage::Run => Error::Guest { name, source },
        }),
    }
}
