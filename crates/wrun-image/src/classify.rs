//! The one place an image is classified Wasm or native.
//!
//! Rules, first match wins (see the project's design notes):
//! 1. a Wasm artifact media type on the config or a layer;
//! 2. a Wasm platform in the config (`os` of `wasi`, `wasip1`, `wasip2`, or
//!    `architecture` of `wasm`, `wasm32`, `wasm64`);
//! 3. the `module.wasm.image/variant` or `run.oci.handler` annotation (or
//!    label): `compat`/`wasm` mean Wasm, `compat-smart`/`wasm-smart` mean Wasm
//!    if the entrypoint file is a Wasm binary;
//! 4. the entrypoint file's first bytes: `\0asm` is Wasm, ELF or `#!` native;
//! 5. otherwise native.

use crate::media;
use std::collections::BTreeMap;
use wrun_core::{Classification, ImageKind, Rule};

/// What classification looks at, gathered from the manifest and config.
#[derive(Debug, Default, Clone)]
pub struct Facts {
    /// The config blob's media type.
    pub config_media_type: String,
    /// Each layer's media type.
    pub layer_media_types: Vec<String>,
    /// The config's `os`.
    pub os: String,
    /// The config's `architecture`.
    pub architecture: String,
    /// Manifest annotations and config labels (annotations win).
    pub annotations: BTreeMap<String, String>,
    /// The program docker would run: Entrypoint + Cmd, first element.
    pub program: Option<String>,
    /// The config's working directory.
    pub working_dir: Option<String>,
    /// The `PATH` of the config's environment.
    pub path_env: Option<String>,
}

const ANNOTATIONS: [&str; 2] = ["module.wasm.image/variant", "run.oci.handler"];

/// Classifies an image. `read_head` reads the first bytes of a file of the
/// image's root file system by absolute path (for rules 3 and 4); `None`
/// when the file does not exist.
pub fn classify(facts: &Facts, read_head: &dyn Fn(&str) -> Option<Vec<u8>>) -> Classification {
    let wasm = |rule| Classification {
        kind: ImageKind::Wasm,
        rule,
    };
    if facts.config_media_type == media::WASM_CONFIG {
        return wasm(Rule::MediaType {
            media_type: facts.config_media_type.clone(),
        });
    }
    if let Some(mt) = facts
        .layer_media_types
        .iter()
        .find(|mt| media::WASM_LAYERS.contains(&mt.as_str()))
    {
        return wasm(Rule::MediaType {
            media_type: mt.clone(),
        });
    }
    if matches!(facts.os.as_str(), "wasi" | "wasip1" | "wasip2")
        || matches!(facts.architecture.as_str(), "wasm" | "wasm32" | "wasm64")
    {
        return wasm(Rule::Platform {
            platform: format!("{}/{}", facts.os, facts.architecture),
        });
    }
    let entry = || {
        let program = facts.program.as_deref()?;
        let path = resolve_program(
            program,
            facts.working_dir.as_deref(),
            facts.path_env.as_deref(),
            &|p| read_head(p).is_some(),
        )?;
        let head = read_head(&path)?;
        Some((path, magic(&head)?))
    };
    for key in ANNOTATIONS {
        let Some(value) = facts.annotations.get(key) else {
            continue;
        };
        let rule = Rule::Annotation {
            key: key.to_string(),
            value: value.clone(),
        };
        match value.as_str() {
            "compat" | "wasm" => return wasm(rule),
            "compat-smart" | "wasm-smart" => {
                let kind = match entry() {
                    Some((_, "wasm")) => ImageKind::Wasm,
                    _ => ImageKind::Native,
                };
                return Classification { kind, rule };
            }
            _ => {}
        }
    }
    if let Some((path, format)) = entry() {
        let kind = if format == "wasm" {
            ImageKind::Wasm
        } else {
            ImageKind::Native
        };
        return Classification {
            kind,
            rule: Rule::Magic {
                path,
                format: format.to_string(),
            },
        };
    }
    Classification {
        kind: ImageKind::Native,
        rule: Rule::Default,
    }
}

/// The classification when the manifest and config decide it, before any
/// layer is fetched: rules 1 and 2, rule 3's `compat`/`wasm`, and rule 5 for
/// an image that names no program. `None` when only the image's files can
/// tell (rule 3's `-smart` values and rule 4 read the entrypoint file), so
/// that a linux/amd64 image whose entrypoint is a Wasm module is never taken
/// for native. The rules are [`classify`]'s own: it runs with no files and
/// the answer counts only if it never asked for one.
pub fn from_config(facts: &Facts) -> Option<Classification> {
    let asked = std::cell::Cell::new(false);
    let c = classify(facts, &|_| {
        asked.set(true);
        None
    });
    (!asked.get()).then_some(c)
}

/// What a file's first bytes say it is.
pub fn magic(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(b"\0asm") {
        Some("wasm")
    } else if head.starts_with(b"\x7fELF") {
        Some("elf")
    } else if head.starts_with(b"#!") {
        Some("script")
    } else {
        None
    }
}

/// Where `program` (argv\[0\]) is in the image, as a shell would find it: an
/// absolute path as is, a relative one under the working directory, a bare
/// name through `PATH` (docker's default when the image sets none).
pub fn resolve_program(
    program: &str,
    working_dir: Option<&str>,
    path_env: Option<&str>,
    exists: &dyn Fn(&str) -> bool,
) -> Option<String> {
    if program.starts_with('/') {
        return Some(program.to_string());
    }
    if program.contains('/') {
        let wd = working_dir.unwrap_or("/");
        return Some(format!("{}/{program}", wd.trim_end_matches('/')));
    }
    let path = path_env.unwrap_or(wrun_core::DEFAULT_PATH);
    path.split(':')
        .filter(|d| d.starts_with('/'))
        .map(|d| format!("{}/{program}", d.trim_end_matches('/')))
        .find(|p| exists(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(map: &'static [(&'static str, &'static [u8])]) -> impl Fn(&str) -> Option<Vec<u8>> {
        move |p| map.iter().find(|(k, _)| *k == p).map(|(_, v)| v.to_vec())
    }

    #[test]
    fn from_config_answers_only_what_needs_no_file() {
        let linux = |program: Option<&str>, annotation: Option<&str>| Facts {
            os: "linux".into(),
            architecture: "amd64".into(),
            program: program.map(str::to_string),
            annotations: annotation
                .map(|v| [("run.oci.handler".to_string(), v.to_string())].into())
                .unwrap_or_default(),
            ..Facts::default()
        };
        let kind = |f: &Facts| from_config(f).map(|c| c.kind);
        assert_eq!(kind(&linux(None, None)), Some(ImageKind::Native));
        // Rule 4 may still say Wasm: only the file tells.
        assert_eq!(kind(&linux(Some("/bin/app"), None)), None);
        assert_eq!(kind(&linux(Some("/app"), Some("compat-smart"))), None);
        assert_eq!(
            kind(&linux(Some("/app"), Some("compat"))),
            Some(ImageKind::Wasm)
        );
        let wasi = Facts {
            os: "wasip1".into(),
            architecture: "wasm".into(),
            program: Some("/app.wasm".into()),
            ..Facts::default()
        };
        assert_eq!(kind(&wasi), Some(ImageKind::Wasm));
    }

    #[test]
    fn media_type_wins() {
        let facts = Facts {
            config_media_type: "application/vnd.oci.image.config.v1+json".into(),
            layer_media_types: vec![
                "application/vnd.bytecodealliance.wasm.component.layer.v0+wasm".into(),
            ],
            os: "linux".into(),
            architecture: "amd64".into(),
            ..Facts::default()
        };
        let c = classify(&facts, &files(&[]));
        assert_eq!(c.kind, ImageKind::Wasm);
        assert!(matches!(c.rule, Rule::MediaType { .. }));
        let facts = Facts {
            config_media_type: media::WASM_CONFIG.into(),
            ..Facts::default()
        };
        assert_eq!(classify(&facts, &files(&[])).kind, ImageKind::Wasm);
    }

    #[test]
    fn platform_rule() {
        for (os, arch) in [
            ("wasip1", "wasm"),
            ("wasi", "wasm"),
            ("linux", "wasm32"),
            ("wasip2", "x"),
        ] {
            let facts = Facts {
                os: os.into(),
                architecture: arch.into(),
                ..Facts::default()
            };
            let c = classify(&facts, &files(&[]));
            assert_eq!(c.kind, ImageKind::Wasm, "{os}/{arch}");
            assert!(matches!(c.rule, Rule::Platform { .. }));
        }
    }

    #[test]
    fn annotations() {
        let mut facts = Facts {
            os: "linux".into(),
            architecture: "amd64".into(),
            program: Some("/app.wasm".into()),
            ..Facts::default()
        };
        facts
            .annotations
            .insert("run.oci.handler".into(), "compat".into());
        let fs = files(&[("/app.wasm", b"\x7fELF")]);
        assert_eq!(classify(&facts, &fs).kind, ImageKind::Wasm);
        facts
            .annotations
            .insert("run.oci.handler".into(), "compat-smart".into());
        let c = classify(&facts, &fs);
        assert_eq!(c.kind, ImageKind::Native);
        assert!(matches!(c.rule, Rule::Annotation { .. }));
        let fs = files(&[("/app.wasm", b"\0asm\x01\0\0\0")]);
        assert_eq!(classify(&facts, &fs).kind, ImageKind::Wasm);
        facts
            .annotations
            .insert("module.wasm.image/variant".into(), "compat-smart".into());
        let c = classify(&facts, &files(&[("/app.wasm", b"#!/bin/sh")]));
        assert_eq!(c.kind, ImageKind::Native);
        assert_eq!(
            c.rule,
            Rule::Annotation {
                key: "module.wasm.image/variant".into(),
                value: "compat-smart".into()
            }
        );
    }

    #[test]
    fn magic_and_path_lookup() {
        let facts = Facts {
            os: "linux".into(),
            architecture: "amd64".into(),
            program: Some("hello".into()),
            path_env: Some("/nope:/usr/bin".into()),
            ..Facts::default()
        };
        let c = classify(&facts, &files(&[("/usr/bin/hello", b"\0asm\x01\0\0\0")]));
        assert_eq!(
            c,
            Classification {
                kind: ImageKind::Wasm,
                rule: Rule::Magic {
                    path: "/usr/bin/hello".into(),
                    format: "wasm".into()
                }
            }
        );
        let c = classify(&facts, &files(&[("/usr/bin/hello", b"\x7fELF\x02")]));
        assert_eq!(c.kind, ImageKind::Native);
        let c = classify(&facts, &files(&[]));
        assert_eq!(
            c,
            Classification {
                kind: ImageKind::Native,
                rule: Rule::Default
            }
        );
    }
}
