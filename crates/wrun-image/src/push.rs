//! Pushing a stored image to a registry, and checking credentials as
//! `docker login` does.

use crate::auth::Credentials;
use crate::pull::{PullOptions, Remote};
use crate::store::Store;
use crate::{Blob, Error, ImageRecord, reference};
use futures_util::StreamExt;
use oci_client::RegistryOperation;
use std::io::Read;

/// Pushes `record` (stored in `store`) as `target`, blob by blob: blobs the
/// registry already has are not sent again, and each blob streams from the
/// store without being held in memory. Returns the manifest's digest.
pub async fn push(
    store: &Store,
    record: &ImageRecord,
    target: &str,
    opts: &PullOptions,
) -> Result<String, Error> {
    let reference = reference::parse(target)?;
    let remote = Remote::connect(reference, opts)?;
    remote
        .client
        .auth(&remote.reference, &remote.auth, RegistryOperation::Push)
        .await
        .map_err(|e| remote.error("authenticate to push", e))?;
    let blobs = record
        .layers
        .iter()
        .map(|l| Blob {
            digest: l.digest.clone(),
            media_type: l.media_type.clone(),
            size: l.size,
        })
        .chain(std::iter::once(record.config.clone()));
    for blob in blobs {
        push_blob(store, &remote, &blob).await?;
    }
    let manifest = store.read_blob(&record.digest)?;
    let content_type =
        reqwest::header::HeaderValue::from_str(&record.media_type).map_err(|_| {
            Error::UnsupportedMediaType {
                media_type: record.media_type.clone(),
                what: "manifest".into(),
            }
        })?;
    remote
        .client
        .push_manifest_raw(&remote.reference, manifest, content_type)
        .await
        .map_err(|e| remote.error("push manifest of", e))?;
    Ok(record.digest.to_string())
}

async fn push_blob(store: &Store, remote: &Remote, blob: &Blob) -> Result<(), Error> {
    let what = format!("push blob {} of", blob.digest);
    let exists = remote
        .client
        .blob_exists(&remote.reference, &blob.digest.to_string())
        .await
        .map_err(|e| remote.error(&what, e))?;
    if exists {
        return Ok(());
    }
    let file = store.open_blob(&blob.digest)?.into_std();
    // Read the blob in chunks on a blocking thread, verifying it as it goes
    // out: the store never sends bytes that are not what their digest says.
    let (tx, rx) = tokio::sync::mpsc::channel::<
        Result<bytes::Bytes, oci_client::errors::OciDistributionError>,
    >(8);
    let expected = blob.digest.clone();
    let reader = tokio::task::spawn_blocking(move || {
        let mut r = crate::store::VerifyingReader::new(file, expected);
        loop {
            let mut buf = vec![0u8; 1 << 20];
            match r.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    buf.truncate(n);
                    if tx.blocking_send(Ok(bytes::Bytes::from(buf))).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e.into()));
                    return;
                }
            }
        }
    });
    let stream = tokio_stream_from(rx);
    let result = remote
        .client
        .push_blob_stream(
            &remote.reference,
            stream,
            &blob.digest.to_string(),
            Some(blob.size),
        )
        .await;
    let _ = reader.await;
    result.map(drop).map_err(|e| remote.error(&what, e))
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + 'static {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}

/// Checks `creds` against `registry` as `docker login` does: `GET /v2/`,
/// following a Bearer challenge to its token service.
pub async fn check_login(
    registry: &str,
    creds: &Credentials,
    opts: &PullOptions,
) -> Result<(), Error> {
    let reference = reference::parse(&format!("{registry}/wrun-login-check:latest"))?;
    let mut opts = opts.clone();
    opts.auth = None;
    let remote = Remote::connect(reference, &opts)?;
    let scheme = if reference::is_loopback(registry)
        || opts.insecure_registries.iter().any(|r| r == registry)
    {
        "http"
    } else {
        "https"
    };
    let fail = |reason: String| Error::Credentials {
        registry: registry.to_string(),
        reason,
    };
    let http = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(15))
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let url = format!("{scheme}://{}/v2/", remote.reference.resolve_registry());
    let resp = http
        .get(&url)
        .basic_auth(&creds.username, Some(&creds.secret))
        .send()
        .await
        .map_err(|e| fail(format!("{url}: {e}")))?;
    if resp.status().is_success() {
        return Ok(());
    }
    if resp.status() != reqwest::StatusCode::UNAUTHORIZED {
        return Err(fail(format!("{url}: {}", resp.status())));
    }
    let challenge = resp
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let Some(params) = challenge.strip_prefix("Bearer ") else {
        return Err(Error::Unauthorized {
            reference: registry.to_string(),
            registry: registry.to_string(),
        });
    };
    let param = |key: &str| {
        params.split(',').find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == key).then(|| v.trim_matches('"').to_string())
        })
    };
    let realm =
        param("realm").ok_or_else(|| fail(format!("{url}: Bearer challenge without realm")))?;
    let mut token_req = http
        .get(&realm)
        .basic_auth(&creds.username, Some(&creds.secret))
        .query(&[("account", creds.username.as_str())]);
    if let Some(service) = param("service") {
        token_req = token_req.query(&[("service", service)]);
    }
    let resp = token_req
        .send()
        .await
        .map_err(|e| fail(format!("{realm}: {e}")))?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(Error::Unauthorized {
            reference: registry.to_string(),
            registry: registry.to_string(),
        })
    }
}
