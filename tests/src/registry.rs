//! A real CNCF distribution registry (`docker-registry`) on 127.0.0.1.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `docker-registry serve` process on a free loopback port, with its
/// storage in a temporary directory; killed on drop.
#[derive(Debug)]
pub struct Registry {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    creds: Option<(String, String)>,
}

impl Registry {
    /// An open registry.
    pub fn start() -> Registry {
        Registry::spawn(None)
    }

    /// An open registry, or `None` (a printed skip, a failure in CI) when
    /// `docker-registry` or `skopeo` is not installed.
    pub fn start_if_installed() -> Option<Registry> {
        crate::have_tools(&["docker-registry", "skopeo"]).then(Registry::start)
    }

    /// Pushes the fixture `image` as `name` (`repo:tag`) through a
    /// temporary OCI layout.
    pub fn push_image(&self, name: &str, image: &crate::fixture::Image) {
        let dir = tempfile::tempdir().expect("create a layout directory");
        crate::fixture::write_layout(dir.path(), &[("t", crate::fixture::Tagged::Image(image))]);
        self.push_layout(dir.path(), "t", name);
    }

    /// A registry that wants HTTP Basic auth of `user`/`pass` (htpasswd, bcrypt).
    pub fn start_with_htpasswd(user: &str, pass: &str) -> Registry {
        Registry::spawn(Some((user.to_string(), pass.to_string())))
    }

    fn spawn(creds: Option<(String, String)>) -> Registry {
        let dir = tempfile::tempdir().expect("create the registry's directory");
        let port = crate::closed_port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("storage").display()
        );
        if let Some((user, pass)) = &creds {
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, pass])
                .output()
                .expect("run htpasswd");
            assert!(
                out.status.success(),
                "htpasswd failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, &out.stdout).expect("write the htpasswd file");
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: wrun-test\n    path: {}\n",
                file.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).expect("write the registry config");
        let log = std::fs::File::create(dir.path().join("registry.log"))
            .expect("create the registry log");
        let mut cmd = Command::new("docker-registry");
        cmd.arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log);
        // SAFETY: prctl is async-signal-safe; the registry dies with the
        // test thread that started it even if the test process is killed.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("start docker-registry");
        let mut reg = Registry {
            child,
            port,
            dir,
            creds,
        };
        reg.wait_ready();
        reg
    }

    fn wait_ready(&mut self) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(15) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "docker-registry exited ({status}) before answering: {}",
                    self.log()
                );
            }
            if let Some(code) = http_status(self.port, "/v2/")
                && (code == 200 || code == 401)
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!(
            "docker-registry on port {} did not answer /v2/ within 15 s: {}",
            self.port,
            self.log()
        );
    }

    /// What the registry logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:PORT/<name>`.
    pub fn reference(&self, name: &str) -> String {
        format!("{}/{name}", self.host())
    }

    /// Pushes the image (or index, with all its images) tagged `tag` in the
    /// OCI layout `layout` as `name` (`repo:tag`), with skopeo, keeping digests.
    pub fn push_layout(&self, layout: &Path, tag: &str, name: &str) {
        let mut cmd = Command::new("skopeo");
        cmd.args([
            "--insecure-policy",
            "copy",
            "--quiet",
            "--all",
            "--preserve-digests",
            "--dest-tls-verify=false",
        ]);
        if let Some((u, p)) = &self.creds {
            cmd.arg("--dest-creds").arg(format!("{u}:{p}"));
        } else {
            cmd.arg("--dest-no-creds");
        }
        cmd.arg(format!("oci:{}:{tag}", layout.display()))
            .arg(format!("docker://{}", self.reference(name)))
            .env("DOCKER_CONFIG", self.dir.path().join("skopeo-docker"))
            .env(
                "REGISTRY_AUTH_FILE",
                self.dir.path().join("skopeo-auth.json"),
            );
        let out = cmd.output().expect("run skopeo copy");
        assert!(
            out.status.success(),
            "skopeo copy to {} failed: {}\nregistry log: {}",
            self.reference(name),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }

    /// `skopeo inspect` of `name` in this registry, as JSON.
    pub fn skopeo_inspect(&self, name: &str) -> serde_json::Value {
        let mut cmd = Command::new("skopeo");
        cmd.args(["--insecure-policy", "inspect", "--tls-verify=false"]);
        if let Some((u, p)) = &self.creds {
            cmd.arg("--creds").arg(format!("{u}:{p}"));
        }
        let out = cmd
            .arg(format!("docker://{}", self.reference(name)))
            .env(
                "REGISTRY_AUTH_FILE",
                self.dir.path().join("skopeo-auth.json"),
            )
            .output()
            .expect("run skopeo inspect");
        assert!(
            out.status.success(),
            "skopeo inspect {} failed: {}",
            self.reference(name),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("skopeo inspect prints JSON")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The status code of `GET path` on 127.0.0.1:`port`, or `None` if nothing answers.
pub fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).ok()?;
    let head = std::str::from_utf8(&buf[..n]).ok()?;
    head.split_whitespace().nth(1)?.parse().ok()
}
