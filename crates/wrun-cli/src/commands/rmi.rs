use crate::cli::RmiArgs;
use crate::commands::images::human_size;
use crate::context::Context;
use anyhow::{Context as _, Result};
use std::process::ExitCode;

pub fn run(ctx: &Context, args: RmiArgs) -> Result<ExitCode> {
    let store = ctx.store()?;
    for name in &args.images {
        for removed in store
            .remove(name)
            .with_context(|| format!("remove {name}"))?
        {
            println!("Untagged: {removed}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn prune(ctx: &Context) -> Result<ExitCode> {
    let report = ctx.store()?.prune()?;
    println!(
        "Deleted {} blobs, {} layers, {} leftovers; reclaimed {}",
        report.blobs,
        report.layers,
        report.temporary,
        human_size(report.bytes)
    );
    Ok(ExitCode::SUCCESS)
}
