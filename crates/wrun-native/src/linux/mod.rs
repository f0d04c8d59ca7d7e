//! The Linux implementation.

pub mod cgroup;

mod bpf;
pub(crate) mod caps;
mod devices;
mod init;
mod launch;
mod proto;
mod rootfs;
mod sealed;
mod seccomp;

pub use init::{INIT_VERB, init_main, maybe_init};
pub use launch::{Container, ExitStatus, Launcher, Signaller, reap_stale, resize_pty};
