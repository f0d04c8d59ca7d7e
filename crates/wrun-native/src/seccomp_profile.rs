//! Seccomp profiles as runtime-spec data: wrun's default and profile files
//! (docker's format or the runtime spec's `linux.seccomp`).

use std::fs;
use std::path::Path;

use oci_spec::runtime::{
    Capabilities, Capability, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg,
    LinuxSeccompArgBuilder, LinuxSeccompBuilder, LinuxSeccompOperator, LinuxSyscall,
    LinuxSyscallBuilder,
};
use serde::Deserialize;

use crate::error::{Error, Result};

/// Namespace flags `clone` may not use without `CAP_SYS_ADMIN` (docker's mask).
pub(crate) const CLONE_NAMESPACE_FLAGS: u64 = 0x7E02_0000;

/// Calls docker's default allow-list never grants.
const ALWAYS_DENIED: &[&str] = &[
    "add_key",
    "keyctl",
    "request_key",
    "kexec_load",
    "kexec_file_load",
    "create_module",
    "get_kernel_syms",
    "query_module",
    "nfsservctl",
    "uselib",
    "ustat",
    "vm86",
    "vm86old",
    "_sysctl",
    "sysfs",
    "swapon",
    "swapoff",
    "pivot_root",
    "migrate_pages",
    "move_pages",
    "userfaultfd",
    // Reserved numbers no kernel implements.
    "afs_syscall",
    "getpmsg",
    "putpmsg",
    "security",
    "tuxcall",
    "vserver",
];

/// The `personality` values docker allows (Linux, and the 32-bit and
/// address-space-layout variants); every other persona fails with EPERM.
const PERSONALITIES: [u64; 5] = [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// `AF_VSOCK`: sockets of this family are refused, as docker does.
const AF_VSOCK: u64 = 40;

/// Calls docker's default allow-list grants only with a capability.
const CAP_GATED: &[(Capability, &[&str])] = &[
    (
        Capability::SysAdmin,
        &[
            "mount",
            "umount",
            "umount2",
            "unshare",
            "setns",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "move_mount",
            "open_tree",
            "open_tree_attr",
            "mount_setattr",
            "quotactl",
            "quotactl_fd",
            "lookup_dcookie",
            "fanotify_init",
            "setdomainname",
            "sethostname",
            "bpf",
            "perf_event_open",
            "syslog",
        ],
    ),
    (Capability::SysBoot, &["reboot"]),
    (Capability::SysChroot, &["chroot"]),
    (
        Capability::SysModule,
        &["init_module", "finit_module", "delete_module"],
    ),
    (Capability::SysPacct, &["acct"]),
    (
        Capability::SysPtrace,
        &["kcmp", "pidfd_getfd", "process_madvise"],
    ),
    (Capability::SysRawio, &["iopl", "ioperm"]),
    (Capability::SysTime, &["settimeofday", "clock_settime"]),
    (Capability::SysTtyConfig, &["vhangup"]),
    (
        Capability::SysNice,
        &[
            "get_mempolicy",
            "set_mempolicy",
            "set_mempolicy_home_node",
            "mbind",
        ],
    ),
    (Capability::DacReadSearch, &["open_by_handle_at"]),
];

/// Calls whose capability alternative is not `CAP_SYS_ADMIN` alone.
const ALTERNATIVE_CAPS: &[(&str, Capability)] = &[
    ("bpf", Capability::Bpf),
    ("perf_event_open", Capability::Perfmon),
    ("syslog", Capability::Syslog),
];

fn arg_rule(
    name: &str,
    action: LinuxSeccompAction,
    errno: Option<u32>,
    arg: LinuxSeccompArg,
) -> LinuxSyscall {
    let mut rule = syscall(vec![name.to_string()], action, errno);
    rule.set_args(Some(vec![arg]));
    rule
}

fn arg0(op: LinuxSeccompOperator, value: u64, value_two: Option<u64>) -> LinuxSeccompArg {
    let mut b = LinuxSeccompArgBuilder::default()
        .index(0usize)
        .value(value)
        .op(op);
    if let Some(v) = value_two {
        b = b.value_two(v);
    }
    b.build().unwrap_or_default()
}

fn syscall(names: Vec<String>, action: LinuxSeccompAction, errno: Option<u32>) -> LinuxSyscall {
    let mut b = LinuxSyscallBuilder::default().names(names).action(action);
    if let Some(e) = errno {
        b = b.errno_ret(e);
    }
    // The builder has no validation that can fail for these fields.
    b.build().unwrap_or_default()
}

pub(crate) fn default_profile(caps: &Capabilities) -> LinuxSeccomp {
    let eperm = libc_eperm();
    let mut denied: Vec<String> = ALWAYS_DENIED.iter().map(|s| s.to_string()).collect();
    for (cap, names) in CAP_GATED {
        for name in *names {
            let alternative = ALTERNATIVE_CAPS
                .iter()
                .any(|(n, c)| n == name && caps.contains(c));
            if !caps.contains(cap) && !alternative {
                denied.push(name.to_string());
            }
        }
    }
    let mut rules = Vec::new();
    if !caps.contains(&Capability::SysAdmin) {
        // clone without namespace flags is allowed; with them, EPERM.
        rules.push(arg_rule(
            "clone",
            LinuxSeccompAction::ScmpActAllow,
            None,
            arg0(
                LinuxSeccompOperator::ScmpCmpMaskedEq,
                CLONE_NAMESPACE_FLAGS,
                Some(0),
            ),
        ));
        rules.push(syscall(
            vec!["clone".into()],
            LinuxSeccompAction::ScmpActErrno,
            Some(eperm),
        ));
        // clone3 hides its flags in memory: ENOSYS makes libc fall back to clone.
        rules.push(syscall(
            vec!["clone3".into()],
            LinuxSeccompAction::ScmpActErrno,
            Some(libc_enosys()),
        ));
    }
    for p in PERSONALITIES {
        rules.push(arg_rule(
            "personality",
            LinuxSeccompAction::ScmpActAllow,
            None,
            arg0(LinuxSeccompOperator::ScmpCmpEq, p, None),
        ));
    }
    rules.push(syscall(
        vec!["personality".into()],
        LinuxSeccompAction::ScmpActErrno,
        Some(eperm),
    ));
    rules.push(arg_rule(
        "socket",
        LinuxSeccompAction::ScmpActErrno,
        Some(eperm),
        arg0(LinuxSeccompOperator::ScmpCmpEq, AF_VSOCK, None),
    ));
    rules.push(syscall(
        denied,
        LinuxSeccompAction::ScmpActErrno,
        Some(eperm),
    ));
    LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActAllow)
        .syscalls(rules)
        .build()
        .unwrap_or_default()
}

const fn libc_eperm() -> u32 {
    1
}

const fn libc_enosys() -> u32 {
    38
}

/// A profile file: docker's format (with `includes`/`excludes`) or the
/// runtime spec's `linux.seccomp` object.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProfileFile {
    default_action: LinuxSeccompAction,
    #[serde(default)]
    default_errno_ret: Option<u32>,
    #[serde(default)]
    syscalls: Vec<ProfileSyscall>,
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
    #[serde(default)]
    caps: Vec<String>,
    #[serde(default)]
    arches: Vec<String>,
}

fn cap_held(caps: &Capabilities, name: &str) -> bool {
    let bare = name.strip_prefix("CAP_").unwrap_or(name);
    bare.parse::<Capability>()
        .map(|c| caps.contains(&c))
        .unwrap_or(false)
}

fn arch_matches(arches: &[String]) -> bool {
    let ours: &[&str] = if cfg!(target_arch = "x86_64") {
        &["amd64", "x86_64", "SCMP_ARCH_X86_64"]
    } else if cfg!(target_arch = "aarch64") {
        &["arm64", "aarch64", "SCMP_ARCH_AARCH64"]
    } else {
        &[]
    };
    arches.iter().any(|a| ours.contains(&a.as_str()))
}

pub(crate) fn load_profile(path: &Path, caps: &Capabilities) -> Result<LinuxSeccomp> {
    let bad = |reason: String| Error::SeccompProfile {
        path: path.to_path_buf(),
        reason,
    };
    let text =
        fs::read_to_string(path).map_err(|e| bad(crate::error::Errno::from(e).to_string()))?;
    let file: ProfileFile = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let mut rules = Vec::new();
    for s in file.syscalls {
        if !s.includes.caps.iter().all(|c| cap_held(caps, c)) {
            continue;
        }
        if !s.includes.arches.is_empty() && !arch_matches(&s.includes.arches) {
            continue;
        }
        if s.excludes.caps.iter().any(|c| cap_held(caps, c)) {
            continue;
        }
        if arch_matches(&s.excludes.arches) {
            continue;
        }
        let mut names = s.names;
        names.extend(s.name);
        let mut rule = syscall(names, s.action, s.errno_ret);
        rule.set_args(s.args);
        rules.push(rule);
    }
    let mut b = LinuxSeccompBuilder::default()
        .default_action(file.default_action)
        .syscalls(rules);
    if let Some(e) = file.default_errno_ret {
        b = b.default_errno_ret(e);
    }
    b.build().map_err(|e| bad(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(p: &LinuxSeccomp, action: LinuxSeccompAction) -> Vec<String> {
        p.syscalls()
            .clone()
            .unwrap_or_default()
            .iter()
            .filter(|s| s.action() == action && s.args().is_none())
            .flat_map(|s| s.names().clone())
            .collect()
    }

    #[test]
    fn default_denies_what_docker_omits_unless_the_cap_is_held() {
        let caps: Capabilities = crate::spec::DEFAULT_CAPABILITIES.into_iter().collect();
        let p = default_profile(&caps);
        let denied = names(&p, LinuxSeccompAction::ScmpActErrno);
        for n in [
            "mount",
            "unshare",
            "keyctl",
            "add_key",
            "reboot",
            "init_module",
            "clone",
            "pivot_root",
            "personality",
        ] {
            assert!(denied.contains(&n.to_string()), "{n} should be denied");
        }
        assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActAllow);

        let mut admin = caps.clone();
        admin.insert(Capability::SysAdmin);
        let denied = names(&default_profile(&admin), LinuxSeccompAction::ScmpActErrno);
        assert!(!denied.contains(&"mount".to_string()));
        assert!(!denied.contains(&"clone".to_string()));
        assert!(denied.contains(&"keyctl".to_string()));
        assert!(denied.contains(&"pivot_root".to_string()));
        assert!(!denied.contains(&"chroot".to_string()));
    }

    #[test]
    fn docker_format_profiles_honour_includes_and_excludes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("p.json");
        fs::write(
            &path,
            r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":1,
               "archMap":[{"architecture":"SCMP_ARCH_X86_64","subArchitectures":[]}],
               "syscalls":[
                 {"names":["read","write"],"action":"SCMP_ACT_ALLOW"},
                 {"names":["mount"],"action":"SCMP_ACT_ALLOW","includes":{"caps":["CAP_SYS_ADMIN"]}},
                 {"names":["chown"],"action":"SCMP_ACT_ALLOW","excludes":{"caps":["CAP_CHOWN"]}}
               ]}"#,
        )
        .expect("write");
        let caps: Capabilities = [Capability::Chown].into_iter().collect();
        let p = load_profile(&path, &caps).expect("profile");
        let allowed = names(&p, LinuxSeccompAction::ScmpActAllow);
        assert_eq!(allowed, vec!["read".to_string(), "write".to_string()]);
        assert_eq!(p.default_errno_ret(), Some(1));

        fs::write(&path, "{not json").expect("write");
        let err = load_profile(&path, &caps).expect_err("bad json");
        assert!(err.to_string().starts_with("seccomp profile "));
    }
}
