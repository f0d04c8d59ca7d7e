//! Registry credentials in docker's format: `auths` entries with a base64
//! `user:password`, and `credHelpers`/`credsStore` through the
//! `docker-credential-*` helper programs, so `docker login` and `wrun login`
//! share one file.

use crate::Error;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use oci_client::secrets::RegistryAuth;
use serde_json::{Map, Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Docker Hub's key in `config.json`.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// A docker-format credentials file.
#[derive(Debug, Clone)]
pub struct AuthFile {
    path: PathBuf,
    helper_dir: Option<PathBuf>,
}

/// A user name and secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    /// The password or token.
    pub secret: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

fn keys(registry: &str) -> Vec<String> {
    let mut k = vec![
        registry.to_string(),
        format!("https://{registry}"),
        format!("http://{registry}"),
    ];
    if matches!(
        registry,
        "docker.io" | "index.docker.io" | "registry-1.docker.io"
    ) {
        k.push(DOCKER_HUB_KEY.to_string());
    }
    k
}

impl AuthFile {
    /// The file at `path` (which need not exist yet).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        AuthFile {
            path: path.into(),
            helper_dir: None,
        }
    }

    /// Looks for `docker-credential-*` helpers in `dir` instead of `PATH`.
    pub fn helper_dir(&mut self, dir: impl Into<PathBuf>) -> &mut Self {
        self.helper_dir = Some(dir.into());
        self
    }

    fn helper_program(&self, helper: &str) -> PathBuf {
        let name = format!("docker-credential-{helper}");
        match &self.helper_dir {
            Some(d) => d.join(name),
            None => PathBuf::from(name),
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn load(&self) -> Result<Map<String, Value>, Error> {
        match std::fs::read(&self.path) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(Value::Object(m)) => Ok(m),
                Ok(_) => Err(Error::Credentials {
                    registry: String::new(),
                    reason: format!("{} is not a JSON object", self.path.display()),
                }),
                Err(source) => Err(Error::Malformed {
                    what: self.path.display().to_string(),
                    source,
                }),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Map::new()),
            Err(e) => Err(Error::io("read", &self.path)(e)),
        }
    }

    fn save(&self, config: &Map<String, Value>) -> Result<(), Error> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(Error::io("create", dir))?;
        let bytes = serde_json::to_vec_pretty(config).map_err(|source| Error::Malformed {
            what: self.path.display().to_string(),
            source,
        })?;
        let mut tmp = tempfile_in(dir)?;
        tmp.1
            .write_all(&bytes)
            .map_err(Error::io("write", &tmp.0))?;
        tmp.1.sync_all().map_err(Error::io("sync", &tmp.0))?;
        std::fs::rename(&tmp.0, &self.path).map_err(Error::io("write", &self.path))
    }

    fn helper_for(config: &Map<String, Value>, registry: &str) -> Option<String> {
        let helpers = config.get("credHelpers").and_then(Value::as_object);
        keys(registry)
            .iter()
            .find_map(|k| helpers.and_then(|h| h.get(k)).and_then(Value::as_str))
            .or_else(|| config.get("credsStore").and_then(Value::as_str))
            .filter(|h| !h.is_empty())
            .map(str::to_string)
    }

    /// The credentials stored for `registry`, if any.
    pub fn get(&self, registry: &str) -> Result<Option<Credentials>, Error> {
        let config = self.load()?;
        let auths = config.get("auths").and_then(Value::as_object);
        for key in keys(registry) {
            let Some(entry) = auths.and_then(|a| a.get(&key)) else {
                continue;
            };
            if let Some(auth) = entry
                .get("auth")
                .and_then(Value::as_str)
                .filter(|a| !a.is_empty())
            {
                let bad = |reason: &str| Error::Credentials {
                    registry: registry.to_string(),
                    reason: format!("{reason} in {}", self.path.display()),
                };
                let decoded = B64
                    .decode(auth.trim())
                    .map_err(|_| bad("invalid base64 `auth`"))?;
                let text = String::from_utf8(decoded).map_err(|_| bad("`auth` is not UTF-8"))?;
                let (user, pass) = text
                    .split_once(':')
                    .ok_or_else(|| bad("`auth` is not user:password"))?;
                return Ok(Some(Credentials {
                    username: user.to_string(),
                    secret: pass.to_string(),
                }));
            }
            if let (Some(u), Some(p)) = (
                entry.get("username").and_then(Value::as_str),
                entry.get("password").and_then(Value::as_str),
            ) {
                return Ok(Some(Credentials {
                    username: u.to_string(),
                    secret: p.to_string(),
                }));
            }
        }
        if let Some(helper) = Self::helper_for(&config, registry) {
            return helper_get(&self.helper_program(&helper), registry);
        }
        Ok(None)
    }

    /// Stores credentials for `registry` (through the configured helper, if any).
    pub fn store(&self, registry: &str, creds: &Credentials) -> Result<(), Error> {
        let mut config = self.load()?;
        if let Some(helper) = Self::helper_for(&config, registry) {
            let input =
                json!({"ServerURL": registry, "Username": creds.username, "Secret": creds.secret});
            return run_helper(
                &self.helper_program(&helper),
                "store",
                &input.to_string(),
                registry,
            )
            .map(drop);
        }
        let auths = config
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(auths) = auths else {
            return Err(Error::Credentials {
                registry: registry.to_string(),
                reason: format!("`auths` in {} is not an object", self.path.display()),
            });
        };
        let key = if registry == "docker.io" {
            DOCKER_HUB_KEY
        } else {
            registry
        };
        auths.insert(
            key.to_string(),
            json!({"auth": B64.encode(format!("{}:{}", creds.username, creds.secret))}),
        );
        self.save(&config)
    }

    /// Removes the credentials for `registry`. Returns whether there were any.
    pub fn remove(&self, registry: &str) -> Result<bool, Error> {
        let mut config = self.load()?;
        let mut removed = false;
        if let Some(Value::Object(auths)) = config.get_mut("auths") {
            for key in keys(registry) {
                removed |= auths.remove(&key).is_some();
            }
        }
        if removed {
            self.save(&config)?;
        }
        if let Some(helper) = Self::helper_for(&config, registry) {
            removed |=
                run_helper(&self.helper_program(&helper), "erase", registry, registry).is_ok();
        }
        Ok(removed)
    }

    /// The oci-client credentials for `registry`: stored ones, else anonymous.
    pub fn registry_auth(&self, registry: &str) -> Result<RegistryAuth, Error> {
        Ok(match self.get(registry)? {
            Some(c) => RegistryAuth::Basic(c.username, c.secret),
            None => RegistryAuth::Anonymous,
        })
    }
}

fn tempfile_in(dir: &Path) -> Result<(PathBuf, std::fs::File), Error> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(format!(".config.json.{}.tmp", std::process::id()));
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .map_err(Error::io("create", &path))?;
    Ok((path, f))
}

fn run_helper(program: &Path, verb: &str, input: &str, registry: &str) -> Result<String, Error> {
    let program = program.display();
    let fail = |reason: String| Error::Credentials {
        registry: registry.to_string(),
        reason,
    };
    let mut child = Command::new(program.to_string())
        .arg(verb)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("run {program}: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .map_err(|e| fail(format!("write to {program}: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| fail(format!("run {program}: {e}")))?;
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() {
        let msg = if stdout.is_empty() {
            String::from_utf8_lossy(&out.stderr).trim().to_string()
        } else {
            stdout
        };
        return Err(fail(format!("{program} {verb}: {msg}")));
    }
    Ok(stdout)
}

fn helper_get(helper: &Path, registry: &str) -> Result<Option<Credentials>, Error> {
    let out = match run_helper(helper, "get", registry, registry) {
        Ok(out) => out,
        // Helpers say "credentials not found in native keychain" and exit 1.
        Err(Error::Credentials { reason, .. }) if reason.contains("not found") => return Ok(None),
        Err(e) => return Err(e),
    };
    let v: Value = serde_json::from_str(&out).map_err(|source| Error::Malformed {
        what: format!("{} output", helper.display()),
        source,
    })?;
    match (
        v.get("Username").and_then(Value::as_str),
        v.get("Secret").and_then(Value::as_str),
    ) {
        (Some(u), Some(s)) => Ok(Some(Credentials {
            username: u.to_string(),
            secret: s.to_string(),
        })),
        _ => Err(Error::Credentials {
            registry: registry.to_string(),
            reason: format!("{} returned no Username/Secret", helper.display()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_get_remove_roundtrip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = AuthFile::new(dir.path().join("config.json"));
        assert_eq!(file.get("127.0.0.1:5000").expect("get"), None);
        let c = Credentials {
            username: "alice".into(),
            secret: "s3:cret".into(),
        };
        file.store("127.0.0.1:5000", &c).expect("store");
        assert_eq!(file.get("127.0.0.1:5000").expect("get"), Some(c));
        let text = std::fs::read_to_string(file.path()).expect("read");
        assert!(
            text.contains("YWxpY2U6czM6Y3JldA=="),
            "docker's base64 user:pass form: {text}"
        );
        assert!(file.remove("127.0.0.1:5000").expect("remove"));
        assert_eq!(file.get("127.0.0.1:5000").expect("get"), None);
    }

    #[test]
    fn reads_docker_written_file_and_rejects_garbage() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"auths":{"https://index.docker.io/v1/":{"auth":"Ym9iOnB3"}}}"#,
        )
        .expect("write");
        let file = AuthFile::new(&path);
        let c = file.get("docker.io").expect("get").expect("some");
        assert_eq!((c.username.as_str(), c.secret.as_str()), ("bob", "pw"));
        std::fs::write(&path, r#"{"auths":{"r":{"auth":"!!!"}}}"#).expect("write");
        assert!(matches!(file.get("r"), Err(Error::Credentials { .. })));
        std::fs::write(&path, "{").expect("write");
        assert!(matches!(file.get("r"), Err(Error::Malformed { .. })));
    }

    #[test]
    fn credential_helper_is_used() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).expect("mkdir");
        let helper = bin.join("docker-credential-wruntest");
        std::fs::write(
            &helper,
            "#!/bin/sh\nread host\n[ \"$1\" = get ] && [ \"$host\" = reg.test ] && echo '{\"Username\":\"h\",\"Secret\":\"p\"}' && exit 0\necho 'credentials not found in native keychain'; exit 1\n",
        )
        .expect("write");
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let path = dir.path().join("config.json");
        std::fs::write(&path, r#"{"credHelpers":{"reg.test":"wruntest"}}"#).expect("write");
        let mut file = AuthFile::new(&path);
        file.helper_dir(&bin);
        let c = file.get("reg.test").expect("get").expect("some");
        assert_eq!((c.username.as_str(), c.secret.as_str()), ("h", "p"));
        // The helper's "not found" is no credentials, not an error.
        std::fs::write(&path, r#"{"credsStore":"wruntest"}"#).expect("write");
        assert_eq!(file.get("other.test").expect("get"), None);
        // A helper that is not installed is an error naming it.
        std::fs::write(&path, r#"{"credsStore":"missing"}"#).expect("write");
        let err = file.get("other.test").expect_err("missing helper");
        assert!(
            err.to_string().contains("docker-credential-missing"),
            "{err}"
        );
    }
}
