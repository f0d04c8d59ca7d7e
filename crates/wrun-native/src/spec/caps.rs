//! Which capabilities a container holds: docker's default set, `--cap-add`,
//! `--cap-drop` and `--privileged`.

use oci_spec::runtime::{Capabilities, Capability};

use super::DEFAULT_CAPABILITIES;
use crate::error::{Error, Result};

/// docker's rule: start from the default set (every capability when
/// privileged, none when `ALL` is dropped), remove the dropped ones, then
/// add the added ones.
pub(super) fn capabilities(
    privileged: bool,
    cap_add: &[String],
    cap_drop: &[String],
) -> Result<Capabilities> {
    let mut caps: Capabilities = if privileged {
        available_capabilities().into_iter().collect()
    } else {
        DEFAULT_CAPABILITIES.into_iter().collect()
    };
    for name in cap_drop {
        match parse_capability(name)? {
            None => caps.clear(),
            Some(c) => {
                caps.remove(&c);
            }
        }
    }
    for name in cap_add {
        match parse_capability(name)? {
            None => caps.extend(available_capabilities()),
            Some(c) => {
                caps.insert(c);
            }
        }
    }
    Ok(caps)
}

/// What `--privileged` and `--cap-add ALL` give: every capability this
/// process holds in its bounding set, as docker gives its daemon's current
/// capabilities. Asking for one outside that set fails (capset: EPERM)
/// where wrun itself runs with fewer than all (in a container, say).
pub(crate) fn available_capabilities() -> Vec<Capability> {
    all_capabilities().into_iter().filter(held).collect()
}

#[cfg(target_os = "linux")]
fn held(cap: &Capability) -> bool {
    let n = crate::linux::caps::number(cap) as libc::c_ulong;
    // SAFETY: PR_CAPBSET_READ reads no memory and changes nothing; it returns
    // 1 if held, 0 if not, -1 for a capability this kernel does not know.
    unsafe { libc::prctl(libc::PR_CAPBSET_READ, n, 0, 0, 0) == 1 }
}

#[cfg(not(target_os = "linux"))]
fn held(_: &Capability) -> bool {
    true
}

fn all_capabilities() -> Vec<Capability> {
    use Capability::*;
    vec![
        AuditControl,
        AuditRead,
        AuditWrite,
        BlockSuspend,
        Bpf,
        CheckpointRestore,
        Chown,
        DacOverride,
        DacReadSearch,
        Fowner,
        Fsetid,
        IpcLock,
        IpcOwner,
        Kill,
        Lease,
        LinuxImmutable,
        MacAdmin,
        MacOverride,
        Mknod,
        NetAdmin,
        NetBindService,
        NetBroadcast,
        NetRaw,
        Perfmon,
        Setgid,
        Setfcap,
        Setpcap,
        Setuid,
        SysAdmin,
        SysBoot,
        SysChroot,
        SysModule,
        SysNice,
        SysPacct,
        SysPtrace,
        SysRawio,
        SysResource,
        SysTime,
        SysTtyConfig,
        Syslog,
        WakeAlarm,
    ]
}

/// Parses `NET_ADMIN`, `cap_net_admin` …; `ALL` gives `None`.
fn parse_capability(name: &str) -> Result<Option<Capability>> {
    let upper = name.trim().to_ascii_uppercase();
    if upper == "ALL" {
        return Ok(None);
    }
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    bare.parse::<Capability>()
        .map(Some)
        .map_err(|_| Error::UnknownCapability {
            name: name.to_string(),
        })
}
