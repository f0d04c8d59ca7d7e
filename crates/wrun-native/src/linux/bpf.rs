//! The bpf(2) calls that put a device program on a cgroup v2 directory:
//! `BPF_PROG_LOAD` and `BPF_PROG_ATTACH`, with `libc` directly (the two
//! calls need a few fields of `union bpf_attr`; a BPF library would bring
//! an ELF loader and maps wrun does not use).

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use super::devices::Insn;
use crate::error::{Errno, Error, Result};

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// The `BPF_PROG_LOAD` part of `union bpf_attr`, up to
/// `expected_attach_type`; the kernel reads the fields it knows of a
/// shorter attribute as zero.
#[repr(C)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// The `BPF_PROG_ATTACH` part of `union bpf_attr`.
#[repr(C)]
struct ProgAttach {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

/// bpf(2) with `attr` as the command's attributes.
///
/// # Safety
/// `attr` must be a valid, initialised `repr(C)` prefix of `union bpf_attr`
/// for `cmd`, and every pointer inside it must point to memory that
/// outlives the call.
unsafe fn bpf<T>(cmd: libc::c_long, attr: &T) -> libc::c_long {
    // SAFETY: the caller guarantees `attr`; it is borrowed, so it lives
    // across the call, and the size passed is its own.
    unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *const T,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    }
}

/// Loads `program` as a `BPF_PROG_TYPE_CGROUP_DEVICE` program and attaches
/// it to the cgroup v2 directory `dir` (`BPF_F_ALLOW_MULTI`, as runc and
/// crun do, so a program of an ancestor, systemd's say, still applies too).
/// The attachment holds the program: it lives until the cgroup is removed.
///
/// # Ambient Authority
/// Opens the cgroup directory by path.
pub(crate) fn attach_device_program(dir: &Path, program: &[Insn]) -> Result<()> {
    let fail = |action: &str, source: Errno| Error::Cgroup {
        action: action.to_string(),
        path: dir.to_path_buf(),
        source,
    };
    let cgroup = File::open(dir).map_err(|e| fail("open", Errno::from(e)))?;
    let license = c"Apache-2.0";
    let mut name = [0u8; 16];
    for (d, s) in name.iter_mut().zip(b"wrun_devices") {
        *d = *s;
    }
    let load = ProgLoad {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: program.len() as u32,
        insns: program.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 0,
        log_size: 0,
        log_buf: 0,
        kern_version: 0,
        prog_flags: 0,
        prog_name: name,
        prog_ifindex: 0,
        expected_attach_type: 0,
    };
    // SAFETY: `load` is PROG_LOAD's attribute prefix; its pointers (the
    // program, the license) are locals of this function, alive across it.
    let fd = unsafe { bpf(BPF_PROG_LOAD, &load) };
    if fd < 0 {
        return Err(fail("load the device program", Errno::last()));
    }
    // SAFETY: BPF_PROG_LOAD returned a new file descriptor that nothing
    // else owns.
    let prog = unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) };
    let attach = ProgAttach {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        replace_bpf_fd: 0,
    };
    // SAFETY: `attach` is PROG_ATTACH's attribute prefix and holds no
    // pointer, only descriptors open for the call.
    if unsafe { bpf(BPF_PROG_ATTACH, &attach) } < 0 {
        return Err(fail("attach the device program", Errno::last()));
    }
    Ok(())
}
