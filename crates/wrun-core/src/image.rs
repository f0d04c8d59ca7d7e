//! What an image's config says to run, and how a launch's options override
//! it: the one place both backends take argv, the environment, the working
//! directory and the user from.

use oci_spec::image::ImageConfiguration;

/// docker's `PATH` for a container whose image sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The part of an image config a launch starts from, read once from the
/// typed config (`Entrypoint`, `Cmd`, `Env`, `WorkingDir`, `User`; empty
/// strings count as unset, as docker reads them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageDefaults {
    /// `Entrypoint`.
    pub entrypoint: Vec<String>,
    /// `Cmd`.
    pub cmd: Vec<String>,
    /// `Env`, as `KEY=VALUE` strings.
    pub env: Vec<String>,
    /// `WorkingDir`.
    pub working_dir: Option<String>,
    /// `User`.
    pub user: Option<String>,
}

impl ImageDefaults {
    /// Reads the defaults of an image config.
    pub fn from_config(config: &ImageConfiguration) -> ImageDefaults {
        let Some(c) = config.config() else {
            return ImageDefaults::default();
        };
        ImageDefaults {
            entrypoint: c.entrypoint().clone().unwrap_or_default(),
            cmd: c.cmd().clone().unwrap_or_default(),
            env: c.env().clone().unwrap_or_default(),
            working_dir: c.working_dir().clone().filter(|w| !w.is_empty()),
            user: c.user().clone().filter(|u| !u.is_empty()),
        }
    }

    /// The command line a launch runs, by docker's rule: `entrypoint`
    /// (`--entrypoint`) replaces the image's Entrypoint and drops its Cmd
    /// (an empty one clears it); `args` replace the Cmd.
    pub fn argv(&self, entrypoint: Option<&[String]>, args: &[String]) -> Vec<String> {
        let mut argv = entrypoint.unwrap_or(&self.entrypoint).to_vec();
        if !args.is_empty() {
            argv.extend(args.iter().cloned());
        } else if entrypoint.is_none() {
            argv.extend(self.cmd.iter().cloned());
        }
        argv
    }

    /// Whether the command line starts with an entrypoint (the image's, or
    /// a non-empty `--entrypoint`), rather than the command alone.
    pub fn has_entrypoint(&self, entrypoint: Option<&[String]>) -> bool {
        !entrypoint.unwrap_or(&self.entrypoint).is_empty()
    }

    /// The environment: the image's `Env`, then `overrides` in order; a
    /// later value of a key replaces an earlier one where it stood.
    pub fn env(&self, overrides: &[(String, String)]) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = Vec::new();
        let image = self.env.iter().map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (kv.clone(), String::new()),
        });
        for (k, v) in image.chain(overrides.iter().cloned()) {
            match env.iter_mut().find(|(key, _)| *key == k) {
                Some(slot) => slot.1 = v,
                None => env.push((k, v)),
            }
        }
        env
    }

    /// The `PATH` the image's `Env` sets, if any.
    pub fn path(&self) -> Option<&str> {
        self.env.iter().find_map(|e| e.strip_prefix("PATH="))
    }

    /// The working directory: `workdir` (`-w`) if given, else the image's.
    pub fn working_dir<'a>(&'a self, workdir: Option<&'a str>) -> Option<&'a str> {
        workdir.or(self.working_dir.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::image::{ConfigBuilder, ImageConfigurationBuilder};

    fn defaults(entrypoint: &[&str], cmd: &[&str]) -> ImageDefaults {
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let config = ConfigBuilder::default()
            .entrypoint(strings(entrypoint))
            .cmd(strings(cmd))
            .env(strings(&["PATH=/bin", "FOO=image", "BARE"]))
            .user(String::new())
            .working_dir("/srv".to_string())
            .build()
            .expect("config");
        let image = ImageConfigurationBuilder::default()
            .config(config)
            .build()
            .expect("image config");
        ImageDefaults::from_config(&image)
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn argv_follows_docker() {
        let d = defaults(&["/ep"], &["default"]);
        assert_eq!(d.argv(None, &[]), strings(&["/ep", "default"]));
        assert_eq!(d.argv(None, &strings(&["x"])), strings(&["/ep", "x"]));
        let other = strings(&["/other"]);
        assert_eq!(d.argv(Some(&other), &[]), other);
        assert_eq!(
            d.argv(Some(&other), &strings(&["-c", "hi"])),
            strings(&["/other", "-c", "hi"])
        );
        assert!(d.argv(Some(&[]), &[]).is_empty());
        assert!(d.has_entrypoint(None));
        assert!(!d.has_entrypoint(Some(&[])));
        let cmd_only = defaults(&[], &["sh"]);
        assert_eq!(cmd_only.argv(None, &[]), strings(&["sh"]));
        assert!(!cmd_only.has_entrypoint(None));
        assert_eq!(
            ImageDefaults::from_config(&ImageConfiguration::default()).argv(None, &[]),
            Vec::<String>::new()
        );
    }

    #[test]
    fn env_merges_in_order_and_later_wins() {
        let d = defaults(&[], &["sh"]);
        let env = d.env(&[
            ("FOO".into(), "cli".into()),
            ("NEW".into(), "1".into()),
            ("NEW".into(), "2".into()),
        ]);
        let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            pairs,
            [("PATH", "/bin"), ("FOO", "cli"), ("BARE", ""), ("NEW", "2")]
        );
        assert_eq!(d.path(), Some("/bin"));
        assert_eq!(d.user, None);
        assert_eq!(d.working_dir(None), Some("/srv"));
        assert_eq!(d.working_dir(Some("/w")), Some("/w"));
    }
}
