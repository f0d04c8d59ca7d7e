//! Seccomp profiles as runtime-spec data: wrun's default and profile files
//! (docker's format or the runtime spec's `linux.seccomp`).
//!
//! Both go through one selection step, docker's: a rule is kept when the
//! container holds every capability in its `includes.caps`, the machine's
//! architecture is in `includes.arches` and the running kernel is at least
//! `includes.minKernel` (each when given), and none of its `excludes`
//! holds. What is kept is a runtime-spec [`LinuxSeccomp`], which
//! `linux/seccomp.rs` compiles with libseccomp.

use std::fs;
use std::path::Path;

use oci_spec::runtime::{
    Arch, Capabilities, Capability, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg,
    LinuxSeccompArgBuilder, LinuxSeccompBuilder, LinuxSeccompFilterFlag, LinuxSeccompOperator,
    LinuxSyscall, LinuxSyscallBuilder,
};
use serde::{Deserialize, Deserializer};

use crate::error::{Error, Result};

/// Namespace flags `clone` may not use without `CAP_SYS_ADMIN` (docker's mask).
pub(crate) const CLONE_NAMESPACE_FLAGS: u64 = 0x7E02_0000;

const EPERM: u32 = 1;
const ENOSYS: u32 = 38;
/// `AF_ALG` (38) and `AF_VSOCK` (40): the socket families docker refuses;
/// `AF_NFC` (39) between them is allowed.
const AF_ALG: u64 = 38;
const AF_VSOCK: u64 = 40;

/// A kernel version as docker's `minKernel` gives it: `"4.8"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct KernelVersion {
    major: u32,
    minor: u32,
}

impl KernelVersion {
    const fn new(major: u32, minor: u32) -> Self {
        KernelVersion { major, minor }
    }

    /// `major.minor` from a version or a `uname -r` release (`6.1.0-18-amd64`).
    fn parse(s: &str) -> Option<Self> {
        let mut parts = s.split(|c: char| !c.is_ascii_digit());
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next().and_then(|m| m.parse().ok()).unwrap_or(0);
        Some(KernelVersion { major, minor })
    }

    /// The running kernel's version, from uname(2).
    fn running() -> Option<Self> {
        // SAFETY: an all-zero utsname is a valid out-value.
        let mut u: libc::utsname = unsafe { std::mem::zeroed() };
        // SAFETY: `u` is a valid, writable utsname.
        if unsafe { libc::uname(&mut u) } != 0 {
            return None;
        }
        // SAFETY: uname NUL-terminates `release` within its array.
        let release = unsafe { std::ffi::CStr::from_ptr(u.release.as_ptr()) };
        Self::parse(&release.to_string_lossy())
    }
}

impl<'de> Deserialize<'de> for KernelVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        KernelVersion::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("invalid kernel version {s:?}")))
    }
}

/// What a profile's conditions are decided against: the container's
/// capabilities, this machine's architecture and its kernel.
pub(crate) struct Target<'a> {
    caps: &'a Capabilities,
    /// The architecture by docker's (Go's) name: `amd64`, `arm64` …
    arch: &'static str,
    kernel: Option<KernelVersion>,
}

impl<'a> Target<'a> {
    /// A container holding `caps` on this machine.
    pub(crate) fn host(caps: &'a Capabilities) -> Self {
        Target {
            caps,
            arch: GO_ARCH,
            kernel: KernelVersion::running(),
        }
    }

    fn kernel_at_least(&self, v: KernelVersion) -> bool {
        self.kernel.is_some_and(|k| k >= v)
    }
}

/// This machine's architecture as docker names it in `arches`.
const GO_ARCH: &str = if cfg!(target_arch = "x86_64") {
    "amd64"
} else if cfg!(target_arch = "x86") {
    "386"
} else if cfg!(target_arch = "aarch64") {
    "arm64"
} else if cfg!(target_arch = "arm") {
    "arm"
} else if cfg!(all(target_arch = "powerpc64", target_endian = "little")) {
    "ppc64le"
} else if cfg!(target_arch = "s390x") {
    "s390x"
} else if cfg!(target_arch = "riscv64") {
    "riscv64"
} else if cfg!(target_arch = "loongarch64") {
    "loong64"
} else {
    "unknown"
};

/// The architectures docker's `archMap` gives a filter on this machine:
/// the native one and the 32-bit ABIs its kernel also runs.
const ARCHES: &[Arch] = if cfg!(target_arch = "x86_64") {
    &[Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32]
} else if cfg!(target_arch = "aarch64") {
    &[Arch::ScmpArchAarch64, Arch::ScmpArchArm]
} else if cfg!(target_arch = "s390x") {
    &[Arch::ScmpArchS390x, Arch::ScmpArchS390]
} else {
    &[Arch::ScmpArchNative]
};

/// A rule's `includes` or `excludes`, as wrun's own data.
struct When {
    caps: &'static [Capability],
    arches: &'static [&'static str],
    min_kernel: Option<KernelVersion>,
}

impl When {
    const ALWAYS: When = When {
        caps: &[],
        arches: &[],
        min_kernel: None,
    };
    const fn cap(cap: &'static [Capability]) -> When {
        When {
            caps: cap,
            ..When::ALWAYS
        }
    }
    const fn arches(arches: &'static [&'static str]) -> When {
        When {
            arches,
            ..When::ALWAYS
        }
    }
}

/// One condition on an argument: `args[index] op value` (for
/// `SCMP_CMP_MASKED_EQ`, `args[index] & value == value_two`).
struct Arg {
    index: usize,
    op: LinuxSeccompOperator,
    value: u64,
    value_two: u64,
}

const fn arg0(op: LinuxSeccompOperator, value: u64) -> Arg {
    Arg {
        index: 0,
        op,
        value,
        value_two: 0,
    }
}

/// One rule of wrun's default profile.
struct Rule {
    names: &'static [&'static str],
    /// `None`: allow; `Some(n)`: fail with errno `n`.
    errno: Option<u32>,
    args: &'static [Arg],
    includes: When,
    excludes: When,
}

impl Rule {
    const ALLOW: Rule = Rule {
        names: &[],
        errno: None,
        args: &[],
        includes: When::ALWAYS,
        excludes: When::ALWAYS,
    };
}

/// docker's default allow-list (moby/profiles `seccomp/default.json`,
/// v0.2.3): the calls every container may make. Names an architecture or
/// this libseccomp does not know are skipped when the filter is compiled.
/// `socket`, `personality`, `clone` and the capability-gated calls have
/// rules of their own in [`DEFAULT_RULES`].
#[rustfmt::skip]
const ALLOWED: &[&str] = &[
    "accept", "accept4", "access", "adjtimex", "alarm", "bind", "brk", "cachestat", "capget",
    "capset", "chdir", "chmod", "chown", "chown32", "clock_adjtime", "clock_adjtime64",
    "clock_getres", "clock_getres_time64", "clock_gettime", "clock_gettime64", "clock_nanosleep",
    "clock_nanosleep_time64", "close", "close_range", "connect", "copy_file_range", "creat",
    "dup", "dup2", "dup3", "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old",
    "epoll_pwait", "epoll_pwait2", "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2",
    "execve", "execveat", "exit", "exit_group", "faccessat", "faccessat2", "fadvise64",
    "fadvise64_64", "fallocate", "fanotify_mark", "fchdir", "fchmod", "fchmodat", "fchmodat2",
    "fchown", "fchown32", "fchownat", "fcntl", "fcntl64", "fdatasync", "fgetxattr", "flistxattr",
    "flock", "fork", "fremovexattr", "fsetxattr", "fstat", "fstat64", "fstatat64", "fstatfs",
    "fstatfs64", "fsync", "ftruncate", "ftruncate64", "futex", "futex_requeue", "futex_time64",
    "futex_wait", "futex_waitv", "futex_wake", "futimesat", "getcpu", "getcwd", "getdents",
    "getdents64", "getegid", "getegid32", "geteuid", "geteuid32", "getgid", "getgid32",
    "getgroups", "getgroups32", "getitimer", "getpeername", "getpgid", "getpgrp", "getpid",
    "getppid", "getpriority", "getrandom", "getresgid", "getresgid32", "getresuid", "getresuid32",
    "getrlimit", "get_robust_list", "getrusage", "getsid", "getsockname", "getsockopt",
    "get_thread_area", "gettid", "gettimeofday", "getuid", "getuid32", "getxattr", "getxattrat",
    "inotify_add_watch", "inotify_init", "inotify_init1", "inotify_rm_watch", "io_cancel",
    "ioctl", "io_destroy", "io_getevents", "io_pgetevents", "io_pgetevents_time64", "ioprio_get",
    "ioprio_set", "io_setup", "io_submit", "ipc", "kill", "landlock_add_rule",
    "landlock_create_ruleset", "landlock_restrict_self", "lchown", "lchown32", "lgetxattr",
    "link", "linkat", "listen", "listmount", "listxattr", "listxattrat", "llistxattr", "_llseek",
    "lremovexattr", "lseek", "lsetxattr", "lstat", "lstat64", "madvise", "map_shadow_stack",
    "membarrier", "memfd_create", "memfd_secret", "mincore", "mkdir", "mkdirat", "mknod",
    "mknodat", "mlock", "mlock2", "mlockall", "mmap", "mmap2", "mprotect", "mq_getsetattr",
    "mq_notify", "mq_open", "mq_timedreceive", "mq_timedreceive_time64", "mq_timedsend",
    "mq_timedsend_time64", "mq_unlink", "mremap", "mseal", "msgctl", "msgget", "msgrcv", "msgsnd",
    "msync", "munlock", "munlockall", "munmap", "name_to_handle_at", "nanosleep", "newfstatat",
    "_newselect", "open", "openat", "openat2", "pause", "pidfd_open", "pidfd_send_signal", "pipe",
    "pipe2", "pkey_alloc", "pkey_free", "pkey_mprotect", "poll", "ppoll", "ppoll_time64", "prctl",
    "pread64", "preadv", "preadv2", "prlimit64", "process_mrelease", "pselect6",
    "pselect6_time64", "pwrite64", "pwritev", "pwritev2", "read", "readahead", "readlink",
    "readlinkat", "readv", "recv", "recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg",
    "remap_file_pages", "removexattr", "removexattrat", "rename", "renameat", "renameat2",
    "restart_syscall", "riscv_hwprobe", "rmdir", "rseq", "rt_sigaction", "rt_sigpending",
    "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait",
    "rt_sigtimedwait_time64", "rt_tgsigqueueinfo", "sched_getaffinity", "sched_getattr",
    "sched_getparam", "sched_get_priority_max", "sched_get_priority_min", "sched_getscheduler",
    "sched_rr_get_interval", "sched_rr_get_interval_time64", "sched_setaffinity", "sched_setattr",
    "sched_setparam", "sched_setscheduler", "sched_yield", "seccomp", "select", "semctl",
    "semget", "semop", "semtimedop", "semtimedop_time64", "send", "sendfile", "sendfile64",
    "sendmmsg", "sendmsg", "sendto", "setfsgid", "setfsgid32", "setfsuid", "setfsuid32", "setgid",
    "setgid32", "setgroups", "setgroups32", "setitimer", "setpgid", "setpriority", "setregid",
    "setregid32", "setresgid", "setresgid32", "setresuid", "setresuid32", "setreuid",
    "setreuid32", "setrlimit", "set_robust_list", "setsid", "setsockopt", "set_thread_area",
    "set_tid_address", "setuid", "setuid32", "setxattr", "setxattrat", "shmat", "shmctl", "shmdt",
    "shmget", "shutdown", "sigaltstack", "signalfd", "signalfd4", "sigprocmask", "sigreturn",
    "socketcall", "socketpair", "splice", "stat", "stat64", "statfs", "statfs64", "statmount",
    "statx", "symlink", "symlinkat", "sync", "sync_file_range", "syncfs", "sysinfo", "tee",
    "tgkill", "time", "timer_create", "timer_delete", "timer_getoverrun", "timer_gettime",
    "timer_gettime64", "timer_settime", "timer_settime64", "timerfd_create", "timerfd_gettime",
    "timerfd_gettime64", "timerfd_settime", "timerfd_settime64", "times", "tkill", "truncate",
    "truncate64", "ugetrlimit", "umask", "uname", "unlink", "unlinkat", "uretprobe", "utime",
    "utimensat", "utimensat_time64", "utimes", "vfork", "vmsplice", "wait4", "waitid", "waitpid",
    "write", "writev",
];

use LinuxSeccompOperator::{ScmpCmpEq, ScmpCmpGt, ScmpCmpLt, ScmpCmpMaskedEq};

/// wrun's default profile: docker's default (moby/profiles
/// `seccomp/default.json`, v0.2.3) rule for rule. The default action is
/// `EPERM`, so whatever is not listed here, including every call added to
/// Linux after this list, is refused.
const DEFAULT_RULES: &[Rule] = &[
    Rule {
        names: ALLOWED,
        ..Rule::ALLOW
    },
    Rule {
        names: &["process_vm_readv", "process_vm_writev", "ptrace"],
        includes: When {
            min_kernel: Some(KernelVersion::new(4, 8)),
            ..When::ALWAYS
        },
        ..Rule::ALLOW
    },
    // Every socket family but AF_ALG and AF_VSOCK. On 32-bit x86,
    // socketcall(2) reaches them anyway, as in docker.
    Rule {
        names: &["socket"],
        args: &[arg0(ScmpCmpLt, AF_ALG)],
        ..Rule::ALLOW
    },
    Rule {
        names: &["socket"],
        args: &[arg0(ScmpCmpEq, AF_ALG + 1)],
        ..Rule::ALLOW
    },
    Rule {
        names: &["socket"],
        args: &[arg0(ScmpCmpGt, AF_VSOCK)],
        ..Rule::ALLOW
    },
    // Linux, and its 32-bit and address-space-layout variants; 0xffffffff
    // queries the persona.
    Rule {
        names: &["personality"],
        args: &[arg0(ScmpCmpEq, 0x0)],
        ..Rule::ALLOW
    },
    Rule {
        names: &["personality"],
        args: &[arg0(ScmpCmpEq, 0x8)],
        ..Rule::ALLOW
    },
    Rule {
        names: &["personality"],
        args: &[arg0(ScmpCmpEq, 0x20000)],
        ..Rule::ALLOW
    },
    Rule {
        names: &["personality"],
        args: &[arg0(ScmpCmpEq, 0x20008)],
        ..Rule::ALLOW
    },
    Rule {
        names: &["personality"],
        args: &[arg0(ScmpCmpEq, 0xffff_ffff)],
        ..Rule::ALLOW
    },
    Rule {
        names: &["sync_file_range2", "swapcontext"],
        includes: When::arches(&["ppc64le"]),
        ..Rule::ALLOW
    },
    Rule {
        names: &[
            "arm_fadvise64_64",
            "arm_sync_file_range",
            "sync_file_range2",
            "breakpoint",
            "cacheflush",
            "set_tls",
        ],
        includes: When::arches(&["arm", "arm64"]),
        ..Rule::ALLOW
    },
    Rule {
        names: &["arch_prctl"],
        includes: When::arches(&["amd64", "x32"]),
        ..Rule::ALLOW
    },
    Rule {
        names: &["modify_ldt"],
        includes: When::arches(&["amd64", "x32", "x86"]),
        ..Rule::ALLOW
    },
    Rule {
        names: &[
            "s390_pci_mmio_read",
            "s390_pci_mmio_write",
            "s390_runtime_instr",
        ],
        includes: When::arches(&["s390", "s390x"]),
        ..Rule::ALLOW
    },
    Rule {
        names: &["riscv_flush_icache"],
        includes: When::arches(&["riscv64"]),
        ..Rule::ALLOW
    },
    Rule {
        names: &["open_by_handle_at"],
        includes: When::cap(&[Capability::DacReadSearch]),
        ..Rule::ALLOW
    },
    Rule {
        names: &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "lsm_get_self_attr",
            "lsm_list_modules",
            "lsm_set_self_attr",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
        includes: When::cap(&[Capability::SysAdmin]),
        ..Rule::ALLOW
    },
    // Without CAP_SYS_ADMIN, clone without namespace flags only (s390
    // passes the flags second).
    Rule {
        names: &["clone"],
        args: &[arg0(ScmpCmpMaskedEq, CLONE_NAMESPACE_FLAGS)],
        excludes: When {
            caps: &[Capability::SysAdmin],
            arches: &["s390", "s390x"],
            min_kernel: None,
        },
        ..Rule::ALLOW
    },
    Rule {
        names: &["clone"],
        args: &[Arg {
            index: 1,
            op: ScmpCmpMaskedEq,
            value: CLONE_NAMESPACE_FLAGS,
            value_two: 0,
        }],
        includes: When::arches(&["s390", "s390x"]),
        excludes: When::cap(&[Capability::SysAdmin]),
        ..Rule::ALLOW
    },
    // clone3 passes its flags in memory, where a filter cannot look:
    // ENOSYS makes libc fall back to clone.
    Rule {
        names: &["clone3"],
        errno: Some(ENOSYS),
        excludes: When::cap(&[Capability::SysAdmin]),
        ..Rule::ALLOW
    },
    Rule {
        names: &["reboot"],
        includes: When::cap(&[Capability::SysBoot]),
        ..Rule::ALLOW
    },
    Rule {
        names: &["chroot"],
        includes: When::cap(&[Capability::SysChroot]),
        ..Rule::ALLOW
    },
    Rule {
        names: &["delete_module", "init_module", "finit_module"],
        includes: When::cap(&[Capability::SysModule]),
        ..Rule::ALLOW
    },
    Rule {
        names: &["acct"],
        includes: When::cap(&[Capability::SysPacct]),
        ..Rule::ALLOW
    },
    Rule {
        names: &[
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
            "process_vm_readv",
            "process_vm_writev",
            "ptrace",
        ],
        includes: When::cap(&[Capability::SysPtrace]),
        ..Rule::ALLOW
    },
    Rule {
        names: &["iopl", "ioperm"],
        includes: When::cap(&[Capability::SysRawio]),
        ..Rule::ALLOW
    },
    Rule {
        names: &["settimeofday", "stime", "clock_settime", "clock_settime64"],
        includes: When::cap(&[Capability::SysTime]),
        ..Rule::ALLOW
    },
    Rule {
        names: &["vhangup"],
        includes: When::cap(&[Capability::SysTtyConfig]),
        ..Rule::ALLOW
    },
    Rule {
        names: &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
        includes: When::cap(&[Capability::SysNice]),
        ..Rule::ALLOW
    },
    Rule {
        names: &["syslog"],
        includes: When::cap(&[Capability::Syslog]),
        ..Rule::ALLOW
    },
    Rule {
        names: &["bpf"],
        includes: When::cap(&[Capability::Bpf]),
        ..Rule::ALLOW
    },
    Rule {
        names: &["perf_event_open"],
        includes: When::cap(&[Capability::Perfmon]),
        ..Rule::ALLOW
    },
];

/// docker's selection of one rule: kept when every `includes` condition
/// holds and no `excludes` condition does.
fn selected<C: Into<Option<Capability>> + Copy, A: AsRef<str>>(
    t: &Target,
    includes: (&[C], &[A], Option<KernelVersion>),
    excludes: (&[C], &[A], Option<KernelVersion>),
) -> bool {
    let held = |c: &C| (*c).into().is_some_and(|c| t.caps.contains(&c));
    let here = |arches: &[A]| arches.iter().any(|a| a.as_ref() == t.arch);
    let (caps, arches, kernel) = excludes;
    if here(arches) || caps.iter().any(held) || kernel.is_some_and(|k| t.kernel_at_least(k)) {
        return false;
    }
    let (caps, arches, kernel) = includes;
    (arches.is_empty() || here(arches))
        && caps.iter().all(held)
        && kernel.is_none_or(|k| t.kernel_at_least(k))
}

fn arg(a: &Arg) -> LinuxSeccompArg {
    let b = LinuxSeccompArgBuilder::default()
        .index(a.index)
        .value(a.value)
        .value_two(a.value_two)
        .op(a.op);
    // Every field is set: the builder cannot fail.
    b.build().unwrap_or_default()
}

fn syscall(
    names: Vec<String>,
    action: LinuxSeccompAction,
    errno: Option<u32>,
    args: Option<Vec<LinuxSeccompArg>>,
) -> LinuxSyscall {
    let mut b = LinuxSyscallBuilder::default().names(names).action(action);
    if let Some(e) = errno {
        b = b.errno_ret(e);
    }
    if let Some(a) = args {
        b = b.args(a);
    }
    // The builder has no validation that can fail for these fields.
    b.build().unwrap_or_default()
}

/// wrun's default profile for a container as `t` describes it.
pub(crate) fn default_profile_for(t: &Target) -> LinuxSeccomp {
    let rules = DEFAULT_RULES
        .iter()
        .filter(|r| {
            selected(
                t,
                (r.includes.caps, r.includes.arches, r.includes.min_kernel),
                (r.excludes.caps, r.excludes.arches, r.excludes.min_kernel),
            )
        })
        .map(|r| {
            let (action, errno) = match r.errno {
                None => (LinuxSeccompAction::ScmpActAllow, None),
                Some(e) => (LinuxSeccompAction::ScmpActErrno, Some(e)),
            };
            let args = (!r.args.is_empty()).then(|| r.args.iter().map(arg).collect());
            syscall(
                r.names.iter().map(|n| n.to_string()).collect(),
                action,
                errno,
                args,
            )
        })
        .collect::<Vec<_>>();
    LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActErrno)
        .default_errno_ret(EPERM)
        .architectures(ARCHES.to_vec())
        .syscalls(rules)
        .build()
        .unwrap_or_default()
}

pub(crate) fn default_profile(caps: &Capabilities) -> LinuxSeccomp {
    default_profile_for(&Target::host(caps))
}

/// A profile file: docker's format (with `archMap`, `includes`/`excludes`)
/// or the runtime spec's `linux.seccomp` object (with `architectures`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProfileFile {
    default_action: LinuxSeccompAction,
    #[serde(default)]
    default_errno_ret: Option<u32>,
    #[serde(default)]
    architectures: Vec<Arch>,
    #[serde(default)]
    arch_map: Vec<ArchMap>,
    #[serde(default)]
    flags: Vec<LinuxSeccompFilterFlag>,
    #[serde(default)]
    syscalls: Vec<ProfileSyscall>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchMap {
    architecture: Arch,
    #[serde(default)]
    sub_architectures: Option<Vec<Arch>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProfileSyscall {
    #[serde(default)]
    names: Vec<String>,
    #[serde(default)]
    name: Option<String>,
    action: LinuxSeccompAction,
    #[serde(default)]
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Option<Vec<LinuxSeccompArg>>,
    #[serde(default)]
    includes: Filter,
    #[serde(default)]
    excludes: Filter,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Filter {
    #[serde(default, deserialize_with = "cap_names")]
    caps: Vec<Option<Capability>>,
    #[serde(default)]
    arches: Vec<String>,
    #[serde(default)]
    min_kernel: Option<KernelVersion>,
}

/// Capability names as docker writes them (`CAP_SYS_ADMIN`); a name this
/// version of the runtime spec does not know is a capability no container
/// holds.
fn cap_names<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Vec<Option<Capability>>, D::Error> {
    let names = Vec::<String>::deserialize(d)?;
    Ok(names
        .iter()
        .map(|n| n.strip_prefix("CAP_").unwrap_or(n).parse().ok())
        .collect())
}

/// The native architecture as libseccomp names it in `archMap`.
fn native_arch() -> Option<Arch> {
    ARCHES
        .first()
        .copied()
        .filter(|a| *a != Arch::ScmpArchNative)
}

pub(crate) fn load_profile(path: &Path, caps: &Capabilities) -> Result<LinuxSeccomp> {
    load_profile_for(path, &Target::host(caps))
}

fn load_profile_for(path: &Path, t: &Target) -> Result<LinuxSeccomp> {
    let bad = |reason: String| Error::SeccompProfile {
        path: path.to_path_buf(),
        reason,
    };
    let text =
        fs::read_to_string(path).map_err(|e| bad(crate::error::Errno::from(e).to_string()))?;
    let file: ProfileFile = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let mut arches = file.architectures;
    // docker: the archMap entry of the native architecture, with its
    // sub-architectures.
    if let Some(native) = native_arch() {
        for m in file.arch_map.iter().filter(|m| m.architecture == native) {
            arches.push(m.architecture);
            arches.extend(m.sub_architectures.iter().flatten().copied());
        }
    }
    let mut rules = Vec::new();
    for s in file.syscalls {
        let inc = &s.includes;
        let exc = &s.excludes;
        if !selected(
            t,
            (&inc.caps, &inc.arches, inc.min_kernel),
            (&exc.caps, &exc.arches, exc.min_kernel),
        ) {
            continue;
        }
        let mut names = s.names;
        names.extend(s.name);
        rules.push(syscall(names, s.action, s.errno_ret, s.args));
    }
    let mut b = LinuxSeccompBuilder::default()
        .default_action(file.default_action)
        .architectures(arches)
        .syscalls(rules);
    if let Some(e) = file.default_errno_ret {
        b = b.default_errno_ret(e);
    }
    if !file.flags.is_empty() {
        b = b.flags(file.flags);
    }
    b.build().map_err(|e| bad(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(caps: &Capabilities, kernel: (u32, u32)) -> Target<'_> {
        Target {
            caps,
            arch: "amd64",
            kernel: Some(KernelVersion::new(kernel.0, kernel.1)),
        }
    }

    fn docker_caps() -> Capabilities {
        crate::spec::DEFAULT_CAPABILITIES.into_iter().collect()
    }

    /// `(name, action, errno, has args)` for every rule naming `name`.
    fn rules_for(p: &LinuxSeccomp, name: &str) -> Vec<(LinuxSeccompAction, Option<u32>, bool)> {
        p.syscalls()
            .as_deref()
            .unwrap_or_default()
            .iter()
            .filter(|s| s.names().iter().any(|n| n == name))
            .map(|s| (s.action(), s.errno_ret(), s.args().is_some()))
            .collect()
    }

    const ALLOW: LinuxSeccompAction = LinuxSeccompAction::ScmpActAllow;
    const ERRNO: LinuxSeccompAction = LinuxSeccompAction::ScmpActErrno;

    #[test]
    fn the_default_is_an_allow_list_refusing_with_eperm() {
        let caps = docker_caps();
        let p = default_profile_for(&target(&caps, (6, 1)));
        assert_eq!(p.default_action(), ERRNO);
        assert_eq!(p.default_errno_ret(), Some(EPERM));
        assert_eq!(rules_for(&p, "read"), vec![(ALLOW, None, false)]);
        assert_eq!(rules_for(&p, "ptrace"), vec![(ALLOW, None, false)]);
        assert_eq!(rules_for(&p, "chroot"), vec![(ALLOW, None, false)]);
        assert_eq!(rules_for(&p, "arch_prctl"), vec![(ALLOW, None, false)]);
        // Not granted: left to the default action.
        for name in [
            "mount",
            "unshare",
            "setns",
            "add_key",
            "keyctl",
            "io_uring_setup",
            "userfaultfd",
            "kexec_load",
            "bpf",
            "perf_event_open",
            "reboot",
            "init_module",
            "riscv_flush_icache",
            "open_by_handle_at",
        ] {
            assert!(rules_for(&p, name).is_empty(), "{name} is granted");
        }
        assert_eq!(rules_for(&p, "clone"), vec![(ALLOW, None, true)]);
        assert_eq!(rules_for(&p, "clone3"), vec![(ERRNO, Some(ENOSYS), false)]);
        assert_eq!(rules_for(&p, "personality").len(), 5);
        assert_eq!(rules_for(&p, "socket"), vec![(ALLOW, None, true); 3]);
        let clone = p
            .syscalls()
            .as_deref()
            .unwrap_or_default()
            .iter()
            .find(|s| s.names() == &["clone".to_string()])
            .and_then(|s| s.args().clone())
            .unwrap_or_default();
        assert_eq!(clone.len(), 1);
        assert_eq!(clone[0].value(), CLONE_NAMESPACE_FLAGS);
        assert_eq!(clone[0].op(), LinuxSeccompOperator::ScmpCmpMaskedEq);
        assert_eq!(
            p.architectures().clone().unwrap_or_default().first(),
            ARCHES.first()
        );
    }

    #[test]
    fn capabilities_and_kernel_version_bring_calls_back() {
        let mut caps = docker_caps();
        caps.extend([Capability::SysAdmin, Capability::SysPtrace, Capability::Bpf]);
        let p = default_profile_for(&target(&caps, (6, 1)));
        assert_eq!(rules_for(&p, "mount"), vec![(ALLOW, None, false)]);
        assert_eq!(rules_for(&p, "clone"), vec![(ALLOW, None, false)]);
        assert_eq!(rules_for(&p, "clone3"), vec![(ALLOW, None, false)]);
        assert_eq!(rules_for(&p, "bpf").len(), 2);
        assert_eq!(rules_for(&p, "kcmp"), vec![(ALLOW, None, false)]);
        assert!(rules_for(&p, "reboot").is_empty());

        let caps = docker_caps();
        let old = default_profile_for(&target(&caps, (4, 4)));
        assert!(rules_for(&old, "ptrace").is_empty());
        let caps: Capabilities = [Capability::Perfmon].into_iter().collect();
        let p = default_profile_for(&target(&caps, (6, 1)));
        assert_eq!(rules_for(&p, "perf_event_open"), vec![(ALLOW, None, false)]);
        assert!(rules_for(&p, "chroot").is_empty());
    }

    #[test]
    fn the_allow_list_holds_no_gated_call() {
        for gated in DEFAULT_RULES.iter().skip(1).flat_map(|r| r.names.iter()) {
            assert!(!ALLOWED.contains(gated), "{gated} is also unconditional");
        }
        let mut sorted = ALLOWED.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), ALLOWED.len(), "duplicate names");
    }

    #[test]
    fn kernel_versions_parse_as_docker_writes_them() {
        assert_eq!(KernelVersion::parse("4.8"), Some(KernelVersion::new(4, 8)));
        assert_eq!(
            KernelVersion::parse("6.1.0-18-amd64"),
            Some(KernelVersion::new(6, 1))
        );
        assert_eq!(KernelVersion::parse("5"), Some(KernelVersion::new(5, 0)));
        assert_eq!(KernelVersion::parse("x"), None);
        assert!(KernelVersion::new(4, 10) > KernelVersion::new(4, 8));
        assert!(KernelVersion::running().is_some());
    }

    #[test]
    fn docker_format_profiles_honour_includes_excludes_and_arch_map() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("p.json");
        fs::write(
            &path,
            r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":38,
               "archMap":[{"architecture":"SCMP_ARCH_X86_64","subArchitectures":["SCMP_ARCH_X86","SCMP_ARCH_X32"]},
                          {"architecture":"SCMP_ARCH_AARCH64","subArchitectures":["SCMP_ARCH_ARM"]}],
               "syscalls":[
                 {"names":["read","write"],"action":"SCMP_ACT_ALLOW","comment":"ignored"},
                 {"names":["kexec_load"],"action":"SCMP_ACT_ERRNO","errnoRet":1},
                 {"names":["mount"],"action":"SCMP_ACT_ALLOW","includes":{"caps":["CAP_SYS_ADMIN"]}},
                 {"names":["chown"],"action":"SCMP_ACT_ALLOW","excludes":{"caps":["CAP_CHOWN"]}},
                 {"names":["ptrace"],"action":"SCMP_ACT_ALLOW","includes":{"minKernel":"4.8"}},
                 {"names":["kcmp"],"action":"SCMP_ACT_ALLOW","excludes":{"minKernel":"5.0"}},
                 {"names":["arch_prctl"],"action":"SCMP_ACT_ALLOW","includes":{"arches":["amd64"]}},
                 {"names":["set_tls"],"action":"SCMP_ACT_ALLOW","includes":{"arches":["arm64"]}},
                 {"names":["vhangup"],"action":"SCMP_ACT_ALLOW","includes":{"caps":["CAP_NO_SUCH_THING"]}}
               ]}"#,
        )
        .expect("write");
        let caps: Capabilities = [Capability::Chown].into_iter().collect();
        let t = target(&caps, (4, 19));
        let p = load_profile_for(&path, &t).expect("profile");
        let names: Vec<String> = p
            .syscalls()
            .as_deref()
            .unwrap_or_default()
            .iter()
            .flat_map(|s| s.names().clone())
            .collect();
        assert_eq!(
            names,
            [
                "read",
                "write",
                "kexec_load",
                "ptrace",
                "kcmp",
                "arch_prctl"
            ]
        );
        assert_eq!(rules_for(&p, "kexec_load"), vec![(ERRNO, Some(1), false)]);
        assert_eq!(p.default_errno_ret(), Some(38));
        if cfg!(target_arch = "x86_64") {
            assert_eq!(
                p.architectures().clone().unwrap_or_default(),
                [Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32]
            );
        }
        let newer = target(&caps, (5, 10));
        let p = load_profile_for(&path, &newer).expect("profile");
        assert!(rules_for(&p, "kcmp").is_empty());

        fs::write(&path, "{not json").expect("write");
        let err = load_profile_for(&path, &t).expect_err("bad json");
        assert!(err.to_string().starts_with("seccomp profile "), "{err}");
        fs::write(
            &path,
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["x"],"action":"SCMP_ACT_ALLOW","includes":{"minKernel":"new"}}]}"#,
        )
        .expect("write");
        let err = load_profile_for(&path, &t).expect_err("bad kernel");
        assert!(err.to_string().contains("invalid kernel version"), "{err}");
    }

    #[test]
    fn runtime_spec_profiles_keep_their_architectures_and_flags() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("p.json");
        fs::write(
            &path,
            r#"{"defaultAction":"SCMP_ACT_KILL_PROCESS","architectures":["SCMP_ARCH_X86_64"],
               "flags":["SECCOMP_FILTER_FLAG_LOG"],
               "syscalls":[{"names":["getpid"],"action":"SCMP_ACT_ALLOW",
                 "args":[{"index":0,"value":1,"valueTwo":0,"op":"SCMP_CMP_NE"}]}]}"#,
        )
        .expect("write");
        let caps = docker_caps();
        let p = load_profile_for(&path, &target(&caps, (6, 1))).expect("profile");
        assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActKillProcess);
        assert_eq!(
            p.architectures().clone().unwrap_or_default(),
            [Arch::ScmpArchX86_64]
        );
        assert_eq!(
            p.flags().clone().unwrap_or_default(),
            [LinuxSeccompFilterFlag::SeccompFilterFlagLog]
        );
        assert_eq!(rules_for(&p, "getpid"), vec![(ALLOW, None, true)]);
    }
}
