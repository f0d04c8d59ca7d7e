//! What a stored image runs: its config's defaults (read once, typed) and
//! its Wasm program (its Wasm layer, or the file its entrypoint names among
//! its files). `wrun run` and `wrun-plugin` both find them here.

use crate::layers::LayerStack;
use crate::{Error, ImageKind, ImageRecord, Store, media};
use oci_spec::image::ImageConfiguration;
use serde_json::Value;
use wrun_core::ImageDefaults;

/// The typed config of a stored image. A Wasm artifact's config
/// (`application/vnd.wasm.config.v0+json`) is not an image config and
/// gives `None`.
pub fn image_config(
    store: &Store,
    record: &ImageRecord,
) -> Result<Option<ImageConfiguration>, Error> {
    if record.config.media_type == media::WASM_CONFIG {
        return Ok(None);
    }
    let bytes = store.read_blob(&record.config.digest)?;
    parse_config(&bytes, &record.config.digest.to_string()).map(Some)
}

/// Parses an image config blob.
pub(crate) fn parse_config(bytes: &[u8], digest: &str) -> Result<ImageConfiguration, Error> {
    serde_json::from_slice(bytes).map_err(|source| Error::Malformed {
        what: format!("config {digest}"),
        source,
    })
}

/// What the image's config says to run (Entrypoint, Cmd, Env, WorkingDir,
/// User); empty for a Wasm artifact, whose config says none of it.
pub fn defaults(store: &Store, record: &ImageRecord) -> Result<ImageDefaults, Error> {
    Ok(image_config(store, record)?
        .as_ref()
        .map(ImageDefaults::from_config)
        .unwrap_or_default())
}

/// The strings of the array `key` of a JSON object; empty when it is
/// missing or not an array.
pub fn strings(object: &Value, key: &str) -> Vec<String> {
    object
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

/// The bytes of `program` (as argv\[0\] names it) among the files of a
/// tar-layer image, looked up as the image's `PATH` and working directory
/// (or `workdir`, `-w`) say.
pub fn find(
    store: &Store,
    record: &ImageRecord,
    defaults: &ImageDefaults,
    workdir: Option<&str>,
    program: &str,
) -> Result<Vec<u8>, Error> {
    let (_, bytes) = LayerStack::open(store, record)?.find_program(program, defaults, workdir)?;
    Ok(bytes)
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
    let defaults = defaults(store, record)?;
    let argv = defaults.argv(None, &[]);
    let program = argv.first().ok_or_else(|| Error::NoProgram {
        image: record.digest.to_string(),
    })?;
    find(store, record, &defaults, None, program)
}
