use crate::cli::PushArgs;
use crate::context::Context;
use anyhow::{Context as _, Result};
use std::io::Write as _;
use std::process::ExitCode;

pub fn run(ctx: &Context, args: PushArgs) -> Result<ExitCode> {
    let store = ctx.store()?;
    let (record, name) = store.resolve(&args.image)?;
    let target = match (args.destination.as_deref(), name.as_deref()) {
        (Some(d), _) => d.strip_prefix("docker://").unwrap_or(d).to_string(),
        (None, Some(n)) => n.to_string(),
        (None, None) => anyhow::bail!(
            "push {}: name a destination, the image has no name",
            args.image
        ),
    };
    let digest = ctx
        .runtime()?
        .block_on(wrun_image::push::push(
            &store,
            &record,
            &target,
            &ctx.pull_options()?,
        ))
        .with_context(|| format!("push {target}"))?;
    if !args.quiet {
        eprintln!("pushed {target}");
    }
    writeln!(std::io::stdout().lock(), "{digest}")?;
    Ok(ExitCode::SUCCESS)
}
