//! Building an OCI runtime spec from `wrun run`'s options, as podman and
//! containerd build one: the builder here; docker's defaults, the
//! capability rules, the resource limits' validation and bind mounts each
//! in a module of their own.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Capabilities, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxDevice, LinuxDeviceCgroup,
    LinuxNamespace, LinuxNamespaceBuilder, LinuxNamespaceType, LinuxSeccomp, Mount, MountBuilder,
    ProcessBuilder, RootBuilder, Spec, SpecBuilder as OciSpecBuilder, UserBuilder,
    get_default_mounts,
};
use wrun_core::{Access, Identity, Limits, Network};

use crate::device::{self, Device};
use crate::error::{Error, Result};
use crate::seccomp_profile;

mod caps;
mod defaults;
mod resources;
mod tmpfs;
mod volume;

pub use defaults::{
    DEFAULT_CAPABILITIES, DEFAULT_PATH, DEFAULT_SYSCTLS, INIT_ANNOTATION, MASKED_PATHS,
    READONLY_PATHS,
};
pub use tmpfs::{Tmpfs, TmpfsError};
pub use volume::Volume;

/// Which seccomp filter the container gets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SeccompPolicy {
    /// wrun's default profile, docker's: an allow-list, and every other
    /// call fails with `EPERM` (see [`default_seccomp`]).
    #[default]
    Default,
    /// No filter (`--security-opt seccomp=unconfined`).
    Unconfined,
    /// A profile file in docker's JSON format (podman's
    /// `/usr/share/containers/seccomp.json` is one: `archMap`, `includes`
    /// and `excludes` by capability, architecture and `minKernel`, decided
    /// against the container's capabilities and the running kernel;
    /// `errnoRet`, `defaultErrnoRet`) or the runtime spec's `linux.seccomp`
    /// format (`architectures`, `flags`), for `--security-opt
    /// seccomp=FILE`. Actions: allow, errno, kill (thread or process),
    /// trap, log and trace; notify is refused.
    Profile(PathBuf),
}

/// Builds the runtime [`Spec`] for one container from an image config and
/// the `wrun run` options.
///
/// The command line, the environment and the user come already merged with
/// the image's config (`wrun_core::ImageDefaults`) and resolved through the
/// image's files (`wrun_image::LayerStack::identity`): this builder never
/// reads an image.
///
/// Defaults, as docker's:
/// - no command (one must be given with [`arg`](Self::arg)); no environment
///   beyond `PATH` (if none is given), `HOSTNAME`, `TERM` (with a terminal)
///   and `HOME` (the user's, if none is given);
/// - user: root; working directory `/`;
/// - namespaces pid, mount, uts, ipc, cgroup and net (an own network
///   namespace with only loopback: no network unless asked);
/// - mounts /proc, /dev (tmpfs), /dev/pts, /dev/shm, /dev/mqueue, /sys
///   (read-only) and /sys/fs/cgroup (read-only); runc's masked and
///   read-only paths;
/// - runc's device rules (only null, zero, full, random, urandom, tty, the
///   ptys and tun/tap may be opened; see [`default_device_rules`](crate::default_device_rules));
/// - podman's default capability set ([`DEFAULT_CAPABILITIES`]), with
///   podman's `ping_group_range` in its own network namespace; no_new_privs;
///   the default seccomp filter; no resource limit; no host directory or
///   device.
#[derive(Debug, Clone, Default)]
pub struct SpecBuilder {
    args: Vec<String>,
    env: Vec<(String, String)>,
    identity: Option<Identity>,
    workdir: Option<String>,
    hostname: Option<String>,
    volumes: Vec<Volume>,
    tmpfs: Vec<Tmpfs>,
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
    /// A builder with nothing granted (see the type's defaults).
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a command argument (the first is the program).
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

    /// Sets an environment variable; a later value of a key replaces an
    /// earlier one.
    pub fn env(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Runs as `identity` (default: root), whose home is `HOME` unless the
    /// environment sets one.
    pub fn identity(&mut self, identity: Identity) -> &mut Self {
        self.identity = Some(identity);
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

    /// Mounts an empty tmpfs (`--tmpfs`).
    pub fn tmpfs(&mut self, tmpfs: Tmpfs) -> &mut Self {
        self.tmpfs.push(tmpfs);
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

    /// Builds the spec for container `id`.
    ///
    /// # Ambient Authority
    /// Reads a seccomp profile file and the host's device nodes by path.
    pub fn build(&self, id: &str) -> Result<Spec> {
        if self.args.is_empty() {
            return Err(Error::invalid("no command specified"));
        }
        let args = self.args.clone();
        let caps = self.capabilities()?;
        let ident = self.identity.clone().unwrap_or_else(Identity::root);
        let hostname = self
            .hostname
            .clone()
            .unwrap_or_else(|| id.chars().take(12).collect());
        let env = self.environment(&hostname, &ident.home);
        let cwd = self.workdir.clone().unwrap_or_else(|| "/".to_string());
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
        if self.network == Network::None {
            // Per network namespace: never set on the host's (`--network host`).
            linux = linux.sysctl(
                DEFAULT_SYSCTLS
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<std::collections::HashMap<_, _>>(),
            );
        }
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

    fn environment(&self, hostname: &str, home: &str) -> Vec<String> {
        let mut env: Vec<(String, String)> = Vec::new();
        let mut set = |k: &str, v: &str| {
            if let Some(slot) = env.iter_mut().find(|(key, _)| key == k) {
                slot.1 = v.to_string();
            } else {
                env.push((k.to_string(), v.to_string()));
            }
        };
        // docker's order: its defaults, then the container's environment
        // (the image's Env merged with the launch's), which wins.
        set("PATH", DEFAULT_PATH);
        set("HOSTNAME", hostname);
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

    fn capabilities(&self) -> Result<Capabilities> {
        caps::capabilities(self.privileged, &self.cap_add, &self.cap_drop)
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
        resources::resources(&self.limits)
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
            if !t.path.starts_with('/') || t.path.trim_end_matches('/').is_empty() {
                return Err(Error::InvalidTmpfs {
                    spec: t.path.clone(),
                    source: TmpfsError::Path(t.path.clone()),
                });
            }
            mounts.push(
                MountBuilder::default()
                    .destination(&t.path)
                    .typ("tmpfs")
                    .source("tmpfs")
                    .options(t.mount_options())
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

/// wrun's default seccomp filter for a container holding `caps`, as a
/// runtime-spec `linux.seccomp` (the form an OCI caller's config.json
/// gives, compiled by the same code).
///
/// It is docker's default profile (moby/profiles `seccomp/default.json`),
/// written as wrun's own data rule for rule: an allow-list of about 360
/// calls, and every other call fails with `EPERM`, including the ones
/// Linux adds after the list was written and the ones it leaves out on
/// purpose (io_uring, keyrings, kexec, kernel modules, userfaultfd, swap,
/// NUMA migration …). As in docker:
/// - the calls of a capability come back when the container holds it:
///   `CAP_SYS_ADMIN` gives mount, unshare, setns, the new mount API,
///   bpf, perf_event_open, sethostname, quotactl …; `CAP_SYS_BOOT`
///   reboot, `CAP_SYS_CHROOT` chroot, `CAP_SYS_MODULE` the module calls,
///   `CAP_SYS_PACCT` acct, `CAP_SYS_PTRACE` kcmp, pidfd_getfd,
///   process_madvise, `CAP_SYS_RAWIO` iopl and ioperm, `CAP_SYS_TIME`
///   the clock setters, `CAP_SYS_TTY_CONFIG` vhangup, `CAP_SYS_NICE` the
///   NUMA policy calls, `CAP_SYSLOG` syslog, `CAP_BPF` bpf,
///   `CAP_PERFMON` perf_event_open, `CAP_DAC_READ_SEARCH`
///   open_by_handle_at;
/// - without `CAP_SYS_ADMIN`, `clone` with a namespace flag (mask
///   `0x7E020000`) fails with `EPERM` and `clone3`, whose flags a filter
///   cannot see, with `ENOSYS`, so libc falls back to `clone`;
/// - `personality` is limited to docker's five personas, `socket`
///   refuses `AF_ALG` and `AF_VSOCK`, ptrace needs Linux 4.8;
/// - the filter covers the native architecture and its 32-bit ABIs
///   (x86 and x32 on x86_64, arm on aarch64).
///
/// When compiled (with libseccomp), a call name the installed libseccomp
/// does not know is skipped, and, as runc does, a call numbered above
/// every call the profile names fails with `ENOSYS` rather than `EPERM`,
/// so libc falls back from a call newer than the profile.
pub fn default_seccomp(caps: &Capabilities) -> LinuxSeccomp {
    seccomp_profile::default_profile(caps)
}

#[cfg(test)]
mod tests {
    use super::caps::available_capabilities;
    use super::*;
    use oci_spec::runtime::Capability;
    #[test]
    fn a_command_is_required() {
        let err = SpecBuilder::new().build("abc").expect_err("no command");
        assert_eq!(
            err.to_string(),
            "invalid container configuration: no command specified"
        );
        let spec = SpecBuilder::new()
            .args(["/ep", "x"])
            .build("abc")
            .expect("spec");
        let args = spec.process().as_ref().and_then(|p| p.args().clone());
        assert_eq!(args, Some(vec!["/ep".to_string(), "x".to_string()]));
    }

    #[test]
    fn defaults_are_docker_like() {
        let spec = SpecBuilder::new()
            .arg("sh")
            .env("PATH", "/bin")
            .env("FOO", "image")
            .env("FOO", "cli")
            .workdir("/srv")
            .tty(true)
            .build("0123456789abcdef")
            .expect("spec");
        assert_eq!(spec.hostname().as_deref(), Some("0123456789ab"));
        let process = spec.process().as_ref().expect("process");
        let env = process.env().clone().unwrap_or_default();
        assert!(env.contains(&"PATH=/bin".to_string()));
        assert!(env.contains(&"FOO=cli".to_string()));
        assert!(!env.contains(&"FOO=image".to_string()));
        assert!(env.contains(&"HOSTNAME=0123456789ab".to_string()));
        assert!(env.contains(&"TERM=xterm".to_string()));
        assert!(env.contains(&"HOME=/root".to_string()));
        assert_eq!((process.user().uid(), process.user().gid()), (0, 0));
        assert_eq!(process.cwd(), Path::new("/srv"));
        assert_eq!(process.no_new_privileges(), Some(true));
        let caps = process.capabilities().as_ref().expect("caps");
        let bounding = caps.bounding().clone().unwrap_or_default();
        assert_eq!(bounding.len(), 11);
        assert!(!bounding.contains(&Capability::NetRaw));
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
            .tmpfs(Tmpfs::new("/scratch"))
            .read_only(true)
            .seccomp(SeccompPolicy::Unconfined)
            .build("id")
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
            .build("p")
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
        let plain = SpecBuilder::new().arg("x").build("d").expect("spec");
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
            .build("d")
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
            .build("d")
            .expect("spec");
        assert_eq!(rules(&privileged), ["allow a *:* rwm"]);
        // The host's nodes, but not those the runtime binds itself.
        let nodes = devices(&privileged).unwrap_or_default();
        assert!(!nodes.iter().any(|n| n.path() == Path::new("/dev/null")));

        let err = SpecBuilder::new()
            .arg("x")
            .device(Device::parse("/etc/passwd").expect("parses"))
            .build("d")
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
                .build("i")
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
                .build("i")
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
                .build("i")
                .is_err()
        );
        assert!(
            SpecBuilder::new()
                .arg("x")
                .workdir("rel")
                .build("i")
                .is_err()
        );
    }

    #[test]
    fn identity_sets_user_groups_and_home() {
        let spec = SpecBuilder::new()
            .arg("id")
            .identity(Identity {
                uid: 7,
                gid: 8,
                additional_gids: vec![10],
                home: "/b".into(),
            })
            .build("i")
            .expect("spec");
        let process = spec.process().as_ref().expect("process");
        assert_eq!((process.user().uid(), process.user().gid()), (7, 8));
        assert_eq!(process.user().additional_gids().as_deref(), Some(&[10][..]));
        let env = process.env().clone().unwrap_or_default();
        assert!(env.contains(&"HOME=/b".to_string()));
        // An environment that sets HOME keeps it.
        let spec = SpecBuilder::new()
            .arg("id")
            .env("HOME", "/elsewhere")
            .build("i")
            .expect("spec");
        let env = spec
            .process()
            .as_ref()
            .and_then(|p| p.env().clone())
            .unwrap_or_default();
        assert!(env.contains(&"HOME=/elsewhere".to_string()));
        assert!(!env.contains(&"HOME=/root".to_string()));
    }
}
