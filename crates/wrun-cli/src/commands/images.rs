use crate::cli::{Format, ImagesArgs};
use crate::context::Context;
use anyhow::Result;
use serde_json::json;
use std::io::Write;
use std::process::ExitCode;

pub fn run(ctx: &Context, args: ImagesArgs) -> Result<ExitCode> {
    let images = ctx.store()?.images()?;
    let mut out = std::io::stdout().lock();
    if args.quiet {
        for (record, _) in &images {
            writeln!(out, "{}", record.digest.short())?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    if args.format == Format::Json {
        let list: Vec<_> = images
            .iter()
            .map(|(r, names)| {
                json!({
                    "names": names,
                    "digest": r.digest.to_string(),
                    "kind": r.classification.kind,
                    "platform": r.platform.to_string(),
                    "size": r.size(),
                })
            })
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&list)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "{:<40} {:<12} {:<14} {:<7} {:>10}",
        "REPOSITORY", "TAG", "IMAGE ID", "KIND", "SIZE"
    )?;
    for (record, names) in &images {
        let rows: Vec<(String, String)> = if names.is_empty() {
            vec![("<none>".into(), "<none>".into())]
        } else {
            names.iter().map(|n| split_name(n)).collect()
        };
        for (repo, tag) in rows {
            writeln!(
                out,
                "{repo:<40} {tag:<12} {:<14} {:<7} {:>10}",
                record.digest.short(),
                record.classification.kind.to_string(),
                human_size(record.size())
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn split_name(name: &str) -> (String, String) {
    if let Some((repo, _)) = name.split_once('@') {
        return (repo.to_string(), "<none>".to_string());
    }
    match name.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo.to_string(), tag.to_string()),
        _ => (name.to_string(), "<none>".to_string()),
    }
}

pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
