//! Launching a Wasm workload: the program from the image (a Wasm layer, or
//! the entrypoint file among its files), the image's files at `/`
//! read-only (their merge, for several layers), the spec's grants.

use crate::{Error, Exit, Runner};
use std::sync::{Arc, mpsc};
use std::time::Duration;
use wrun_core::{ImageDefaults, LaunchSpec, Sandbox, Target};
use wrun_image::ImageRecord;
use wrun_image::program;
use wrun_wasm::{Input, Job, Payload};

/// How long past its timeout a guest may take to stop before `wait` gives
/// up on it: an interrupted guest stops at its next Wasm instruction, but
/// one blocked in a host call (a read of stdin, say) stops only when the
/// call returns.
const TIMEOUT_GRACE: Duration = Duration::from_secs(1);

/// A Wasm guest running on its own thread.
#[derive(Debug)]
pub struct Running {
    result: mpsc::Receiver<Result<wrun_wasm::Outcome, wrun_wasm::Error>>,
    name: String,
    timeout: Option<Duration>,
}

impl Running {
    /// The guest's outcome; with a timeout, at most the timeout (and a
    /// grace) after it started: a guest still blocked in a host call then
    /// is left to its thread, which ends when the call returns (or with
    /// the process), and the run reports the timeout.
    pub(crate) fn wait(self) -> Result<Exit, Error> {
        let received = match self.timeout {
            Some(after) => match self
                .result
                .recv_timeout(after.saturating_add(TIMEOUT_GRACE))
            {
                Ok(r) => r,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(Error::Wasm(wrun_wasm::Error::Timeout {
                        name: self.name,
                        after,
                    }));
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return Err(Error::GuestThread),
            },
            None => self.result.recv().map_err(|_| Error::GuestThread)?,
        };
        let outcome = received?;
        Ok(Exit {
            code: outcome.exit_code,
            oom_killed: false,
            compiled: Some(outcome.compiled),
        })
    }
}

pub(crate) fn start(
    runner: &Runner,
    spec: &LaunchSpec,
    record: Option<&ImageRecord>,
) -> Result<Running, Error> {
    let job = job(runner, spec, record)?;
    let rt = runner.wasm_runtime()?;
    let rt = Arc::clone(rt);
    let name = job.name.clone();
    let timeout = spec.sandbox.limit_values().timeout;
    let (tx, result) = mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("wasm-guest".into())
        .spawn(move || {
            // The waiter may have given up (a timeout): nobody to tell then.
            let _ = tx.send(rt.run(&job));
        })
        .map_err(|source| Error::Runtime { source })?;
    Ok(Running {
        result,
        name,
        timeout,
    })
}

fn job(runner: &Runner, spec: &LaunchSpec, record: Option<&ImageRecord>) -> Result<Job, Error> {
    let store = runner.store();
    let entrypoint = spec.entrypoint.as_deref();
    let (name, payload, rootfs, defaults) = match (record, &spec.target) {
        (None, Some(Target::File(path))) => {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| path.display().to_string());
            (
                name,
                Payload::File(path.clone()),
                None,
                ImageDefaults::default(),
            )
        }
        (Some(record), Some(Target::Image(reference))) => {
            let defaults = program::defaults(store, record)?;
            if let Some(layer) = record.wasm_layer() {
                let name = wrun_image::reference::short_name(reference).to_string();
                (
                    name,
                    Payload::Bytes(store.read_blob(&layer.digest)?),
                    None,
                    defaults,
                )
            } else {
                let argv = defaults.argv(entrypoint, &spec.args);
                let program = argv.first().ok_or(Error::NoCommand)?;
                let bytes =
                    program::find(store, record, &defaults, spec.workdir.as_deref(), program)?;
                (
                    program.clone(),
                    Payload::Bytes(bytes),
                    Some(wrun_image::layers::merged_root(store, record)?),
                    defaults,
                )
            }
        }
        _ => return Err(Error::NoTarget),
    };
    let mut job = Job::new(name.clone(), payload);
    let image_argv = defaults.argv(entrypoint, &spec.args);
    // A tar-layer image's program is argv[0] (docker's argv). A local file
    // or a Wasm-layer artifact with no entrypoint has none in its argv:
    // argv[0] is then its name, followed by the command (ARGS or Cmd).
    job.args = if rootfs.is_none() && !defaults.has_entrypoint(entrypoint) {
        std::iter::once(name).chain(image_argv).collect()
    } else {
        image_argv
    };
    job.sandbox = sandbox(spec, &defaults);
    job.rootfs = rootfs;
    job.workdir = defaults
        .working_dir(spec.workdir.as_deref())
        .map(str::to_string);
    if spec.stdin {
        job.stdin = Input::Inherit;
    }
    Ok(job)
}

/// The hex SHA-256 of the Wasm binary a run of `record` with no options
/// compiles (the compiled-code cache's key): its Wasm layer, or the
/// entrypoint file of a tar-layer Wasm image. `None` for a native image or
/// when the program cannot be found.
pub(crate) fn default_program_digest(
    store: &wrun_image::Store,
    record: &ImageRecord,
) -> Option<String> {
    if record.classification.kind != wrun_core::ImageKind::Wasm {
        return None;
    }
    if let Some(layer) = record.wasm_layer() {
        return Some(layer.digest.hex().to_string());
    }
    let bytes = program::default_wasm(store, record).ok()?;
    Some(wrun_image::Digest::sha256_of(&bytes).hex().to_string())
}

/// The image's environment merged with the spec's, then the spec's grants.
fn sandbox(spec: &LaunchSpec, defaults: &ImageDefaults) -> Sandbox {
    let mut s = Sandbox::new();
    s.envs(defaults.env(spec.sandbox.env_vars()));
    for d in spec.sandbox.dirs() {
        s.dir(d.host.clone(), d.guest.clone(), d.access);
    }
    s.network(spec.sandbox.network_grant());
    s.limits(spec.sandbox.limit_values().clone());
    s
}
