//! Pulling: from a registry (or an image layout) into the [`Store`].
//!
//! Each layer is fetched, hashed, written to the blob store, decompressed
//! and unpacked in one streaming pass; layers run in parallel (bounded).
//! Nothing becomes visible before its digest, size and diff-id check out.

use crate::auth::AuthFile;
use crate::classify::{self, Facts};
use crate::digest::Digest;
use crate::layers::LayerStack;
use crate::store::{BlobWriter, Store};
use crate::unpack::{self, Compression, UnpackOptions};
use crate::{Blob, Error, ImageRecord, Layer, Platform, media, program, reference};
use futures_util::{StreamExt, TryStreamExt, stream};
use oci_client::client::{BlobResponse, ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{self, Read, Write as _};
use std::sync::Arc;
use std::time::Duration;
use wrun_core::{ImageDefaults, ImageKind, PullPolicy};

/// Reports the progress of a pull; the CLI draws bars with it.
pub trait Progress: Send + Sync {
    /// A blob is about to be fetched.
    fn start(&self, _digest: &Digest, _size: u64) {}
    /// The blob's first `offset` bytes were kept from an interrupted pull;
    /// the rest is fetched (reported after [`start`](Progress::start)).
    fn resumed(&self, _digest: &Digest, _offset: u64) {}
    /// `bytes` more of the blob arrived.
    fn advance(&self, _digest: &Digest, _bytes: u64) {}
    /// The blob is in the store (`cached`: it already was).
    fn finish(&self, _digest: &Digest, _cached: bool) {}
}

/// Options of a pull.
#[derive(Clone)]
pub struct PullOptions {
    /// The platform to pick from an index; `None`: the host's, then a Wasm one.
    pub platform: Option<Platform>,
    /// Registries spoken to over plain HTTP (loopback always is).
    pub insecure_registries: Vec<String>,
    /// Where credentials come from; `None`: anonymous.
    pub auth: Option<AuthFile>,
    /// Layers fetched at once.
    pub parallel: usize,
    /// Attempts per blob after a transient failure (5xx, reset, time-out).
    pub retries: u32,
    /// Stop with [`Error::NativeRefused`] once the manifest and config say
    /// the image is native, before any layer is fetched: for callers that
    /// cannot run native images (`wrun run` without root). An image whose
    /// kind only its files tell (see [`classify::from_config`]) is still
    /// pulled whole, and refused by the caller once it is classified.
    pub refuse_native: bool,
    /// Progress reports.
    pub progress: Option<Arc<dyn Progress>>,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            platform: None,
            insecure_registries: Vec::new(),
            auth: None,
            parallel: 3,
            retries: 3,
            refuse_native: false,
            progress: None,
        }
    }
}

impl std::fmt::Debug for PullOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullOptions")
            .field("platform", &self.platform)
            .field("insecure_registries", &self.insecure_registries)
            .field("parallel", &self.parallel)
            .field("retries", &self.retries)
            .field("refuse_native", &self.refuse_native)
            .finish_non_exhaustive()
    }
}

/// What a pull stored.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The image.
    pub record: ImageRecord,
    /// The name it is stored under.
    pub name: String,
}

/// A registry connection for one repository.
pub(crate) struct Remote {
    pub(crate) client: Client,
    pub(crate) reference: Reference,
    pub(crate) auth: RegistryAuth,
}

impl Remote {
    pub(crate) fn connect(reference: Reference, opts: &PullOptions) -> Result<Remote, Error> {
        let registry = reference.resolve_registry().to_string();
        let plain = reference::is_loopback(&registry)
            || opts
                .insecure_registries
                .iter()
                .any(|r| r == &registry || r == reference.registry());
        let config = ClientConfig {
            protocol: if plain {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            connect_timeout: Some(Duration::from_secs(15)),
            read_timeout: Some(Duration::from_secs(60)),
            ..ClientConfig::default()
        };
        let auth = match &opts.auth {
            Some(file) => file.registry_auth(reference.registry())?,
            None => RegistryAuth::Anonymous,
        };
        Ok(Remote {
            client: Client::new(config),
            reference,
            auth,
        })
    }

    pub(crate) fn error(&self, action: &str, source: OciDistributionError) -> Error {
        let reference = self.reference.whole();
        match &source {
            OciDistributionError::UnauthorizedError { .. }
            | OciDistributionError::AuthenticationFailure(_) => {
                return Error::Unauthorized {
                    reference,
                    registry: self.reference.registry().to_string(),
                };
            }
            OciDistributionError::ImageManifestNotFoundError(_) => {
                return Error::ManifestUnknown { reference };
            }
            // oci-client checks digests too; its message repeats itself under `{:#}`.
            OciDistributionError::DigestError(
                oci_client::errors::DigestError::VerificationError { expected, actual },
            ) => {
                let what = action.strip_prefix("pull ").unwrap_or(action);
                return Error::DigestMismatch {
                    what: format!("{what} {reference}"),
                    expected: expected.clone(),
                    actual: actual.clone(),
                };
            }
            OciDistributionError::RegistryError { envelope, .. }
                if envelope.errors.iter().any(|e| {
                    matches!(
                        e.code,
                        oci_client::errors::OciErrorCode::ManifestUnknown
                            | oci_client::errors::OciErrorCode::NameUnknown
                    )
                }) =>
            {
                return Error::ManifestUnknown { reference };
            }
            OciDistributionError::RegistryError { envelope, .. }
                if envelope
                    .errors
                    .iter()
                    .any(|e| matches!(e.code, oci_client::errors::OciErrorCode::Unauthorized)) =>
            {
                return Error::Unauthorized {
                    reference,
                    registry: self.reference.registry().to_string(),
                };
            }
            _ => {}
        }
        Error::Registry {
            action: action.to_string(),
            reference,
            source,
        }
    }

    /// Fetches a manifest or index, checking it against `expected` when the
    /// caller knows its digest (a reference by digest, an index entry).
    async fn manifest(
        &self,
        reference: &Reference,
        expected: Option<&Digest>,
    ) -> Result<(Vec<u8>, Digest), Error> {
        let (bytes, _) = self
            .client
            .pull_manifest_raw(reference, &self.auth, media::ACCEPTED_MANIFESTS)
            .await
            .map_err(|e| self.error("pull manifest of", e))?;
        let digest = match expected {
            Some(d) => {
                let mut h = d.hasher();
                h.update(&bytes);
                let actual = h.finish();
                if actual != *d {
                    return Err(Error::DigestMismatch {
                        what: format!("manifest of {}", reference.whole()),
                        expected: d.to_string(),
                        actual: actual.to_string(),
                    });
                }
                actual
            }
            None => Digest::sha256_of(&bytes),
        };
        Ok((bytes.to_vec(), digest))
    }

    async fn small_blob(&self, store: &Store, blob: &Blob) -> Result<Vec<u8>, Error> {
        if store.has_blob(&blob.digest) {
            return store.read_blob(&blob.digest);
        }
        // One download per blob across processes, as for layers: wait for
        // whoever holds it, then look again.
        let _lock = {
            let store = store.clone();
            let digest = blob.digest.clone();
            tokio::task::spawn_blocking(move || store.lock_blob(&digest))
                .await
                .map_err(|e| {
                    Error::io("lock blob", blob.digest.to_string())(io::Error::other(e))
                })??
        };
        if store.has_blob(&blob.digest) {
            return store.read_blob(&blob.digest);
        }
        let desc = descriptor(blob);
        let mut out = Vec::new();
        self.client
            .pull_blob(&self.reference, &desc, &mut out)
            .await
            .map_err(|e| self.error(&format!("pull blob {} of", blob.digest), e))?;
        store.put_blob(&blob.digest, &out)?;
        Ok(out)
    }
}

pub(crate) fn descriptor(blob: &Blob) -> OciDescriptor {
    OciDescriptor {
        media_type: blob.media_type.clone(),
        digest: blob.digest.to_string(),
        size: blob.size as i64,
        ..OciDescriptor::default()
    }
}

/// Pulls `source` (a registry reference or a local `oci:`/`oci-archive:`/
/// `docker-archive:` source) into `store`.
///
/// What pulls that are gone left in the store's `tmp/` is removed first,
/// but for their partial blobs, which this pull resumes where it needs them.
pub async fn pull(store: &Store, source: &str, opts: &PullOptions) -> Result<Pulled, Error> {
    let source = reference::Source::parse(source)?;
    store.discard_leftovers();
    match source {
        reference::Source::Registry(r) => pull_registry(store, r, opts).await,
        other => crate::archive::import(store, other, opts).await,
    }
}

/// Finds `reference` in `store`, pulling it as `policy` says: only when it
/// is not stored ([`PullPolicy::Missing`]), every time
/// ([`PullPolicy::Always`]) or never ([`PullPolicy::Never`]: a missing image
/// is [`Error::NotStored`]). What `wrun run` and `wrun-plugin` do before
/// they read an image.
///
/// With a platform in `opts`, "stored" means stored for that platform: the
/// image the name points at when it is of that platform, or else the one
/// the index it came from lists for the platform, when that is stored too
/// (a name points at one manifest of an index, the last one pulled).
/// Otherwise the image is pulled for the platform, or, with
/// [`PullPolicy::Never`], [`Error::NotStoredForPlatform`]. An image pulled
/// without an index whose config names another platform is
/// [`Error::PlatformMismatch`].
pub async fn ensure(
    store: &Store,
    reference: &str,
    policy: PullPolicy,
    opts: &PullOptions,
) -> Result<ImageRecord, Error> {
    let wanted = opts.platform.as_ref();
    match stored(store, reference, policy, wanted)? {
        Some(record) => Ok(record),
        None => of_platform(
            pull(store, reference, opts).await?.record,
            reference,
            wanted,
        ),
    }
}

/// [`ensure`] for synchronous callers. A pull, when one is needed, runs on
/// a private single-threaded tokio runtime on a thread of its own, so this
/// may be called from any thread, even one inside an async runtime (which
/// it then blocks until the pull is done). Nothing process-wide is touched.
pub fn ensure_blocking(
    store: &Store,
    reference: &str,
    policy: PullPolicy,
    opts: &PullOptions,
) -> Result<ImageRecord, Error> {
    let wanted = opts.platform.as_ref();
    if let Some(record) = stored(store, reference, policy, wanted)? {
        return Ok(record);
    }
    let pulled = std::thread::scope(|scope| {
        let pulling = scope.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|source| Error::Runtime { source })?;
            rt.block_on(pull(store, reference, opts))
        });
        match pulling.join() {
            Ok(pulled) => pulled.map(|p| p.record),
            // A panic in the pull is a bug: pass it on as it is.
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })?;
    of_platform(pulled, reference, wanted)
}

/// The stored image `reference` when `policy` lets it be used without a
/// pull, for the platform `wanted` if one is; `None` when it must be pulled.
fn stored(
    store: &Store,
    reference: &str,
    policy: PullPolicy,
    wanted: Option<&Platform>,
) -> Result<Option<ImageRecord>, Error> {
    let found = match store.resolve(reference) {
        Ok((record, _)) => Some(record),
        Err(Error::ImageNotFound { .. }) => None,
        Err(e) => return Err(e),
    };
    if policy == PullPolicy::Always {
        return Ok(None);
    }
    let found = match (found, wanted) {
        (Some(record), Some(want)) => stored_for(store, reference, record, want)?,
        (found, _) => found,
    };
    match (policy, found) {
        (_, Some(record)) => Ok(Some(record)),
        (PullPolicy::Never, None) => Err(match wanted {
            Some(want) => Error::NotStoredForPlatform {
                reference: reference.to_string(),
                platform: want.to_string(),
            },
            None => Error::NotStored {
                reference: reference.to_string(),
            },
        }),
        (PullPolicy::Missing | PullPolicy::Always, None) => Ok(None),
    }
}

/// The stored image of platform `want` that `record`, the image
/// `reference` names, stands for: the index it came from decides when it
/// came from one (and that index is stored), else its own platform does.
/// `None`: not stored for `want`, or not known to exist (a pull decides).
fn stored_for(
    store: &Store,
    reference: &str,
    record: ImageRecord,
    want: &Platform,
) -> Result<Option<ImageRecord>, Error> {
    let Some(index) = record.index_digest.as_ref().filter(|d| store.has_blob(d)) else {
        return Ok(of_platform(record, reference, Some(want)).ok());
    };
    let chosen = match choose_platform(&store.read_blob(index)?, index, reference, Some(want)) {
        Ok(chosen) => chosen,
        // The tag may have moved to an index that has it: a pull tells.
        Err(Error::NoMatchingPlatform { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    if chosen.digest == record.digest {
        return Ok(Some(record));
    }
    match store.image(&chosen.digest) {
        Ok(r) => Ok(Some(r)),
        Err(Error::ImageNotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `record`, an image `reference` names, if it may run for the platform
/// `wanted`: one chosen from an index was chosen for it; otherwise its
/// config's platform must match, unless the config names none (a Wasm
/// artifact's), which contradicts nothing.
fn of_platform(
    record: ImageRecord,
    reference: &str,
    wanted: Option<&Platform>,
) -> Result<ImageRecord, Error> {
    match wanted {
        Some(want)
            if record.index_digest.is_none()
                && !record.platform.os.is_empty()
                && !record.platform.matches(want) =>
        {
            Err(Error::PlatformMismatch {
                reference: reference.to_string(),
                wanted: want.to_string(),
                actual: record.platform.to_string(),
            })
        }
        _ => Ok(record),
    }
}

async fn pull_registry(
    store: &Store,
    reference: Reference,
    opts: &PullOptions,
) -> Result<Pulled, Error> {
    let remote = Remote::connect(reference, opts)?;
    let by_digest: Option<Digest> = remote.reference.digest().map(str::parse).transpose()?;
    let _shared = store.lock_shared()?;
    let (bytes, digest) = remote
        .manifest(&remote.reference, by_digest.as_ref())
        .await?;
    let (manifest_bytes, manifest_digest, index_digest) = if is_index(&bytes, &digest)? {
        let entry = choose_platform(
            &bytes,
            &digest,
            &remote.reference.whole(),
            opts.platform.as_ref(),
        )?;
        let r = remote.reference.clone_with_digest(entry.digest.to_string());
        let (m, d) = remote.manifest(&r, Some(&entry.digest)).await?;
        if m.len() as u64 != entry.size {
            return Err(Error::SizeMismatch {
                what: format!("manifest {d}"),
                expected: entry.size,
                actual: m.len() as u64,
            });
        }
        store.put_blob(&digest, &bytes)?;
        (m, d, Some(digest))
    } else {
        (bytes, digest, None)
    };
    let fetch = RemoteFetch { remote: &remote };
    let record = store_image(
        store,
        &fetch,
        &manifest_bytes,
        &manifest_digest,
        index_digest,
        opts,
    )
    .await?;
    // The name as asked for: `repo:tag`, or `repo@digest` (which may be an index's).
    let name = remote.reference.whole();
    store.put_image(&record, std::slice::from_ref(&name))?;
    Ok(Pulled { record, name })
}

/// Whether the manifest bytes are an index (OCI index or docker list).
pub(crate) fn is_index(bytes: &[u8], digest: &Digest) -> Result<bool, Error> {
    let v: Value = serde_json::from_slice(bytes).map_err(|source| Error::Malformed {
        what: format!("manifest {digest}"),
        source,
    })?;
    let mt = v.get("mediaType").and_then(Value::as_str).unwrap_or("");
    Ok(mt == media::OCI_INDEX
        || mt == media::DOCKER_LIST
        || (mt.is_empty() && v.get("manifests").is_some()))
}

/// An index entry chosen for a platform.
pub(crate) struct Chosen {
    pub(crate) digest: Digest,
    pub(crate) size: u64,
}

/// Picks the manifest for `wanted`, or else the host's platform, then a Wasm one.
pub(crate) fn choose_platform(
    bytes: &[u8],
    digest: &Digest,
    reference: &str,
    wanted: Option<&Platform>,
) -> Result<Chosen, Error> {
    let index: oci_spec::image::ImageIndex =
        serde_json::from_slice(bytes).map_err(|source| Error::Malformed {
            what: format!("index {digest}"),
            source,
        })?;
    let mut entries = Vec::new();
    for m in index.manifests() {
        let Some(p) = m.platform() else { continue };
        let platform = Platform {
            os: p.os().to_string(),
            architecture: p.architecture().to_string(),
            variant: p.variant().clone(),
        };
        entries.push((platform, m.digest().to_string(), m.size()));
    }
    let candidates: Vec<Platform> = match wanted {
        Some(p) => vec![p.clone()],
        None => std::iter::once(Platform::host())
            .chain(Platform::wasm())
            .collect(),
    };
    for want in &candidates {
        let found = entries.iter().find(|(p, _, _)| p.matches(want));
        if let Some((_, d, size)) = found {
            return Ok(Chosen {
                digest: d.parse()?,
                size: *size,
            });
        }
    }
    Err(Error::NoMatchingPlatform {
        reference: reference.to_string(),
        wanted: candidates
            .iter()
            .map(Platform::to_string)
            .collect::<Vec<_>>()
            .join(" or "),
        available: if entries.is_empty() {
            "none".to_string()
        } else {
            entries
                .iter()
                .map(|(p, _, _)| p.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        },
    })
}

/// Where the blobs of an image come from: a registry or an image layout.
pub(crate) trait Fetch: Sync {
    /// Reads a small blob (config) into memory and stores it, verified.
    async fn small(&self, store: &Store, blob: &Blob) -> Result<Vec<u8>, Error>;
    /// Streams a blob's bytes from `offset` on into `tx`, one chunk at a time.
    async fn stream(
        &self,
        blob: &Blob,
        offset: u64,
        tx: tokio::sync::mpsc::Sender<bytes::Bytes>,
    ) -> Result<(), Error>;
    /// Whether a failure is worth another attempt.
    fn transient(&self, _e: &Error) -> bool {
        false
    }
}

struct RemoteFetch<'a> {
    remote: &'a Remote,
}

impl Fetch for RemoteFetch<'_> {
    async fn small(&self, store: &Store, blob: &Blob) -> Result<Vec<u8>, Error> {
        self.remote.small_blob(store, blob).await
    }

    async fn stream(
        &self,
        blob: &Blob,
        offset: u64,
        tx: tokio::sync::mpsc::Sender<bytes::Bytes>,
    ) -> Result<(), Error> {
        let r = &self.remote;
        let what = || format!("pull blob {} of", blob.digest);
        if offset >= blob.size && offset > 0 {
            return Ok(());
        }
        // Bytes of the answer to drop: a registry that ignores the range
        // sends the whole blob, whose first `offset` bytes are kept already.
        let mut skip = 0u64;
        let mut s = if offset == 0 {
            r.client
                .pull_blob_stream(&r.reference, &descriptor(blob))
                .await
                .map_err(|e| r.error(&what(), e))?
        } else {
            match r
                .client
                .pull_blob_stream_partial(&r.reference, &descriptor(blob), offset, None)
                .await
                .map_err(|e| r.error(&what(), e))?
            {
                BlobResponse::Partial(s) => s,
                BlobResponse::Full(s) => {
                    skip = offset;
                    s
                }
            }
        };
        while let Some(mut chunk) = match s.stream.try_next().await {
            Ok(chunk) => chunk,
            // oci-client's own digest check fails at the end of the stream;
            // the blob writer's verdict (size, then digest) is the precise
            // one, and it must not pass for a transient failure.
            Err(e)
                if e.get_ref()
                    .is_some_and(|i| i.is::<oci_client::errors::DigestError>()) =>
            {
                None
            }
            Err(e) => return Err(r.error(&what(), e.into())),
        } {
            if skip > 0 {
                let n = skip.min(chunk.len() as u64);
                let _ = chunk.split_to(n as usize);
                skip -= n;
                if chunk.is_empty() {
                    continue;
                }
            }
            if tx.send(chunk).await.is_err() {
                // The consumer stopped (it failed); its error is the one to report.
                break;
            }
        }
        Ok(())
    }

    fn transient(&self, e: &Error) -> bool {
        match e {
            Error::Registry { source, .. } => match source {
                OciDistributionError::ServerError { code, .. } => *code >= 500,
                OciDistributionError::RequestError(e) => {
                    e.is_timeout()
                        || e.is_connect()
                        || e.is_body()
                        || e.status().is_some_and(|s| s.is_server_error())
                }
                OciDistributionError::IoError(_) => true,
                OciDistributionError::RegistryError { envelope, .. } => envelope.errors.is_empty(),
                _ => false,
            },
            _ => false,
        }
    }
}

/// Stores the image whose manifest is `manifest_bytes`: config, layers
/// (fetched and unpacked in parallel), classification, record.
pub(crate) async fn store_image<F: Fetch>(
    store: &Store,
    fetch: &F,
    manifest_bytes: &[u8],
    manifest_digest: &Digest,
    index_digest: Option<Digest>,
    opts: &PullOptions,
) -> Result<ImageRecord, Error> {
    let what = format!("manifest {manifest_digest}");
    let manifest: oci_spec::image::ImageManifest =
        serde_json::from_slice(manifest_bytes).map_err(|source| Error::Malformed {
            what: what.clone(),
            source,
        })?;
    let media_type = manifest
        .media_type()
        .as_ref()
        .map(|m| m.to_string())
        .unwrap_or_else(|| media::OCI_MANIFEST.to_string());
    if media_type != media::OCI_MANIFEST && media_type != media::DOCKER_MANIFEST {
        return Err(Error::UnsupportedMediaType { media_type, what });
    }
    let to_blob = |d: &oci_spec::image::Descriptor| -> Result<Blob, Error> {
        Ok(Blob {
            digest: d.digest().to_string().parse()?,
            media_type: d.media_type().to_string(),
            size: d.size(),
        })
    };
    let config = to_blob(manifest.config())?;
    let config_bytes = fetch.small(store, &config).await?;
    if config_bytes.len() as u64 != config.size {
        return Err(Error::SizeMismatch {
            what: format!("config {}", config.digest),
            expected: config.size,
            actual: config_bytes.len() as u64,
        });
    }
    let config_json: Value =
        serde_json::from_slice(&config_bytes).map_err(|source| Error::Malformed {
            what: format!("config {}", config.digest),
            source,
        })?;
    // A full image config must parse as one; artifacts carry their own.
    let defaults =
        if config.media_type == media::OCI_CONFIG || config.media_type == media::DOCKER_CONFIG {
            let typed = program::parse_config(&config_bytes, &config.digest.to_string())?;
            ImageDefaults::from_config(&typed)
        } else {
            ImageDefaults::default()
        };
    let diff_ids: Vec<Digest> = config_json
        .pointer("/rootfs/diff_ids")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::parse)
                .collect::<Result<_, _>>()
        })
        .transpose()?
        .unwrap_or_default();

    // Plan the layers: Wasm binaries are kept as blobs, tars are unpacked.
    let mut layers = Vec::new();
    let mut tar_index = 0;
    for d in manifest.layers() {
        let blob = to_blob(d)?;
        let plan = if media::WASM_LAYERS.contains(&blob.media_type.as_str()) {
            Plan::Raw
        } else {
            let compression = Compression::from_media_type(&blob.media_type).map_err(|_| {
                Error::UnsupportedMediaType {
                    media_type: blob.media_type.clone(),
                    what: format!("layer {}", blob.digest),
                }
            })?;
            let diff_id = diff_ids
                .get(tar_index)
                .cloned()
                .ok_or_else(|| Error::LayerCount {
                    reference: manifest_digest.to_string(),
                    layers: manifest.layers().len(),
                    diff_ids: diff_ids.len(),
                })?;
            tar_index += 1;
            Plan::Tar {
                compression,
                diff_id,
            }
        };
        layers.push((blob, plan));
    }
    if tar_index != diff_ids.len() {
        return Err(Error::LayerCount {
            reference: manifest_digest.to_string(),
            layers: tar_index,
            diff_ids: diff_ids.len(),
        });
    }

    let layer_records: Vec<Layer> = layers
        .iter()
        .map(|(blob, plan)| Layer {
            digest: blob.digest.clone(),
            media_type: blob.media_type.clone(),
            size: blob.size,
            diff_id: match plan {
                Plan::Tar { diff_id, .. } => Some(diff_id.clone()),
                Plan::Raw => None,
            },
        })
        .collect();
    let facts = facts(
        &config,
        &layer_records,
        &config_json,
        &defaults,
        manifest.annotations().as_ref(),
    );
    // Refused before the layers when the manifest and config already say
    // native. Most native images name an entrypoint, and for those only its
    // file's first bytes tell (rule 4: a linux/amd64 image may hold a Wasm
    // module), so they are fetched whole and refused after classification.
    if opts.refuse_native
        && classify::from_config(&facts).is_some_and(|c| c.kind == ImageKind::Native)
    {
        return Err(Error::NativeRefused {
            reference: manifest_digest.to_string(),
        });
    }

    stream::iter(
        layers
            .iter()
            .map(|(blob, plan)| fetch_layer(store, fetch, blob, plan, opts)),
    )
    .buffer_unordered(opts.parallel.max(1))
    .try_collect::<Vec<()>>()
    .await?;

    let platform = Platform {
        os: config_json
            .get("os")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        architecture: config_json
            .get("architecture")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        variant: config_json
            .get("variant")
            .and_then(Value::as_str)
            .map(str::to_string),
    };
    let classification = {
        let files = LayerStack::open_layers(store, &layer_records)?;
        classify::classify(&facts, &|p| files.read_head(p, 8))
    };
    let record = ImageRecord {
        digest: manifest_digest.clone(),
        media_type,
        config,
        platform,
        classification,
        layers: layer_records,
        index_digest,
        stored_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    };
    store.put_blob(manifest_digest, manifest_bytes)?;
    Ok(record)
}

fn facts(
    config: &Blob,
    layers: &[Layer],
    cfg: &Value,
    defaults: &ImageDefaults,
    annotations: Option<&std::collections::HashMap<String, String>>,
) -> Facts {
    let c = cfg.get("config").unwrap_or(&Value::Null);
    let mut all: BTreeMap<String, String> = BTreeMap::new();
    if let Some(labels) = c.get("Labels").and_then(Value::as_object) {
        for (k, v) in labels {
            if let Some(v) = v.as_str() {
                all.insert(k.clone(), v.to_string());
            }
        }
    }
    if let Some(a) = annotations {
        all.extend(a.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    Facts {
        config_media_type: config.media_type.clone(),
        layer_media_types: layers.iter().map(|l| l.media_type.clone()).collect(),
        os: cfg
            .get("os")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        architecture: cfg
            .get("architecture")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        annotations: all,
        program: defaults.argv(None, &[]).into_iter().next(),
        working_dir: defaults.working_dir.clone(),
        path_env: defaults.path().map(str::to_string),
    }
}

enum Plan {
    Raw,
    Tar {
        compression: Compression,
        diff_id: Digest,
    },
}

async fn fetch_layer<F: Fetch>(
    store: &Store,
    fetch: &F,
    blob: &Blob,
    plan: &Plan,
    opts: &PullOptions,
) -> Result<(), Error> {
    let done = |store: &Store| match plan {
        Plan::Raw => store.has_blob(&blob.digest),
        Plan::Tar { diff_id, .. } => store.has_blob(&blob.digest) && store.has_layer(diff_id),
    };
    let progress = opts.progress.clone();
    if done(store) {
        if let Some(p) = &progress {
            p.finish(&blob.digest, true);
        }
        return Ok(());
    }
    // One download per blob across processes: wait for whoever holds it, then look again.
    let lock = {
        let store = store.clone();
        let digest = blob.digest.clone();
        tokio::task::spawn_blocking(move || store.lock_blob(&digest))
            .await
            .map_err(|e| Error::io("lock blob", blob.digest.to_string())(io::Error::other(e)))??
    };
    if done(store) {
        if let Some(p) = &progress {
            p.finish(&blob.digest, true);
        }
        return Ok(());
    }
    if let Some(p) = &progress {
        p.start(&blob.digest, blob.size);
    }
    let mut attempt = 0;
    let mut fresh = false;
    loop {
        match fetch_layer_once(store, fetch, blob, plan, progress.clone()).await {
            Ok(()) => break,
            // The bytes a dead pull left were not the blob's (a crash that
            // lost data): they are gone with the failed attempt, so the
            // next one starts from nothing. Once.
            Err(Attempt {
                error: Error::DigestMismatch { .. },
                resumed: true,
            }) if !fresh => fresh = true,
            Err(Attempt { error, .. }) if attempt < opts.retries && fetch.transient(&error) => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
            }
            Err(Attempt { error, .. }) => return Err(error),
        }
    }
    drop(lock);
    if let Some(p) = &progress {
        p.finish(&blob.digest, false);
    }
    Ok(())
}

/// A failed attempt at a layer, and whether it went on from a dead pull's bytes.
struct Attempt {
    error: Error,
    resumed: bool,
}

async fn fetch_layer_once<F: Fetch>(
    store: &Store,
    fetch: &F,
    blob: &Blob,
    plan: &Plan,
    progress: Option<Arc<dyn Progress>>,
) -> Result<(), Attempt> {
    let fail = |resumed| move |error| Attempt { error, resumed };
    let writer = {
        let store = store.clone();
        let (digest, size) = (blob.digest.clone(), blob.size);
        tokio::task::spawn_blocking(move || {
            let what = format!("blob {digest}");
            store.resume_blob_writer(digest, size, what)
        })
        .await
        .map_err(|e| Error::io("write blob", blob.digest.to_string())(io::Error::other(e)))
        .and_then(|w| w)
        .map_err(fail(false))?
    };
    let offset = writer.kept();
    let resumed = offset > 0;
    if resumed && let Some(p) = &progress {
        p.resumed(&blob.digest, offset);
    }
    let kept = writer.read_kept().map_err(fail(resumed))?;
    let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(32);
    let sink = Sink {
        kept,
        rx,
        writer,
        chunk: bytes::Bytes::new(),
        progress,
        digest: blob.digest.clone(),
        error: None,
    };
    let consumer = {
        let store = store.clone();
        let blob = blob.clone();
        let plan = match plan {
            Plan::Raw => None,
            Plan::Tar {
                compression,
                diff_id,
            } => Some((*compression, diff_id.clone())),
        };
        tokio::task::spawn_blocking(move || consume(&store, &blob, plan, sink))
    };
    let produced = fetch.stream(blob, offset, tx).await;
    let consumed = consumer
        .await
        .map_err(|e| Error::io("unpack", blob.digest.to_string())(io::Error::other(e)))
        .map_err(fail(resumed))?;
    match (produced, consumed) {
        // The content's own verdict names the real problem (a lying server).
        (_, Err(e @ Error::DigestMismatch { .. })) => Err(e),
        // A transfer that failed (a 5xx, a reset) explains a short blob; it
        // must win over the consumer's size mismatch, or it is never retried.
        (Err(e), _) => Err(e),
        (Ok(()), r) => r,
    }
    .map_err(fail(resumed))
}

/// Runs on a blocking thread: writes the blob and, for tar layers, unpacks it
/// from the same bytes as they arrive.
fn consume(
    store: &Store,
    blob: &Blob,
    plan: Option<(Compression, Digest)>,
    mut sink: Sink,
) -> Result<(), Error> {
    let Some((compression, diff_id)) = plan else {
        // Kept bytes are hashed already, and nothing unpacks them.
        sink.kept = None;
        io::copy(&mut sink, &mut io::sink()).map_err(|e| sink.failure(e, blob))?;
        return sink.writer.commit();
    };
    let layer = store.temp_dir()?;
    let unpacked = unpack::unpack_layer(&mut sink, compression, layer.dir(), &UnpackOptions::new());
    let unpacked = match unpacked {
        Ok(u) => u,
        Err(source) => {
            // A stream that broke, or content that is not what the digest
            // promised, explains a bad tar better than the tar does.
            if let Some(e) = sink.error.take() {
                return Err(sink.failure(e, blob));
            }
            let _ = io::copy(&mut sink, &mut io::sink());
            if let Err(e @ (Error::DigestMismatch { .. } | Error::SizeMismatch { .. })) =
                sink.writer.commit()
            {
                return Err(e);
            }
            return Err(Error::Unpack {
                digest: blob.digest.to_string(),
                source,
            });
        }
    };
    // The compressed stream may carry bytes past the end of the tar.
    io::copy(&mut sink, &mut io::sink()).map_err(|e| sink.failure(e, blob))?;
    sink.writer.commit()?;
    if unpacked.diff_id != diff_id.to_string() {
        return Err(Error::DigestMismatch {
            what: format!("diff-id of layer {}", blob.digest),
            expected: diff_id.to_string(),
            actual: unpacked.diff_id,
        });
    }
    store.commit_layer(layer, &diff_id)
}

/// Reads the blob's chunks off the channel, writing each to the blob store
/// (which hashes it) before handing it on; first, the bytes a dead pull
/// left, which are in the store's file already.
struct Sink {
    kept: Option<io::Take<cap_std::fs::File>>,
    rx: tokio::sync::mpsc::Receiver<bytes::Bytes>,
    writer: BlobWriter,
    chunk: bytes::Bytes,
    progress: Option<Arc<dyn Progress>>,
    digest: Digest,
    error: Option<io::Error>,
}

impl Sink {
    fn failure(&mut self, e: io::Error, blob: &Blob) -> Error {
        Error::io("write blob", blob.digest.to_string())(e)
    }
}

impl Read for Sink {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(kept) = self.kept.as_mut() {
            match kept.read(buf)? {
                0 => self.kept = None,
                n => return Ok(n),
            }
        }
        if self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                Some(c) => {
                    if let Err(e) = self.writer.write_all(&c) {
                        let kind = e.kind();
                        let msg = e.to_string();
                        self.error = Some(e);
                        return Err(io::Error::new(kind, msg));
                    }
                    if let Some(p) = &self.progress {
                        p.advance(&self.digest, c.len() as u64);
                    }
                    self.chunk = c;
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        let _ = self.chunk.split_to(n);
        Ok(n)
    }
}
