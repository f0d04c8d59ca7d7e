//! Cgroups v2 and v1, parametrized by the root of the cgroup file systems so
//! the logic is unit-tested against a fake cgroupfs in a temp dir.
//!
//! Detection: when the root is a cgroup2 mount (it has `cgroup.controllers`)
//! wrun uses the unified hierarchy; otherwise every v1 controller mounted
//! under the root (`memory/`, `pids/`, `cpu/` or `cpu,cpuacct/`,
//! `devices/`) gets its own directory. A hybrid host (v1 controllers plus an
//! empty `unified/` cgroup2 mount) is thus served through v1.
//!
//! Device rules (`resources.devices`) go to the v1 `devices` controller's
//! files, or on v2 into an eBPF program attached to the cgroup (see
//! `devices.rs`).

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

use super::bpf;
use super::devices::Rules;
use crate::error::{Errno, Error, Result};

/// The v2 controllers wrun manages.
const CONTROLLERS: [&str; 3] = ["cpu", "memory", "pids"];
/// The v1 controllers wrun manages: v2's and `devices`, which v2 replaces
/// with an eBPF program.
const V1_CONTROLLERS: [&str; 4] = ["cpu", "memory", "pids", "devices"];

/// Where the cgroup hierarchies are, as detected under a root directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Hierarchy {
    /// The unified hierarchy (cgroup v2) mounted at `root`.
    V2 {
        /// The cgroup2 mount point.
        root: PathBuf,
        /// The controllers the root offers (`cgroup.controllers`).
        available: Vec<String>,
    },
    /// Legacy per-controller hierarchies (cgroup v1).
    V1 {
        /// `(controller, mount point)` for each managed controller found.
        controllers: Vec<(String, PathBuf)>,
    },
}

impl Hierarchy {
    /// Detects the hierarchy under `root` (normally `/sys/fs/cgroup`).
    pub fn detect(root: &Path) -> Hierarchy {
        if let Ok(text) = fs::read_to_string(root.join("cgroup.controllers")) {
            return Hierarchy::V2 {
                root: root.to_path_buf(),
                available: text.split_whitespace().map(str::to_string).collect(),
            };
        }
        let mut controllers = Vec::new();
        for name in V1_CONTROLLERS {
            if let Some(dir) = find_v1_mount(root, name) {
                controllers.push((name.to_string(), dir));
            }
        }
        Hierarchy::V1 { controllers }
    }

    /// `1` or `2`.
    pub fn version(&self) -> u8 {
        match self {
            Hierarchy::V2 { .. } => 2,
            Hierarchy::V1 { .. } => 1,
        }
    }
}

fn find_v1_mount(root: &Path, controller: &str) -> Option<PathBuf> {
    let direct = root.join(controller);
    if direct.join("cgroup.procs").exists() {
        return Some(direct);
    }
    let entries = fs::read_dir(root).ok()?;
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.split(',').any(|c| c == controller) && e.path().join("cgroup.procs").exists() {
            return Some(e.path());
        }
    }
    None
}

/// One container's cgroup: a directory in the v2 hierarchy, or one per v1
/// controller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cgroup {
    version: u8,
    /// Every directory created, with the controller it belongs to (`""` for v2).
    dirs: Vec<(String, PathBuf)>,
}

fn check_relative(rel: &Path) -> Result<()> {
    let ok = rel.components().all(|c| matches!(c, Component::Normal(_)))
        && rel.components().next().is_some();
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "cgroup path {} must be relative, without ..",
            rel.display()
        )))
    }
}

fn write_file(dir: &Path, file: &str, value: &str) -> Result<()> {
    let path = dir.join(file);
    let res = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .and_then(|mut f| f.write_all(value.as_bytes()));
    res.map_err(|e| Error::Cgroup {
        action: format!("set {file} to {value}"),
        path,
        source: Errno::from(e),
    })
}

fn mkdir(path: &Path) -> Result<()> {
    fs::create_dir(path).map_err(|e| Error::Cgroup {
        action: "create".to_string(),
        path: path.to_path_buf(),
        source: Errno::from(e),
    })
}

/// cgroup v2's `cpu.weight` for v1 `cpu.shares` (runc's conversion).
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + (shares.saturating_sub(2) * 9999) / 262_142
}

impl Cgroup {
    /// Creates the container's cgroup at `rel` (e.g. `wrun/<id>`) in
    /// `hierarchy` and applies `resources`. Fails if it already exists or a
    /// limit needs a controller the host does not offer.
    ///
    /// Device rules (`resources.devices`, none: no restriction) go to the
    /// v1 `devices` controller, which must then be mounted, or on v2 into a
    /// device program attached to the cgroup (which needs a real cgroup2
    /// file system and CAP_SYS_ADMIN).
    pub fn create(
        hierarchy: &Hierarchy,
        rel: &Path,
        resources: Option<&LinuxResources>,
    ) -> Result<Cgroup> {
        check_relative(rel)?;
        let needed = needed_controllers(resources);
        let devices = match resources.and_then(|r| r.devices().as_deref()) {
            Some(rules) if !rules.is_empty() => Some(Rules::new(rules)?),
            _ => None,
        };
        match hierarchy {
            Hierarchy::V2 { root, available } => {
                for c in &needed {
                    if !available.iter().any(|a| a == c) {
                        return Err(Error::invalid(format!(
                            "the cgroup v2 controller {c} is not available under {}",
                            root.display()
                        )));
                    }
                }
                let enable: Vec<String> = CONTROLLERS
                    .iter()
                    .filter(|c| available.iter().any(|a| a == *c))
                    .map(|c| format!("+{c}"))
                    .collect();
                let needed_only: Vec<String> = needed.iter().map(|c| format!("+{c}")).collect();
                // Enable the controllers in every ancestor's subtree_control:
                // all that wrun manages if possible (for accounting), else
                // those the limits need (a parent with processes of its own,
                // as a container's cgroup-namespace root may be, refuses any
                // controller; that is fatal only when a limit needs one).
                let mut dir = root.clone();
                for comp in rel.components() {
                    if !enable.is_empty()
                        && write_file(&dir, "cgroup.subtree_control", &enable.join(" ")).is_err()
                        && !needed_only.is_empty()
                    {
                        write_file(&dir, "cgroup.subtree_control", &needed_only.join(" "))?;
                    }
                    dir.push(comp);
                    if dir != root.join(rel) && !dir.exists() {
                        match fs::create_dir(&dir) {
                            Ok(()) => {}
                            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                            Err(e) => {
                                return Err(Error::Cgroup {
                                    action: "create".to_string(),
                                    path: dir,
                                    source: Errno::from(e),
                                });
                            }
                        }
                    }
                }
                mkdir(&dir)?;
                let cg = Cgroup {
                    version: 2,
                    dirs: vec![(String::new(), dir)],
                };
                let applied = cg.apply_v2(resources).and_then(|()| match &devices {
                    Some(rules) => bpf::attach_device_program(&root.join(rel), &rules.program()),
                    None => Ok(()),
                });
                if let Err(e) = applied {
                    let _ = cg.remove();
                    return Err(e);
                }
                Ok(cg)
            }
            Hierarchy::V1 { controllers } => {
                let devices_needed = devices.as_ref().map(|_| "devices");
                for c in needed.iter().chain(devices_needed.iter()) {
                    if !controllers.iter().any(|(name, _)| name == c) {
                        return Err(Error::invalid(format!(
                            "the cgroup controller {c} is not mounted"
                        )));
                    }
                }
                let mut cg = Cgroup {
                    version: 1,
                    dirs: Vec::new(),
                };
                for (name, mount) in controllers {
                    let dir = mount.join(rel);
                    if let Some(parent) = dir.parent() {
                        fs::create_dir_all(parent).map_err(|e| Error::Cgroup {
                            action: "create".to_string(),
                            path: parent.to_path_buf(),
                            source: Errno::from(e),
                        })?;
                    }
                    if let Err(e) = mkdir(&dir) {
                        let _ = cg.remove();
                        return Err(e);
                    }
                    cg.dirs.push((name.clone(), dir));
                }
                let applied = cg.apply_v1(resources).and_then(|()| match &devices {
                    Some(rules) => cg.apply_v1_devices(rules),
                    None => Ok(()),
                });
                if let Err(e) = applied {
                    let _ = cg.remove();
                    return Err(e);
                }
                Ok(cg)
            }
        }
    }

    fn dir(&self, controller: &str) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|(c, _)| self.version == 2 || c == controller)
            .map(|(_, d)| d.as_path())
    }

    fn apply_v2(&self, resources: Option<&LinuxResources>) -> Result<()> {
        let Some(res) = resources else { return Ok(()) };
        let Some(dir) = self.dir("") else {
            return Ok(());
        };
        if let Some(m) = res.memory()
            && let Some(limit) = m.limit()
        {
            write_file(dir, "memory.max", &max_or(limit))?;
            if let Some(swap) = m.swap() {
                let v = if swap < 0 {
                    "max".to_string()
                } else {
                    swap.saturating_sub(limit).max(0).to_string()
                };
                write_file(dir, "memory.swap.max", &v)?;
            }
        }
        if let Some(p) = res.pids() {
            write_file(dir, "pids.max", &max_or(p.limit()))?;
        }
        if let Some(c) = res.cpu() {
            if let Some(quota) = c.quota() {
                let period = c.period().unwrap_or(100_000);
                write_file(dir, "cpu.max", &format!("{} {period}", max_or(quota)))?;
            }
            if let Some(shares) = c.shares() {
                write_file(dir, "cpu.weight", &shares_to_weight(shares).to_string())?;
            }
        }
        Ok(())
    }

    fn apply_v1(&self, resources: Option<&LinuxResources>) -> Result<()> {
        let Some(res) = resources else { return Ok(()) };
        if let (Some(m), Some(dir)) = (res.memory(), self.dir("memory"))
            && let Some(limit) = m.limit()
        {
            // memory before memory+swap: memsw may never be below memory.
            write_file(dir, "memory.limit_in_bytes", &limit.to_string())?;
            if let Some(swap) = m.swap() {
                write_file(dir, "memory.memsw.limit_in_bytes", &swap.to_string())?;
            }
        }
        if let (Some(p), Some(dir)) = (res.pids(), self.dir("pids")) {
            write_file(dir, "pids.max", &max_or(p.limit()))?;
        }
        if let (Some(c), Some(dir)) = (res.cpu(), self.dir("cpu")) {
            if let Some(quota) = c.quota() {
                write_file(
                    dir,
                    "cpu.cfs_period_us",
                    &c.period().unwrap_or(100_000).to_string(),
                )?;
                write_file(dir, "cpu.cfs_quota_us", &quota.to_string())?;
            }
            if let Some(shares) = c.shares() {
                write_file(dir, "cpu.shares", &shares.to_string())?;
            }
        }
        Ok(())
    }

    /// Writes the device rules to the `devices` controller, each rule in a
    /// write of its own (the kernel reads one rule per write): the reset
    /// to deny (or allow) every device, then the exceptions, as runc does.
    fn apply_v1_devices(&self, rules: &Rules) -> Result<()> {
        let Some(dir) = self.dir("devices") else {
            return Ok(());
        };
        for (file, rule) in rules.v1_writes() {
            let path = dir.join(file);
            // Appending: cgroupfs reads each write as it comes, and a fake
            // cgroupfs in a test keeps every rule written.
            OpenOptions::new()
                .append(true)
                .create(true)
                .open(&path)
                .and_then(|mut f| f.write_all(format!("{rule}\n").as_bytes()))
                .map_err(|e| Error::Cgroup {
                    action: format!("write {rule} to {file}"),
                    path,
                    source: Errno::from(e),
                })?;
        }
        Ok(())
    }

    /// The `cgroup.procs` files that list the cgroup's processes.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs
            .iter()
            .map(|(_, d)| d.join("cgroup.procs"))
            .collect()
    }

    /// The files a single-threaded process writes `0` into to join.
    ///
    /// On v1 that is `tasks`, which moves the calling thread only. Writing a
    /// pid to `cgroup.procs` takes the kernel's global threadgroup lock for
    /// writing, and the first writer after a quiet spell waits out an RCU
    /// grace period (about 10 ms, most of a container's start-up); a thread
    /// moving itself skips that lock. For a process of one thread, as the
    /// helper's child is, both move the whole process. v2 has no `tasks`
    /// file outside threaded cgroups, so there it is `cgroup.procs`.
    pub fn join_files(&self) -> Vec<PathBuf> {
        let file = if self.version == 2 {
            "cgroup.procs"
        } else {
            "tasks"
        };
        self.dirs.iter().map(|(_, d)| d.join(file)).collect()
    }

    /// The directories of this cgroup, with their controller (`""` for v2).
    pub fn dirs(&self) -> &[(String, PathBuf)] {
        &self.dirs
    }

    /// How many processes the kernel's OOM killer killed in this cgroup
    /// (`oom_kill` in `memory.events` for v2, `memory.oom_control` for v1).
    pub fn oom_kills(&self) -> u64 {
        let file = match (self.version, self.dir("memory")) {
            (2, Some(d)) => d.join("memory.events"),
            (_, Some(d)) => d.join("memory.oom_control"),
            _ => return 0,
        };
        let text = fs::read_to_string(file).unwrap_or_default();
        text.lines()
            .filter_map(|l| l.strip_prefix("oom_kill "))
            .filter_map(|n| n.trim().parse::<u64>().ok())
            .next()
            .unwrap_or(0)
    }

    /// The pids of every process in the cgroup.
    pub fn pids(&self) -> Vec<i32> {
        let mut pids = Vec::new();
        for f in self.procs_files() {
            let text = fs::read_to_string(f).unwrap_or_default();
            for p in text
                .split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok())
            {
                if !pids.contains(&p) {
                    pids.push(p);
                }
            }
        }
        pids
    }

    /// Sends SIGKILL to every process in the cgroup (v2 `cgroup.kill` where
    /// the kernel has it).
    pub fn kill_all(&self) {
        if self.version == 2
            && let Some(d) = self.dir("")
            && d.join("cgroup.kill").exists()
            && write_file(d, "cgroup.kill", "1").is_ok()
        {
            return;
        }
        for pid in self.pids() {
            if pid > 0 {
                // SAFETY: kill passes no pointer. These pids are not our
                // children: one that exited since cgroup.procs was read may
                // name another process by now (why cgroup.kill comes first).
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }

    /// Removes the cgroup's directories, waiting up to two seconds for
    /// exiting processes to leave. Missing directories are not an error.
    pub fn remove(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(2);
        for (_, dir) in &self.dirs {
            loop {
                match fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    Err(e)
                        if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline =>
                    {
                        self.kill_all();
                        thread::sleep(Duration::from_millis(10));
                    }
                    Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) && is_fake(dir) => {
                        // A fake cgroupfs in tests holds regular files.
                        fs::remove_dir_all(dir).map_err(|e| Error::Cgroup {
                            action: "remove".to_string(),
                            path: dir.clone(),
                            source: Errno::from(e),
                        })?;
                        break;
                    }
                    Err(e) => {
                        return Err(Error::Cgroup {
                            action: "remove".to_string(),
                            path: dir.clone(),
                            source: Errno::from(e),
                        });
                    }
                }
            }
        }
        Ok(())
    }
}

/// Whether `dir` is on an ordinary file system (a test fixture), not cgroupfs.
fn is_fake(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: an all-zero statfs is a valid value of this plain C struct.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is an owned CString and `st` a local statfs, both alive
    // across the call, which writes one statfs.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return false;
    }
    const CGROUP_SUPER_MAGIC: i64 = 0x0027_e0eb;
    const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
    let magic = st.f_type as i64;
    magic != CGROUP_SUPER_MAGIC && magic != CGROUP2_SUPER_MAGIC
}

fn max_or(v: i64) -> String {
    if v < 0 {
        "max".to_string()
    } else {
        v.to_string()
    }
}

fn needed_controllers(resources: Option<&LinuxResources>) -> Vec<&'static str> {
    let mut needed = Vec::new();
    if let Some(r) = resources {
        if r.memory().as_ref().is_some_and(|m| m.limit().is_some()) {
            needed.push("memory");
        }
        if r.pids().is_some() {
            needed.push("pids");
        }
        if r.cpu()
            .as_ref()
            .is_some_and(|c| c.quota().is_some() || c.shares().is_some())
        {
            needed.push("cpu");
        }
    }
    needed
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{
        LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResourcesBuilder,
    };

    fn resources() -> LinuxResources {
        LinuxResourcesBuilder::default()
            .memory(
                LinuxMemoryBuilder::default()
                    .limit(64i64 << 20)
                    .swap(96i64 << 20)
                    .build()
                    .expect("memory"),
            )
            .pids(LinuxPidsBuilder::default().limit(20).build().expect("pids"))
            .cpu(
                LinuxCpuBuilder::default()
                    .quota(50_000i64)
                    .period(100_000u64)
                    .shares(512u64)
                    .build()
                    .expect("cpu"),
            )
            .build()
            .expect("resources")
    }

    fn read(p: PathBuf) -> String {
        fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    #[test]
    fn v2_writes_unified_files() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path();
        fs::write(
            root.join("cgroup.controllers"),
            "cpuset cpu io memory pids\n",
        )
        .expect("fixture");
        let h = Hierarchy::detect(root);
        assert_eq!(h.version(), 2);
        let cg = Cgroup::create(&h, Path::new("wrun/c1"), Some(&resources())).expect("create");
        let dir = root.join("wrun/c1");
        assert_eq!(
            read(root.join("cgroup.subtree_control")),
            "+cpu +memory +pids"
        );
        assert_eq!(
            read(root.join("wrun/cgroup.subtree_control")),
            "+cpu +memory +pids"
        );
        assert_eq!(read(dir.join("memory.max")), (64u64 << 20).to_string());
        assert_eq!(read(dir.join("memory.swap.max")), (32u64 << 20).to_string());
        assert_eq!(read(dir.join("pids.max")), "20");
        assert_eq!(read(dir.join("cpu.max")), "50000 100000");
        assert_eq!(
            read(dir.join("cpu.weight")),
            shares_to_weight(512).to_string()
        );
        assert_eq!(cg.procs_files(), vec![dir.join("cgroup.procs")]);
        assert_eq!(cg.join_files(), vec![dir.join("cgroup.procs")]);

        assert_eq!(cg.oom_kills(), 0);
        fs::write(
            dir.join("memory.events"),
            "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
        )
        .expect("events");
        assert_eq!(cg.oom_kills(), 1);

        assert!(
            Cgroup::create(&h, Path::new("wrun/c1"), None).is_err(),
            "exists"
        );
        cg.remove().expect("remove");
        assert!(!dir.exists());
        assert!(root.join("wrun").exists(), "the parent is shared and kept");
    }

    #[test]
    fn v2_refuses_a_missing_controller() {
        let tmp = tempfile::tempdir().expect("tempdir");
        fs::write(tmp.path().join("cgroup.controllers"), "cpu\n").expect("fixture");
        let h = Hierarchy::detect(tmp.path());
        let err = Cgroup::create(&h, Path::new("wrun/c"), Some(&resources())).expect_err("memory");
        assert!(err.to_string().contains("memory is not available"), "{err}");
        assert!(!tmp.path().join("wrun/c").exists());
        // No limits: any v2 root will do.
        Cgroup::create(&h, Path::new("wrun/c"), None).expect("no limits");
    }

    #[test]
    fn v1_writes_per_controller_files() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path();
        for c in ["memory", "pids", "cpu,cpuacct", "unified"] {
            fs::create_dir_all(root.join(c)).expect("fixture");
            fs::write(root.join(c).join("cgroup.procs"), "").expect("fixture");
        }
        let h = Hierarchy::detect(root);
        assert_eq!(h.version(), 1);
        let cg = Cgroup::create(&h, Path::new("wrun/c2"), Some(&resources())).expect("create");
        let mem = root.join("memory/wrun/c2");
        assert_eq!(
            read(mem.join("memory.limit_in_bytes")),
            (64u64 << 20).to_string()
        );
        assert_eq!(
            read(mem.join("memory.memsw.limit_in_bytes")),
            (96u64 << 20).to_string()
        );
        assert_eq!(read(root.join("pids/wrun/c2/pids.max")), "20");
        let cpu = root.join("cpu,cpuacct/wrun/c2");
        assert_eq!(read(cpu.join("cpu.cfs_quota_us")), "50000");
        assert_eq!(read(cpu.join("cpu.cfs_period_us")), "100000");
        assert_eq!(read(cpu.join("cpu.shares")), "512");
        assert_eq!(cg.procs_files().len(), 3);
        assert!(cg.join_files().contains(&mem.join("tasks")));
        assert!(cg.join_files().iter().all(|f| f.ends_with("tasks")));

        fs::write(
            mem.join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        )
        .expect("oom");
        assert_eq!(cg.oom_kills(), 2);
        cg.remove().expect("remove");
        assert!(!mem.exists() && !cpu.exists());
    }

    #[test]
    fn v1_without_the_controller_refuses_the_limit() {
        let tmp = tempfile::tempdir().expect("tempdir");
        fs::create_dir_all(tmp.path().join("memory")).expect("fixture");
        fs::write(tmp.path().join("memory/cgroup.procs"), "").expect("fixture");
        let h = Hierarchy::detect(tmp.path());
        let err = Cgroup::create(&h, Path::new("wrun/c3"), Some(&resources())).expect_err("pids");
        assert!(err.to_string().contains("pids is not mounted"), "{err}");
        assert!(!tmp.path().join("memory/wrun/c3").exists());
        assert!(Cgroup::create(&h, Path::new("../escape"), None).is_err());
    }

    fn with_devices(rules: Vec<oci_spec::runtime::LinuxDeviceCgroup>) -> LinuxResources {
        LinuxResourcesBuilder::default()
            .devices(rules)
            .build()
            .expect("resources")
    }

    #[test]
    fn v1_devices_get_a_cgroup_of_their_own_and_runc_rules() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path();
        for c in ["memory", "devices"] {
            fs::create_dir_all(root.join(c)).expect("fixture");
            fs::write(root.join(c).join("cgroup.procs"), "").expect("fixture");
        }
        let h = Hierarchy::detect(root);
        let res = with_devices(crate::device::default_device_rules());
        let cg = Cgroup::create(&h, Path::new("wrun/d1"), Some(&res)).expect("create");
        let dev = root.join("devices/wrun/d1");
        assert_eq!(read(dev.join("devices.deny")), "a\n");
        assert_eq!(
            read(dev.join("devices.allow")),
            "c *:* m\nb *:* m\nc 1:3 rwm\nc 1:8 rwm\nc 1:7 rwm\nc 5:0 rwm\nc 1:5 rwm\n\
             c 1:9 rwm\nc 136:* rwm\nc 5:2 rwm\nc 10:200 rwm\n"
        );
        assert!(cg.join_files().contains(&dev.join("tasks")));
        assert!(cg.dirs().iter().any(|(c, d)| c == "devices" && *d == dev));
        cg.remove().expect("remove");
        assert!(!dev.exists());

        // Privileged: allow all, nothing denied.
        let res = with_devices(vec![crate::device::allow_all_rule()]);
        let cg = Cgroup::create(&h, Path::new("wrun/d2"), Some(&res)).expect("create");
        let dev = root.join("devices/wrun/d2");
        assert_eq!(read(dev.join("devices.allow")), "a\n");
        assert!(!dev.join("devices.deny").exists());
        cg.remove().expect("remove");

        // A bad rule is refused before anything is made.
        let mut bad = crate::device::allow_all_rule();
        bad.set_access(Some("rwx".into()));
        let err = Cgroup::create(&h, Path::new("wrun/d3"), Some(&with_devices(vec![bad])))
            .expect_err("bad access");
        assert!(err.to_string().contains("subset of rwm"), "{err}");
        assert!(!root.join("memory/wrun/d3").exists());
    }

    #[test]
    fn device_rules_need_their_enforcement() {
        // v1 without a devices hierarchy: refused, not run unconfined.
        let tmp = tempfile::tempdir().expect("tempdir");
        fs::create_dir_all(tmp.path().join("memory")).expect("fixture");
        fs::write(tmp.path().join("memory/cgroup.procs"), "").expect("fixture");
        let h = Hierarchy::detect(tmp.path());
        let res = with_devices(crate::device::default_device_rules());
        let err = Cgroup::create(&h, Path::new("wrun/d"), Some(&res)).expect_err("no devices");
        assert!(err.to_string().contains("devices is not mounted"), "{err}");
        assert!(!tmp.path().join("memory/wrun/d").exists());

        // v2: a program cannot be attached to a directory that is no
        // cgroup (nor loaded without privileges): refused, nothing left.
        let tmp = tempfile::tempdir().expect("tempdir");
        fs::write(tmp.path().join("cgroup.controllers"), "memory pids\n").expect("fixture");
        let h = Hierarchy::detect(tmp.path());
        let err = Cgroup::create(&h, Path::new("wrun/d"), Some(&res)).expect_err("fake cgroup2");
        assert!(err.to_string().contains("the device program"), "{err}");
        assert!(!tmp.path().join("wrun/d").exists());
    }

    #[test]
    fn weight_conversion_matches_runc() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
    }
}
