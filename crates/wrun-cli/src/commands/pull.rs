use crate::cli::PullArgs;
use crate::context::Context;
use crate::progress;
use anyhow::{Context as _, Result};
use std::io::Write as _;
use std::process::ExitCode;
use wrun_image::Platform;

pub fn run(ctx: &Context, args: PullArgs) -> Result<ExitCode> {
    let store = ctx.store()?;
    let mut opts = ctx.pull_options()?;
    opts.platform = args.platform.as_deref().map(Platform::parse).transpose()?;
    opts.progress = progress::for_pull(args.quiet);
    let pulled = ctx
        .runtime()?
        .block_on(wrun_image::pull::pull(&store, &args.image, &opts))
        .with_context(|| format!("pull {}", args.image))?;
    if !args.quiet {
        eprintln!(
            "{} ({}, {})",
            pulled.name, pulled.record.classification.kind, pulled.record.platform
        );
    }
    writeln!(std::io::stdout().lock(), "{}", pulled.record.digest)?;
    Ok(ExitCode::SUCCESS)
}
