use crate::cli::RunArgs;
use crate::context::Context;
use crate::progress;
use crate::terminal;
use anyhow::{Context as _, Result, bail};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use wrun::{Exit, LaunchSpec, Launched, PullPolicy, Runner, Seccomp, Target};
use wrun_core::{DirGrant, Limits, Network, parse_duration, parse_size};

pub fn run(ctx: &Context, args: RunArgs) -> Result<ExitCode> {
    let spec = launch_spec(&args)?;
    let mut opts = ctx.pull_options()?;
    opts.progress = progress::for_pull(args.quiet);
    let mut runner = Runner::new(ctx.store()?, opts);
    runner.debug(args.debug);
    let mut launched = match runner.launch(&spec) {
        Ok(l) => l,
        Err(e) => return Ok(failed(args.image(), e, args.debug)),
    };
    let pty = launched.take_terminal();
    let resize_target = pty.as_ref().and_then(|p| p.try_clone().ok());
    let _forwarding = forward_signals(&launched, resize_target);
    let (_raw, output) = match pty {
        Some(master) => (
            Some(terminal::RawMode::enable()),
            terminal::attach(master).ok(),
        ),
        None => (None, None),
    };
    let result = launched.wait();
    if let Some(out) = output {
        let _ = out.join();
    }
    match result {
        Ok(exit) => Ok(report(exit, args.debug)),
        Err(e) => Ok(failed(args.image(), e, args.debug)),
    }
}

fn report(exit: Exit, debug: bool) -> ExitCode {
    if exit.oom_killed {
        eprintln!(
            "wrun: the container was killed by the kernel's OOM killer (memory limit reached)"
        );
    }
    if debug && let Some(compiled) = exit.compiled {
        eprintln!(
            "wrun: wasm code {}",
            if compiled {
                "compiled"
            } else {
                "loaded from cache"
            }
        );
    }
    ExitCode::from(u8::try_from(exit.code.rem_euclid(256)).unwrap_or(1))
}

fn failed(image: &str, e: wrun::Error, debug: bool) -> ExitCode {
    let code = e.exit_code();
    let err = anyhow::Error::new(e).context(format!("run {image}"));
    eprintln!("wrun: {err:#}");
    if debug
        && let Some(wrun_wasm::Error::Trap {
            backtrace: Some(bt),
            ..
        }) = err.downcast_ref::<wrun::Error>().and_then(|w| match w {
            wrun::Error::Wasm(e) => Some(e),
            _ => None,
        })
    {
        eprintln!("{bt}");
    }
    ExitCode::from(u8::try_from(code).unwrap_or(125))
}

/// Is IMAGE a local Wasm file rather than a reference?
fn local_file(image: &str) -> Option<PathBuf> {
    let p = Path::new(image);
    let looks_local = image.starts_with('/')
        || image.starts_with("./")
        || image.starts_with("../")
        || image.ends_with(".wasm")
        || image.ends_with(".wat");
    (looks_local && p.is_file()).then(|| p.to_path_buf())
}

fn launch_spec(a: &RunArgs) -> Result<LaunchSpec> {
    let image = a.image();
    let target = match local_file(image) {
        Some(path) => Target::File(path),
        None if image.ends_with(".wasm") || image.ends_with(".wat") => {
            bail!("run {image}: no such file")
        }
        None => Target::Image(image.to_string()),
    };
    let mut spec = LaunchSpec::new(target);
    spec.args = a.workload_args().to_vec();
    spec.entrypoint = a.entrypoint.as_ref().map(|e| {
        if e.is_empty() {
            Vec::new()
        } else {
            vec![e.clone()]
        }
    });
    for file in &a.env_file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("read env file {}", file.display()))?;
        for line in text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            set_env(&mut spec, line);
        }
    }
    for e in &a.env {
        set_env(&mut spec, e);
    }
    for v in &a.volume {
        let grant = DirGrant::parse(v)?;
        if !grant.host.exists() {
            bail!(
                "invalid mount {v:?}: {} does not exist",
                grant.host.display()
            );
        }
        spec.sandbox.dir(grant.host, grant.guest, grant.access);
    }
    spec.sandbox.network(match a.network.as_str() {
        "none" => Network::None,
        "host" => Network::Host,
        other => bail!("unsupported --network {other:?}: none or host"),
    });
    let memory_swap = match a.memory_swap.as_deref() {
        None => None,
        Some("-1") => Some(-1),
        Some(s) => Some(i64::try_from(parse_size(s)?).context("--memory-swap is too large")?),
    };
    spec.sandbox.limits(Limits {
        memory: a.memory.as_deref().map(parse_size).transpose()?,
        memory_swap,
        pids: a.pids_limit,
        cpus: a.cpus,
        cpu_shares: a.cpu_shares,
        timeout: a.timeout.as_deref().map(parse_duration).transpose()?,
        fuel: a.fuel,
    });
    if let Some(c) = a.cpus
        && !(c > 0.0 && c.is_finite())
    {
        bail!("invalid --cpus {c}: must be a positive number");
    }
    spec.workdir = a.workdir.clone();
    spec.stdin = a.interactive;
    spec.tty = a.tty;
    if a.tty {
        spec.terminal_size = terminal::size();
    }
    spec.user = a.user.clone();
    spec.hostname = a.hostname.clone();
    // Refused before any pull, as docker refuses them; the runner parses
    // them again for the container.
    for t in &a.tmpfs {
        wrun_native::Tmpfs::parse(t)?;
    }
    spec.tmpfs = a.tmpfs.clone();
    spec.devices = a.device.clone();
    spec.read_only = a.read_only;
    spec.cap_add = a.cap_add.clone();
    spec.cap_drop = a.cap_drop.clone();
    spec.privileged = a.privileged;
    spec.init = a.init;
    spec.platform = a.platform.clone();
    spec.pull = match a.pull.as_str() {
        "missing" => PullPolicy::Missing,
        "always" => PullPolicy::Always,
        "never" => PullPolicy::Never,
        other => bail!("unsupported --pull {other:?}: missing, always or never"),
    };
    for opt in &a.security_opt {
        match opt.split_once(['=', ':']) {
            Some(("seccomp", "unconfined")) => spec.seccomp = Seccomp::Unconfined,
            Some(("seccomp", file)) => spec.seccomp = Seccomp::Profile(PathBuf::from(file)),
            _ => bail!("unsupported --security-opt {opt:?}: only seccomp=unconfined|FILE"),
        }
    }
    Ok(spec)
}

/// `K=V` sets; a bare `K` takes the host's value, as docker does (and is
/// skipped when the host has none).
fn set_env(spec: &mut LaunchSpec, e: &str) {
    match e.split_once('=') {
        Some((k, v)) => {
            spec.sandbox.env(k, v);
        }
        None => {
            if let Some(v) = std::env::var_os(e) {
                spec.sandbox.env(e, v.to_string_lossy());
            }
        }
    }
}

/// Forwards SIGINT, SIGTERM and SIGHUP to a native container, as docker
/// run does, and follows SIGWINCH with the container's terminal. The
/// binary, not the library, owns signal handling.
fn forward_signals(
    launched: &Launched,
    terminal: Option<std::fs::File>,
) -> Option<std::thread::JoinHandle<()>> {
    let signaller = launched.signaller()?;
    let set = unsafe_sigset(&[libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGWINCH]);
    // SAFETY: `set` is a valid, initialised sigset; blocking these signals in
    // this thread (and the threads it creates) lets the forwarder take them
    // with sigwait instead of them killing wrun.
    unsafe {
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            loop {
                let mut sig = 0;
                // SAFETY: `set` (moved into this thread) and `sig` are locals
                // alive across the call; this thread inherited the mask that
                // blocks `set`, as sigwait requires.
                if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
                    return;
                }
                if sig == libc::SIGWINCH {
                    if let (Some(t), Some((rows, cols))) = (&terminal, terminal::size()) {
                        let _ = wrun::resize_terminal(t, rows, cols);
                    }
                    continue;
                }
                let _ = signaller.signal(sig);
            }
        })
        .ok()
}

fn unsafe_sigset(signals: &[i32]) -> libc::sigset_t {
    // SAFETY: sigset_t is an array of integers, so all-zero is a value;
    // sigemptyset initialises this local before sigaddset edits it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in signals {
            libc::sigaddset(&mut set, *s);
        }
        set
    }
}
