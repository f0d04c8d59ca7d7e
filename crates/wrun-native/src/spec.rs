//! Building an OCI runtime spec from an image config and `wrun run` options,
//! as podman and containerd build one.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use oci_spec::image::ImageConfiguration;
use oci_spec::runtime::{
    Capabilities, Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder, LinuxDevice,
    LinuxDeviceCgroup, LinuxMemoryBuilder, LinuxNamespace, LinuxNamespaceBuilder,
    LinuxNamespaceType, LinuxPidsBuilder, LinuxResourcesBuilder, LinuxSeccomp, Mount, MountBuilder,
    ProcessBuilder, RootBuilder, Spec, SpecBuilder as OciSpecBuilder, UserBuilder,
    get_default_mounts,
};
use wrun_core::{Access, Limits, Network};

use crate::device::{self, Device};
use crate::error::{Error, Result};
use crate::seccomp_profile;

/// The `PATH` a container gets when its image sets none (docker's).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The capabilities docker grants a container by default.
pub const DEFAULT_CAPABILITIES: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

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

/// A host directory or file bind-mounted into the container (`-v HOST:CTR[:ro]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// The host path (absolute).
    pub host: PathBuf,
    /// Where the container sees it (absolute).
    pub container: String,
    /// Whether the container may write to it.
    pub access: Access,
}

impl Volume {
    /// Parses `HOST:CTR`, `HOST:CTR:ro` or `HOST:CTR:rw`. Both paths must be
    /// absolute; named volumes are not supported.
    pub fn parse(spec: &str) -> Result<Self> {
        let bad = |reason: &str| Error::InvalidMount {
            spec: spec.to_string(),
            reason: reason.to_string(),
        };
        let parts: Vec<&str> = spec.split(':').collect();
        let (host, container, access) = match parts.as_slice() {
            [h, c] => (*h, *c, Access::ReadWrite),
            [h, c, "ro"] => (*h, *c, Access::ReadOnly),
            [h, c, "rw"] => (*h, *c, Access::ReadWrite),
            [_, _, mode] => return Err(bad(&format!("unknown mode {mode:?} (ro or rw)"))),
            _ => return Err(bad("expected HOST:CONTAINER[:ro|rw]")),
        };
        if !host.starts_with('/') {
            return Err(bad(
                "the host path must be absolute (named volumes are not supported)",
            ));
        }
        if !container.starts_with('/') {
            return Err(bad("the container path must be absolute"));
        }
        if container == "/" {
            return Err(bad("cannot mount over the container's root"));
        }
        Ok(Volume {
            host: PathBuf::from(host),
            container: container.to_string(),
            access,
        })
    }
}

/// Which seccomp filter the container gets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SeccompPolicy {
    /// wrun's default profile, equivalent in effect to docker's: the calls
    /// docker's allow-list leaves out fail with `EPERM` (see
    /// [`default_seccomp`]).
    #[default]
    Default,
    /// No filter (`--security-opt seccomp=unconfined`).
    Unconfined,
    /// A profile file in docker's JSON format or the runtime spec's
    /// `linux.seccomp` format (`--security-opt seccomp=FILE`).
    Profile(PathBuf),
}

/// Builds the runtime [`Spec`] for one container from an image config and
/// the `wrun run` options.
///
/// Defaults, as docker's:
/// - command: the image's Entrypoint + Cmd; no environment beyond the
///   image's Env, `PATH` (if the image sets none), `HOSTNAME` and `HOME`;
/// - user: the image's User (root if none), working directory: the image's
///   WorkingDir (`/` if none);
/// - namespaces pid, mount, uts, ipc, cgroup and net (an own network
///   namespace with only loopback: no network unless asked);
/// - mounts /proc, /dev (tmpfs), /dev/pts, /dev/shm, /dev/mqueue, /sys
///   (read-only) and /sys/fs/cgroup (read-only); runc's masked and
///   read-only paths;
/// - runc's device rules (only null, zero, full, random, urandom, tty, the
///   ptys and tun/tap may be opened; see [`default_device_rules`](crate::default_device_rules));
/// - docker's default capability set, no_new_privs, the default seccomp
///   filter; no resource limit; no host directory or device.
#[derive(Debug, Clone, Default)]
pub struct SpecBuilder {
    image_entrypoint: Vec<String>,
    image_cmd: Vec<String>,
    image_env: Vec<String>,
    image_user: Option<String>,
    image_workdir: Option<String>,
    entrypoint: Option<Vec<String>>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    user: Option<String>,
    workdir: Option<String>,
    hostname: Option<String>,
    volumes: Vec<Volume>,
    tmpfs: Vec<String>,
    devices: Vec<Device>,
    limits: Limits,
    network: Network,
    read_only: bool,
    cap_add: Vec<String>,
    cap_drop: Vec<String>,
    privileged: bool,
    seccomp: SeccompPolicy,
    tty: bool,
    console_size: Option<(u16, u16)>,
    init: bool,
}

impl SpecBuilder {
    /// A builder with no image config: the command must be given with
    /// [`arg`](Self::arg).
    pub fn new() -> Self {
        Self::default()
    }

    /// A builder starting from an image's config (Entrypoint, Cmd, Env,
    /// User, WorkingDir).
    pub fn from_image(image: &ImageConfiguration) -> Self {
        let mut b = Self::default();
        if let Some(c) = image.config() {
            b.image_entrypoint = c.entrypoint().clone().unwrap_or_default();
            b.image_cmd = c.cmd().clone().unwrap_or_default();
            b.image_env = c.env().clone().unwrap_or_default();
            b.image_user = c.user().clone().filter(|u| !u.is_empty());
            b.image_workdir = c.working_dir().clone().filter(|w| !w.is_empty());
        }
        b
    }

    /// Appends a command argument; any argument replaces the image's Cmd.
    pub fn arg(&mut self, arg: impl Into<String>) -> &mut Self {
        self.args.push(arg.into());
        self
    }

    /// Appends command arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Replaces the image's Entrypoint (`--entrypoint`); as docker, this also
    /// drops the image's Cmd. An empty vector clears the entrypoint.
    pub fn entrypoint(&mut self, entrypoint: Vec<String>) -> &mut Self {
        self.entrypoint = Some(entrypoint);
        self
    }

    /// Sets an environment variable, overriding the image's.
    pub fn env(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Runs as `user` (`name`, `uid`, `name:group`, `uid:gid`), resolved
    /// through the image's /etc/passwd and /etc/group.
    pub fn user(&mut self, user: impl Into<String>) -> &mut Self {
        self.user = Some(user.into());
        self
    }

    /// The working directory (absolute); created if missing.
    pub fn workdir(&mut self, dir: impl Into<String>) -> &mut Self {
        self.workdir = Some(dir.into());
        self
    }

    /// The container's hostname (default: the first 12 characters of its id).
    pub fn hostname(&mut self, name: impl Into<String>) -> &mut Self {
        self.hostname = Some(name.into());
        self
    }

    /// Bind-mounts a host path into the container.
    pub fn volume(&mut self, volume: Volume) -> &mut Self {
        self.volumes.push(volume);
        self
    }

    /// Mounts an empty tmpfs at `path` (`--tmpfs`).
    pub fn tmpfs(&mut self, path: impl Into<String>) -> &mut Self {
        self.tmpfs.push(path.into());
        self
    }

    /// Gives the container a host device (`--device`): the node is made at
    /// the container path with the host node's type, numbers, mode and
    /// owner, and the device rules allow the access asked for. The host
    /// path must be a character or block device; [`build`](Self::build)
    /// says if it is not.
    pub fn device(&mut self, device: Device) -> &mut Self {
        self.devices.push(device);
        self
    }

    /// Resource limits (memory, swap, pids, cpus, cpu shares).
    pub fn limits(&mut self, limits: &Limits) -> &mut Self {
        self.limits = limits.clone();
        self
    }

    /// The network: `None` (default) is an own namespace with loopback only.
    pub fn network(&mut self, network: Network) -> &mut Self {
        self.network = network;
        self
    }

    /// Makes the root filesystem read-only (`--read-only`).
    pub fn read_only(&mut self, read_only: bool) -> &mut Self {
        self.read_only = read_only;
        self
    }

    /// Adds a capability (`NET_ADMIN`, `CAP_NET_ADMIN` or `ALL`).
    pub fn cap_add(&mut self, cap: impl Into<String>) -> &mut Self {
        self.cap_add.push(cap.into());
        self
    }

    /// Drops a capability (`NET_RAW`, `CAP_NET_RAW` or `ALL`).
    pub fn cap_drop(&mut self, cap: impl Into<String>) -> &mut Self {
        self.cap_drop.push(cap.into());
        self
    }

    /// `--privileged`: every capability, no seccomp filter, no masked or
    /// read-only paths, /sys and /sys/fs/cgroup writable, every device
    /// allowed and the host's device nodes in /dev (as docker).
    pub fn privileged(&mut self, privileged: bool) -> &mut Self {
        self.privileged = privileged;
        self
    }

    /// The seccomp filter.
    pub fn seccomp(&mut self, policy: SeccompPolicy) -> &mut Self {
        self.seccomp = policy;
        self
    }

    /// Whether the workload gets a terminal (`-t`).
    pub fn tty(&mut self, tty: bool) -> &mut Self {
        self.tty = tty;
        self
    }

    /// The terminal's initial size in rows and columns (with [`tty`](Self::tty)).
    pub fn console_size(&mut self, rows: u16, cols: u16) -> &mut Self {
        self.console_size = Some((rows, cols));
        self
    }

    /// `--init`: runs a minimal init as pid 1 that reaps orphaned processes
    /// and forwards signals; the workload is then pid 2. Without it the
    /// workload is pid 1, as in docker.
    pub fn init(&mut self, init: bool) -> &mut Self {
        self.init = init;
        self
    }

    /// Builds the spec for container `id` whose root filesystem is the
    /// unpacked `layers` (bottom first); the layers are read (never written)
    /// to resolve the user through /etc/passwd and /etc/group.
    ///
    /// # Ambient Authority
    /// Reads the layer directories, a seccomp profile file and the host's
    /// device nodes by path.
    pub fn build(&self, id: &str, layers: &[PathBuf]) -> Result<Spec> {
        let args = self.command()?;
        let caps = self.capabilities()?;
        let user_spec = self
            .user
            .clone()
            .or_else(|| self.image_user.clone())
            .unwrap_or_else(|| "0".to_string());
        let ident = resolve_user(&user_spec, layers)?;
        let hostname = self
            .hostname
            .clone()
            .unwrap_or_else(|| id.chars().take(12).collect());
        let env = self.environment(&hostname, &ident.home);
        let cwd = self
            .workdir
            .clone()
            .or_else(|| self.image_workdir.clone())
            .unwrap_or_else(|| "/".to_string());
        if !cwd.starts_with('/') {
            return Err(Error::invalid(format!(
                "the working directory {cwd:?} is not absolute"
            )));
        }

        let oci = |e: oci_spec::OciSpecError| Error::invalid(e.to_string());
        let capabilities = LinuxCapabilitiesBuilder::default()
            .bounding(caps.clone())
            .effective(caps.clone())
            .permitted(caps)
            .inheritable(Capabilities::new())
            .ambient(Capabilities::new())
            .build()
            .map_err(oci)?;
        let user = UserBuilder::default()
            .uid(ident.uid)
            .gid(ident.gid)
            .additional_gids(ident.additional_gids)
            .build()
            .map_err(oci)?;
        let mut process = ProcessBuilder::default();
        if let (true, Some((rows, cols))) = (self.tty, self.console_size) {
            process = process.console_size(
                oci_spec::runtime::BoxBuilder::default()
                    .height(u64::from(rows))
                    .width(u64::from(cols))
                    .build()
                    .map_err(oci)?,
            );
        }
        let process = process
            // The builder starts from runc's example process: clear its
            // rlimits (RLIMIT_NOFILE 1024), docker sets none by default.
            .rlimits(Vec::new())
            .terminal(self.tty)
            .user(user)
            .args(args)
            .env(env)
            .cwd(cwd)
            .capabilities(capabilities)
            .no_new_privileges(!self.privileged)
            .build()
            .map_err(oci)?;

        let (nodes, device_rules) = self.devices()?;
        let mut resources = self.resources()?;
        resources.set_devices(Some(device_rules));
        let mut linux = LinuxBuilder::default()
            .namespaces(self.namespaces()?)
            .resources(resources)
            .devices(nodes)
            .cgroups_path(PathBuf::from(format!("/wrun/{id}")));
        // The builder starts from runc's example: clear its masked and
        // read-only paths (kept for unprivileged containers below).
        linux = linux.masked_paths(Vec::new()).readonly_paths(Vec::new());
        if !self.privileged {
            linux = linux
                .masked_paths(
                    MASKED_PATHS
                        .iter()
                        .map(|p| p.to_string())
                        .collect::<Vec<_>>(),
                )
                .readonly_paths(
                    READONLY_PATHS
                        .iter()
                        .map(|p| p.to_string())
                        .collect::<Vec<_>>(),
                );
            if let Some(seccomp) = self.seccomp_filter()? {
                linux = linux.seccomp(seccomp);
            }
        }
        let linux = linux.build().map_err(oci)?;

        let mut annotations = std::collections::HashMap::new();
        if self.init {
            annotations.insert(INIT_ANNOTATION.to_string(), "true".to_string());
        }
        OciSpecBuilder::default()
            .version("1.2.0")
            .annotations(annotations)
            .root(
                RootBuilder::default()
                    .path("rootfs")
                    .readonly(self.read_only)
                    .build()
                    .map_err(oci)?,
            )
            .hostname(hostname)
            .mounts(self.mounts()?)
            .process(process)
            .linux(linux)
            .build()
            .map_err(oci)
    }

    fn command(&self) -> Result<Vec<String>> {
        let mut args = match &self.entrypoint {
            Some(ep) => ep.clone(),
            None => self.image_entrypoint.clone(),
        };
        if !self.args.is_empty() {
            args.extend(self.args.iter().cloned());
        } else if self.entrypoint.is_none() {
            args.extend(self.image_cmd.iter().cloned());
        }
        if args.is_empty() {
            return Err(Error::invalid("no command specified"));
        }
        Ok(args)
    }

    fn environment(&self, hostname: &str, home: &str) -> Vec<String> {
        let mut env: Vec<(String, String)> = Vec::new();
        let mut set = |k: &str, v: &str| {
            if let Some(slot) = env.iter_mut().find(|(key, _)| key == k) {
                slot.1 = v.to_string();
            } else {
                env.push((k.to_string(), v.to_string()));
            }
        };
        set("PATH", DEFAULT_PATH);
        set("HOSTNAME", hostname);
        for kv in &self.image_env {
            let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
            set(k, v);
        }
        if self.tty {
            set("TERM", "xterm");
        }
        for (k, v) in &self.env {
            set(k, v);
        }
        if !env.iter().any(|(k, _)| k == "HOME") {
            env.push(("HOME".to_string(), home.to_string()));
        }
        env.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
    }

    /// docker's rule: start from the default set (every capability when
    /// privileged, none when `ALL` is dropped), remove the dropped ones,
    /// then add the added ones.
    fn capabilities(&self) -> Result<Capabilities> {
        let mut caps: Capabilities = if self.privileged {
            available_capabilities().into_iter().collect()
        } else {
            DEFAULT_CAPABILITIES.into_iter().collect()
        };
        for name in &self.cap_drop {
            match parse_capability(name)? {
                None => caps.clear(),
                Some(c) => {
                    caps.remove(&c);
                }
            }
        }
        for name in &self.cap_add {
            match parse_capability(name)? {
                None => caps.extend(available_capabilities()),
                Some(c) => {
                    caps.insert(c);
                }
            }
        }
        Ok(caps)
    }

    fn namespaces(&self) -> Result<Vec<LinuxNamespace>> {
        let mut types = vec![
            LinuxNamespaceType::Pid,
            LinuxNamespaceType::Mount,
            LinuxNamespaceType::Uts,
            LinuxNamespaceType::Ipc,
            LinuxNamespaceType::Cgroup,
        ];
        if self.network == Network::None {
            types.push(LinuxNamespaceType::Network);
        }
        types
            .into_iter()
            .map(|t| {
                LinuxNamespaceBuilder::default()
                    .typ(t)
                    .build()
                    .map_err(|e| Error::invalid(e.to_string()))
            })
            .collect()
    }

    fn resources(&self) -> Result<oci_spec::runtime::LinuxResources> {
        let oci = |e: oci_spec::OciSpecError| Error::invalid(e.to_string());
        let l = &self.limits;
        let mut res = LinuxResourcesBuilder::default();
        if l.memory.is_some() || l.memory_swap.is_some() {
            let mut m = LinuxMemoryBuilder::default();
            let limit = match l.memory {
                Some(b) => {
                    Some(i64::try_from(b).map_err(|_| Error::invalid("memory limit too large"))?)
                }
                None => None,
            };
            if let Some(limit) = limit {
                if limit < 6 * 1024 * 1024 {
                    return Err(Error::invalid("minimum memory limit allowed is 6MB"));
                }
                m = m.limit(limit);
            }
            match (limit, l.memory_swap) {
                (None, Some(_)) => {
                    return Err(Error::invalid(
                        "a memory+swap limit needs a memory limit (--memory)",
                    ));
                }
                (Some(limit), Some(swap)) if swap != -1 && swap < limit => {
                    return Err(Error::invalid(
                        "the memory+swap limit must be at least the memory limit",
                    ));
                }
                (_, Some(swap)) => m = m.swap(swap),
                (Some(limit), None) => m = m.swap(limit.saturating_mul(2)),
                (None, None) => {}
            }
            res = res.memory(m.build().map_err(oci)?);
        }
        if let Some(p) = l.pids {
            if p == 0 || p < -1 {
                return Err(Error::invalid(format!("invalid pids limit {p}")));
            }
            res = res.pids(LinuxPidsBuilder::default().limit(p).build().map_err(oci)?);
        }
        if l.cpus.is_some() || l.cpu_shares.is_some() {
            let mut c = LinuxCpuBuilder::default();
            if let Some(cpus) = l.cpus {
                if !(cpus > 0.0 && cpus.is_finite()) {
                    return Err(Error::invalid(format!("invalid cpus {cpus}")));
                }
                let period: u64 = 100_000;
                let quota = (cpus * period as f64).round() as i64;
                if quota < 1000 {
                    return Err(Error::invalid("cpus must be at least 0.01"));
                }
                c = c.period(period).quota(quota);
            }
            if let Some(shares) = l.cpu_shares {
                if !(2..=262_144).contains(&shares) {
                    return Err(Error::invalid(format!(
                        "cpu shares {shares} out of range 2..=262144"
                    )));
                }
                c = c.shares(shares);
            }
            res = res.cpu(c.build().map_err(oci)?);
        }
        res.build().map_err(oci)
    }

    /// The device nodes to make and the device rules: runc's defaults (or
    /// every device, privileged) and an allow rule per `--device`.
    fn devices(&self) -> Result<(Vec<LinuxDevice>, Vec<LinuxDeviceCgroup>)> {
        let mut rules = if self.privileged {
            vec![device::allow_all_rule()]
        } else {
            device::default_device_rules()
        };
        let mut nodes = Vec::new();
        for d in &self.devices {
            let node = device::host_node(&d.host, &d.container)?;
            rules.push(device::allow_node(&node, d.access));
            nodes.push(node);
        }
        if self.privileged {
            for node in device::host_devices() {
                if !nodes.iter().any(|n: &LinuxDevice| n.path() == node.path()) {
                    nodes.push(node);
                }
            }
        }
        Ok((nodes, rules))
    }

    fn mounts(&self) -> Result<Vec<Mount>> {
        let oci = |e: oci_spec::OciSpecError| Error::invalid(e.to_string());
        let mut mounts = get_default_mounts();
        for m in &mut mounts {
            let dest = m.destination().clone();
            let privileged = self.privileged;
            if let Some(opts) = m.options_mut()
                && privileged
                && (dest == Path::new("/sys") || dest == Path::new("/sys/fs/cgroup"))
            {
                opts.retain(|o| o != "ro");
                opts.push("rw".into());
            }
        }
        for v in &self.volumes {
            let mut options = vec!["rbind".to_string(), "rprivate".to_string()];
            options.push(match v.access {
                Access::ReadOnly => "ro".into(),
                Access::ReadWrite => "rw".into(),
            });
            mounts.push(
                MountBuilder::default()
                    .destination(&v.container)
                    .typ("bind")
                    .source(&v.host)
                    .options(options)
                    .build()
                    .map_err(oci)?,
            );
        }
        for t in &self.tmpfs {
            if !t.starts_with('/') || t == "/" {
                return Err(Error::InvalidMount {
                    spec: t.clone(),
                    reason: "a tmpfs path must be absolute and not /".into(),
                });
            }
            mounts.push(
                MountBuilder::default()
                    .destination(t)
                    .typ("tmpfs")
                    .source("tmpfs")
                    .options(vec![
                        "nosuid".to_string(),
                        "nodev".to_string(),
                        "noexec".to_string(),
                        "mode=1777".to_string(),
                    ])
                    .build()
                    .map_err(oci)?,
            );
        }
        Ok(mounts)
    }

    fn seccomp_filter(&self) -> Result<Option<LinuxSeccomp>> {
        let caps = self.capabilities()?;
        match &self.seccomp {
            SeccompPolicy::Unconfined => Ok(None),
            SeccompPolicy::Default => Ok(Some(default_seccomp(&caps))),
            SeccompPolicy::Profile(path) => seccomp_profile::load_profile(path, &caps).map(Some),
        }
    }
}

/// wrun's default seccomp filter for a container holding `caps`.
///
/// Docker's default profile is an allow-list of about 370 calls; wrun
/// expresses the same policy as its complement (a deny-list): every call is
/// allowed except the ones docker's list omits on x86_64 (kernel modules,
/// kexec, mount and namespace calls, pivot_root, keyrings, bpf, perf,
/// clock setting, reboot, swap, quotas, NUMA migration, userfaultfd, …),
/// which fail with `EPERM`; `clone` with namespace flags fails with `EPERM`
/// and `clone3` with `ENOSYS` (so libc falls back to `clone`); `personality`
/// is limited to docker's five personas and `socket` refuses `AF_VSOCK`. As
/// in docker, a call comes back when the container holds the capability
/// that governs it (`CAP_SYS_ADMIN` gives back mount, unshare, setns …).
///
/// The difference from an allow-list: calls added to Linux after docker's
/// list was written (e.g. `fchmodat2`, `futex_wait`, `mseal`) are allowed
/// here, where an allow-list refuses them until it is updated. A profile
/// file ([`SeccompPolicy::Profile`]) gives an exact allow-list when needed.
pub fn default_seccomp(caps: &Capabilities) -> LinuxSeccomp {
    seccomp_profile::default_profile(caps)
}

/// What `--privileged` and `--cap-add ALL` give: every capability this
/// process holds in its bounding set, as docker gives its daemon's current
/// capabilities. Asking for one outside that set fails (capset: EPERM)
/// where wrun itself runs with fewer than all (in a container, say).
fn available_capabilities() -> Vec<Capability> {
    all_capabilities().into_iter().filter(held).collect()
}

#[cfg(target_os = "linux")]
fn held(cap: &Capability) -> bool {
    let n = crate::linux::caps::number(cap) as libc::c_ulong;
    // SAFETY: PR_CAPBSET_READ takes plain integers; it returns 1 if held, 0
    // if not, -1 for a capability this kernel does not know.
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

/// A user resolved to numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub home: String,
}

/// Reads `etc/<name>` from the top-most layer that has it.
fn read_etc(layers: &[PathBuf], name: &str) -> Option<String> {
    for layer in layers.iter().rev() {
        if layer.join("etc").join(format!(".wh.{name}")).exists() {
            return None;
        }
        let p = layer.join("etc").join(name);
        // Never follow a symlink out of the layer.
        match fs::symlink_metadata(&p) {
            Ok(m) if m.is_file() => return fs::read_to_string(&p).ok(),
            Ok(_) => return None,
            Err(_) => continue,
        }
    }
    None
}

/// Resolves `name`, `uid`, `name:group`, `uid:gid` as docker does.
pub(crate) fn resolve_user(spec: &str, layers: &[PathBuf]) -> Result<Identity> {
    let passwd = read_etc(layers, "passwd").unwrap_or_default();
    let group = read_etc(layers, "group").unwrap_or_default();
    resolve_user_in(spec, &passwd, &group)
}

fn resolve_user_in(spec: &str, passwd: &str, group: &str) -> Result<Identity> {
    let unknown = |reason: String| Error::UnknownUser {
        user: spec.to_string(),
        reason,
    };
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if user_part.is_empty() {
        return Err(unknown("empty user name".into()));
    }
    // name:password:uid:gid:gecos:home:shell
    let entries: Vec<Vec<&str>> = passwd
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 4)
        .collect();
    let by_name = entries.iter().find(|f| f[0] == user_part);
    let numeric = user_part.parse::<u32>().ok();
    let (uid, mut gid, name, home) = match (by_name, numeric) {
        (Some(f), _) => {
            let uid = f[2]
                .parse::<u32>()
                .map_err(|_| unknown(format!("bad uid in passwd entry {:?}", f[0])))?;
            let gid = f[3]
                .parse::<u32>()
                .map_err(|_| unknown(format!("bad gid in passwd entry {:?}", f[0])))?;
            let home = f.get(5).copied().filter(|h| !h.is_empty()).unwrap_or("/");
            (uid, gid, Some(f[0].to_string()), home.to_string())
        }
        (None, Some(uid)) => {
            let found = entries
                .iter()
                .find(|f| f[2].parse::<u32>().ok() == Some(uid));
            match found {
                Some(f) => (
                    uid,
                    f[3].parse::<u32>().unwrap_or(0),
                    Some(f[0].to_string()),
                    f.get(5)
                        .copied()
                        .filter(|h| !h.is_empty())
                        .unwrap_or("/")
                        .to_string(),
                ),
                None => (uid, 0, None, "/".to_string()),
            }
        }
        (None, None) => return Err(unknown("no matching entries in passwd file".into())),
    };
    // name:password:gid:members
    let groups: Vec<Vec<&str>> = group
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 3)
        .collect();
    if let Some(g) = group_part {
        if let Some(f) = groups.iter().find(|f| f[0] == g) {
            gid = f[2]
                .parse::<u32>()
                .map_err(|_| unknown(format!("bad gid in group entry {:?}", f[0])))?;
        } else if let Ok(n) = g.parse::<u32>() {
            gid = n;
        } else {
            return Err(unknown(format!("no group {g:?} in group file")));
        }
    }
    let mut additional_gids = Vec::new();
    if let Some(name) = &name {
        let mut seen = HashSet::new();
        for f in &groups {
            let members = f.get(3).copied().unwrap_or("");
            if members.split(',').any(|m| m == name)
                && let Ok(g) = f[2].parse::<u32>()
                && g != gid
                && seen.insert(g)
            {
                additional_gids.push(g);
            }
        }
    }
    Ok(Identity {
        uid,
        gid,
        additional_gids,
        home,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::image::{ConfigBuilder, ImageConfigurationBuilder};

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\nalice:x:1000:1000::/home/alice:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nwheel:x:10:alice\nalice:x:1000:\nnogroup:x:65534:\n";

    fn image(entrypoint: &[&str], cmd: &[&str], user: &str) -> ImageConfiguration {
        let config = ConfigBuilder::default()
            .entrypoint(entrypoint.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .cmd(cmd.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .env(vec!["PATH=/bin".to_string(), "FOO=image".to_string()])
            .user(user.to_string())
            .working_dir("/srv".to_string())
            .build()
            .expect("config");
        ImageConfigurationBuilder::default()
            .config(config)
            .build()
            .expect("image config")
    }

    #[test]
    fn users_resolve_like_docker() {
        let root = resolve_user_in("root", PASSWD, GROUP).expect("root");
        assert_eq!((root.uid, root.gid, root.home.as_str()), (0, 0, "/root"));
        let alice = resolve_user_in("alice", PASSWD, GROUP).expect("alice");
        assert_eq!((alice.uid, alice.gid), (1000, 1000));
        assert_eq!(alice.additional_gids, vec![10]);
        let by_uid = resolve_user_in("1000", PASSWD, GROUP).expect("uid");
        assert_eq!(by_uid.gid, 1000);
        let unknown_uid = resolve_user_in("4242", PASSWD, GROUP).expect("bare uid");
        assert_eq!((unknown_uid.uid, unknown_uid.gid), (4242, 0));
        let with_group = resolve_user_in("alice:wheel", PASSWD, GROUP).expect("alice:wheel");
        assert_eq!(with_group.gid, 10);
        assert_eq!(resolve_user_in("1:2", PASSWD, GROUP).expect("1:2").gid, 2);
        let err = resolve_user_in("mallory", PASSWD, GROUP).expect_err("unknown");
        assert_eq!(
            err.to_string(),
            "unable to find user mallory: no matching entries in passwd file"
        );
        assert!(resolve_user_in("alice:nope", PASSWD, GROUP).is_err());
    }

    #[test]
    fn command_follows_entrypoint_and_cmd_rules() {
        let img = image(&["/ep"], &["default"], "");
        let spec = SpecBuilder::from_image(&img)
            .build("abc", &[])
            .expect("spec");
        let args = spec.process().as_ref().and_then(|p| p.args().clone());
        assert_eq!(args, Some(vec!["/ep".to_string(), "default".to_string()]));

        let spec = SpecBuilder::from_image(&img)
            .arg("x")
            .build("abc", &[])
            .expect("spec");
        let args = spec.process().as_ref().and_then(|p| p.args().clone());
        assert_eq!(args, Some(vec!["/ep".to_string(), "x".to_string()]));

        let spec = SpecBuilder::from_image(&img)
            .entrypoint(vec!["/other".into()])
            .build("abc", &[])
            .expect("spec");
        let args = spec.process().as_ref().and_then(|p| p.args().clone());
        assert_eq!(args, Some(vec!["/other".to_string()]));

        let err = SpecBuilder::new()
            .build("abc", &[])
            .expect_err("no command");
        assert_eq!(
            err.to_string(),
            "invalid container configuration: no command specified"
        );
    }

    #[test]
    fn defaults_are_docker_like() {
        let img = image(&[], &["sh"], "");
        let spec = SpecBuilder::from_image(&img)
            .env("FOO", "cli")
            .build("0123456789abcdef", &[])
            .expect("spec");
        assert_eq!(spec.hostname().as_deref(), Some("0123456789ab"));
        let process = spec.process().as_ref().expect("process");
        let env = process.env().clone().unwrap_or_default();
        assert!(env.contains(&"PATH=/bin".to_string()));
        assert!(env.contains(&"FOO=cli".to_string()));
        assert!(!env.contains(&"FOO=image".to_string()));
        assert!(env.contains(&"HOSTNAME=0123456789ab".to_string()));
        assert_eq!(process.cwd(), Path::new("/srv"));
        assert_eq!(process.no_new_privileges(), Some(true));
        let caps = process.capabilities().as_ref().expect("caps");
        let bounding = caps.bounding().clone().unwrap_or_default();
        assert_eq!(bounding.len(), 14);
        assert!(!bounding.contains(&Capability::SysAdmin));

        let linux = spec.linux().as_ref().expect("linux");
        let ns: Vec<_> = linux
            .namespaces()
            .clone()
            .unwrap_or_default()
            .iter()
            .map(|n| n.typ())
            .collect();
        assert!(ns.contains(&LinuxNamespaceType::Network));
        assert!(ns.contains(&LinuxNamespaceType::Pid));
        assert_eq!(linux.masked_paths().as_ref().map(Vec::len), Some(11));
        assert_eq!(linux.readonly_paths().as_ref().map(Vec::len), Some(5));
        assert!(linux.seccomp().is_some());
        let dests: Vec<_> = spec
            .mounts()
            .clone()
            .unwrap_or_default()
            .iter()
            .map(|m| m.destination().clone())
            .collect();
        for d in [
            "/proc",
            "/dev",
            "/dev/pts",
            "/dev/shm",
            "/dev/mqueue",
            "/sys",
            "/sys/fs/cgroup",
        ] {
            assert!(dests.contains(&PathBuf::from(d)), "{d} missing");
        }
    }

    #[test]
    fn options_map_to_the_spec() {
        let limits = Limits {
            memory: Some(64 << 20),
            pids: Some(20),
            cpus: Some(0.5),
            cpu_shares: Some(512),
            ..Limits::default()
        };
        let spec = SpecBuilder::new()
            .arg("true")
            .limits(&limits)
            .network(Network::Host)
            .cap_add("net_admin")
            .cap_drop("CAP_CHOWN")
            .volume(Volume::parse("/tmp:/data:ro").expect("volume"))
            .tmpfs("/scratch")
            .read_only(true)
            .seccomp(SeccompPolicy::Unconfined)
            .build("id", &[])
            .expect("spec");
        let linux = spec.linux().as_ref().expect("linux");
        let res = linux.resources().as_ref().expect("resources");
        let mem = res.memory().as_ref().expect("memory");
        assert_eq!(mem.limit(), Some(64 << 20));
        assert_eq!(mem.swap(), Some(128 << 20));
        assert_eq!(res.pids().as_ref().map(|p| p.limit()), Some(20));
        let cpu = res.cpu().as_ref().expect("cpu");
        assert_eq!(
            (cpu.quota(), cpu.period(), cpu.shares()),
            (Some(50_000), Some(100_000), Some(512))
        );
        assert!(linux.seccomp().is_none());
        let ns = linux.namespaces().clone().unwrap_or_default();
        assert!(!ns.iter().any(|n| n.typ() == LinuxNamespaceType::Network));
        let caps = spec
            .process()
            .as_ref()
            .and_then(|p| p.capabilities().clone())
            .and_then(|c| c.bounding().clone())
            .unwrap_or_default();
        assert!(caps.contains(&Capability::NetAdmin));
        assert!(!caps.contains(&Capability::Chown));
        assert_eq!(spec.root().as_ref().and_then(|r| r.readonly()), Some(true));
        let mounts = spec.mounts().clone().unwrap_or_default();
        let data = mounts
            .iter()
            .find(|m| m.destination() == Path::new("/data"))
            .expect("bind");
        assert!(
            data.options()
                .clone()
                .unwrap_or_default()
                .contains(&"ro".to_string())
        );
        assert!(
            mounts
                .iter()
                .any(|m| m.destination() == Path::new("/scratch"))
        );
    }

    #[test]
    fn privileged_means_no_masks_no_filter_all_caps() {
        let spec = SpecBuilder::new()
            .arg("sh")
            .privileged(true)
            .build("p", &[])
            .expect("spec");
        let linux = spec.linux().as_ref().expect("linux");
        assert_eq!(linux.masked_paths().as_ref().map(Vec::len).unwrap_or(0), 0);
        assert_eq!(
            linux.readonly_paths().as_ref().map(Vec::len).unwrap_or(0),
            0
        );
        assert!(linux.seccomp().is_none());
        let process = spec.process().as_ref().expect("process");
        assert_eq!(process.rlimits().as_ref().map(Vec::len).unwrap_or(0), 0);
        assert_eq!(process.no_new_privileges(), Some(false));
        let caps = process
            .capabilities()
            .as_ref()
            .and_then(|c| c.bounding().clone())
            .unwrap_or_default();
        assert_eq!(caps.len(), available_capabilities().len());
    }

    #[test]
    fn device_rules_and_nodes_in_the_spec() {
        let rules = |spec: &Spec| -> Vec<String> {
            let linux = spec.linux().as_ref().expect("linux");
            let res = linux.resources().as_ref().expect("resources");
            res.devices()
                .clone()
                .unwrap_or_default()
                .iter()
                .map(|r| format!("{} {r}", if r.allow() { "allow" } else { "deny" }))
                .collect()
        };
        let plain = SpecBuilder::new().arg("x").build("d", &[]).expect("spec");
        let defaults: Vec<String> = crate::default_device_rules()
            .iter()
            .map(|r| format!("{} {r}", if r.allow() { "allow" } else { "deny" }))
            .collect();
        assert_eq!(rules(&plain), defaults);
        assert_eq!(rules(&plain)[0], "deny a *:* rwm");
        let devices = |spec: &Spec| spec.linux().as_ref().and_then(|l| l.devices().clone());
        assert_eq!(devices(&plain).unwrap_or_default().len(), 0);

        let granted = SpecBuilder::new()
            .arg("x")
            .device(Device::parse("/dev/null:/dev/mynull:r").expect("device"))
            .build("d", &[])
            .expect("spec");
        assert_eq!(
            rules(&granted).last().map(String::as_str),
            Some("allow c 1:3 r")
        );
        let nodes = devices(&granted).unwrap_or_default();
        assert_eq!(nodes.len(), 1);
        assert_eq!(nodes[0].path(), Path::new("/dev/mynull"));
        assert_eq!((nodes[0].major(), nodes[0].minor()), (1, 3));

        let privileged = SpecBuilder::new()
            .arg("x")
            .privileged(true)
            .build("d", &[])
            .expect("spec");
        assert_eq!(rules(&privileged), ["allow a *:* rwm"]);
        // The host's nodes, but not those the runtime binds itself.
        let nodes = devices(&privileged).unwrap_or_default();
        assert!(!nodes.iter().any(|n| n.path() == Path::new("/dev/null")));

        let err = SpecBuilder::new()
            .arg("x")
            .device(Device::parse("/etc/passwd").expect("parses"))
            .build("d", &[])
            .expect_err("not a device");
        assert_eq!(err.to_string(), "/etc/passwd is not a device");
    }

    #[test]
    fn bad_input_is_refused() {
        assert!(Volume::parse("relative:/x").is_err());
        assert!(Volume::parse("/x:relative").is_err());
        assert!(Volume::parse("/x:/y:rx").is_err());
        assert!(Volume::parse("/x").is_err());
        assert!(Volume::parse("/x:/").is_err());
        assert_eq!(
            Volume::parse("/a:/b").expect("rw").access,
            Access::ReadWrite
        );
        assert!(
            SpecBuilder::new()
                .arg("x")
                .cap_add("CAP_FLY")
                .build("i", &[])
                .is_err()
        );
        let tiny = Limits {
            memory: Some(1024),
            ..Limits::default()
        };
        assert!(
            SpecBuilder::new()
                .arg("x")
                .limits(&tiny)
                .build("i", &[])
                .is_err()
        );
        let swap_without_memory = Limits {
            memory_swap: Some(1 << 30),
            ..Limits::default()
        };
        assert!(
            SpecBuilder::new()
                .arg("x")
                .limits(&swap_without_memory)
                .build("i", &[])
                .is_err()
        );
        assert!(
            SpecBuilder::new()
                .arg("x")
                .workdir("rel")
                .build("i", &[])
                .is_err()
        );
    }

    #[test]
    fn user_comes_from_the_top_layer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lower = dir.path().join("l0");
        let upper = dir.path().join("l1");
        fs::create_dir_all(lower.join("etc")).expect("mkdir");
        fs::create_dir_all(upper.join("etc")).expect("mkdir");
        fs::write(lower.join("etc/passwd"), "bob:x:5:5::/home/bob:/bin/sh\n").expect("write");
        fs::write(upper.join("etc/passwd"), "bob:x:7:7::/b:/bin/sh\n").expect("write");
        let spec = SpecBuilder::new()
            .arg("id")
            .user("bob")
            .build("i", &[lower, upper])
            .expect("spec");
        let process = spec.process().as_ref().expect("process");
        assert_eq!(process.user().uid(), 7);
        assert!(
            process
                .env()
                .clone()
                .unwrap_or_default()
                .contains(&"HOME=/b".to_string())
        );
    }
}
