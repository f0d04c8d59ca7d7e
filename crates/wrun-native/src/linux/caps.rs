//! Capabilities with raw `prctl` and `capset`: the bounding set, the
//! effective/permitted/inheritable sets and the ambient set.

use std::fs;

use oci_spec::runtime::{Capabilities, Capability};

use crate::error::Errno;

/// The kernel's number for a capability.
pub(crate) fn number(cap: &Capability) -> u32 {
    use Capability::*;
    match cap {
        Chown => 0,
        DacOverride => 1,
        DacReadSearch => 2,
        Fowner => 3,
        Fsetid => 4,
        Kill => 5,
        Setgid => 6,
        Setuid => 7,
        Setpcap => 8,
        LinuxImmutable => 9,
        NetBindService => 10,
        NetBroadcast => 11,
        NetAdmin => 12,
        NetRaw => 13,
        IpcLock => 14,
        IpcOwner => 15,
        SysModule => 16,
        SysRawio => 17,
        SysChroot => 18,
        SysPtrace => 19,
        SysPacct => 20,
        SysAdmin => 21,
        SysBoot => 22,
        SysNice => 23,
        SysResource => 24,
        SysTime => 25,
        SysTtyConfig => 26,
        Mknod => 27,
        Lease => 28,
        AuditWrite => 29,
        AuditControl => 30,
        Setfcap => 31,
        MacOverride => 32,
        MacAdmin => 33,
        Syslog => 34,
        WakeAlarm => 35,
        BlockSuspend => 36,
        AuditRead => 37,
        Perfmon => 38,
        Bpf => 39,
        CheckpointRestore => 40,
    }
}

/// A capability set as the kernel's 64-bit mask.
pub(crate) fn mask(caps: Option<&Capabilities>) -> u64 {
    caps.map_or(0, |set| {
        set.iter().fold(0u64, |m, c| m | (1u64 << number(c)))
    })
}

fn last_cap() -> u32 {
    fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// Drops every capability not in `keep` from the bounding set.
pub(crate) fn limit_bounding(keep: u64) -> Result<(), Errno> {
    for cap in 0..=last_cap() {
        if keep & (1u64 << cap) != 0 {
            continue;
        }
        // SAFETY: PR_CAPBSET_DROP reads no memory; it only shrinks this
        // thread's bounding set, and a `cap` the kernel lacks fails (EINVAL).
        let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        if r != 0 {
            let e = Errno::last();
            // Capabilities this kernel does not know are fine to skip.
            if e.0 != libc::EINVAL {
                return Err(e);
            }
        }
    }
    Ok(())
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Sets the calling thread's effective, permitted and inheritable sets.
pub(crate) fn set(effective: u64, permitted: u64, inheritable: u64) -> Result<(), Errno> {
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [
        CapData {
            effective: effective as u32,
            permitted: permitted as u32,
            inheritable: inheritable as u32,
        },
        CapData {
            effective: (effective >> 32) as u32,
            permitted: (permitted >> 32) as u32,
            inheritable: (inheritable >> 32) as u32,
        },
    ];
    // SAFETY: header and data are the version-3 layout capset(2) expects:
    // one header and two data structs that live across the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_capset,
            &mut header as *mut CapHeader,
            data.as_ptr(),
        )
    };
    if r != 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// Replaces the ambient set.
pub(crate) fn set_ambient(ambient: u64) -> Result<(), Errno> {
    // SAFETY: PR_CAP_AMBIENT reads no memory (the unused arguments are 0, as
    // the kernel requires); it only changes this thread's ambient set.
    let r = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    if r != 0 {
        return Err(Errno::last());
    }
    for cap in 0..64u32 {
        if ambient & (1u64 << cap) == 0 {
            continue;
        }
        // SAFETY: as above.
        let r = unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                cap as libc::c_ulong,
                0,
                0,
            )
        };
        if r != 0 {
            return Err(Errno::last());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_set_has_podmans_mask() {
        let caps: Capabilities = crate::spec::DEFAULT_CAPABILITIES.into_iter().collect();
        // podman 4's CapEff; docker's 0xa80425fb has NET_RAW, MKNOD and
        // AUDIT_WRITE besides.
        assert_eq!(mask(Some(&caps)), 0x8004_05fb);
    }
}
