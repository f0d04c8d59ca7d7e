//! Images: references, registry pulls and pushes, the content store, safe
//! layer unpacking, and the one place an image is classified Wasm or native.
//!
//! Everything that reaches the store is verified against its digest (and
//! size) while it streams, before it becomes visible; see [`store`].
#![deny(missing_docs)]

pub mod archive;
pub mod auth;
pub mod classify;
pub mod digest;
mod error;
pub mod layers;
pub mod owner;
pub mod program;
pub mod pull;
pub mod push;
pub mod reference;
pub mod store;
pub mod unpack;

pub use digest::Digest;
pub use error::Error;
pub use layers::LayerStack;
pub use store::Store;
pub use wrun_core::{Classification, ImageKind};

use serde::{Deserialize, Serialize};
use std::fmt;

/// The media types of manifests and indexes wrun reads.
pub mod media {
    /// OCI image manifest.
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    /// OCI image index.
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    /// Docker image manifest, schema 2.
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    /// Docker manifest list.
    pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    /// OCI image config.
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    /// Docker image config.
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    /// The CNCF Wasm artifact config.
    pub const WASM_CONFIG: &str = "application/vnd.wasm.config.v0+json";
    /// Layer media types whose blob is a Wasm binary itself, not a tar.
    pub const WASM_LAYERS: &[&str] = &[
        "application/wasm",
        "application/vnd.bytecodealliance.wasm.component.layer.v0+wasm",
        "application/vnd.wasm.content.layer.v1+wasm",
        "application/vnd.module.wasm.content.layer.v1+wasm",
    ];
    /// Every manifest type accepted from a registry.
    pub const ACCEPTED_MANIFESTS: &[&str] =
        &[OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST];
}

/// An OS/architecture\[/variant\] pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Platform {
    /// `linux`, `wasip1`, …
    pub os: String,
    /// `amd64`, `wasm`, …
    pub architecture: String,
    /// `v8`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// Parses `OS/ARCH[/VARIANT]`.
    pub fn parse(s: &str) -> Result<Platform, Error> {
        let parts: Vec<&str> = s.split('/').collect();
        let bad = || Error::InvalidPlatform {
            platform: s.to_string(),
        };
        if parts.iter().any(|p| p.is_empty()) {
            return Err(bad());
        }
        match parts.as_slice() {
            [os, arch] => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: None,
            }),
            [os, arch, variant] => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: Some(variant.to_string()),
            }),
            _ => Err(bad()),
        }
    }

    /// The platform this binary runs on, in OCI's names.
    pub fn host() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        Platform {
            os: std::env::consts::OS.to_string(),
            architecture: architecture.to_string(),
            variant: None,
        }
    }

    /// Whether an image of this platform is one of `wanted`: the same OS
    /// and architecture, and the same variant when `wanted` names one.
    pub fn matches(&self, wanted: &Platform) -> bool {
        self.os == wanted.os
            && self.architecture == wanted.architecture
            && (wanted.variant.is_none() || self.variant == wanted.variant)
    }

    /// The Wasm platforms, in the order they are preferred.
    pub fn wasm() -> Vec<Platform> {
        ["wasi", "wasip1", "wasip2"]
            .iter()
            .map(|os| Platform {
                os: os.to_string(),
                architecture: "wasm".to_string(),
                variant: None,
            })
            .collect()
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// A blob an image refers to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blob {
    /// Its digest.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// Its size in bytes.
    pub size: u64,
}

/// One layer of a stored image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    /// Its (compressed) blob digest.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// Its blob size in bytes.
    pub size: u64,
    /// The digest of the uncompressed tar: the name of its unpacked
    /// directory. `None` for a layer that is a Wasm binary, kept as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff_id: Option<Digest>,
}

/// What the store knows of one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The manifest digest: the image's identity.
    pub digest: Digest,
    /// The manifest's media type.
    pub media_type: String,
    /// The config blob.
    pub config: Blob,
    /// The platform it was chosen for.
    pub platform: Platform,
    /// Wasm or native, and why.
    pub classification: Classification,
    /// Layers, bottom first.
    pub layers: Vec<Layer>,
    /// The index it was chosen from, when pulled through one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_digest: Option<Digest>,
    /// When it was stored, in seconds since the epoch.
    pub stored_at: u64,
}

impl ImageRecord {
    /// The sum of the blob sizes of the config and layers.
    pub fn size(&self) -> u64 {
        self.config.size + self.layers.iter().map(|l| l.size).sum::<u64>()
    }

    /// The layer whose blob is a Wasm binary, if the image is such an artifact.
    pub fn wasm_layer(&self) -> Option<&Layer> {
        self.layers
            .iter()
            .find(|l| media::WASM_LAYERS.contains(&l.media_type.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms() {
        let p = Platform::parse("linux/arm64/v8").expect("parse");
        assert_eq!(p.to_string(), "linux/arm64/v8");
        assert!(Platform::parse("linux").is_err());
        assert!(Platform::parse("linux//v8").is_err());
        assert!(Platform::parse("a/b/c/d").is_err());
    }
}
