use crate::{ImageKind, Sandbox};
use std::path::PathBuf;

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An image in the store (pulled first as the [`PullPolicy`] says).
    Image(String),
    /// A local Wasm module or component: binary `.wasm` or text `.wat`.
    File(PathBuf),
}

/// When to pull an image before running it, as podman's `--pull`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PullPolicy {
    /// Only when the store does not have it.
    #[default]
    Missing,
    /// Every time.
    Always,
    /// Never: a missing image is an error.
    Never,
}

/// How a native container's seccomp filter is chosen.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Seccomp {
    /// docker's default allow-list.
    #[default]
    Default,
    /// No filter.
    Unconfined,
    /// A docker-format JSON profile.
    Profile(PathBuf),
}

/// One launch: an image or file, its arguments, and everything it is
/// granted. The same value launches a Wasm guest or a native container;
/// options that cannot apply to the kind chosen are refused by
/// [`LaunchSpec::check`], never ignored.
///
/// `LaunchSpec::new(target)` runs the image's own entrypoint and command
/// with nothing granted (see [`Sandbox::new`]), stdin closed, no terminal.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct LaunchSpec {
    /// What to run; `None` only in a default value, which `check` refuses.
    pub target: Option<Target>,
    /// Arguments replacing the image's Cmd (docker's `IMAGE [ARGS…]`).
    pub args: Vec<String>,
    /// Replaces the image's Entrypoint (and drops its Cmd), as `--entrypoint`.
    pub entrypoint: Option<Vec<String>>,
    /// Grants: directories, environment, network, limits.
    pub sandbox: Sandbox,
    /// The working directory.
    pub workdir: Option<String>,
    /// Connect stdin (`-i`).
    pub stdin: bool,
    /// Allocate a terminal (`-t`; native only).
    pub tty: bool,
    /// The terminal's initial size (rows, columns), with `tty`.
    pub terminal_size: Option<(u16, u16)>,
    /// `user[:group]` to run as (native only).
    pub user: Option<String>,
    /// The container's hostname (native only).
    pub hostname: Option<String>,
    /// Fresh tmpfs mounts, as `--tmpfs PATH[:OPTIONS]` spells them (native
    /// only).
    pub tmpfs: Vec<String>,
    /// Host devices to give, as `--device HOST[:CONTAINER][:PERMS]` spells
    /// them (native only).
    pub devices: Vec<String>,
    /// Mount the root file system read-only (a Wasm guest's `/` always is).
    pub read_only: bool,
    /// Capabilities to add to docker's default set (native only).
    pub cap_add: Vec<String>,
    /// Capabilities to drop (native only).
    pub cap_drop: Vec<String>,
    /// Every capability, no seccomp, every device (native only).
    pub privileged: bool,
    /// The seccomp filter (native only).
    pub seccomp: Seccomp,
    /// Run a minimal init as pid 1 that reaps zombies (native only).
    pub init: bool,
    /// The platform to pull, for a multi-platform image.
    pub platform: Option<String>,
    /// When to pull.
    pub pull: PullPolicy,
}

/// An option given for a kind of workload it cannot apply to.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{option} is not supported for {kind} workloads")]
pub struct Unsupported {
    /// The option, as the command line spells it.
    pub option: &'static str,
    /// The kind it was given for.
    pub kind: ImageKind,
}

impl LaunchSpec {
    /// Runs `target` with its own entrypoint, granted nothing.
    pub fn new(target: Target) -> Self {
        LaunchSpec {
            target: Some(target),
            ..Default::default()
        }
    }

    /// Refuses the options that mean nothing for `kind`.
    pub fn check(&self, kind: ImageKind) -> Result<(), Unsupported> {
        let limits = self.sandbox.limit_values();
        let refuse = |option| Err(Unsupported { option, kind });
        match kind {
            ImageKind::Wasm => {
                let native_only: [(&'static str, bool); 13] = [
                    ("--tty", self.tty),
                    ("--user", self.user.is_some()),
                    ("--hostname", self.hostname.is_some()),
                    ("--tmpfs", !self.tmpfs.is_empty()),
                    ("--device", !self.devices.is_empty()),
                    ("--cap-add", !self.cap_add.is_empty()),
                    ("--cap-drop", !self.cap_drop.is_empty()),
                    ("--privileged", self.privileged),
                    ("--security-opt seccomp", self.seccomp != Seccomp::Default),
                    ("--init", self.init),
                    ("--pids-limit", limits.pids.is_some()),
                    ("--cpus", limits.cpus.is_some()),
                    ("--cpu-shares", limits.cpu_shares.is_some()),
                ];
                if let Some((option, _)) = native_only.into_iter().find(|(_, given)| *given) {
                    return refuse(option);
                }
                if limits.memory_swap.is_some() {
                    return refuse("--memory-swap");
                }
            }
            ImageKind::Native => {
                if limits.fuel.is_some() {
                    return refuse("--fuel");
                }
                if matches!(self.target, Some(Target::File(_))) {
                    return refuse("a local file");
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Limits;

    #[test]
    fn wasm_refuses_native_options() {
        let mut spec = LaunchSpec::new(Target::Image("x".into()));
        assert_eq!(spec.check(ImageKind::Wasm), Ok(()));
        spec.cap_add.push("NET_ADMIN".into());
        assert_eq!(
            spec.check(ImageKind::Wasm).map_err(|e| e.to_string()),
            Err("--cap-add is not supported for wasm workloads".to_string())
        );
        assert_eq!(spec.check(ImageKind::Native), Ok(()));
        let mut spec = LaunchSpec::new(Target::Image("x".into()));
        spec.devices.push("/dev/fuse".into());
        assert_eq!(
            spec.check(ImageKind::Wasm).map_err(|e| e.to_string()),
            Err("--device is not supported for wasm workloads".to_string())
        );
        assert_eq!(spec.check(ImageKind::Native), Ok(()));
        let mut spec = LaunchSpec::new(Target::Image("x".into()));
        spec.sandbox.limits(Limits {
            pids: Some(10),
            ..Limits::default()
        });
        assert!(spec.check(ImageKind::Wasm).is_err());
    }

    #[test]
    fn native_refuses_fuel() {
        let mut spec = LaunchSpec::new(Target::Image("x".into()));
        spec.sandbox.limits(Limits {
            fuel: Some(1000),
            ..Limits::default()
        });
        assert!(spec.check(ImageKind::Native).is_err());
        assert_eq!(spec.check(ImageKind::Wasm), Ok(()));
    }
}
