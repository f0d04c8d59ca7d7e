//! What every command needs: the store, the configuration, credentials.
//! The only code in wrun that reads the process environment for defaults.

use crate::cli::Global;
use anyhow::{Context as _, Result};
use serde_json::Value;
use std::path::PathBuf;
use wrun_image::Store;
use wrun_image::auth::AuthFile;
use wrun_image::pull::PullOptions;

pub struct Context {
    pub global: Global,
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

/// A variable naming a path; an empty one is unset, as an empty
/// `XDG_DATA_HOME` is in the XDG base directory spec.
fn path_var(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn xdg(var: &str, fallback: &str) -> Option<PathBuf> {
    path_var(var).or_else(|| home().map(|h| h.join(fallback)))
}

impl Context {
    pub fn new(global: Global) -> Context {
        Context { global }
    }

    pub fn root(&self) -> Result<PathBuf> {
        if let Some(r) = self.global.root.clone().or_else(|| path_var("WRUN_ROOT")) {
            return Ok(r);
        }
        if is_root() {
            return Ok(PathBuf::from("/var/lib/wrun"));
        }
        xdg("XDG_DATA_HOME", ".local/share")
            .map(|d| d.join("wrun"))
            .context("cannot choose a store directory: set --root, WRUN_ROOT or HOME")
    }

    pub fn store(&self) -> Result<Store> {
        let root = self.root()?;
        Ok(Store::open(&root)?)
    }

    /// `--config`, else `WRUN_CONFIG`: a file named by the user, which must exist.
    fn named_config(&self) -> Option<PathBuf> {
        self.global
            .config
            .clone()
            .or_else(|| path_var("WRUN_CONFIG"))
    }

    fn config_path(&self) -> Option<PathBuf> {
        if let Some(c) = self.named_config() {
            return Some(c);
        }
        if is_root() {
            Some(PathBuf::from("/etc/wrun/config.json"))
        } else {
            xdg("XDG_CONFIG_HOME", ".config").map(|d| d.join("wrun/config.json"))
        }
    }

    /// `insecure-registries` from the configuration file (docker's daemon.json key).
    fn configured_insecure(&self) -> Result<Vec<String>> {
        let Some(path) = self.config_path() else {
            return Ok(Vec::new());
        };
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && self.named_config().is_none() => {
                return Ok(Vec::new());
            }
            Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
        };
        let v: Value =
            serde_json::from_slice(&bytes).with_context(|| format!("parse {}", path.display()))?;
        Ok(wrun_image::program::strings(&v, "insecure-registries"))
    }

    pub fn auth_file(&self) -> Option<AuthFile> {
        let dir = std::env::var_os("DOCKER_CONFIG")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| home().map(|h| h.join(".docker")))?;
        Some(AuthFile::new(dir.join("config.json")))
    }

    pub fn pull_options(&self) -> Result<PullOptions> {
        let mut insecure = self.configured_insecure()?;
        insecure.extend(self.global.insecure_registries.iter().cloned());
        Ok(PullOptions {
            insecure_registries: insecure,
            auth: self.auth_file(),
            ..PullOptions::default()
        })
    }

    pub fn runtime(&self) -> Result<tokio::runtime::Runtime> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("start the async runtime")
    }
}
