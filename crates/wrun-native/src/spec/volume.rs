//! Host paths bind-mounted into a container (`-v`).

use std::path::PathBuf;

use wrun_core::Access;

use crate::error::{Error, Result};

/// A host directory or file bind-mounted into the container (`-v HOST:CTR[:ro]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// The host path (absolute).
    pub host: PathBuf,
    /// Where the container sees it (absolute).
    pub container: String,
    /// Whether the container may write to it.
    pub access: Access,
}

impl Volume {
    /// Parses `HOST:CTR`, `HOST:CTR:ro` or `HOST:CTR:rw`. Both paths must be
    /// absolute; named volumes are not supported.
    pub fn parse(spec: &str) -> Result<Self> {
        let bad = |reason: &str| Error::InvalidMount {
            spec: spec.to_string(),
            reason: reason.to_string(),
        };
        let parts: Vec<&str> = spec.split(':').collect();
        let (host, container, access) = match parts.as_slice() {
            [h, c] => (*h, *c, Access::ReadWrite),
            [h, c, "ro"] => (*h, *c, Access::ReadOnly),
            [h, c, "rw"] => (*h, *c, Access::ReadWrite),
            [_, _, mode] => return Err(bad(&format!("unknown mode {mode:?} (ro or rw)"))),
            _ => return Err(bad("expected HOST:CONTAINER[:ro|rw]")),
        };
        if !host.starts_with('/') {
            return Err(bad(
                "the host path must be absolute (named volumes are not supported)",
            ));
        }
        if !container.starts_with('/') {
            return Err(bad("the container path must be absolute"));
        }
        if container == "/" {
            return Err(bad("cannot mount over the container's root"));
        }
        Ok(Volume {
            host: PathBuf::from(host),
            container: container.to_string(),
            access,
        })
    }
}
