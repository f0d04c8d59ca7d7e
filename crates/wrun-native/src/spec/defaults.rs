//! podman's, docker's and runc's defaults for a container.

use oci_spec::runtime::Capability;

pub use wrun_core::DEFAULT_PATH;

/// The capabilities a container holds by default: podman's set
/// (`default_capabilities` of its `containers.conf`), which is docker's
/// without `NET_RAW` (raw sockets: forged packets on the container's
/// network), `MKNOD` and `AUDIT_WRITE`. wrun's containers refuse whatever
/// podman's refuse by default; `--cap-add` gives any of them back.
pub const DEFAULT_CAPABILITIES: [Capability; 11] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fowner,
    Capability::Fsetid,
    Capability::Kill,
    Capability::NetBindService,
    Capability::Setfcap,
    Capability::Setgid,
    Capability::Setpcap,
    Capability::Setuid,
    Capability::SysChroot,
];

/// The sysctls a container with its own network namespace gets, as podman
/// sets them: ICMP echo sockets for root, so `ping` works without
/// `NET_RAW`.
pub const DEFAULT_SYSCTLS: [(&str, &str); 1] = [("net.ipv4.ping_group_range", "0 0")];

/// runc's masked paths: hidden behind /dev/null (files) or an empty
/// read-only tmpfs (directories).
pub const MASKED_PATHS: [&str; 11] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// runc's read-only paths.
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The spec annotation (`"true"`) that asks for wrun's minimal init as pid 1
/// (`--init`): it reaps orphans and forwards signals to the workload.
pub const INIT_ANNOTATION: &str = "run.wrun.init";
