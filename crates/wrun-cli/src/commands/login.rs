use crate::cli::{LoginArgs, LogoutArgs};
use crate::context::Context;
use anyhow::{Context as _, Result, bail};
use std::io::Write as _;
use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;
use wrun_image::auth::Credentials;

pub fn login(ctx: &Context, args: LoginArgs) -> Result<ExitCode> {
    let auth = ctx
        .auth_file()
        .context("cannot find the credentials file: set DOCKER_CONFIG or HOME")?;
    let Some(username) = args.username else {
        bail!("login {}: --username is required", args.registry);
    };
    let secret = match (args.password, args.password_stdin) {
        (Some(p), _) => p,
        (None, true) => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("read password from stdin")?;
            line.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) if std::io::stdin().is_terminal() => {
            bail!(
                "login {}: give --password-stdin or --password",
                args.registry
            )
        }
        (None, false) => bail!(
            "login {}: give --password-stdin or --password",
            args.registry
        ),
    };
    if secret.is_empty() {
        bail!("login {}: empty password", args.registry);
    }
    let creds = Credentials { username, secret };
    let opts = ctx.pull_options()?;
    ctx.runtime()?
        .block_on(wrun_image::push::check_login(&args.registry, &creds, &opts))
        .with_context(|| format!("login {}", args.registry))?;
    auth.store(&args.registry, &creds)?;
    writeln!(std::io::stdout().lock(), "Login Succeeded")?;
    Ok(ExitCode::SUCCESS)
}

pub fn logout(ctx: &Context, args: LogoutArgs) -> Result<ExitCode> {
    let auth = ctx
        .auth_file()
        .context("cannot find the credentials file: set DOCKER_CONFIG or HOME")?;
    if auth.remove(&args.registry)? {
        writeln!(
            std::io::stdout().lock(),
            "Removed login credentials for {}",
            args.registry
        )?;
        Ok(ExitCode::SUCCESS)
    } else {
        bail!("not logged in to {}", args.registry)
    }
}
