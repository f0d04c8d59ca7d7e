//! One file per verb: each turns its arguments into library calls.

mod images;
mod inspect;
mod load;
mod login;
mod pull;
mod push;
mod rmi;
mod run;
mod save;

use crate::cli::{Cli, Command, ImageCommand};
use crate::context::Context;
use anyhow::Result;
use std::process::ExitCode;

pub fn dispatch(cli: Cli) -> Result<ExitCode> {
    let ctx = Context::new(cli.global);
    match cli.command {
        Command::Run(a) => run::run(&ctx, *a),
        Command::Pull(a) => pull::run(&ctx, a),
        Command::Push(a) => push::run(&ctx, a),
        Command::Images(a) | Command::Image(ImageCommand::Ls(a)) => images::run(&ctx, a),
        Command::Inspect(a) => inspect::run(&ctx, a),
        Command::Rmi(a) | Command::Image(ImageCommand::Rm(a)) => rmi::run(&ctx, a),
        Command::Image(ImageCommand::Prune) => rmi::prune(&ctx),
        Command::Save(a) => save::run(&ctx, a),
        Command::Load(a) => load::run(&ctx, a),
        Command::Login(a) => login::login(&ctx, a),
        Command::Logout(a) => login::logout(&ctx, a),
    }
}
