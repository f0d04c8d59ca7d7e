//! Plugins from images: the store and the pull of `wrun pull`, then the
//! component the image holds (feature `image`).

use std::path::Path;

use wrun_core::ImageKind;
use wrun_image::{Store, program, pull, reference};
use wrun_wasm::Flavor;

pub use wrun_core::PullPolicy;
pub use wrun_image::pull::PullOptions;

use crate::{Error, Plugin, PluginHost};

impl PluginHost {
    /// Loads the plugin held by the image `reference` in the wrun store at
    /// `store_root` (the directory `wrun pull` fills), pulling it first as
    /// `policy` says, with `options` (registries spoken to over plain HTTP,
    /// credentials …). The plugin is named after the reference's last path
    /// component (`ghcr.io/acme/upper:1` → `upper`); see
    /// [`load_bytes`](Self::load_bytes) for the checks that follow.
    ///
    /// The image's payload is found as `wrun run` finds it: its Wasm layer,
    /// or the file its entrypoint names. Fails with [`Error::Image`] when
    /// the store cannot be opened, the image is not stored and cannot (or
    /// may not) be pulled, or its payload cannot be read; with
    /// [`Error::NotAPlugin`] when it is a native image or its payload is not
    /// a component.
    ///
    /// Synchronous: a pull runs on a private runtime on a thread of its
    /// own, so this may be called from any thread (from async code, as
    /// any blocking call, on the blocking pool).
    ///
    /// # Ambient Authority
    ///
    /// Opens the store at `store_root` with the process's authority.
    pub fn load_image(
        &self,
        store_root: &Path,
        reference: &str,
        policy: PullPolicy,
        options: &PullOptions,
    ) -> Result<Plugin, Error> {
        let image_error = |source| Error::Image {
            reference: reference.to_string(),
            source: Box::new(source),
        };
        let store = Store::open(store_root).map_err(image_error)?;
        let record =
            pull::ensure_blocking(&store, reference, policy, options).map_err(image_error)?;
        let not_a_plugin = |reason| Error::NotAPlugin {
            reference: reference.to_string(),
            reason,
        };
        if record.classification.kind != ImageKind::Wasm {
            return Err(not_a_plugin("it is a native image"));
        }
        let bytes = program::default_wasm(&store, &record).map_err(image_error)?;
        match Flavor::of(&bytes) {
            Some(Flavor::Component) => self.load_bytes(reference::short_name(reference), &bytes),
            Some(Flavor::Module) => Err(not_a_plugin(
                "its wasm payload is a core module, not a component",
            )),
            _ => Err(not_a_plugin("its payload is not a wasm binary")),
        }
    }
}
