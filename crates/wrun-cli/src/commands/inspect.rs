use crate::cli::InspectArgs;
use crate::context::Context;
use anyhow::{Context as _, Result};
use serde_json::{Value, json};
use std::io::Write as _;
use std::process::ExitCode;

pub fn run(ctx: &Context, args: InspectArgs) -> Result<ExitCode> {
    let store = ctx.store()?;
    let names_of = store.images()?;
    let mut out = Vec::new();
    for name in &args.images {
        let (record, _) = store.resolve(name)?;
        let config: Value = serde_json::from_slice(&store.read_blob(&record.config.digest)?)
            .with_context(|| format!("config of {name}"))?;
        let names = names_of
            .iter()
            .find(|(r, _)| r.digest == record.digest)
            .map(|(_, n)| n.clone())
            .unwrap_or_default();
        out.push(json!({
            "names": names,
            "digest": record.digest.to_string(),
            "media_type": record.media_type,
            "index_digest": record.index_digest.as_ref().map(ToString::to_string),
            "platform": record.platform.to_string(),
            "kind": record.classification.kind,
            "classification": record.classification,
            "size": record.size(),
            "config": config,
            "layers": record.layers,
        }));
    }
    writeln!(
        std::io::stdout().lock(),
        "{}",
        serde_json::to_string_pretty(&out)?
    )?;
    Ok(ExitCode::SUCCESS)
}
