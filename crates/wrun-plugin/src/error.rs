//! The one error type of this crate.

use std::path::PathBuf;

use std::time::Duration;
pub use wrun_wasm::embed::GrantError;

/// A boxed error from Wasmtime or WASI, kept as the `source` of a variant.
///
/// Wasmtime's own error type is converted to its chain of messages (by
/// `wrun-wasm`, as for `wrun run`) so no Wasmtime type appears in this
/// crate's public API.
pub use wrun_wasm::BoxedSource;

/// Why a plugin could not be loaded, instantiated or called.
///
/// Every failure of a plugin (a trap, a timeout, a limit, its own error
/// result) is one of these values; none of them takes the host down, and the
/// host can go on calling other instances.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The Wasmtime engine or its instance pool could not be created.
    #[error("cannot create the plugin engine")]
    Engine {
        /// What Wasmtime said.
        #[source]
        source: BoxedSource,
    },

    /// The plugin file could not be read.
    #[error("cannot read plugin {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The bytes are not a valid WebAssembly component (a core module, a
    /// truncated or malformed binary, or a feature the engine lacks).
    #[error("plugin {plugin} is not a valid component")]
    Load {
        /// The plugin's name.
        plugin: String,
        /// What the validator or compiler said.
        #[source]
        source: BoxedSource,
    },

    /// The plugin's image could not be found in the store, pulled or read
    /// (see [`PluginHost::load_image`](crate::PluginHost::load_image)).
    #[cfg(feature = "image")]
    #[error("cannot get plugin image {reference}")]
    Image {
        /// The image reference.
        reference: String,
        /// What the store or the registry said (boxed: it is large).
        #[source]
        source: Box<wrun_image::Error>,
    },

    /// The image holds no plugin: it is a native image, or its Wasm payload
    /// is a core module rather than a component.
    #[cfg(feature = "image")]
    #[error("image {reference} is not a plugin: {reason}")]
    NotAPlugin {
        /// The image reference.
        reference: String,
        /// What it holds instead, e.g. "it is a native image".
        reason: &'static str,
    },

    /// The component does not export what the `wrun:plugin` world requires
    /// (it was built for another world, or an export has the wrong type).
    #[error("plugin {plugin} does not implement the wrun:plugin world: missing {missing}")]
    WrongWorld {
        /// The plugin's name.
        plugin: String,
        /// The export that is missing or mistyped, for example
        /// `wrun:plugin/handler@0.1.0`.
        missing: String,
    },

    /// The component imports something no wrun host provides.
    #[error("plugin {plugin} imports {import}, which this host does not provide")]
    UnsupportedImport {
        /// The plugin's name.
        plugin: String,
        /// The import's name, for example `acme:db/query@1.0.0`.
        import: String,
    },

    /// A granted directory could not be given to the plugin: its path
    /// inside is not absolute, or the host directory cannot be opened.
    #[error(transparent)]
    Grant(#[from] GrantError),

    /// The grants ask for a limit only native containers have (a pids, CPU
    /// or swap limit, from a [`Sandbox`](wrun_core::Sandbox) built for
    /// `wrun run`): refused rather than silently ignored.
    #[error("{what} is not supported for plugins")]
    Unsupported {
        /// What was asked for, e.g. "a pids limit".
        what: &'static str,
    },

    /// The grants ask for fuel, but the host was configured without fuel
    /// metering (see [`HostConfig::fuel`](crate::HostConfig::fuel)).
    #[error("fuel was granted but the plugin host does not meter fuel")]
    FuelDisabled,

    /// The host already has as many live instances as its pool holds (see
    /// [`HostConfig::max_instances`](crate::HostConfig::max_instances)).
    #[error("plugin {plugin} cannot be instantiated: the host's instance pool is full")]
    PoolExhausted {
        /// The plugin's name.
        plugin: String,
    },

    /// Instantiation failed for another reason.
    #[error("plugin {plugin} cannot be instantiated")]
    Instantiate {
        /// The plugin's name.
        plugin: String,
        /// What Wasmtime said.
        #[source]
        source: BoxedSource,
    },

    /// The plugin trapped (for example `unreachable`, an out-of-bounds
    /// access, a stack overflow). The instance cannot be called again.
    #[error("plugin {plugin} trapped: {message}")]
    Trap {
        /// The plugin's name.
        plugin: String,
        /// The trap, on one line.
        message: String,
    },

    /// The call ran longer than its granted time and was interrupted. The
    /// instance cannot be called again.
    #[error("plugin {plugin} timed out after {after:?}")]
    Timeout {
        /// The plugin's name.
        plugin: String,
        /// The granted time.
        after: Duration,
    },

    /// The call used up its granted fuel. The instance cannot be called
    /// again.
    #[error("plugin {plugin} ran out of fuel ({fuel} units)")]
    FuelExhausted {
        /// The plugin's name.
        plugin: String,
        /// The granted fuel.
        fuel: u64,
    },

    /// The plugin failed after its memory reached its limit: the limiter
    /// refused a growth and the plugin then trapped (or could not even be
    /// instantiated). The instance cannot be called again.
    #[error("plugin {plugin} exceeded its memory limit of {limit} bytes")]
    MemoryLimit {
        /// The plugin's name.
        plugin: String,
        /// The granted memory, in bytes.
        limit: u64,
    },

    /// The plugin returned its own error (`plugin-error` in the WIT). The
    /// instance is intact and can be called again.
    #[error("plugin {plugin} failed with code {code}: {message}")]
    Plugin {
        /// The plugin's name.
        plugin: String,
        /// The plugin's code.
        code: u32,
        /// The plugin's message.
        message: String,
    },

    /// The instance trapped, timed out or hit a limit in an earlier call and
    /// cannot be called again; instantiate the plugin anew.
    #[error("plugin {plugin} instance is unusable after an earlier failure")]
    Poisoned {
        /// The plugin's name.
        plugin: String,
    },

    /// The call failed inside the host (for example a WASI error that is not
    /// a trap).
    #[error("plugin {plugin} call failed")]
    Call {
        /// The plugin's name.
        plugin: String,
        /// What Wasmtime said.
        #[source]
        source: BoxedSource,
    },
}
