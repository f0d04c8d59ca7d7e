//! Compiles the runtime spec's `linux.seccomp` into a classic BPF program
//! with libseccomp, and installs such a program with seccomp(2).
//!
//! Compiling happens in the launcher, and once per profile: libseccomp
//! takes milliseconds for docker's profile on three architectures (6–10 ms
//! on x86_64 with x86 and x32, in release), as much as the rest of a
//! container's start, so [`compile_cached`] keeps each program under the
//! state directory, named by the digest of the libseccomp version and the
//! profile. The init helper receives the program's instructions in its
//! configuration and only installs them (see `init.rs` for when).
//! libseccomp's own `load` is not used: it would set no_new_privs, which is
//! the spec's decision.
//!
//! Semantics are libseccomp's (as in runc and crun): the spec's
//! architectures are all added; a call name libseccomp does not know is
//! skipped; a rule with the default action is dropped (libseccomp refuses
//! it). As runc does, a filter whose default is to refuse also answers
//! `ENOSYS` for every call number above the highest the profile names on
//! the native architecture: a call newer than the profile is refused as
//! one the kernel lacks, so libc falls back to an older call instead of
//! failing with `EPERM`.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::{AsFd, FromRawFd};
use std::path::Path;

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};
use serde::{Deserialize, Serialize};

use crate::error::{Errno, Error, Result};

/// A compiled filter: classic BPF instructions and seccomp(2) flags.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Program {
    /// One instruction per word: `code | jt << 16 | jf << 24 | k << 32`.
    code: Vec<u64>,
    /// `SECCOMP_FILTER_FLAG_*`.
    flags: u32,
}

impl Program {
    fn from_filters(filters: &[libc::sock_filter], flags: u32) -> Self {
        let code = filters
            .iter()
            .map(|f| {
                u64::from(f.code)
                    | u64::from(f.jt) << 16
                    | u64::from(f.jf) << 24
                    | u64::from(f.k) << 32
            })
            .collect();
        Program { code, flags }
    }

    fn filters(&self) -> Vec<libc::sock_filter> {
        self.code
            .iter()
            .map(|w| libc::sock_filter {
                code: *w as u16,
                jt: (*w >> 16) as u8,
                jf: (*w >> 24) as u8,
                k: (*w >> 32) as u32,
            })
            .collect()
    }

    /// The number of instructions.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.code.len()
    }
}

fn compile_error(what: impl Into<String>) -> impl FnOnce(libseccomp::error::SeccompError) -> Error {
    let what = what.into();
    move |e| Error::SeccompCompile {
        what,
        source: Box::new(e),
    }
}

fn action(a: LinuxSeccompAction, errno: Option<u32>) -> Result<ScmpAction> {
    let errno = || {
        i32::try_from(errno.unwrap_or(libc::EPERM as u32))
            .map_err(|_| Error::invalid("seccomp errnoRet out of range"))
    };
    Ok(match a {
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(errno()?),
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(
            u16::try_from(errno()?).map_err(|_| Error::invalid("seccomp errnoRet out of range"))?,
        ),
        LinuxSeccompAction::ScmpActNotify => {
            return Err(Error::invalid(
                "seccomp action SCMP_ACT_NOTIFY is not supported",
            ));
        }
    })
}

fn arch(a: Arch) -> ScmpArch {
    match a {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchParisc => ScmpArch::Parisc,
        Arch::ScmpArchParisc64 => ScmpArch::Parisc64,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
        Arch::ScmpArchLoongarch64 => ScmpArch::Loongarch64,
        Arch::ScmpArchM68k => ScmpArch::M68k,
        Arch::ScmpArchSh => ScmpArch::Sh,
        Arch::ScmpArchSheb => ScmpArch::Sheb,
    }
}

fn compare(a: &oci_spec::runtime::LinuxSeccompArg) -> Result<ScmpArgCompare> {
    let index = u32::try_from(a.index())
        .ok()
        .filter(|i| *i < 6)
        .ok_or_else(|| {
            Error::invalid(format!("seccomp argument index {} out of range", a.index()))
        })?;
    let value_two = a.value_two().unwrap_or(0);
    let op = match a.op() {
        LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
        LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
        LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
        LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
        // The spec's value is the mask, valueTwo the value it must give.
        LinuxSeccompOperator::ScmpCmpMaskedEq => {
            return Ok(ScmpArgCompare::new(
                index,
                ScmpCompareOp::MaskedEqual(a.value()),
                value_two,
            ));
        }
    };
    Ok(ScmpArgCompare::new(index, op, a.value()))
}

fn flag_bits(flags: &[LinuxSeccompFilterFlag]) -> u32 {
    flags
        .iter()
        .map(|f| match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
            }
            // Only meaningful with SCMP_ACT_NOTIFY, which is refused above.
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => 0,
        } as u32)
        .fold(0, |a, b| a | b)
}

/// [`compile`], through a cache in `dir`: a program compiled before for
/// the same profile by the same libseccomp is read back instead. The cache
/// only saves time: an entry that cannot be read or parsed is compiled
/// again and replaced, and one that cannot be written is not kept.
///
/// # Ambient Authority
/// Reads and writes files in `dir` by path.
pub(crate) fn compile_cached(profile: &LinuxSeccomp, dir: &Path) -> Result<Program> {
    use sha2::{Digest, Sha256};
    let version = libseccomp::ScmpVersion::current()
        .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
        .unwrap_or_default();
    let body = serde_json::to_vec(profile).map_err(|e| Error::SeccompCompile {
        what: "serialize the profile".into(),
        source: Box::new(e),
    })?;
    let mut h = Sha256::new();
    h.update(version.as_bytes());
    h.update([0]);
    h.update(&body);
    let path = dir.join(format!("{}.json", hex::encode(h.finalize())));
    if let Some(p) = fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Program>(&b).ok())
        .filter(|p| !p.code.is_empty())
    {
        return Ok(p);
    }
    let program = compile(profile)?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let stored = serde_json::to_vec(&program)
        .ok()
        .filter(|_| fs::create_dir_all(dir).is_ok())
        .is_some_and(|b| fs::write(&tmp, b).is_ok() && fs::rename(&tmp, &path).is_ok());
    if !stored {
        let _ = fs::remove_file(&tmp);
    }
    Ok(program)
}

/// Compiles `profile` into a BPF program for seccomp(2).
pub(crate) fn compile(profile: &LinuxSeccomp) -> Result<Program> {
    let default = action(profile.default_action(), profile.default_errno_ret())?;
    let mut ctx = ScmpFilterContext::new(default).map_err(compile_error("create the filter"))?;
    // Never used to load (see the module doc), but say it anyway.
    ctx.set_ctl_nnp(false)
        .map_err(compile_error("clear the no_new_privs attribute"))?;
    for a in profile.architectures().as_deref().unwrap_or_default() {
        let a = arch(*a);
        if a != ScmpArch::Native && a != ScmpArch::native() {
            ctx.add_arch(a)
                .map_err(compile_error(format!("add architecture {a:?}")))?;
        }
    }
    // The highest call number the profile names on the native architecture.
    let mut highest: Option<i32> = None;
    for rule in profile.syscalls().as_deref().unwrap_or_default() {
        let act = action(rule.action(), rule.errno_ret())?;
        let args = rule
            .args()
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(compare)
            .collect::<Result<Vec<_>>>()?;
        for name in rule.names() {
            let Ok(nr) = ScmpSyscall::from_name(name) else {
                // Unknown to this libseccomp (or to every architecture).
                continue;
            };
            let raw = nr.as_raw_syscall();
            if raw >= 0 {
                highest = highest.max(Some(raw));
            }
            if act == default {
                continue;
            }
            ctx.add_rule_conditional(act, nr, &args)
                .map_err(compile_error(format!("add a rule for {name}")))?;
        }
    }
    let mut filters = export(&ctx)?;
    let refuses = !matches!(
        default,
        ScmpAction::Allow | ScmpAction::Log | ScmpAction::Trace(_)
    ) && default != ScmpAction::Errno(libc::ENOSYS);
    if let (true, Some(highest)) = (refuses, highest) {
        let mut stub = enosys_above(highest as u32);
        stub.append(&mut filters);
        filters = stub;
    }
    if filters.len() > usize::from(u16::MAX) {
        return Err(Error::invalid(format!(
            "the seccomp filter has {} instructions",
            filters.len()
        )));
    }
    let flags = flag_bits(profile.flags().as_deref().unwrap_or_default());
    Ok(Program::from_filters(&filters, flags))
}

/// libseccomp's program, through a memfd (this libseccomp has no
/// export to memory).
fn export(ctx: &ScmpFilterContext) -> Result<Vec<libc::sock_filter>> {
    // SAFETY: the name is a 'static C string literal; the result is checked
    // for -1 below before it is owned.
    let fd = unsafe { libc::memfd_create(c"wrun-seccomp".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(Error::SeccompCompile {
            what: "create a memfd for the filter".into(),
            source: Box::new(std::io::Error::last_os_error()),
        });
    }
    // SAFETY: memfd_create just returned this fd, owned by nobody else.
    let mut file = unsafe { File::from_raw_fd(fd) };
    ctx.export_bpf(file.as_fd())
        .map_err(compile_error("export the filter"))?;
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_end(&mut bytes))
        .map_err(|e| Error::SeccompCompile {
            what: "read the exported filter".into(),
            source: Box::new(e),
        })?;
    Ok(bytes
        .chunks_exact(8)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect())
}

const BPF_LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const BPF_JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const BPF_JGT_K: u16 = (libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K) as u16;
const BPF_JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
const BPF_RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
/// Offsets in `struct seccomp_data`.
const OFFSET_NR: u32 = 0;
const OFFSET_ARCH: u32 = 4;
/// x86_64's x32 ABI: its call numbers carry this bit, and libseccomp's
/// program decides them.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

fn insn(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// The instructions put before libseccomp's program: on the native
/// architecture, a call number above `highest` (and not an x32 one)
/// returns `ENOSYS`; everything else falls through to libseccomp's
/// program, which starts by loading the architecture again.
fn enosys_above(highest: u32) -> Vec<libc::sock_filter> {
    // SAFETY: seccomp_arch_native has no preconditions; it returns the
    // AUDIT_ARCH_* value libseccomp's tokens are.
    let native = unsafe { libseccomp_sys::seccomp_arch_native() };
    let enosys = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;
    vec![
        insn(BPF_LD_W_ABS, 0, 0, OFFSET_ARCH),
        insn(BPF_JEQ_K, 0, 4, native),
        insn(BPF_LD_W_ABS, 0, 0, OFFSET_NR),
        insn(BPF_JGE_K, 2, 0, X32_SYSCALL_BIT),
        insn(BPF_JGT_K, 0, 1, highest),
        insn(BPF_RET_K, 0, 0, enosys),
    ]
}

/// Installs `program` on the calling thread (which is the only one).
pub(crate) fn install(program: &Program) -> std::result::Result<(), Errno> {
    let filters = program.filters();
    let prog = libc::sock_fprog {
        // `compile` refused programs longer than u16::MAX.
        len: filters.len() as u16,
        filter: filters.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `prog` points at `filters`, which outlives the call; the
    // kernel copies the program.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            program.flags,
            &prog as *const libc::sock_fprog,
        )
    };
    if r != 0 {
        return Err(Errno::last());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{
        Capabilities, Capability, LinuxSeccompArgBuilder, LinuxSeccompBuilder, LinuxSyscallBuilder,
    };

    fn docker_caps() -> Capabilities {
        crate::spec::DEFAULT_CAPABILITIES.into_iter().collect()
    }

    fn rule(names: &[&str], action: LinuxSeccompAction) -> oci_spec::runtime::LinuxSyscall {
        LinuxSyscallBuilder::default()
            .names(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .action(action)
            .build()
            .expect("rule")
    }

    /// Makes system call `nr` with integer `args` (at most three) in a
    /// forked child under `program` and returns what it got: `Ok(())` or
    /// the errno. The child makes only raw system calls
    /// between fork and _exit, so forking from the threaded test harness
    /// is sound.
    fn decide(
        program: &Program,
        nr: libc::c_long,
        args: &[libc::c_long],
    ) -> std::result::Result<(), i32> {
        let filters = program.filters();
        let prog = libc::sock_fprog {
            len: filters.len() as u16,
            filter: filters.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: the child makes only raw system calls (prctl, seccomp,
        // the probed call, errno lookup, _exit) on memory set up before
        // the fork.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork");
        if pid == 0 {
            // SAFETY: as above; no_new_privs lets an unprivileged process
            // install a filter, and `prog` outlives the call.
            unsafe {
                libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
                if libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0, &prog) != 0 {
                    libc::_exit(255);
                }
                let r = match *args {
                    [] => libc::syscall(nr),
                    [a] => libc::syscall(nr, a),
                    [a, b] => libc::syscall(nr, a, b),
                    [a, b, c] => libc::syscall(nr, a, b, c),
                    _ => libc::_exit(254),
                };
                libc::_exit(if r < 0 { *libc::__errno_location() } else { 0 });
            }
        }
        let mut status = 0;
        // SAFETY: `status` is a valid out-pointer; `pid` is our child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status), "child status {status:#x}");
        match libc::WEXITSTATUS(status) {
            0 => Ok(()),
            255 => panic!("the filter did not install"),
            e => Err(e),
        }
    }

    #[test]
    fn the_default_profile_compiles_for_each_capability_set() {
        let started = std::time::Instant::now();
        let p = compile(&crate::spec::default_seccomp(&docker_caps())).expect("compile");
        eprintln!(
            "default profile: {} instructions in {:?}",
            p.len(),
            started.elapsed()
        );
        assert!(p.len() > 100, "{}", p.len());
        let mut all = docker_caps();
        all.extend([
            Capability::SysAdmin,
            Capability::SysPtrace,
            Capability::SysTime,
        ]);
        let q = compile(&crate::spec::default_seccomp(&all)).expect("compile");
        assert_ne!(p.code, q.code);
    }

    #[test]
    fn the_default_filter_decides_as_docker_on_this_kernel() {
        let p = compile(&crate::spec::default_seccomp(&docker_caps())).expect("compile");
        // SAFETY (each closure): raw system calls with arguments the kernel
        // only reads as numbers or rejects.
        assert_eq!(decide(&p, libc::SYS_getpid, &[]), Ok(()));
        assert_eq!(
            decide(&p, libc::SYS_io_uring_setup, &[1, 0]),
            Err(libc::EPERM)
        );
        assert_eq!(
            decide(
                &p,
                libc::SYS_unshare,
                &[libc::CLONE_NEWUSER as libc::c_long]
            ),
            Err(libc::EPERM)
        );
        assert_eq!(decide(&p, libc::SYS_clone3, &[0, 0]), Err(libc::ENOSYS));
        assert_eq!(
            decide(&p, libc::SYS_personality, &[0x1234]),
            Err(libc::EPERM)
        );
        assert_eq!(decide(&p, libc::SYS_personality, &[0xffff_ffff]), Ok(()));
        assert_eq!(
            decide(
                &p,
                libc::SYS_socket,
                &[libc::AF_VSOCK as libc::c_long, 1, 0]
            ),
            Err(libc::EPERM)
        );
        // A number above every call the profile names: ENOSYS, as the
        // kernel answers for a call it lacks (runc's rule).
        assert_eq!(decide(&p, 600, &[]), Err(libc::ENOSYS));
    }

    #[test]
    fn unknown_names_are_skipped_and_arguments_are_compared() {
        let masked = LinuxSeccompArgBuilder::default()
            .index(0usize)
            .value(0xf0u64)
            .value_two(0x10u64)
            .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
            .build()
            .expect("arg");
        let mut personality = rule(&["personality"], LinuxSeccompAction::ScmpActErrno);
        personality.set_errno_ret(Some(libc::EACCES as u32));
        personality.set_args(Some(vec![masked]));
        let profile = LinuxSeccompBuilder::default()
            .default_action(LinuxSeccompAction::ScmpActAllow)
            .architectures(vec![Arch::ScmpArchNative])
            .syscalls(vec![
                rule(
                    &["no_such_call", "getppid"],
                    LinuxSeccompAction::ScmpActErrno,
                ),
                // The default action again: dropped, not an error.
                rule(&["getpid"], LinuxSeccompAction::ScmpActAllow),
                personality,
            ])
            .build()
            .expect("profile");
        let p = compile(&profile).expect("compile");
        // SAFETY (each closure): as above.
        assert_eq!(decide(&p, libc::SYS_getppid, &[]), Err(libc::EPERM));
        assert_eq!(decide(&p, libc::SYS_getpid, &[]), Ok(()));
        assert_eq!(
            decide(&p, libc::SYS_personality, &[0x1f]),
            Err(libc::EACCES)
        );
        assert_eq!(decide(&p, libc::SYS_personality, &[0xffff_ffff]), Ok(()));
    }

    #[test]
    fn notify_and_bad_arguments_are_refused() {
        let profile = LinuxSeccompBuilder::default()
            .default_action(LinuxSeccompAction::ScmpActNotify)
            .build()
            .expect("profile");
        let err = compile(&profile).expect_err("notify");
        assert!(err.to_string().contains("SCMP_ACT_NOTIFY"), "{err}");

        let bad = LinuxSeccompArgBuilder::default()
            .index(6usize)
            .value(0u64)
            .op(LinuxSeccompOperator::ScmpCmpEq)
            .build()
            .expect("arg");
        let mut r = rule(&["getpid"], LinuxSeccompAction::ScmpActErrno);
        r.set_args(Some(vec![bad]));
        let profile = LinuxSeccompBuilder::default()
            .default_action(LinuxSeccompAction::ScmpActAllow)
            .syscalls(vec![r])
            .build()
            .expect("profile");
        let err = compile(&profile).expect_err("index 6");
        assert!(err.to_string().contains("index 6"), "{err}");
    }
}
