//! Launching a Wasm workload: the program from the image (a Wasm layer, or
//! the entrypoint file of a single tar layer), the image's files at `/`
//! read-only, the spec's grants.

use crate::{Error, Exit, Runner, argv};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::time::Duration;
use wrun_core::{LaunchSpec, Sandbox, Target};
use wrun_image::program::{self, strings};
use wrun_image::{ImageRecord, Store};
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
    let (name, payload, rootfs, config) = match (record, &spec.target) {
        (None, Some(Target::File(path))) => {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| path.display().to_string());
            (name, Payload::File(path.clone()), None, Value::Null)
        }
        (Some(record), Some(Target::Image(reference))) => {
            let config = program::config(store, record)?;
            if let Some(layer) = record.wasm_layer() {
                let name = wrun_image::reference::short_name(reference).to_string();
                (
                    name,
                    Payload::Bytes(store.read_blob(&layer.digest)?),
                    None,
                    config,
                )
            } else {
                let argv = argv(spec, &config);
                let program = argv.first().ok_or(Error::NoCommand)?;
                let bytes = program::find(store, record, &config, program)?;
                (
                    program.clone(),
                    Payload::Bytes(bytes),
                    Some(rootfs(store, record)?),
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
        None => !strings(&config, "Entrypoint").is_empty(),
    };
    job.args = if rootfs.is_none() && !has_entrypoint {
        std::iter::once(name).chain(image_argv).collect()
    } else {
        image_argv
    };
    job.sandbox = sandbox(spec, &config);
    job.rootfs = rootfs;
    job.workdir = spec
        .workdir
        .clone()
        .or_else(|| program::working_dir(&config).map(str::to_string));
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

/// The image's environment first, then the spec's, then the spec's grants.
fn sandbox(spec: &LaunchSpec, config: &Value) -> Sandbox {
    let mut s = Sandbox::new();
    for kv in strings(config, "Env") {
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

/// The image's files as one directory to grant read-only at `/`: its single
/// layer as it is, or, for several layers, their merge, built once per
/// image under `cache/rootfs/<manifest hex>` as overlayfs would show it
/// (upper layers win, whiteouts hide, opaque directories hide what is
/// below). Files are hard links to the shared layers' files, so the merge
/// costs directory entries, not data; a Wasm guest cannot mount an overlay,
/// and it only ever sees the merge read-only.
fn rootfs(store: &Store, record: &ImageRecord) -> Result<PathBuf, Error> {
    let layers = store.layer_paths(record);
    if let [one] = layers.as_slice() {
        return Ok(one.clone());
    }
    let cache = store.cache_dir("rootfs")?;
    let dest = cache.join(record.digest.hex());
    if dest.is_dir() {
        return Ok(dest);
    }
    let merge_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Merge { path, source }
    };
    let tmp = cache.join(format!(
        ".tmp-{}-{}",
        wrun_image::owner::Owner::current(),
        record.digest.short()
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir(&tmp).map_err(merge_err(&tmp))?;
    for layer in &layers {
        if let Err(e) = merge(layer, &tmp) {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    }
    match std::fs::rename(&tmp, &dest) {
        Ok(()) => Ok(dest),
        // Another wrun merged the same image first; theirs is as good.
        Err(_) if dest.is_dir() => {
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(dest)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Err(merge_err(&dest)(e))
        }
    }
}

/// Lays the layer directory `src` over `dst`. Both are wrun's own
/// directories (layers unpacked through a capability, and the merge being
/// built), and every directory entered in `dst` is first made a real
/// directory, so no path here goes through a symlink.
fn merge(src: &Path, dst: &Path) -> Result<(), Error> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Merge { path, source }
    };
    for entry in std::fs::read_dir(src).map_err(err(src))? {
        let entry = entry.map_err(err(src))?;
        let from = entry.path();
        let to = dst.join(entry.file_name());
        let meta = std::fs::symlink_metadata(&from).map_err(err(&from))?;
        let ft = meta.file_type();
        if ft.is_char_device() && meta.rdev() == 0 {
            remove_any(&to).map_err(err(&to))?;
            continue;
        }
        if ft.is_dir() {
            if is_opaque(&from) {
                remove_any(&to).map_err(err(&to))?;
            }
            match std::fs::symlink_metadata(&to) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    remove_any(&to).map_err(err(&to))?;
                    std::fs::create_dir(&to).map_err(err(&to))?;
                }
                Err(_) => std::fs::create_dir(&to).map_err(err(&to))?,
            }
            std::fs::set_permissions(&to, meta.permissions()).map_err(err(&to))?;
            merge(&from, &to)?;
            continue;
        }
        remove_any(&to).map_err(err(&to))?;
        if ft.is_symlink() {
            let target = std::fs::read_link(&from).map_err(err(&from))?;
            std::os::unix::fs::symlink(target, &to).map_err(err(&to))?;
        } else if ft.is_file() && std::fs::hard_link(&from, &to).is_err() {
            std::fs::copy(&from, &to).map_err(err(&to))?;
        }
        // Devices, FIFOs and sockets mean nothing to a Wasm guest: skipped.
    }
    Ok(())
}

fn remove_any(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Whether an unpacked layer directory is opaque (`trusted.overlay.opaque=y`).
fn is_opaque(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    let mut value = [0u8; 1];
    // SAFETY: both pointers are valid for the lengths given; lgetxattr
    // writes at most `value.len()` bytes.
    let n = unsafe {
        libc::lgetxattr(
            path.as_ptr(),
            c"trusted.overlay.opaque".as_ptr(),
            value.as_mut_ptr().cast(),
            value.len(),
        )
    };
    n == 1 && value[0] == b'y'
}

/// Whether `name` is the temporary tree of a merge whose process runs
/// (`.tmp-<owner>-…`; the one rule of [`wrun_image::owner`]).
fn merging(name: &str) -> bool {
    name.strip_prefix(".tmp-")
        .and_then(|rest| rest.split('-').next())
        .and_then(wrun_image::owner::Owner::parse)
        .is_some_and(|o| o.is_alive())
}

/// Removes the merged trees (see [`rootfs`]) of images no longer stored,
/// and leftovers of merges that were interrupted: a `.tmp-<owner>-…` tree
/// whose process still runs is a merge in progress and is left alone.
/// Returns 0: their files are hard links to layers, so removing them frees
/// no data of its own.
pub(crate) fn prune_merged(store: &Store) -> Result<u64, Error> {
    let cache = store.cache_dir("rootfs")?;
    let stored: std::collections::BTreeSet<String> = store
        .images()?
        .iter()
        .map(|(r, _)| r.digest.hex().to_string())
        .collect();
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Merge { path, source }
    };
    for entry in std::fs::read_dir(&cache).map_err(err(&cache))? {
        let entry = entry.map_err(err(&cache))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !stored.contains(&name) && !merging(&name) {
            remove_any(&entry.path()).map_err(err(&entry.path()))?;
        }
    }
    Ok(0)
}
