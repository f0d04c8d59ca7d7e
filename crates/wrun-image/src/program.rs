//! The Wasm program a stored image holds: its Wasm layer, or the file its
//! entrypoint names among its layers' files. `wrun run` and `wrun-plugin`
//! both find it here.

use crate::{Error, ImageKind, ImageRecord, Store, classify, pull};
use serde_json::Value;

/// The `config` object of the image's config blob (Entrypoint, Cmd, Env,
/// WorkingDir …), or `null` when it has none.
pub fn config(store: &Store, record: &ImageRecord) -> Result<Value, Error> {
    let bytes = store.read_blob(&record.config.digest)?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|source| Error::Malformed {
        what: format!("config {}", record.config.digest),
        source,
    })?;
    Ok(v.get("config").cloned().unwrap_or(Value::Null))
}

/// The strings of the array `key` of an image config object (`Env`,
/// `Entrypoint`, `Cmd`); empty when it is missing or not an array.
pub fn strings(config: &Value, key: &str) -> Vec<String> {
    config
        .get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The `PATH` of an image config object's `Env`, if it sets one.
pub fn path_env(config: &Value) -> Option<String> {
    strings(config, "Env")
        .into_iter()
        .find_map(|e| e.strip_prefix("PATH=").map(str::to_string))
}

/// The `WorkingDir` of an image config object, unless missing or empty.
pub fn working_dir(config: &Value) -> Option<&str> {
    config
        .get("WorkingDir")
        .and_then(Value::as_str)
        .filter(|w| !w.is_empty())
}

/// The bytes of `program` (as argv\[0\] names it) among the files of a
/// tar-layer image, looked up as the image's `PATH` and working directory
/// (from `config`, see [`config`]) say.
pub fn find(
    store: &Store,
    record: &ImageRecord,
    config: &Value,
    program: &str,
) -> Result<Vec<u8>, Error> {
    let dirs = pull::open_layers(store, &record.layers)?;
    let path_env = path_env(config);
    let found =
        classify::resolve_program(program, working_dir(config), path_env.as_deref(), &|p| {
            classify::read_head_in_layers(&dirs, p, 0).is_some()
        })
        .ok_or_else(|| Error::ProgramNotFound {
            path: program.to_string(),
        })?;
    classify::read_head_in_layers(&dirs, &found, u64::MAX)
        .ok_or(Error::ProgramNotFound { path: found })
}

/// The Wasm binary a run of a Wasm image with no options runs: the blob of
/// its Wasm layer, or else the file named by the first word of its
/// Entrypoint and Cmd.
///
/// Fails with [`Error::NotWasm`] for an image classified native, and with
/// [`Error::NoProgram`] when the image has neither a Wasm layer nor an
/// entrypoint or command.
pub fn default_wasm(store: &Store, record: &ImageRecord) -> Result<Vec<u8>, Error> {
    if record.classification.kind != ImageKind::Wasm {
        return Err(Error::NotWasm {
            image: record.digest.to_string(),
        });
    }
    if let Some(layer) = record.wasm_layer() {
        return store.read_blob(&layer.digest);
    }
    let config = config(store, record)?;
    let mut argv = strings(&config, "Entrypoint");
    argv.extend(strings(&config, "Cmd"));
    let program = argv.first().ok_or_else(|| Error::NoProgram {
        image: record.digest.to_string(),
    })?;
    find(store, record, &config, program)
}
