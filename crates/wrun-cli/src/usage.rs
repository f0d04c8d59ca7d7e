//! Usage errors: clap's words, on one line `wrun: …`, exit 125 as every other
//! failure of wrun's own (docker's and podman's code), not clap's exit 2 and
//! screenful; `--help` and `--version` print to stdout and exit 0.

use crate::EXIT_WRUN_FAILED;
use clap::error::{ContextKind, ContextValue, ErrorKind};
use std::io::Write as _;
use std::process::ExitCode;

/// Prints what `e` says and returns the exit code.
pub fn report(e: &clap::Error) -> ExitCode {
    match e.kind() {
        // A closed stdout (`wrun --help | head -1`) is no failure.
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        // `wrun`, `wrun image`: the help, then the one line.
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            let _ = writeln!(std::io::stderr(), "wrun: no command given");
            return ExitCode::from(EXIT_WRUN_FAILED);
        }
        _ => {}
    }
    let _ = writeln!(std::io::stderr(), "wrun: {}", one_line(e));
    ExitCode::from(EXIT_WRUN_FAILED)
}

/// clap's message, its tips and where to find help, on one line. Tips that
/// suggest a name far from what was typed are left out: clap suggests `push`
/// for `ps`, which is not a typo of it.
fn one_line(e: &clap::Error) -> String {
    let rendered = e.render().to_string();
    let typed = [ContextKind::InvalidSubcommand, ContextKind::InvalidArg]
        .into_iter()
        .find_map(|k| match e.get(k) {
            Some(ContextValue::String(s)) => Some(s.clone()),
            _ => None,
        });
    let mut message = String::new();
    let mut tips = Vec::new();
    let mut command = None;
    for line in rendered.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(usage) = line.strip_prefix("Usage: ") {
            command = Some(
                usage
                    .split_whitespace()
                    .take_while(|w| !w.starts_with(['[', '<']) && w.chars().any(char::is_lowercase))
                    .collect::<Vec<_>>()
                    .join(" "),
            );
        } else if let Some(tip) = line.strip_prefix("tip: ") {
            match &typed {
                Some(t) => tips.extend(close_tip(tip, t)),
                None => tips.push(tip.to_string()),
            }
        } else if !line.starts_with("For more information") {
            if !message.is_empty() {
                message.push(' ');
            }
            message.push_str(line.strip_prefix("error: ").unwrap_or(line));
        }
    }
    for tip in tips {
        message.push_str("; ");
        message.push_str(&tip);
    }
    match command {
        Some(c) => format!("{message} (see '{c} --help')"),
        None => message,
    }
}

/// The tip as it is worth showing for `typed`: as it is when it suggests no
/// name; with only the suggested names that are near misses of `typed`, or
/// `None` when none is.
fn close_tip(tip: &str, typed: &str) -> Option<String> {
    let what = if let Some(rest) = tip.strip_prefix("a similar ") {
        rest.split_once(" exists: ")?.0.to_string()
    } else if let Some(rest) = tip.strip_prefix("some similar ") {
        let plural = rest.split_once(" exist: ")?.0;
        plural.strip_suffix('s').unwrap_or(plural).to_string()
    } else {
        return Some(tip.to_string());
    };
    let close: Vec<&str> = tip
        .split('\'')
        .skip(1)
        .step_by(2)
        .filter(|s| near_miss(typed, s))
        .collect();
    match close.as_slice() {
        [] => None,
        [one] => Some(format!("a similar {what} exists: '{one}'")),
        many => Some(format!(
            "some similar {what}s exist: '{}'",
            many.join("', '")
        )),
    }
}

/// A typo: at most one edit (insertion, deletion, substitution or swap of
/// neighbours) per four characters, and at least one allowed.
fn near_miss(typed: &str, name: &str) -> bool {
    let a: Vec<char> = typed.trim_start_matches('-').chars().collect();
    let b: Vec<char> = name.trim_start_matches('-').chars().collect();
    let allowed = (a.len().max(b.len()) / 4).max(1);
    edit_distance(&a, &b) <= allowed
}

/// Optimal string alignment distance (Levenshtein with swaps of neighbours).
fn edit_distance(a: &[char], b: &[char]) -> usize {
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::{close_tip, near_miss};

    #[test]
    fn near_misses_are_typos_not_other_words() {
        assert!(!near_miss("ps", "push"));
        assert!(!near_miss("ls", "load"));
        assert!(near_miss("pul", "pull"));
        assert!(near_miss("imags", "images"));
        assert!(near_miss("inpsect", "inspect"));
        assert!(near_miss("--evn", "--env"));
        assert!(near_miss("--entrypiont", "--entrypoint"));
        assert!(!near_miss("--net", "--init"));
    }

    #[test]
    fn tips_keep_only_close_names() {
        assert_eq!(close_tip("a similar subcommand exists: 'push'", "ps"), None);
        assert_eq!(
            close_tip("some similar subcommands exist: 'push', 'pull'", "pul").as_deref(),
            Some("a similar subcommand exists: 'pull'")
        );
        assert_eq!(
            close_tip("some similar subcommands exist: 'image', 'images'", "imags").as_deref(),
            Some("some similar subcommands exist: 'image', 'images'")
        );
        let other = "to pass '-x' as a value, use '-- -x'";
        assert_eq!(close_tip(other, "-x").as_deref(), Some(other));
    }
}
