//! Launching a Wasm workload: the program from the image (a Wasm layer, or
//! the entrypoint file of a single tar layer), the image's files at `/`
//! read-only, the spec's grants.

use crate::{Error, Exit, Runner, argv, image_config, strings};
use serde_json::Value;
use std::sync::Arc;
use std::thread::JoinHandle;
use wrun_core::{LaunchSpec, Sandbox, Target};
use wrun_image::ImageRecord;
use wrun_image::classify;
use wrun_wasm::{Input, Job, Payload};

/// A Wasm guest running on its own thread.
#[derive(Debug)]
pub struct Running {
    thread: JoinHandle<Result<wrun_wasm::Outcome, wrun_wasm::Error>>,
}

impl Running {
    pub(crate) fn wait(self) -> Result<Exit, Error> {
        let outcome = self.thread.join().map_err(|_| Error::GuestThread)??;
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
    let thread = std::thread::Builder::new()
        .name("wasm-guest".into())
        .spawn(move || rt.run(&job))
        .map_err(|source| Error::Runtime { source })?;
    Ok(Running { thread })
}

fn job(runner: &Runner, spec: &LaunchSpec, record: Option<&ImageRecord>) -> Result<Job, Error> {
    let store = runner.store();
    let (name, payload, rootfs, config) = match (record, &spec.target) {
        (None, Some(Target::File(path))) => {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| path.display().to_string());
            (name, Payload::File(path.clone()), None, Value::Null)
        }
        (Some(record), Some(Target::Image(reference))) => {
            let config = image_config(store, record)?;
            if let Some(layer) = record.wasm_layer() {
                let name = reference
                    .rsplit('/')
                    .next()
                    .and_then(|n| n.split([':', '@']).next())
                    .unwrap_or(reference)
                    .to_string();
                (
                    name,
                    Payload::Bytes(store.read_blob(&layer.digest)?),
                    None,
                    config,
                )
            } else {
                let tar_layers: Vec<_> = record
                    .layers
                    .iter()
                    .filter_map(|l| l.diff_id.as_ref())
                    .collect();
                let [diff_id] = tar_layers.as_slice() else {
                    return Err(Error::LayeredWasm {
                        layers: tar_layers.len(),
                    });
                };
                let argv = argv(spec, &config);
                let program = argv.first().ok_or(Error::NoCommand)?;
                let bytes = program_bytes(store, record, &config, program)?;
                (
                    program.clone(),
                    Payload::Bytes(bytes),
                    Some(store.layer_path(diff_id)),
                    config,
                )
            }
        }
        _ => return Err(Error::NoTarget),
    };
    let mut job = Job::new(name.clone(), payload);
    let image_argv = argv(spec, &config);
    // A tar-layer image's program is argv[0] (docker's argv). A local file
    // or a Wasm-layer artifact with no entrypoint has none in its argv:
    // argv[0] is then its name, followed by the command (ARGS or Cmd).
    let has_entrypoint = match &spec.entrypoint {
        Some(e) => !e.is_empty(),
        None => !strings(config.get("Entrypoint")).is_empty(),
    };
    job.args = if rootfs.is_none() && !has_entrypoint {
        std::iter::once(name).chain(image_argv).collect()
    } else {
        image_argv
    };
    job.sandbox = sandbox(spec, &config);
    job.rootfs = rootfs;
    job.workdir = spec.workdir.clone().or_else(|| {
        config
            .get("WorkingDir")
            .and_then(Value::as_str)
            .filter(|w| !w.is_empty())
            .map(str::to_string)
    });
    if spec.stdin {
        job.stdin = Input::Inherit;
    }
    Ok(job)
}

/// The bytes of `program` (as argv[0] names it) among the files of a
/// tar-layer Wasm image, looked up as the image's `PATH` and working
/// directory say.
fn program_bytes(
    store: &wrun_image::Store,
    record: &ImageRecord,
    config: &Value,
    program: &str,
) -> Result<Vec<u8>, Error> {
    let dirs = wrun_image::pull::open_layers(store, &record.layers)?;
    let path_env = strings(config.get("Env"))
        .into_iter()
        .find_map(|e| e.strip_prefix("PATH=").map(str::to_string));
    let workdir = config
        .get("WorkingDir")
        .and_then(Value::as_str)
        .filter(|w| !w.is_empty());
    let found = classify::resolve_program(program, workdir, path_env.as_deref(), &|p| {
        classify::read_head_in_layers(&dirs, p, 0).is_some()
    })
    .ok_or_else(|| Error::ProgramNotFound {
        path: program.to_string(),
    })?;
    classify::read_head_in_layers(&dirs, &found, u64::MAX)
        .ok_or(Error::ProgramNotFound { path: found })
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
    let config = image_config(store, record).ok()?;
    let spec = LaunchSpec::new(Target::Image(String::new()));
    let argv = argv(&spec, &config);
    let bytes = program_bytes(store, record, &config, argv.first()?).ok()?;
    Some(wrun_image::Digest::sha256_of(&bytes).hex().to_string())
}

/// The image's environment first, then the spec's, then the spec's grants.
fn sandbox(spec: &LaunchSpec, config: &Value) -> Sandbox {
    let mut s = Sandbox::new();
    for kv in strings(config.get("Env")) {
        if let Some((k, v)) = kv.split_once('=') {
            s.env(k, v);
        }
    }
    s.envs(spec.sandbox.env_vars().iter().cloned());
    for d in spec.sandbox.dirs() {
        s.dir(d.host.clone(), d.guest.clone(), d.access);
    }
    s.network(spec.sandbox.network_grant());
    s.limits(spec.sandbox.limit_values().clone());
    s
}
