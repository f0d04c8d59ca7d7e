//! Which process a piece of temporary work belongs to, and whether that
//! process still runs: the one rule by which a pull, `wrun image prune` and
//! the merge of a multi-layer Wasm image's files tell a leftover of a dead
//! process (safe to remove or to resume) from work in progress (never
//! touched).
//!
//! A pid alone is not enough: once its process is gone the kernel hands the
//! number out again, and the leftover would look alive for as long as the
//! stranger runs. So the name of temporary work carries the pid and the
//! process's start time (`<pid>.<start>`, the start in clock ticks since
//! boot, as `/proc/<pid>/stat` gives it), and a process is its owner only if
//! both match.

use std::fmt;
use std::sync::OnceLock;

/// The process that made a piece of temporary work, as its name records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pid: u32,
    /// `None` where the system does not say (no `/proc`), or in a name
    /// written before start times were recorded.
    start: Option<u64>,
}

impl Owner {
    /// This process.
    pub fn current() -> Owner {
        static CURRENT: OnceLock<Owner> = OnceLock::new();
        *CURRENT.get_or_init(|| {
            let pid = std::process::id();
            let start = match proc_stat(pid) {
                Stat::Running { start } => start,
                _ => None,
            };
            Owner { pid, start }
        })
    }

    /// Reads an owner as [`Display`](fmt::Display) writes it: `<pid>.<start>`
    /// or, from older names, `<pid>`.
    pub fn parse(s: &str) -> Option<Owner> {
        let (pid, start) = match s.split_once('.') {
            Some((pid, start)) => (pid, Some(start.parse().ok()?)),
            None => (s, None),
        };
        let pid: u32 = pid.parse().ok()?;
        (pid != 0).then_some(Owner { pid, start })
    }

    /// The pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether the process still runs. A zombie does not; a pid whose
    /// process started at another time than recorded is another process.
    /// When it cannot be told (no `/proc`, and the pid exists), it is
    /// taken to run: live work is never mistaken for a leftover.
    pub fn is_alive(&self) -> bool {
        let proc_works = Owner::current().start.is_some();
        match proc_stat(self.pid) {
            Stat::Running { start } => match (self.start, start) {
                (Some(recorded), Some(actual)) => recorded == actual,
                _ => true,
            },
            Stat::Dead => false,
            Stat::Gone if proc_works => false,
            Stat::Gone | Stat::Unknown => pid_exists(self.pid),
        }
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.start {
            Some(start) => write!(f, "{}.{start}", self.pid),
            None => write!(f, "{}", self.pid),
        }
    }
}

enum Stat {
    /// The process exists and has not exited; its start time if readable.
    Running { start: Option<u64> },
    /// A zombie or a dying process.
    Dead,
    /// No such entry in `/proc` (no such process, or no `/proc`).
    Gone,
    /// `/proc` could not be read for another reason.
    Unknown,
}

/// The state and start time of `pid` from `/proc/<pid>/stat`.
fn proc_stat(pid: u32) -> Stat {
    let text = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Stat::Gone,
        Err(_) => return Stat::Unknown,
    };
    // `pid (comm) state ppid …`: comm may hold spaces and parentheses, so
    // the fields are counted from the last `)`; the start time is field 22.
    let Some((_, rest)) = text.rsplit_once(')') else {
        return Stat::Unknown;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    match fields.first() {
        Some(&("Z" | "X" | "x")) => Stat::Dead,
        Some(_) => Stat::Running {
            start: fields.get(19).and_then(|s| s.parse().ok()),
        },
        None => Stat::Unknown,
    }
}

/// Whether a process with this pid exists (`kill(pid, 0)`; `EPERM` means it does).
fn pid_exists(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    match rustix::process::test_kill_process(pid) {
        Ok(()) => true,
        Err(e) => e != rustix::io::Errno::SRCH,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_names_its_start() {
        let me = Owner::current();
        assert_eq!(me.pid(), std::process::id());
        assert!(me.is_alive());
        assert_eq!(Owner::parse(&me.to_string()), Some(me));
        if let Some(start) = me.start {
            // The same pid with another start time is another process.
            let stranger = Owner {
                start: Some(start + 1),
                ..me
            };
            assert!(!stranger.is_alive());
        }
    }

    #[test]
    fn a_reaped_child_is_dead() {
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        let pid = child.id();
        let start = match proc_stat(pid) {
            Stat::Running { start } => start,
            _ => None,
        };
        child.wait().expect("reap true");
        let owner = Owner { pid, start };
        // Unless the pid was handed out again at once, which the start time catches.
        assert!(!owner.is_alive() || start.is_none());
    }

    #[test]
    fn parses_old_and_new_names() {
        assert_eq!(
            Owner::parse("12"),
            Some(Owner {
                pid: 12,
                start: None
            })
        );
        assert_eq!(
            Owner::parse("12.345"),
            Some(Owner {
                pid: 12,
                start: Some(345)
            })
        );
        assert_eq!(Owner::parse("0"), None);
        assert_eq!(Owner::parse("x.1"), None);
        assert_eq!(Owner::parse("1.y"), None);
    }
}
