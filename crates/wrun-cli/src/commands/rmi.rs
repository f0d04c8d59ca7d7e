use crate::cli::RmiArgs;
use crate::commands::images::human_size;
use crate::context::Context;
use anyhow::{Context as _, Result};
use std::io::Write as _;
use std::process::ExitCode;

pub fn run(ctx: &Context, args: RmiArgs) -> Result<ExitCode> {
    let store = ctx.store()?;
    // Every name is removed even when stdout is closed (`wrun rmi a b | true`):
    // the first failed write is returned once the work is done.
    let mut out = std::io::stdout().lock();
    let mut written = Ok(());
    for name in &args.images {
        for removed in store
            .remove(name)
            .with_context(|| format!("remove {name}"))?
        {
            if written.is_ok() {
                written = writeln!(out, "Untagged: {removed}");
            }
        }
    }
    written?;
    Ok(ExitCode::SUCCESS)
}

pub fn prune(ctx: &Context) -> Result<ExitCode> {
    let store = ctx.store()?;
    let report = store.prune()?;
    let runner = wrun::Runner::new(store, ctx.pull_options()?);
    let cache = runner
        .prune_cache()
        .context("prune the compiled-code cache")?;
    writeln!(
        std::io::stdout().lock(),
        "Deleted {} blobs, {} layers, {} leftovers; reclaimed {} ({} bytes; and {} of compiled code)",
        report.blobs,
        report.layers,
        report.temporary,
        human_size(report.bytes),
        report.bytes,
        human_size(cache)
    )?;
    Ok(ExitCode::SUCCESS)
}
