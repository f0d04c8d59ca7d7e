//! Reading a payload and deciding, once, from its header what it is.

use std::borrow::Cow;
use std::path::PathBuf;

use crate::Error;

/// A Wasm binary to run, or WAT text to compile first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// The bytes of a core module, a component, or WAT text.
    Bytes(Vec<u8>),
    /// A file holding a core module, a component, or WAT text.
    ///
    /// # Ambient Authority
    ///
    /// The file is opened by name with the process's authority: it is the
    /// program the caller chose to run, not something the guest chose.
    File(PathBuf),
}

/// The two kinds of Wasm binary wrun runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Flavor {
    /// A core module, run as a WASI preview 1 command (`_start`).
    Module,
    /// A component, run as a WASI 0.2 command (`wasi:cli/run`).
    Component,
}

impl Flavor {
    /// The flavor of a Wasm binary, from its preamble; `None` when `bytes`
    /// is not a Wasm binary (WAT text included).
    pub fn of(bytes: &[u8]) -> Option<Flavor> {
        if bytes.starts_with(MAGIC) {
            flavor_of(bytes)
        } else {
            None
        }
    }

    pub(crate) fn noun(self) -> &'static str {
        match self {
            Flavor::Module => "module",
            Flavor::Component => "component",
        }
    }
}

const MAGIC: &[u8; 4] = b"\0asm";

/// The payload as a Wasm binary, with its flavor.
pub(crate) struct Binary<'a> {
    pub(crate) bytes: Cow<'a, [u8]>,
    pub(crate) flavor: Flavor,
}

impl Binary<'_> {
    /// Reads `payload` and, when it is WAT, compiles it to a binary.
    pub(crate) fn load<'a>(payload: &'a Payload, name: &str) -> Result<Binary<'a>, Error> {
        let bytes = match payload {
            Payload::Bytes(bytes) => Cow::Borrowed(bytes.as_slice()),
            Payload::File(path) => {
                Cow::Owned(std::fs::read(path).map_err(|source| Error::Read {
                    path: path.clone(),
                    source,
                })?)
            }
        };
        let bytes = if bytes.starts_with(MAGIC) {
            bytes
        } else if looks_like_text(&bytes) {
            wat::parse_bytes(&bytes)
                .map_err(|err| Error::Wat {
                    name: name.to_string(),
                    source: one_line_wat_error(&err).into(),
                })?
                .into_owned()
                .into()
        } else {
            return Err(Error::NotWasm {
                name: name.to_string(),
            });
        };
        let flavor = flavor_of(&bytes).ok_or_else(|| Error::Invalid {
            name: name.to_string(),
            kind: "module",
            source: "truncated or unknown header (expected an 8-byte wasm preamble)".into(),
        })?;
        Ok(Binary { bytes, flavor })
    }
}

/// The WAT parser's message with its position, on one line: its `Display`
/// adds a source snippet over several lines, and wrun's errors are one line.
fn one_line_wat_error(err: &wat::Error) -> String {
    let text = err.to_string();
    let mut lines = text.lines();
    let message = lines.next().unwrap_or_default().trim();
    let position = lines.find_map(|l| l.trim().strip_prefix("--> "));
    match position.and_then(|p| p.rsplit_once(':')?.0.rsplit_once(':')) {
        Some((_, line)) => {
            let column = position
                .and_then(|p| p.rsplit(':').next())
                .unwrap_or_default();
            format!("{message} (line {line}, column {column})")
        }
        None => message.to_string(),
    }
}

/// The flavor named by the preamble: after the magic, a 16-bit version and
/// a 16-bit layer; layer 0 is a core module (version 1), layer 1 a component.
fn flavor_of(bytes: &[u8]) -> Option<Flavor> {
    match bytes.get(4..8)? {
        [1, 0, 0, 0] => Some(Flavor::Module),
        [_, _, 1, 0] => Some(Flavor::Component),
        _ => None,
    }
}

/// Whether `bytes` could be WAT: UTF-8 whose first significant character
/// opens an s-expression or a comment.
fn looks_like_text(bytes: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return false;
    };
    matches!(text.trim_start().chars().next(), Some('(' | ';'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(bytes: &[u8]) -> Result<Flavor, Error> {
        Binary::load(&Payload::Bytes(bytes.to_vec()), "t").map(|binary| binary.flavor)
    }

    #[test]
    fn detects_module_and_component_from_the_preamble() {
        assert_eq!(load(b"(module)").expect("module"), Flavor::Module);
        assert_eq!(load(b"(component)").expect("component"), Flavor::Component);
    }

    #[test]
    fn rejects_what_is_not_wasm() {
        assert!(matches!(
            load(b"\x7fELF\x02\x01"),
            Err(Error::NotWasm { .. })
        ));
        assert!(matches!(load(b""), Err(Error::NotWasm { .. })));
        assert!(matches!(load(b"hello"), Err(Error::NotWasm { .. })));
    }

    #[test]
    fn a_short_preamble_is_invalid() {
        assert!(matches!(load(b"\0asm\x01"), Err(Error::Invalid { .. })));
        assert!(matches!(
            load(b"\0asm\x02\0\0\0"),
            Err(Error::Invalid { .. })
        ));
    }

    #[test]
    fn bad_wat_is_a_wat_error() {
        assert!(matches!(
            load(b"(module (func $f (i32.bogus)))"),
            Err(Error::Wat { .. })
        ));
        let Err(Error::Wat { source, .. }) = load(b"(module\n  (func (i32.bogus)))") else {
            panic!("bad WAT must be a WAT error");
        };
        let cause = source.to_string();
        assert!(!cause.contains('\n'), "one line: {cause:?}");
        assert!(cause.ends_with("(line 2, column 10)"), "{cause}");
    }
}
