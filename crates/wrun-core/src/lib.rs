//! The vocabulary of wrun: what a workload is granted ([`Sandbox`]), what kind
//! of image it is ([`ImageKind`], [`Classification`]), what its config says to
//! run ([`ImageDefaults`]), and the small parsers every front end shares
//! (sizes, durations, users).
//!
//! This crate has no Wasmtime, no `nix`, no network: it is the seam between the
//! front ends (the CLI, host applications) and the runtimes, so both sides can
//! depend on it without depending on each other.
#![deny(missing_docs)]

pub use oci_spec;

mod image;
mod kind;
mod launch;
mod parse;
mod sandbox;
mod user;

pub use image::{DEFAULT_PATH, ImageDefaults};
pub use kind::{Classification, ImageKind, Rule};
pub use launch::{LaunchSpec, PullPolicy, Seccomp, Target, Unsupported};
pub use parse::{ParseError, parse_duration, parse_size};
pub use sandbox::{Access, DirGrant, InvalidMount, Limits, Network, Sandbox};
pub use user::{Identity, UnknownUser, resolve_user};
