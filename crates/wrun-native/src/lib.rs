#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

pub use oci_spec;

mod device;
mod error;
mod seccomp_profile;
mod spec;

#[cfg(target_os = "linux")]
mod linux;
#[cfg(not(target_os = "linux"))]
mod stub;
// Type-check the stub on Linux too, so the other platforms' API cannot drift.
#[cfg(all(test, target_os = "linux"))]
#[allow(dead_code)]
mod stub;

pub use device::{Device, DeviceAccess, default_device_rules};
pub use error::{Errno, Error, Result};
pub use spec::{
    DEFAULT_CAPABILITIES, DEFAULT_PATH, DEFAULT_SYSCTLS, INIT_ANNOTATION, MASKED_PATHS,
    READONLY_PATHS, SeccompPolicy, SpecBuilder, Tmpfs, TmpfsError, Volume, default_seccomp,
};

#[cfg(target_os = "linux")]
pub use linux::cgroup;
#[cfg(target_os = "linux")]
pub use linux::{
    Container, ExitStatus, INIT_VERB, Launcher, Signaller, init_main, maybe_init, reap_stale,
    resize_pty,
};
#[cfg(not(target_os = "linux"))]
pub use stub::{
    Container, ExitStatus, INIT_VERB, Launcher, Signaller, init_main, maybe_init, reap_stale,
    resize_pty,
};
