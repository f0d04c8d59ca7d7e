use std::path::PathBuf;

/// Everything that can go wrong getting an image into the store or out of it.
///
/// Messages are one line, lowercase, and name the thing that failed; the
/// underlying cause is the `source`, never repeated in the message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A reference that does not parse.
    #[error("invalid reference {reference:?}: {reason}")]
    InvalidReference {
        /// The text given.
        reference: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A digest that is not `sha256:<64 hex>` or `sha512:<128 hex>`.
    #[error("invalid digest {digest:?}")]
    InvalidDigest {
        /// The text found.
        digest: String,
    },
    /// A platform that is not `OS/ARCH[/VARIANT]`.
    #[error("invalid platform {platform:?}: expected OS/ARCH[/VARIANT]")]
    InvalidPlatform {
        /// The text given.
        platform: String,
    },
    /// The registry could not be reached or refused the request.
    #[error("{action} {reference}")]
    Registry {
        /// What was being done (`pull manifest of`, `pull blob … of`, `push`).
        action: String,
        /// The image reference.
        reference: String,
        /// What the registry client said.
        #[source]
        source: oci_client::errors::OciDistributionError,
    },
    /// The registry refused the credentials (or asked for some).
    #[error("unauthorized: {reference}: check `wrun login {registry}`")]
    Unauthorized {
        /// The image reference.
        reference: String,
        /// The registry host.
        registry: String,
    },
    /// No such image or tag in the registry.
    #[error("manifest unknown: {reference}")]
    ManifestUnknown {
        /// The image reference.
        reference: String,
    },
    /// Content whose digest is not the one it was fetched by.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What the content is (`manifest`, `blob sha256:…`, `layer … diff-id`).
        what: String,
        /// The digest asked for.
        expected: String,
        /// The digest of the bytes received.
        actual: String,
    },
    /// Content whose size is not the one its descriptor gives.
    #[error("size mismatch for {what}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// What the content is.
        what: String,
        /// The size in the descriptor.
        expected: u64,
        /// The bytes received.
        actual: u64,
    },
    /// A manifest, index or config that is not valid JSON of its kind.
    #[error("malformed {what}")]
    Malformed {
        /// What was being parsed (`manifest sha256:…`, `config sha256:…`).
        what: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A media type wrun does not know how to handle.
    #[error("unsupported media type {media_type:?} for {what}")]
    UnsupportedMediaType {
        /// The media type.
        media_type: String,
        /// Where it was found.
        what: String,
    },
    /// An index with no manifest for the wanted platform.
    #[error("no manifest for platform {wanted} in {reference} (available: {available})")]
    NoMatchingPlatform {
        /// The image reference.
        reference: String,
        /// The platform(s) looked for.
        wanted: String,
        /// The platforms the index has.
        available: String,
    },
    /// A layer that could not be unpacked.
    #[error("unpack layer {digest}")]
    Unpack {
        /// The layer's blob digest.
        digest: String,
        /// What went wrong.
        #[source]
        source: crate::unpack::UnpackError,
    },
    /// An image with a different number of layers than diff-ids in its config.
    #[error("image {reference} has {layers} layers but its config lists {diff_ids} diff-ids")]
    LayerCount {
        /// The image reference.
        reference: String,
        /// Layers in the manifest.
        layers: usize,
        /// Diff-ids in the config.
        diff_ids: usize,
    },
    /// No image of that name in the store.
    #[error("image not known: {reference}")]
    ImageNotFound {
        /// The name looked for.
        reference: String,
    },
    /// The image is not in the store, and the pull policy forbids pulling it.
    #[error("image {reference} is not in the store (and the pull policy is never)")]
    NotStored {
        /// The reference.
        reference: String,
    },
    /// No image of the platform asked for is stored under the reference,
    /// and the pull policy forbids pulling it.
    #[error(
        "image {reference} is not in the store for platform {platform} (and the pull policy is never)"
    )]
    NotStoredForPlatform {
        /// The reference.
        reference: String,
        /// The platform asked for.
        platform: String,
    },
    /// An image that is not a multi-platform index is of another platform
    /// than the one asked for.
    #[error("image {reference} is for platform {actual}, not {wanted}")]
    PlatformMismatch {
        /// The reference.
        reference: String,
        /// The platform asked for.
        wanted: String,
        /// The image's own platform.
        actual: String,
    },
    /// The pull was asked to stop at a native image
    /// ([`PullOptions::refuse_native`](crate::pull::PullOptions::refuse_native)),
    /// and its manifest and config say it is one; no layer was fetched.
    #[error("image {reference} is a native image, which cannot run here")]
    NativeRefused {
        /// The reference.
        reference: String,
    },
    /// A native image where a Wasm one is needed.
    #[error("image {image} is not a wasm image")]
    NotWasm {
        /// The image's manifest digest.
        image: String,
    },
    /// A Wasm image with neither a Wasm layer nor an entrypoint or command.
    #[error("image {image} names no wasm program: it has no wasm layer, entrypoint or command")]
    NoProgram {
        /// The image's manifest digest.
        image: String,
    },
    /// A user the image's `/etc/passwd` and `/etc/group` do not resolve.
    #[error(transparent)]
    UnknownUser {
        /// What is unknown.
        #[from]
        source: wrun_core::UnknownUser,
    },
    /// The layers of a multi-layer image could not be merged into one tree.
    #[error("merge the image's layers at {}", path.display())]
    Merge {
        /// The path that failed.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A Wasm image whose program could not be found in its files.
    #[error("wasm program {path} not found in the image")]
    ProgramNotFound {
        /// The path looked for.
        path: String,
    },
    /// The private async runtime a blocking pull runs on could not start.
    #[error("start async runtime")]
    Runtime {
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A name that matches more than one stored image.
    #[error("ambiguous image name {reference}: matches {matches}")]
    Ambiguous {
        /// The name looked for.
        reference: String,
        /// The images it matches.
        matches: String,
    },
    /// A file or directory of the store, or given by the user.
    #[error("{action} {}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// An archive (`oci-archive`, `docker-archive`, `oci:` layout) that is not what it claims.
    #[error("invalid archive {}: {reason}", path.display())]
    InvalidArchive {
        /// The archive.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The credential store or a credential helper failed.
    #[error("credentials for {registry}: {reason}")]
    Credentials {
        /// The registry host.
        registry: String,
        /// What went wrong.
        reason: String,
    },
}

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    }
}
