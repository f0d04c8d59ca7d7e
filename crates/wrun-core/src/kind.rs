use serde::{Deserialize, Serialize};
use std::fmt;

/// What runs an image: the Wasm sandbox or the native Linux runtime.
///
/// Decided once, from the image's media types, platform, annotations and
/// entrypoint bytes, and recorded in the store (see [`Classification`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageKind {
    /// The payload is WebAssembly (a core module or a component).
    Wasm,
    /// The payload is a Linux userland run in namespaces and cgroups.
    Native,
}

impl fmt::Display for ImageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ImageKind::Wasm => "wasm",
            ImageKind::Native => "native",
        })
    }
}

/// The rule that decided an image's [`ImageKind`]; the first that matched wins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "kebab-case")]
pub enum Rule {
    /// A Wasm artifact media type on the config or a layer.
    MediaType {
        /// The media type that matched.
        media_type: String,
    },
    /// The config's `os` or `architecture` names a Wasm platform.
    Platform {
        /// `os/architecture` as found in the config.
        platform: String,
    },
    /// The `module.wasm.image/variant` or `run.oci.handler` annotation.
    Annotation {
        /// The annotation key.
        key: String,
        /// Its value.
        value: String,
    },
    /// The entrypoint file's first bytes (`\0asm`, ELF or `#!`).
    Magic {
        /// The entrypoint path inside the image.
        path: String,
        /// What the bytes were: `wasm`, `elf` or `script`.
        format: String,
    },
    /// Nothing matched: native is the default.
    Default,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::MediaType { media_type } => write!(f, "media type {media_type}"),
            Rule::Platform { platform } => write!(f, "platform {platform}"),
            Rule::Annotation { key, value } => write!(f, "annotation {key}={value}"),
            Rule::Magic { path, format } => write!(f, "entrypoint {path} is {format}"),
            Rule::Default => f.write_str("default"),
        }
    }
}

/// An image's kind together with the rule that decided it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Classification {
    /// The kind.
    pub kind: ImageKind,
    /// Why.
    #[serde(flatten)]
    pub rule: Rule,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_serializes_flat() {
        let c = Classification {
            kind: ImageKind::Wasm,
            rule: Rule::MediaType {
                media_type: "application/wasm".into(),
            },
        };
        let json = serde_json::to_string(&c).expect("serialize");
        assert_eq!(
            json,
            r#"{"kind":"wasm","rule":"media-type","media_type":"application/wasm"}"#
        );
        let back: Classification = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, c);
    }
}
