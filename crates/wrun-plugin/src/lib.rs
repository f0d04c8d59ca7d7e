#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod bindings;
mod error;
mod grants;
mod host;
#[cfg(feature = "image")]
pub mod image;
mod plugin;
mod state;

pub use error::{BoxedSource, Error, GrantError};
pub use grants::{DEFAULT_TIMEOUT, Grants};
pub use host::{HostConfig, LogLevel, LogRecord, PluginHost};
pub use plugin::{Instance, Plugin, Request, Response};
pub use wrun_core::{Access, Limits, Network, Sandbox};

/// The interface every plugin exports, as named in its component.
pub const HANDLER: &str = "wrun:plugin/handler@0.1.0";
