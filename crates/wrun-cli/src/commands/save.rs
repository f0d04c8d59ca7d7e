use crate::cli::SaveArgs;
use crate::context::Context;
use anyhow::{Context as _, Result};
use std::process::ExitCode;

pub fn run(ctx: &Context, args: SaveArgs) -> Result<ExitCode> {
    let store = ctx.store()?;
    let (record, name) = store.resolve(&args.image)?;
    wrun_image::archive::save(&store, &record, name.as_deref(), &args.output)
        .with_context(|| format!("save {} to {}", args.image, args.output.display()))?;
    Ok(ExitCode::SUCCESS)
}
