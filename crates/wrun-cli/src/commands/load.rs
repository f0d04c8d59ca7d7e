use crate::cli::LoadArgs;
use crate::context::Context;
use crate::progress;
use anyhow::{Context as _, Result};
use std::io::Write as _;
use std::process::ExitCode;

pub fn run(ctx: &Context, args: LoadArgs) -> Result<ExitCode> {
    let store = ctx.store()?;
    let mut opts = ctx.pull_options()?;
    opts.progress = progress::for_pull(args.quiet);
    let pulled = ctx
        .runtime()?
        .block_on(wrun_image::archive::load(&store, &args.input, &opts))
        .with_context(|| format!("load {}", args.input.display()))?;
    if !args.quiet {
        eprintln!("Loaded image: {}", pulled.name);
    }
    writeln!(std::io::stdout().lock(), "{}", pulled.record.digest)?;
    Ok(ExitCode::SUCCESS)
}
