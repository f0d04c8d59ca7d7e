//! The init helper: the `wrun` binary re-executed with [`INIT_VERB`].
//!
//! Process model (the choice documented):
//! - The helper (H) reads its [`InitConfig`] from fd 3, unshares the mount,
//!   uts, ipc, net and pid namespaces, and forks once. Its child (C) is pid 1
//!   of the new pid namespace and becomes the workload: like docker without
//!   `--init`, the workload *is* pid 1 (it reaps orphans only if it is
//!   written to).
//! - C is in the container's cgroup before anything else: on v2 it is
//!   born there (clone3 with CLONE_INTO_CGROUP), on v1 it moves its one
//!   thread through each hierarchy's `tasks` file (neither takes the
//!   kernel's global threadgroup lock that a write to `cgroup.procs` does).
//!   It then unshares the cgroup namespace, builds the root file system,
//!   drops privileges and execs the workload. A failure is written on a
//!   close-on-exec pipe to H; a successful exec closes it.
//! - The launcher may start H before it has the container's configuration
//!   (`Launcher::prestart`), so H's exec overlaps the launcher's own work.
//! - H stays outside the namespace as a waiter: it forwards the signals the
//!   launcher asks for, reports the workload's exit status, and kills the
//!   workload if the launcher goes away (its socket closes), so a SIGKILLed
//!   `wrun` does not leave a container running. When H exits, the mount
//!   namespace dies with it and every container mount goes away.
//!
//! H is a freshly exec'd, single-threaded process, so forking there and
//! running ordinary Rust in C is sound.

use std::ffi::CString;
use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::proto::{self, CgroupMount, Failure, FromHelper, HELPER_FD, InitConfig, ToHelper};
use super::rootfs::{self, StepResult, cstr};
use super::{caps, seccomp};
use crate::error::Errno;

/// The hidden first argument that makes the `wrun` binary act as the init
/// helper.
pub const INIT_VERB: &str = "__wrun-init";

/// Runs the init helper and exits; the `wrun` binary calls this when its
/// first argument is [`INIT_VERB`] (see [`maybe_init`]). It is not meant
/// to be run by hand: it talks to the launcher over fd 3.
pub fn init_main() -> ! {
    let code = match helper() {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("wrun init: {msg}");
            125
        }
    };
    std::process::exit(code)
}

/// Calls [`init_main`] if this process was started as the init helper;
/// returns otherwise. Call it first thing in `main`.
pub fn maybe_init() {
    if std::env::args_os().nth(1).is_some_and(|a| a == INIT_VERB) {
        init_main()
    }
}

const FORWARDED: [libc::c_int; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

fn set_disposition(handler: libc::sighandler_t) {
    for sig in FORWARDED {
        // SAFETY: SIG_IGN / SIG_DFL are valid dispositions for these signals.
        unsafe { libc::signal(sig, handler) };
    }
}

fn helper() -> Result<i32, String> {
    // SAFETY: F_GETFD on an arbitrary fd number only queries it.
    if unsafe { libc::fcntl(HELPER_FD, libc::F_GETFD) } < 0 {
        return Err("this command is internal to wrun".into());
    }
    // SAFETY: fd 3 was set up by the launcher for us and is owned by nobody
    // else in this freshly exec'd process.
    let sock = unsafe { UnixStream::from_raw_fd(HELPER_FD) };
    // SAFETY: fcntl passes no pointer; fd 3 is the socket `sock` now owns,
    // so the flag lands on it and on nothing else.
    unsafe { libc::fcntl(HELPER_FD, libc::F_SETFD, libc::FD_CLOEXEC) };
    // Ctrl-C at a terminal reaches the whole process group: the launcher
    // decides what the container gets, not the terminal.
    set_disposition(libc::SIG_IGN);

    let cfg = match proto::recv::<_, ToHelper>(&sock) {
        Ok(Some(ToHelper::Config(cfg))) => cfg,
        Ok(_) => return Err("expected the container configuration".into()),
        Err(e) => return Err(format!("read configuration: {e}")),
    };
    let fail = |step: String, errno: Errno| -> Result<i32, String> {
        let _ = proto::send(
            &sock,
            &FromHelper::Failed(Failure {
                step,
                errno: errno.0,
                exec: None,
            }),
        );
        Ok(1)
    };

    let mut flags = 0;
    let mut cgroupns = false;
    for ns in cfg
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default()
    {
        if let Some(path) = ns.path() {
            return fail(
                format!("join namespace {}", path.display()),
                Errno(libc::EOPNOTSUPP),
            );
        }
        match ns.typ() {
            LinuxNamespaceType::Cgroup => cgroupns = true,
            LinuxNamespaceType::User | LinuxNamespaceType::Time => {
                return fail(
                    format!("create {} namespace", ns.typ()),
                    Errno(libc::EOPNOTSUPP),
                );
            }
            t => flags |= t as libc::c_int,
        }
    }
    // SAFETY: unshare passes no pointer; it acts on the calling thread, the
    // helper's only one, so the new namespaces cover the whole helper (the
    // pid one its child, forked next).
    if unsafe { libc::unshare(flags) } != 0 {
        return fail("create namespaces".into(), Errno::last());
    }

    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid out-array of two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return fail("create pipe".into(), Errno::last());
    }
    // SAFETY: pipe2 just returned these fds to us.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };

    // On cgroup v2 the child is born in its cgroup (clone3 with
    // CLONE_INTO_CGROUP): writing a pid to cgroup.procs takes the kernel's
    // global threadgroup lock, whose first writer waits out an RCU grace
    // period, and v2 has no per-thread `tasks` file to avoid it with.
    let (pid, joined) = match fork_into_cgroup(&cfg) {
        Some(Ok(pid)) => (pid, true),
        Some(Err(e)) if !matches!(e.0, libc::ENOSYS | libc::E2BIG | libc::EINVAL) => {
            return fail("start the container in its cgroup".into(), e);
        }
        // A kernel without clone3 or CLONE_INTO_CGROUP (before 5.7), or
        // cgroup v1: fork, and the child joins by writing to its cgroup.
        _ => {
            // SAFETY: this process is single-threaded (a fresh exec that
            // started no thread), so the child may run arbitrary code.
            (unsafe { libc::fork() }, false)
        }
    };
    if pid < 0 {
        return fail("fork".into(), Errno::last());
    }
    if pid == 0 {
        drop(rd);
        drop(sock);
        let failure = container(&cfg, cgroupns, joined, wr.as_raw_fd());
        let mut pipe = fs::File::from(wr);
        let _ = proto::send(&mut pipe, &failure);
        // SAFETY: _exit never returns and skips atexit handlers that belong
        // to the parent.
        unsafe { libc::_exit(1) };
    }
    drop(wr);
    let mut pipe = fs::File::from(rd);
    let mut buf = Vec::new();
    let _ = pipe.read_to_end(&mut buf);
    if !buf.is_empty() {
        let failure = proto::recv::<_, Failure>(buf.as_slice())
            .ok()
            .flatten()
            .unwrap_or(Failure {
                step: "container set-up".into(),
                errno: libc::EIO,
                exec: None,
            });
        let _ = wait_child(pid);
        let _ = proto::send(&sock, &FromHelper::Failed(failure));
        return Ok(1);
    }
    if proto::send(&sock, &FromHelper::Started(pid)).is_err() {
        // SAFETY: kill passes no pointer; `pid` is our child, not yet reaped
        // (supervise waits for it), so it cannot have been reused.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    supervise(&sock, pid)
}

fn wait_child(pid: libc::pid_t) -> Result<libc::c_int, Errno> {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a local c_int, writable for the whole call.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            return Ok(status);
        }
        let e = Errno::last();
        if e.0 != libc::EINTR {
            return Err(e);
        }
    }
}

/// Waits for the workload while serving the launcher's requests.
fn supervise(sock: &UnixStream, pid: libc::pid_t) -> Result<i32, String> {
    // SAFETY: pidfd_open passes no pointer; `pid` is our unreaped child, so
    // the pidfd refers to the workload and not to a reused pid.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as libc::c_int;
    if pidfd < 0 {
        return Err(format!("pidfd_open: {}", Errno::last()));
    }
    // SAFETY: pidfd_open returned a new fd we own.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    let mut launcher_gone = false;
    loop {
        let mut fds = [
            libc::pollfd {
                fd: pidfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: if launcher_gone { -1 } else { sock.as_raw_fd() },
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: `fds` is a valid array of two pollfds.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if r < 0 {
            let e = Errno::last();
            if e.0 == libc::EINTR {
                continue;
            }
            return Err(format!("poll: {e}"));
        }
        if fds[0].revents != 0 {
            let status = wait_child(pid).map_err(|e| format!("wait: {e}"))?;
            let msg = if libc::WIFSIGNALED(status) {
                FromHelper::Signaled(libc::WTERMSIG(status))
            } else {
                FromHelper::Exited(libc::WEXITSTATUS(status))
            };
            let _ = proto::send(sock, &msg);
            return Ok(0);
        }
        if fds[1].revents != 0 {
            match proto::recv::<_, ToHelper>(sock) {
                Ok(Some(ToHelper::Signal(sig))) => {
                    // SAFETY: kill has no memory-safety preconditions; `pid`
                    // is our unreaped child, so it cannot have been reused.
                    unsafe { libc::kill(pid, sig) };
                }
                Ok(Some(ToHelper::Config(_))) => {}
                Ok(None) | Err(_) => {
                    // The launcher is gone: take the container with it.
                    launcher_gone = true;
                    // SAFETY: as above.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
    }
}

/// The container's first process: returns only on failure.
/// The clone_args of clone3(2), up to `cgroup` (CLONE_ARGS_SIZE_VER2).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Forks, as fork(2) does, with the child placed in the container's v2
/// cgroup from its first instruction. `None` on cgroup v1 (or with no
/// cgroup to join); `Some(Err)` if the cgroup cannot be opened or clone3
/// fails (ENOSYS, E2BIG or EINVAL: the kernel lacks it; fork instead).
fn fork_into_cgroup(cfg: &InitConfig) -> Option<Result<libc::pid_t, Errno>> {
    let CgroupMount::V2 = cfg.cgroup_mount else {
        return None;
    };
    let [procs] = cfg.cgroup_join.as_slice() else {
        return None;
    };
    let dir = procs.parent()?;
    let dir = match fs::File::open(dir) {
        Ok(f) => f,
        Err(e) => return Some(Err(Errno::from(e))),
    };
    let args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: dir.as_raw_fd() as u64,
        ..CloneArgs::default()
    };
    // SAFETY: `args` is a valid clone_args of the size passed, with no
    // stack: like fork, the child continues on a copy of this one's. This
    // process is single-threaded (a fresh exec that started no thread), so
    // the child may run arbitrary code, as after fork. Unlike glibc's fork,
    // the raw call leaves the thread id glibc caches for the calling thread
    // at the parent's; only pthread calls about the calling thread read it
    // (raise, recursive mutexes), which the child's code does not make
    // (Rust's locks do not use it), and the child ends in exec or _exit.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if pid < 0 {
        return Some(Err(Errno::last()));
    }
    Some(Ok(pid as libc::pid_t))
}

fn container(cfg: &InitConfig, cgroupns: bool, joined: bool, report_fd: libc::c_int) -> Failure {
    match setup(cfg, cgroupns, joined, report_fd) {
        Ok(never) => match never {},
        Err((step, errno, exec)) => Failure {
            step,
            errno: errno.0,
            exec,
        },
    }
}

enum Never {}

type SetupResult<T> = Result<T, (String, Errno, Option<String>)>;

fn step<T>(r: StepResult<T>) -> SetupResult<T> {
    r.map_err(|(s, e)| (s, e, None))
}

fn check(r: libc::c_int, what: impl FnOnce() -> String) -> SetupResult<()> {
    if r < 0 {
        return Err((what(), Errno::last(), None));
    }
    Ok(())
}

fn setup(
    cfg: &InitConfig,
    cgroupns: bool,
    joined: bool,
    report_fd: libc::c_int,
) -> SetupResult<Never> {
    let spec: &Spec = &cfg.spec;
    let process = spec.process().as_ref().ok_or((
        "read the spec's process".to_string(),
        Errno(libc::EINVAL),
        None,
    ))?;
    let linux = spec.linux().clone().unwrap_or_default();

    reset_signals();
    // SAFETY: setsid touches no memory; this fresh fork is no process group
    // leader, so it gets a session of its own and no controlling terminal.
    check(unsafe { libc::setsid() }, || "setsid".into())?;
    if process.terminal() == Some(true) {
        // SAFETY: TIOCSCTTY's argument is an integer (0: steal nothing), not a
        // pointer; fd 0 is the pty slave, and setsid made us a session leader.
        check(unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) }, || {
            "make the terminal the controlling terminal".into()
        })?;
    }

    // This process has one thread (see `Cgroup::join_files`); on v2 it was
    // born in its cgroup unless the kernel lacks CLONE_INTO_CGROUP.
    let join: &[PathBuf] = if joined { &[] } else { &cfg.cgroup_join };
    for procs in join {
        OpenOptions::new()
            .write(true)
            .open(procs)
            .and_then(|mut f| f.write_all(b"0"))
            .map_err(|e| {
                (
                    format!("join cgroup {}", procs.display()),
                    Errno::from(e),
                    None,
                )
            })?;
    }
    if cgroupns {
        // SAFETY: unshare passes no pointer; the child has one thread and has
        // joined its cgroup above, so the new namespace is rooted there.
        check(unsafe { libc::unshare(libc::CLONE_NEWCGROUP) }, || {
            "create cgroup namespace".into()
        })?;
    }

    // Nothing we mount may propagate back to the host.
    step(rootfs::mount(
        None,
        Path::new("/"),
        None,
        libc::MS_REC | libc::MS_PRIVATE,
        None,
        || "make / private".into(),
    ))?;
    let root = step(rootfs::mount_overlay(&cfg.layers, &cfg.state_dir))?;
    let mut dev_tmpfs = false;
    for m in spec.mounts().as_deref().unwrap_or_default() {
        step(rootfs::mount_entry(&root, m, &cfg.cgroup_mount))?;
        if m.destination() == Path::new("/dev") && m.typ().as_deref() == Some("tmpfs") {
            dev_tmpfs = true;
        }
    }
    if dev_tmpfs {
        step(rootfs::default_devices(&root, cfg.console.as_deref()))?;
    }
    step(rootfs::create_devices(
        &root,
        linux.devices().as_deref().unwrap_or_default(),
    ))?;
    // Staged on the container's /dev tmpfs when there is one: a file there
    // costs no inode on the store's disk to create and to remove.
    let stage = if dev_tmpfs {
        root.join("dev")
    } else {
        cfg.state_dir.clone()
    };
    for (dest, content) in &cfg.etc_files {
        step(rootfs::bind_file(&root, &stage, dest, content))?;
    }
    let cwd = process.cwd().clone();
    let cwd_in_root = rootfs::secure_join(&root, &cwd);
    if !cwd_in_root.exists() {
        fs::create_dir_all(&cwd_in_root).map_err(|e| {
            (
                format!("create working directory {}", cwd.display()),
                Errno::from(e),
                None,
            )
        })?;
    }

    step(rootfs::pivot_root(&root))?;

    if let Some(sysctl) = linux.sysctl() {
        let mut keys: Vec<&String> = sysctl.keys().collect();
        keys.sort();
        for key in keys {
            let value = &sysctl[key];
            let path = Path::new("/proc/sys").join(key.replace('.', "/"));
            fs::write(&path, value.as_bytes())
                .map_err(|e| (format!("set sysctl {key}"), Errno::from(e), None))?;
        }
    }
    for p in linux.masked_paths().as_deref().unwrap_or_default() {
        step(rootfs::mask_path(p))?;
    }
    for p in linux.readonly_paths().as_deref().unwrap_or_default() {
        step(rootfs::readonly_path(p))?;
    }
    if spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
        step(rootfs::mount(
            None,
            Path::new("/"),
            None,
            libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
            None,
            || "remount / read-only".into(),
        ))?;
    }
    let namespaces = linux.namespaces().clone().unwrap_or_default();
    let has_ns = |t: LinuxNamespaceType| namespaces.iter().any(|n| n.typ() == t);
    if let (Some(name), true) = (spec.hostname(), has_ns(LinuxNamespaceType::Uts)) {
        check(
            // SAFETY: pointer and length describe `name`'s bytes.
            unsafe { libc::sethostname(name.as_ptr() as *const libc::c_char, name.len()) },
            || format!("set hostname {name}"),
        )?;
    }
    if has_ns(LinuxNamespaceType::Network) {
        loopback_up().map_err(|e| ("bring up lo".to_string(), e, None))?;
    }
    let cwd_c = cstr(&cwd);
    // SAFETY: `cwd_c` is an owned CString alive across the call, so the
    // pointer stays NUL-terminated and readable throughout.
    check(unsafe { libc::chdir(cwd_c.as_ptr()) }, || {
        format!("chdir {}", cwd.display())
    })?;

    let args = process.args().clone().unwrap_or_default();
    let env = process.env().clone().unwrap_or_default();
    let Some(arg0) = args.first().cloned() else {
        return Err(("read the command".into(), Errno(libc::EINVAL), None));
    };
    let program =
        find_program(&arg0, &env).map_err(|e| (format!("exec {arg0}"), e, Some(arg0.clone())))?;

    let nnp = process.no_new_privileges() == Some(true);
    if nnp {
        check(
            // SAFETY: PR_SET_NO_NEW_PRIVS reads no memory (arg2 is the flag,
            // the rest must be 0 and are); it only limits what exec grants.
            unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) },
            || "set no_new_privs".into(),
        )?;
    }
    let filter = cfg.seccomp.as_ref();
    // Without no_new_privs, installing a filter needs CAP_SYS_ADMIN, which
    // the workload may be about to lose: install it now.
    if let (Some(f), false) = (filter, nnp) {
        seccomp::install(f).map_err(|e| ("install seccomp filter".to_string(), e, None))?;
    }

    for r in process.rlimits().as_deref().unwrap_or_default() {
        let lim = libc::rlimit {
            rlim_cur: r.soft(),
            rlim_max: r.hard(),
        };
        // The enum follows the kernel's RLIMIT_* numbering. A hard limit
        // above the current one is refused (EPERM): wrun never raises it.
        let resource = r.typ() as libc::c_long;
        // SAFETY: prlimit64 on ourselves (pid 0) reads `lim`, a local alive
        // across the call with rlimit64's layout (two u64s: it is built from
        // u64 fields), and writes nothing (no old-limit pointer).
        let rc = unsafe {
            libc::syscall(
                libc::SYS_prlimit64,
                0,
                resource,
                &lim as *const libc::rlimit,
                std::ptr::null_mut::<libc::rlimit>(),
            )
        };
        if rc != 0 {
            return Err((format!("set rlimit {}", r.typ()), Errno::last(), None));
        }
    }
    if let Some(adj) = process.oom_score_adj() {
        fs::write("/proc/self/oom_score_adj", adj.to_string())
            .map_err(|e| ("set oom_score_adj".to_string(), Errno::from(e), None))?;
    }

    close_inherited_fds()?;

    let c = process.capabilities().clone().unwrap_or_default();
    caps::limit_bounding(caps::mask(c.bounding().as_ref()))
        .map_err(|e| ("limit the capability bounding set".to_string(), e, None))?;
    let user = process.user();
    check(
        // SAFETY: PR_SET_KEEPCAPS reads no memory; it only keeps the permitted
        // set across the setuid below, and caps::set narrows it afterwards.
        unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) },
        || "keep capabilities".into(),
    )?;
    let gids: Vec<libc::gid_t> = user.additional_gids().clone().unwrap_or_default();
    check(
        // SAFETY: pointer and length describe `gids`.
        unsafe { libc::setgroups(gids.len(), gids.as_ptr()) },
        || "set supplementary groups".into(),
    )?;
    // SAFETY: setgid touches no memory; the child has one thread, so it covers
    // the whole process, and it precedes setuid, which ends the right to it.
    check(unsafe { libc::setgid(user.gid()) }, || {
        format!("set gid {}", user.gid())
    })?;
    // SAFETY: setuid touches no memory; with PR_SET_KEEPCAPS set above the
    // permitted capabilities survive it for caps::set below.
    check(unsafe { libc::setuid(user.uid()) }, || {
        format!("set uid {}", user.uid())
    })?;
    check(
        // SAFETY: PR_SET_KEEPCAPS reads no memory; cleared again, a later
        // setuid in the workload drops capabilities as usual.
        unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) },
        || "reset keep capabilities".into(),
    )?;
    caps::set(
        caps::mask(c.effective().as_ref()),
        caps::mask(c.permitted().as_ref()),
        caps::mask(c.inheritable().as_ref()),
    )
    .map_err(|e| ("set capabilities".to_string(), e, None))?;
    caps::set_ambient(caps::mask(c.ambient().as_ref()))
        .map_err(|e| ("set ambient capabilities".to_string(), e, None))?;

    if let (Some(f), true) = (filter, nnp) {
        seccomp::install(f).map_err(|e| ("install seccomp filter".to_string(), e, None))?;
    }
    // Set last: changing credentials clears the parent-death signal.
    check(
        // SAFETY: PR_SET_PDEATHSIG reads no memory; SIGKILL is a valid signal,
        // and no credential change follows that would clear it.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) },
        || "set parent-death signal".into(),
    )?;

    let with_reaper = spec
        .annotations()
        .as_ref()
        .and_then(|a| a.get(crate::spec::INIT_ANNOTATION))
        .is_some_and(|v| v == "true");
    if with_reaper {
        start_reaper(report_fd)?;
    }

    let c_args: Vec<CString> = args.iter().map(cstr).collect();
    let c_env: Vec<CString> = env.iter().map(cstr).collect();
    let mut argv: Vec<*const libc::c_char> = c_args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = c_env.iter().map(|a| a.as_ptr()).collect();
    envp.push(std::ptr::null());
    let prog = cstr(&program);
    // SAFETY: `prog`, `argv` and `envp` are NUL-terminated strings and
    // null-terminated arrays that live across the call.
    unsafe { libc::execve(prog.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    Err((format!("exec {arg0}"), Errno::last(), Some(arg0)))
}

/// Starts the workload clean, as runc does: every signal's disposition
/// back to the default (an ignored signal stays ignored across exec, and
/// this process inherited SIGPIPE ignored from the Rust runtime and the
/// forwarded ones ignored by the helper) and nothing blocked.
fn reset_signals() {
    // The kernel's sigaction (this layout on x86_64 and aarch64), set with
    // the raw call: the C library refuses to touch the signals it reserves
    // for itself (32 and 33 in glibc), and those can arrive ignored too.
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    #[repr(C)]
    struct KernelSigaction {
        handler: libc::sighandler_t,
        flags: libc::c_ulong,
        restorer: usize,
        mask: u64,
    }
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    let default = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    for sig in 1..=libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: `default` is a valid kernel sigaction (SIG_DFL, no flags,
        // empty mask) of the size passed; no old action is asked for.
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                &default as *const KernelSigaction,
                std::ptr::null_mut::<KernelSigaction>(),
                std::mem::size_of::<u64>(),
            )
        };
        // SAFETY: SIG_DFL is a valid disposition for every signal.
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        unsafe {
            libc::signal(sig, libc::SIG_DFL)
        };
    }
    // SAFETY: `set` is initialised by sigemptyset before it is read, and
    // SIG_SETMASK with it unblocks every signal.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// Marks every descriptor above stdio close-on-exec, so the workload
/// inherits none of its launcher's: this process's own (the report pipe,
/// the helper's socket) already are, anything else came from whoever
/// started the launcher.
fn close_inherited_fds() -> SetupResult<()> {
    // SAFETY: close_range takes plain integers; with CLOSE_RANGE_CLOEXEC it
    // only sets a flag on the descriptors in the range and closes none.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if r < 0 {
        return Err((
            "mark inherited descriptors close-on-exec".into(),
            Errno::last(),
            None,
        ));
    }
    Ok(())
}

/// Signals the reaper does not forward: they mean a fault of the reaper itself.
const SYNCHRONOUS: [libc::c_int; 9] = [
    libc::SIGFPE,
    libc::SIGILL,
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGABRT,
    libc::SIGTRAP,
    libc::SIGSYS,
    libc::SIGTTIN,
    libc::SIGTTOU,
];

/// `--init`: forks; the child returns and becomes the workload (pid 2),
/// this process stays pid 1, reaps every orphan, forwards signals to the
/// workload and exits with its status (128+N if signal N killed it).
fn start_reaper(report_fd: libc::c_int) -> SetupResult<()> {
    // SAFETY: sigset_t is a plain C struct, initialised by sigfillset.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: an all-zero sigset_t is a valid value.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` and `old` are locals alive across the calls, and
    // sigfillset initialises `set` before sigdelset and sigprocmask read it.
    unsafe {
        libc::sigfillset(&mut set);
        for s in SYNCHRONOUS {
            libc::sigdelset(&mut set, s);
        }
        libc::sigprocmask(libc::SIG_BLOCK, &set, &mut old);
    }
    // SAFETY: the container child has one thread (forked from the
    // single-threaded helper, it started none), so its child may run any code.
    let child = unsafe { libc::fork() };
    if child < 0 {
        return Err(("fork the workload".into(), Errno::last(), None));
    }
    if child == 0 {
        // SAFETY: `old` is the mask saved before the fork, a local alive across
        // the call; PR_SET_PDEATHSIG reads no memory.
        unsafe {
            libc::sigprocmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        }
        return Ok(());
    }
    // The workload reports its own exec; the helper waits for every writer.
    // SAFETY: report_fd belongs to the OwnedFd `wr` in `helper`, but this
    // process never returns there (it ends in _exit below), so nothing uses
    // or closes the number again.
    unsafe { libc::close(report_fd) };
    loop {
        // SAFETY: an all-zero siginfo_t is a valid out-value.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` and `info` are locals alive across the call; every
        // signal in `set` was blocked above, as sigwaitinfo requires.
        let sig = unsafe { libc::sigwaitinfo(&set, &mut info) };
        if sig < 0 {
            continue;
        }
        if sig != libc::SIGCHLD {
            // SAFETY: kill passes no pointer; `child` is reaped only below,
            // right before _exit, so until then it names the workload.
            unsafe { libc::kill(child, sig) };
            continue;
        }
        loop {
            let mut status = 0;
            // SAFETY: `status` is a local c_int, writable for the whole call.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                break;
            }
            if pid == child {
                let code = if libc::WIFSIGNALED(status) {
                    128 + libc::WTERMSIG(status)
                } else {
                    libc::WEXITSTATUS(status)
                };
                // SAFETY: _exit has no preconditions; not returning keeps
                // `helper`'s OwnedFd from closing report_fd a second time.
                unsafe { libc::_exit(code) };
            }
        }
    }
}

/// Resolves the command through the spec's `PATH`, as execvp would.
fn find_program(arg0: &str, env: &[String]) -> Result<PathBuf, Errno> {
    if arg0.contains('/') {
        return Ok(PathBuf::from(arg0));
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(crate::spec::DEFAULT_PATH);
    let mut denied = false;
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let candidate = Path::new(dir).join(arg0);
        if let Ok(m) = fs::metadata(&candidate) {
            use std::os::unix::fs::PermissionsExt;
            if m.is_file() && m.permissions().mode() & 0o111 != 0 {
                return Ok(candidate);
            }
            denied = true;
        }
    }
    Err(Errno(if denied { libc::EACCES } else { libc::ENOENT }))
}

fn loopback_up() -> Result<(), Errno> {
    // SAFETY: socket passes no pointer; a non-negative result is a new fd,
    // owned just below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: socket returned a new fd we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is a char array and a union of integers, addresses and a
    // pointer; all-zero bytes are a valid value of each (the pointer null).
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: `ifr` is a local ifreq, alive and writable across the call, as
    // SIOCGIFFLAGS expects, its name ("lo") NUL-terminated within the array.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr) } < 0 {
        return Err(Errno::last());
    }
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    unsafe {
        ifr.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    }
    // SAFETY: as above.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr) } < 0 {
        return Err(Errno::last());
    }
    Ok(())
}
