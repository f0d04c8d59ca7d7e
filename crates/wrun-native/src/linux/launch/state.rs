//! What a container leaves on disk: its state file, and the clean-up of it
//! (after a normal end, or by [`reap_stale`] after its launcher was
//! killed); and the shared mount-point layer.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::super::cgroup::Cgroup;
use crate::error::{Error, Result};

/// What the state file records, for [`reap_stale`].
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct State {
    pub(super) id: String,
    /// The launcher's pid and start time (to tell a reused pid).
    pub(super) owner_pid: i32,
    pub(super) owner_start: u64,
    pub(super) cgroup: Option<Cgroup>,
}

/// Removes what a container left: its cgroup (killing what is still in it),
/// mounts under its state directory, and the directory.
pub(super) struct Cleanup {
    pub(super) dir: Option<PathBuf>,
    pub(super) cgroup: Option<Cgroup>,
}

impl Cleanup {
    pub(super) fn disarm(&mut self) {
        self.dir = None;
        self.cgroup = None;
    }

    pub(super) fn run(&mut self) -> Result<()> {
        let mut first = Ok(());
        if let Some(cg) = self.cgroup.take() {
            cg.kill_all();
            if let Err(e) = cg.remove() {
                first = Err(e);
            }
        }
        if let Some(dir) = self.dir.take() {
            unmount_under(&dir);
            if let Err(e) = fs::remove_dir_all(&dir)
                && e.kind() != io::ErrorKind::NotFound
                && first.is_ok()
            {
                first = Err(Error::io("remove", &dir, e));
            }
        }
        first
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = self.run();
    }
}

/// Lazily unmounts every mount at or below `dir` in this mount namespace
/// (normally none: container mounts live in the container's namespace),
/// so removing the directory can never reach through a mount.
pub(super) fn unmount_under(dir: &Path) {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mountinfo)
        .filter(|p| p.starts_with(dir))
        .collect();
    // Deepest first.
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for p in points {
        let c = super::super::rootfs::cstr(&p);
        // SAFETY: `c` is an owned CString alive across the call; umount2 only
        // reads the path.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}

pub(super) fn unescape_mountinfo(s: &str) -> PathBuf {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    use std::os::unix::ffi::OsStringExt;
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

/// The shared read-only layer, under the state root, that every container
/// whose image allows it gets on top of the image's layers: the mount
/// points the runtime mounts over (/proc, /sys, /dev, /etc/hosts,
/// /etc/hostname, /etc/resolv.conf). Without it, an image that lacks them
/// makes each container create them in its upper directory (a copy-up that
/// costs inodes to create and remove at every start), as docker's
/// per-container init layer does. Container ids never start with `.`.
pub(super) const MOUNT_POINTS: &str = ".mount-points";
/// Compiled seccomp programs, by digest of libseccomp's version and the
/// profile (see `seccomp::compile_cached`).
pub(super) const SECCOMP_CACHE: &str = ".seccomp";
const MOUNT_POINT_DIRS: [(&str, u32); 4] = [
    ("proc", 0o555),
    ("sys", 0o555),
    ("dev", 0o755),
    ("etc", 0o755),
];
const MOUNT_POINT_FILES: [&str; 3] = ["etc/hosts", "etc/hostname", "etc/resolv.conf"];

/// Whether the mount-point layer can sit on `layers` without changing what
/// the image shows. Overlayfs shows a directory with the attributes of the
/// topmost layer that has it, so each of the layer's directories that an
/// image layer also has must be there as the same directory (root's, same
/// mode); its files must be regular files (they are mounted over, so their
/// attributes do not show). Anything else (a symlinked /etc, an /etc of
/// another mode) keeps the image as it is.
pub(super) fn fits_mount_points(layers: &[PathBuf]) -> bool {
    use std::os::unix::fs::MetadataExt;
    layers.iter().all(|l| {
        let dirs = MOUNT_POINT_DIRS.iter().all(|(d, mode)| {
            l.join(d).symlink_metadata().map_or(true, |m| {
                m.is_dir() && m.uid() == 0 && m.gid() == 0 && m.mode() & 0o7777 == *mode
            })
        });
        let files = MOUNT_POINT_FILES
            .iter()
            .all(|f| l.join(f).symlink_metadata().map_or(true, |m| m.is_file()));
        dirs && files
    })
}

/// The mount-point layer, made once per state root: built aside and renamed
/// into place, so a concurrent start sees it whole or not at all. Modes are
/// set explicitly (the process umask is not ours to rely on).
pub(super) fn mount_points_layer(state_root: &Path) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let dir = state_root.join(MOUNT_POINTS);
    if dir.is_dir() {
        return Ok(dir);
    }
    let tmp = state_root.join(format!("{MOUNT_POINTS}.{}", std::process::id()));
    let build = || -> io::Result<()> {
        if tmp.exists() {
            fs::remove_dir_all(&tmp)?;
        }
        fs::create_dir(&tmp)?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755))?;
        for (d, mode) in MOUNT_POINT_DIRS {
            fs::create_dir(tmp.join(d))?;
            fs::set_permissions(tmp.join(d), fs::Permissions::from_mode(mode))?;
        }
        for f in MOUNT_POINT_FILES {
            fs::write(tmp.join(f), "")?;
            fs::set_permissions(tmp.join(f), fs::Permissions::from_mode(0o644))?;
        }
        fs::rename(&tmp, &dir)
    };
    match build() {
        Ok(()) => Ok(dir),
        // Another start renamed its copy first.
        Err(_) if dir.is_dir() => {
            let _ = fs::remove_dir_all(&tmp);
            Ok(dir)
        }
        Err(e) => {
            let _ = fs::remove_dir_all(&tmp);
            Err(Error::io("create", &dir, e))
        }
    }
}

pub(super) fn write_state(dir: &Path, state: &State) -> Result<()> {
    let tmp = dir.join("state.json.tmp");
    let path = dir.join("state.json");
    let body =
        serde_json::to_vec(state).map_err(|e| Error::io("write", &tmp, io::Error::other(e)))?;
    fs::write(&tmp, body).map_err(|e| Error::io("write", &tmp, e))?;
    fs::rename(&tmp, &path).map_err(|e| Error::io("rename", &path, e))
}

/// A process's start time in clock ticks since boot (field 22 of
/// /proc/PID/stat), to tell a live owner from a reused pid.
pub(super) fn start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

/// Removes the state of containers whose launcher is gone (a `wrun` that
/// was SIGKILLed): kills what is left in their cgroups, removes the
/// cgroups, unmounts leftovers and removes their directories. Returns the
/// ids reaped. The CLI calls this at start.
///
/// # Ambient Authority
/// Reads and removes directories under `state_root` by path.
pub fn reap_stale(state_root: &Path) -> Result<Vec<String>> {
    let mut reaped = Vec::new();
    let entries = match fs::read_dir(state_root) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(reaped),
        Err(e) => return Err(Error::io("read", state_root, e)),
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        if !dir.is_dir() || entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let state: Option<State> = fs::read(dir.join("state.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let stale = match &state {
            Some(s) => {
                let alive = start_time(s.owner_pid).is_some_and(|t| t == s.owner_start);
                !alive
            }
            // A directory without state is either being created this very
            // moment or abandoned: give it a minute.
            None => entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age.as_secs() > 60),
        };
        if !stale {
            continue;
        }
        let mut cleanup = Cleanup {
            dir: Some(dir.clone()),
            cgroup: state.as_ref().and_then(|s| s.cgroup.clone()),
        };
        cleanup.run()?;
        reaped.push(entry.file_name().to_string_lossy().into_owned());
    }
    Ok(reaped)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn mount_point_layer_only_where_it_changes_nothing_the_image_shows() {
        use std::os::unix::fs::{PermissionsExt, symlink};
        let tmp = tempfile::tempdir().expect("tempdir");
        let layer = |name: &str, build: &dyn Fn(&Path)| {
            let l = tmp.path().join(name);
            fs::create_dir_all(&l).expect("layer");
            build(&l);
            l
        };
        let mkdir = |p: PathBuf, mode: u32| {
            fs::create_dir_all(&p).expect("mkdir");
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).expect("chmod");
        };
        let empty = layer("empty", &|_| {});
        let etc_0775 = layer("etc-0775", &|l| mkdir(l.join("etc"), 0o775));
        let etc_link = layer("etc-link", &|l| {
            symlink("usr/etc", l.join("etc")).expect("ln")
        });
        let hosts_dir = layer("hosts-dir", &|l| mkdir(l.join("etc/hosts"), 0o755));
        let plain = layer("plain", &|l| {
            mkdir(l.join("etc"), 0o755);
            mkdir(l.join("proc"), 0o555);
            fs::write(l.join("etc/hosts"), "x").expect("hosts");
        });

        assert!(fits_mount_points(std::slice::from_ref(&empty)));
        assert!(
            !fits_mount_points(&[empty.clone(), etc_0775]),
            "another mode"
        );
        assert!(!fits_mount_points(&[etc_link]), "a symlinked /etc");
        assert!(!fits_mount_points(&[hosts_dir]), "/etc/hosts a directory");
        // Root's directories of the same modes (the files are root's only
        // when the test runs as root).
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            assert!(fits_mount_points(&[empty, plain]));
        } else {
            assert!(!fits_mount_points(&[empty, plain]), "not root's");
        }
    }

    #[test]
    fn mountinfo_paths_are_unescaped() {
        assert_eq!(unescape_mountinfo("/a\\040b"), PathBuf::from("/a b"));
    }

    #[test]
    fn stale_state_of_a_dead_owner_is_reaped() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let live = tmp.path().join("live");
        let dead = tmp.path().join("dead");
        fs::create_dir_all(live.join("upper")).expect("mkdir");
        fs::create_dir_all(dead.join("upper/etc")).expect("mkdir");
        let me = std::process::id() as i32;
        write_state(
            &live,
            &State {
                id: "live".into(),
                owner_pid: me,
                owner_start: start_time(me).expect("start time"),
                cgroup: None,
            },
        )
        .expect("state");
        write_state(
            &dead,
            &State {
                id: "dead".into(),
                owner_pid: me,
                owner_start: 1,
                cgroup: None,
            },
        )
        .expect("state");
        let reaped = reap_stale(tmp.path()).expect("reap");
        assert_eq!(reaped, vec!["dead".to_string()]);
        assert!(live.exists() && !dead.exists());
    }
}
