//! Fresh tmpfs mounts (`--tmpfs PATH[:OPTIONS]`), with docker's options.

use wrun_core::parse_size;

use crate::error::{Error, Result};

/// A tmpfs mounted at a container path, as `--tmpfs PATH[:OPTIONS]` asks.
///
/// Defaults, as docker's: no size limit (the kernel's, half of RAM), mode
/// 1777, owned by root, `noexec`, `nosuid`, `nodev`, read-write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tmpfs {
    /// Where the container sees it (absolute, not `/`).
    pub path: String,
    /// Its size limit in bytes (`size=`).
    pub size: Option<u64>,
    /// The permission bits of its root (`mode=`, octal).
    pub mode: u32,
    /// The owner of its root (`uid=`).
    pub uid: Option<u32>,
    /// The group of its root (`gid=`).
    pub gid: Option<u32>,
    /// Programs on it may be executed (`exec`; default `noexec`).
    pub exec: bool,
    /// Set-user-id bits on it take effect (`suid`; default `nosuid`).
    pub suid: bool,
    /// Device nodes on it may be opened (`dev`; default `nodev`).
    pub dev: bool,
    /// It is mounted read-only (`ro`; default `rw`).
    pub read_only: bool,
}

/// Why a `--tmpfs` argument is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TmpfsError {
    /// The path is relative, or `/`.
    #[error("the path {0:?} must be absolute and not /")]
    Path(String),
    /// An option docker's `--tmpfs` does not take.
    #[error(
        "unknown option {0:?} (size, mode, uid, gid, exec, noexec, suid, nosuid, dev, nodev, ro, rw)"
    )]
    UnknownOption(String),
    /// A `size=` that is no size.
    #[error("bad size {0:?} (bytes, or a number with k, m, g or t)")]
    Size(String),
    /// A `mode=` that is no octal mode.
    #[error("bad mode {0:?} (octal, at most 7777)")]
    Mode(String),
    /// A `uid=` or `gid=` that is no number.
    #[error("bad {option} {value:?} (a number)")]
    Id {
        /// `uid` or `gid`.
        option: &'static str,
        /// The value given.
        value: String,
    },
}

impl Tmpfs {
    /// A tmpfs at `path` with docker's defaults (see the type).
    pub fn new(path: impl Into<String>) -> Tmpfs {
        Tmpfs {
            path: path.into(),
            size: None,
            mode: 0o1777,
            uid: None,
            gid: None,
            exec: false,
            suid: false,
            dev: false,
            read_only: false,
        }
    }

    /// Parses `PATH[:OPTIONS]`, OPTIONS a comma-separated list of
    /// `size=SIZE`, `mode=OCTAL`, `uid=N`, `gid=N`, `exec`/`noexec`,
    /// `suid`/`nosuid`, `dev`/`nodev`, `ro`/`rw`; a later option overrides
    /// an earlier one.
    pub fn parse(spec: &str) -> Result<Tmpfs> {
        Self::parse_options(spec).map_err(|source| Error::InvalidTmpfs {
            spec: spec.to_string(),
            source,
        })
    }

    fn parse_options(spec: &str) -> std::result::Result<Tmpfs, TmpfsError> {
        let (path, options) = spec.split_once(':').unwrap_or((spec, ""));
        if !path.starts_with('/') || path.trim_end_matches('/').is_empty() {
            return Err(TmpfsError::Path(path.to_string()));
        }
        let mut t = Tmpfs::new(path);
        let id = |option: &'static str, v: &str| {
            v.parse::<u32>().map_err(|_| TmpfsError::Id {
                option,
                value: v.to_string(),
            })
        };
        for opt in options.split(',').filter(|o| !o.is_empty()) {
            match opt.split_once('=') {
                Some(("size", v)) => {
                    t.size = Some(parse_size(v).map_err(|_| TmpfsError::Size(v.to_string()))?);
                }
                Some(("mode", v)) => {
                    t.mode = u32::from_str_radix(v, 8)
                        .ok()
                        .filter(|m| *m <= 0o7777)
                        .ok_or_else(|| TmpfsError::Mode(v.to_string()))?;
                }
                Some(("uid", v)) => t.uid = Some(id("uid", v)?),
                Some(("gid", v)) => t.gid = Some(id("gid", v)?),
                Some(_) => return Err(TmpfsError::UnknownOption(opt.to_string())),
                None => match opt {
                    "exec" | "noexec" => t.exec = opt == "exec",
                    "suid" | "nosuid" => t.suid = opt == "suid",
                    "dev" | "nodev" => t.dev = opt == "dev",
                    "ro" | "rw" => t.read_only = opt == "ro",
                    _ => return Err(TmpfsError::UnknownOption(opt.to_string())),
                },
            }
        }
        Ok(t)
    }

    /// The mount's options in the runtime spec: flags first, then the
    /// file-system data (`mode=`, `size=`, `uid=`, `gid=`).
    pub fn mount_options(&self) -> Vec<String> {
        let flag = |on: bool, yes: &str, no: &str| if on { yes } else { no }.to_string();
        let mut o = vec![
            flag(self.suid, "suid", "nosuid"),
            flag(self.dev, "dev", "nodev"),
            flag(self.exec, "exec", "noexec"),
            flag(self.read_only, "ro", "rw"),
            format!("mode={:o}", self.mode),
        ];
        if let Some(s) = self.size {
            o.push(format!("size={s}"));
        }
        if let Some(u) = self.uid {
            o.push(format!("uid={u}"));
        }
        if let Some(g) = self.gid {
            o.push(format!("gid={g}"));
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> std::result::Result<Tmpfs, TmpfsError> {
        Tmpfs::parse_options(s)
    }

    #[test]
    fn defaults_are_dockers() {
        let t = parse("/scratch").expect("a plain path");
        assert_eq!(t, Tmpfs::new("/scratch"));
        assert_eq!(
            t.mount_options(),
            ["nosuid", "nodev", "noexec", "rw", "mode=1777"]
        );
        assert_eq!(parse("/scratch:").expect("no options"), t);
    }

    #[test]
    fn options_are_parsed_and_later_ones_win() {
        let t = parse("/scratch:size=1m,mode=0700,uid=1000,gid=100,exec,suid,dev,ro")
            .expect("every option");
        assert_eq!(t.size, Some(1 << 20));
        assert_eq!(t.mode, 0o700);
        assert_eq!((t.uid, t.gid), (Some(1000), Some(100)));
        assert!(t.exec && t.suid && t.dev && t.read_only);
        assert_eq!(
            t.mount_options(),
            [
                "suid",
                "dev",
                "exec",
                "ro",
                "mode=700",
                "size=1048576",
                "uid=1000",
                "gid=100"
            ]
        );
        let t = parse("/x:exec,noexec,ro,rw,size=1k,size=2048").expect("overrides");
        assert!(!t.exec && !t.read_only);
        assert_eq!(t.size, Some(2048));
    }

    #[test]
    fn bad_ones_are_refused_with_their_reason() {
        assert_eq!(
            parse("/x:bogus=1"),
            Err(TmpfsError::UnknownOption("bogus=1".into()))
        );
        assert_eq!(
            parse("/x:nope"),
            Err(TmpfsError::UnknownOption("nope".into()))
        );
        assert_eq!(parse("/x:size=lots"), Err(TmpfsError::Size("lots".into())));
        assert_eq!(parse("/x:size="), Err(TmpfsError::Size(String::new())));
        assert_eq!(parse("/x:mode=0800"), Err(TmpfsError::Mode("0800".into())));
        assert_eq!(
            parse("/x:mode=17777"),
            Err(TmpfsError::Mode("17777".into()))
        );
        assert!(matches!(
            parse("/x:uid=-1"),
            Err(TmpfsError::Id { option: "uid", .. })
        ));
        assert!(matches!(
            parse("/x:gid=g"),
            Err(TmpfsError::Id { option: "gid", .. })
        ));
        assert_eq!(parse("rel:size=1m"), Err(TmpfsError::Path("rel".into())));
        assert_eq!(parse("/"), Err(TmpfsError::Path("/".into())));
        assert_eq!(parse(""), Err(TmpfsError::Path(String::new())));
        let e = Tmpfs::parse("/x:bogus=1").expect_err("refused");
        assert_eq!(e.to_string(), "invalid tmpfs mount \"/x:bogus=1\"");
    }
}
