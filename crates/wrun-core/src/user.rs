//! Users and groups as an image's `/etc/passwd` and `/etc/group` name them,
//! resolved to numbers as docker resolves `--user` and an image's `User`.
//!
//! This module only parses: the files are read through the image's own
//! view of its layers (`wrun-image`), never by a host path.

use std::collections::HashSet;

/// A user resolved to numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user id.
    pub uid: u32,
    /// The primary group id.
    pub gid: u32,
    /// The other groups `/etc/group` lists the user in.
    pub additional_gids: Vec<u32>,
    /// The home directory (`/` when the user has no passwd entry).
    pub home: String,
}

impl Identity {
    /// Root, as a container runs when nothing names a user.
    pub fn root() -> Identity {
        Identity {
            uid: 0,
            gid: 0,
            additional_gids: Vec::new(),
            home: "/root".to_string(),
        }
    }
}

/// A user that cannot be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unable to find user {user}: {reason}")]
pub struct UnknownUser {
    /// The user as given.
    pub user: String,
    /// Why it is not found.
    pub reason: String,
}

fn entries(text: &str, min_fields: usize) -> Vec<Vec<&str>> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= min_fields)
        .collect()
}

/// Resolves `name`, `uid`, `name:group`, `uid:gid` (and the mixed forms)
/// against the contents of an image's `passwd` and `group` files, as docker
/// does: a name must have a passwd entry; a number need not (its group is
/// then 0 and its home `/`); the supplementary groups are the groups that
/// list the user's name.
pub fn resolve_user(spec: &str, passwd: &str, group: &str) -> Result<Identity, UnknownUser> {
    let unknown = |reason: String| UnknownUser {
        user: spec.to_string(),
        reason,
    };
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if user_part.is_empty() {
        return Err(unknown("empty user name".into()));
    }
    // name:password:uid:gid:gecos:home:shell
    let users = entries(passwd, 4);
    let home_of = |f: &Vec<&str>| {
        f.get(5)
            .copied()
            .filter(|h| !h.is_empty())
            .unwrap_or("/")
            .to_string()
    };
    let (uid, mut gid, name, home) = match (
        users.iter().find(|f| f[0] == user_part),
        user_part.parse::<u32>().ok(),
    ) {
        (Some(f), _) => {
            let uid = f[2]
                .parse::<u32>()
                .map_err(|_| unknown(format!("bad uid in passwd entry {:?}", f[0])))?;
            let gid = f[3]
                .parse::<u32>()
                .map_err(|_| unknown(format!("bad gid in passwd entry {:?}", f[0])))?;
            (uid, gid, Some(f[0].to_string()), home_of(f))
        }
        (None, Some(uid)) => match users.iter().find(|f| f[2].parse::<u32>().ok() == Some(uid)) {
            Some(f) => (
                uid,
                f[3].parse::<u32>().unwrap_or(0),
                Some(f[0].to_string()),
                home_of(f),
            ),
            None => (uid, 0, None, "/".to_string()),
        },
        (None, None) => return Err(unknown("no matching entries in passwd file".into())),
    };
    // name:password:gid:members
    let groups = entries(group, 3);
    if let Some(g) = group_part {
        if let Some(f) = groups.iter().find(|f| f[0] == g) {
            gid = f[2]
                .parse::<u32>()
                .map_err(|_| unknown(format!("bad gid in group entry {:?}", f[0])))?;
        } else if let Ok(n) = g.parse::<u32>() {
            gid = n;
        } else {
            return Err(unknown(format!("no group {g:?} in group file")));
        }
    }
    let mut additional_gids = Vec::new();
    if let Some(name) = &name {
        let mut seen = HashSet::new();
        for f in &groups {
            let members = f.get(3).copied().unwrap_or("");
            if members.split(',').any(|m| m == name)
                && let Ok(g) = f[2].parse::<u32>()
                && g != gid
                && seen.insert(g)
            {
                additional_gids.push(g);
            }
        }
    }
    Ok(Identity {
        uid,
        gid,
        additional_gids,
        home,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\nalice:x:1000:1000::/home/alice:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nwheel:x:10:alice\nalice:x:1000:\nnogroup:x:65534:\n";

    #[test]
    fn users_resolve_like_docker() {
        let root = resolve_user("root", PASSWD, GROUP).expect("root");
        assert_eq!((root.uid, root.gid, root.home.as_str()), (0, 0, "/root"));
        let alice = resolve_user("alice", PASSWD, GROUP).expect("alice");
        assert_eq!((alice.uid, alice.gid), (1000, 1000));
        assert_eq!(alice.additional_gids, vec![10]);
        assert_eq!(alice.home, "/home/alice");
        let by_uid = resolve_user("1000", PASSWD, GROUP).expect("uid");
        assert_eq!(by_uid.gid, 1000);
        let unknown_uid = resolve_user("4242", PASSWD, GROUP).expect("bare uid");
        assert_eq!(
            (unknown_uid.uid, unknown_uid.gid, unknown_uid.home.as_str()),
            (4242, 0, "/")
        );
        let with_group = resolve_user("alice:wheel", PASSWD, GROUP).expect("alice:wheel");
        assert_eq!(with_group.gid, 10);
        assert_eq!(resolve_user("1:2", PASSWD, GROUP).expect("1:2").gid, 2);
        let err = resolve_user("mallory", PASSWD, GROUP).expect_err("unknown");
        assert_eq!(
            err.to_string(),
            "unable to find user mallory: no matching entries in passwd file"
        );
        assert!(resolve_user("alice:nope", PASSWD, GROUP).is_err());
        assert!(resolve_user(":0", PASSWD, GROUP).is_err());
        // No passwd at all: numbers still work, names do not.
        assert_eq!(resolve_user("7", "", "").expect("7").uid, 7);
        assert!(resolve_user("root", "", "").is_err());
    }
}
