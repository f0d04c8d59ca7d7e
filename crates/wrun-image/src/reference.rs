//! Image references, parsed as docker parses them (`busybox` is
//! `docker.io/library/busybox:latest`), and the local sources skopeo names
//! (`oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]`, `docker-archive:FILE`).

use crate::Error;
use oci_client::Reference;
use std::path::PathBuf;

/// Where an image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A registry.
    Registry(Reference),
    /// An OCI image-layout directory, with an optional tag (`org.opencontainers.image.ref.name`).
    OciDir(PathBuf, Option<String>),
    /// A tar of an OCI image layout, with an optional tag.
    OciArchive(PathBuf, Option<String>),
    /// A `docker save` tar.
    DockerArchive(PathBuf),
}

impl Source {
    /// Parses a pull source: a registry reference, or one of skopeo's
    /// `oci:`, `oci-archive:`, `docker-archive:` and `docker://` forms.
    pub fn parse(s: &str) -> Result<Source, Error> {
        if let Some(rest) = s.strip_prefix("docker://") {
            return Ok(Source::Registry(parse(rest)?));
        }
        let split_tag = |rest: &str| -> (PathBuf, Option<String>) {
            // `oci:DIR:TAG` — the tag is after the last colon, if that is not part of the path.
            match rest.rsplit_once(':') {
                Some((path, tag)) if !tag.contains('/') && !path.is_empty() => {
                    (PathBuf::from(path), Some(tag.to_string()))
                }
                _ => (PathBuf::from(rest), None),
            }
        };
        if let Some(rest) = s.strip_prefix("oci:") {
            let (p, t) = split_tag(rest);
            return Ok(Source::OciDir(p, t));
        }
        if let Some(rest) = s.strip_prefix("oci-archive:") {
            let (p, t) = split_tag(rest);
            return Ok(Source::OciArchive(p, t));
        }
        if let Some(rest) = s.strip_prefix("docker-archive:") {
            return Ok(Source::DockerArchive(PathBuf::from(rest)));
        }
        Ok(Source::Registry(parse(s)?))
    }
}

/// Parses a registry reference as docker does.
pub fn parse(s: &str) -> Result<Reference, Error> {
    s.parse::<Reference>().map_err(|e| Error::InvalidReference {
        reference: s.to_string(),
        reason: e.to_string(),
    })
}

/// The canonical name of a reference: `docker.io/library/busybox:latest`.
pub fn normalize(s: &str) -> Result<String, Error> {
    Ok(parse(s)?.whole())
}

/// A short name for what `reference` names, for messages: its last path
/// component without tag or digest (`ghcr.io/acme/tool:1` → `tool`).
pub fn short_name(reference: &str) -> &str {
    reference
        .rsplit('/')
        .next()
        .and_then(|n| n.split([':', '@']).next())
        .unwrap_or(reference)
}

/// Whether a registry host is on loopback (`localhost`, `127.0.0.0/8`,
/// `::1`), where docker speaks plain HTTP without being told to.
pub fn is_loopback(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        registry.rsplit_once(':').map_or(registry, |(h, _)| h)
    };
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_normalization() {
        assert_eq!(
            normalize("busybox").ok().as_deref(),
            Some("docker.io/library/busybox:latest")
        );
        assert_eq!(
            normalize("127.0.0.1:5000/a/b:1").ok().as_deref(),
            Some("127.0.0.1:5000/a/b:1")
        );
        let d = "sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";
        assert_eq!(
            normalize(&format!("localhost:5000/x@{d}")).ok(),
            Some(format!("localhost:5000/x@{d}"))
        );
        assert!(normalize("Busybox").is_err());
        assert!(normalize("a b").is_err());
        assert!(normalize("repo:bad tag").is_err());
        assert!(normalize("").is_err());
    }

    #[test]
    fn short_names() {
        assert_eq!(short_name("ghcr.io/acme/tool:1"), "tool");
        assert_eq!(
            short_name("127.0.0.1:5000/plugins/upper@sha256:ab"),
            "upper"
        );
        assert_eq!(short_name("busybox"), "busybox");
    }

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in [
            "docker.io",
            "10.0.0.1:5000",
            "example.com:443",
            "[fe80::1]:5000",
        ] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn sources() {
        assert_eq!(
            Source::parse("oci:/tmp/l:v1").ok(),
            Some(Source::OciDir("/tmp/l".into(), Some("v1".into())))
        );
        assert_eq!(
            Source::parse("oci:/tmp/l").ok(),
            Some(Source::OciDir("/tmp/l".into(), None))
        );
        assert_eq!(
            Source::parse("docker-archive:x.tar").ok(),
            Some(Source::DockerArchive("x.tar".into()))
        );
        assert!(matches!(
            Source::parse("docker://busybox"),
            Ok(Source::Registry(_))
        ));
    }
}
