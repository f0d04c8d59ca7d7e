//! Devices: the device access rules every container gets (runc's), and a
//! host device given to a container (`--device HOST[:CONTAINER][:PERMS]`).
//!
//! What the rules mean and how they are enforced (a `devices` cgroup on v1,
//! an eBPF program on v2) is `linux/devices.rs`.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType};

use crate::error::{Error, Result};

/// A subset of read (`r`), write (`w`) and mknod (`m`), as device rules
/// spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceAccess {
    /// May open the device for reading.
    pub read: bool,
    /// May open the device for writing.
    pub write: bool,
    /// May create a node of the device.
    pub mknod: bool,
}

impl DeviceAccess {
    /// `rwm`.
    pub const ALL: DeviceAccess = DeviceAccess {
        read: true,
        write: true,
        mknod: true,
    };

    /// Parses a non-empty subset of `rwm`, each letter at most once, in any
    /// order; `None` for anything else.
    pub fn parse(s: &str) -> Option<DeviceAccess> {
        let mut a = DeviceAccess {
            read: false,
            write: false,
            mknod: false,
        };
        for c in s.chars() {
            let slot = match c {
                'r' => &mut a.read,
                'w' => &mut a.write,
                'm' => &mut a.mknod,
                _ => return None,
            };
            if *slot {
                return None;
            }
            *slot = true;
        }
        (!s.is_empty()).then_some(a)
    }
}

impl std::fmt::Display for DeviceAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (on, c) in [(self.read, 'r'), (self.write, 'w'), (self.mknod, 'm')] {
            if on {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// A host device node given to the container (`--device`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// The host's device node (absolute).
    pub host: PathBuf,
    /// Where the container sees it (absolute; the host path by default).
    pub container: String,
    /// What the container may do with it (`rwm` by default).
    pub access: DeviceAccess,
}

impl Device {
    /// Parses docker's `HOST[:CONTAINER][:PERMS]`: `/dev/fuse`,
    /// `/dev/fuse:r`, `/dev/sdc:/dev/xvdc`, `/dev/sdc:/dev/xvdc:rw`. Both
    /// paths must be absolute; PERMS is a subset of `rwm`. Whether the host
    /// path is a device is checked when the spec is built.
    pub fn parse(spec: &str) -> Result<Self> {
        let bad = |reason: String| Error::InvalidDevice {
            spec: spec.to_string(),
            reason,
        };
        let perms = |p: &str| {
            DeviceAccess::parse(p).ok_or_else(|| {
                bad(format!(
                    "bad permissions {p:?}: a subset of r, w and m (rwm)"
                ))
            })
        };
        let parts: Vec<&str> = spec.split(':').collect();
        let (host, container, access) = match parts.as_slice() {
            [h] => (*h, *h, DeviceAccess::ALL),
            // As docker: a second part that reads as permissions is one.
            [h, p] if DeviceAccess::parse(p).is_some() => (*h, *h, perms(p)?),
            [h, c] => (*h, *c, DeviceAccess::ALL),
            [h, c, p] => (*h, *c, perms(p)?),
            _ => return Err(bad("expected HOST[:CONTAINER][:PERMS]".into())),
        };
        if !host.starts_with('/') {
            return Err(bad("the host path must be absolute".into()));
        }
        if !container.starts_with('/') || container == "/" {
            return Err(bad("the container path must be absolute and not /".into()));
        }
        Ok(Device {
            host: PathBuf::from(host),
            container: container.to_string(),
            access,
        })
    }
}

/// runc's default allow-list (`AllowedDevices` in runc's
/// `libcontainer/specconv/spec_linux.go`, v1.1 and later; docker's and
/// podman's containers get the same): `(type, major, minor, access)`, `None`
/// for any. mknod of any character or block device (a node is harmless
/// until opened), and read-write-mknod of null, zero, full, random,
/// urandom, tty, the ptys (`/dev/pts/*` and `/dev/ptmx`), and tun/tap
/// (`/dev/net/tun`: runc 1.2.0-rc1 dropped it and restored it after the
/// regressions it caused, runc#3468; creating an interface still needs
/// CAP_NET_ADMIN, which a default container lacks).
const ALLOWED: [(LinuxDeviceType, Option<i64>, Option<i64>, &str); 11] = [
    (LinuxDeviceType::C, None, None, "m"),
    (LinuxDeviceType::B, None, None, "m"),
    (LinuxDeviceType::C, Some(1), Some(3), "rwm"),
    (LinuxDeviceType::C, Some(1), Some(8), "rwm"),
    (LinuxDeviceType::C, Some(1), Some(7), "rwm"),
    (LinuxDeviceType::C, Some(5), Some(0), "rwm"),
    (LinuxDeviceType::C, Some(1), Some(5), "rwm"),
    (LinuxDeviceType::C, Some(1), Some(9), "rwm"),
    (LinuxDeviceType::C, Some(136), None, "rwm"),
    (LinuxDeviceType::C, Some(5), Some(2), "rwm"),
    (LinuxDeviceType::C, Some(10), Some(200), "rwm"),
];

/// One device rule, as the runtime spec writes it.
pub(crate) fn rule(
    allow: bool,
    typ: LinuxDeviceType,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> LinuxDeviceCgroup {
    let mut r = LinuxDeviceCgroup::default();
    r.set_allow(allow);
    r.set_typ(Some(typ));
    r.set_major(major);
    r.set_minor(minor);
    r.set_access(Some(access.to_string()));
    r
}

/// runc's allow-list alone, which the launcher appends to every spec's
/// rules as runc does (an engine such as podman leaves them to the runtime).
pub(crate) fn allowed_device_rules() -> Vec<LinuxDeviceCgroup> {
    ALLOWED
        .iter()
        .map(|(t, maj, min, a)| rule(true, *t, *maj, *min, a))
        .collect()
}

/// The device rules of a default container, as docker and podman write them
/// in `linux.resources.devices`: deny every device, then allow runc's
/// default list (mknod of any character or block device; reading and
/// writing null, zero, full, random, urandom, tty, the ptys and tun/tap).
pub fn default_device_rules() -> Vec<LinuxDeviceCgroup> {
    let mut rules = vec![rule(false, LinuxDeviceType::A, None, None, "rwm")];
    rules.extend(allowed_device_rules());
    rules
}

/// The rule that allows every device (`--privileged`).
pub(crate) fn allow_all_rule() -> LinuxDeviceCgroup {
    rule(true, LinuxDeviceType::A, None, None, "rwm")
}

/// The rule that allows `access` to the device of `node`.
pub(crate) fn allow_node(node: &LinuxDevice, access: DeviceAccess) -> LinuxDeviceCgroup {
    rule(
        true,
        node.typ(),
        Some(node.major()),
        Some(node.minor()),
        &access.to_string(),
    )
}

/// The `linux.devices` entry that recreates the host's device node `host`
/// at `container`, with the host node's type, numbers, mode and owner.
///
/// # Ambient Authority
/// Reads the host path's metadata.
#[cfg(target_os = "linux")]
pub(crate) fn host_node(host: &Path, container: &str) -> Result<LinuxDevice> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = std::fs::metadata(host).map_err(|e| Error::io("stat", host, e))?;
    let ft = meta.file_type();
    let typ = if ft.is_char_device() {
        LinuxDeviceType::C
    } else if ft.is_block_device() {
        LinuxDeviceType::B
    } else {
        return Err(Error::NotADevice {
            path: host.to_path_buf(),
        });
    };
    let mut d = LinuxDevice::default();
    d.set_path(PathBuf::from(container));
    d.set_typ(typ);
    d.set_major(i64::from(libc::major(meta.rdev())));
    d.set_minor(i64::from(libc::minor(meta.rdev())));
    d.set_file_mode(Some(meta.mode() & 0o7777));
    d.set_uid(Some(meta.uid()));
    d.set_gid(Some(meta.gid()));
    Ok(d)
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn host_node(_host: &Path, _container: &str) -> Result<LinuxDevice> {
    Err(Error::Unsupported)
}

/// The host's device nodes under /dev, for `--privileged` (as docker and
/// podman give a privileged container): every character and block device,
/// recursively, except what the runtime provides itself (the pty
/// directory, /dev/shm, /dev/mqueue, the console and the default devices
/// bound from the host). Unreadable entries are skipped.
///
/// # Ambient Authority
/// Reads the host's /dev.
#[cfg(target_os = "linux")]
pub(crate) fn host_devices() -> Vec<LinuxDevice> {
    const SKIP: [&str; 11] = [
        "pts", "shm", "mqueue", "console", "ptmx", "null", "zero", "full", "random", "urandom",
        "tty",
    ];
    fn walk(dir: &Path, top: bool, out: &mut Vec<LinuxDevice>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut entries: Vec<_> = entries.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name();
            if top && SKIP.iter().any(|s| name == *s) {
                continue;
            }
            let Ok(ft) = e.file_type() else { continue };
            let path = e.path();
            if ft.is_dir() {
                walk(&path, false, out);
            } else if !ft.is_symlink()
                && let Some(p) = path.to_str()
                && let Ok(node) = host_node(&path, p)
            {
                out.push(node);
            }
        }
    }
    let mut out = Vec::new();
    walk(Path::new("/dev"), true, &mut out);
    out
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn host_devices() -> Vec<LinuxDevice> {
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_is_a_subset_of_rwm() {
        assert_eq!(DeviceAccess::parse("rwm"), Some(DeviceAccess::ALL));
        assert_eq!(
            DeviceAccess::parse("mr").map(|a| a.to_string()).as_deref(),
            Some("rm")
        );
        for bad in ["", "rr", "x", "rwx", "RW"] {
            assert_eq!(DeviceAccess::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn device_specs_parse_as_docker_does() {
        let d = Device::parse("/dev/fuse").expect("host only");
        assert_eq!(
            (d.host.as_path(), d.container.as_str(), d.access),
            (Path::new("/dev/fuse"), "/dev/fuse", DeviceAccess::ALL)
        );
        let d = Device::parse("/dev/fuse:r").expect("host:perms");
        assert_eq!(
            (d.container.as_str(), d.access.to_string().as_str()),
            ("/dev/fuse", "r")
        );
        let d = Device::parse("/dev/sdc:/dev/xvdc").expect("host:container");
        assert_eq!(
            (d.container.as_str(), d.access),
            ("/dev/xvdc", DeviceAccess::ALL)
        );
        let d = Device::parse("/dev/sdc:/dev/xvdc:rw").expect("all three");
        assert_eq!(
            (d.container.as_str(), d.access.to_string().as_str()),
            ("/dev/xvdc", "rw")
        );
        for (bad, why) in [
            ("", "the host path must be absolute"),
            ("dev/fuse", "the host path must be absolute"),
            ("/dev/fuse:dev/f", "the container path must be absolute"),
            ("/dev/fuse:/", "the container path must be absolute"),
            ("/dev/fuse:/dev/f:rwx", "bad permissions \"rwx\""),
            ("/dev/fuse:/dev/f:", "bad permissions \"\""),
            ("/a:/b:r:w", "expected HOST[:CONTAINER][:PERMS]"),
        ] {
            let err = Device::parse(bad).expect_err(bad).to_string();
            assert!(
                err.starts_with(&format!("invalid device {bad:?}: {why}")),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn default_rules_deny_all_then_allow_runc_list() {
        let rules = default_device_rules();
        let shown: Vec<String> = rules
            .iter()
            .map(|r| format!("{} {r}", if r.allow() { "allow" } else { "deny" }))
            .collect();
        assert_eq!(
            shown,
            [
                "deny a *:* rwm",
                "allow c *:* m",
                "allow b *:* m",
                "allow c 1:3 rwm",
                "allow c 1:8 rwm",
                "allow c 1:7 rwm",
                "allow c 5:0 rwm",
                "allow c 1:5 rwm",
                "allow c 1:9 rwm",
                "allow c 136:* rwm",
                "allow c 5:2 rwm",
                "allow c 10:200 rwm",
            ]
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_host_node_keeps_its_numbers_and_a_file_is_refused() {
        let node = host_node(Path::new("/dev/null"), "/dev/n").expect("/dev/null");
        assert_eq!(
            (node.typ(), node.major(), node.minor()),
            (LinuxDeviceType::C, 1, 3)
        );
        assert_eq!(node.path(), Path::new("/dev/n"));
        assert_eq!(node.file_mode(), Some(0o666));
        let err = host_node(Path::new("/"), "/x").expect_err("a directory");
        assert_eq!(err.to_string(), "/ is not a device");
        let err = host_node(Path::new("/nonexistent-wrun"), "/x").expect_err("missing");
        assert_eq!(err.to_string(), "stat /nonexistent-wrun");
    }
}
