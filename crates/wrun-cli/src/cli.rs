use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Pull OCI images and run them: WebAssembly in a Wasmtime sandbox, Linux
/// images natively in namespaces and cgroups.
#[derive(Debug, Parser)]
#[command(name = "wrun", version, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// The store directory [default: /var/lib/wrun as root, $XDG_DATA_HOME/wrun otherwise]
    #[arg(long, global = true, env = "WRUN_ROOT", value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// A registry to reach over plain HTTP (loopback registries always are); repeatable
    #[arg(long = "insecure-registry", global = true, value_name = "HOST[:PORT]")]
    pub insecure_registries: Vec<String>,
    /// wrun's configuration file [default: /etc/wrun/config.json as root, $XDG_CONFIG_HOME/wrun/config.json otherwise]
    #[arg(long, global = true, env = "WRUN_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Pull an image from a registry (or an oci:, oci-archive:, docker-archive: source)
    Pull(PullArgs),
    /// Push a stored image to a registry
    Push(PushArgs),
    /// List stored images
    Images(ImagesArgs),
    /// Show what the store knows of an image, as JSON
    Inspect(InspectArgs),
    /// Remove images
    Rmi(RmiArgs),
    /// Manage images
    #[command(subcommand)]
    Image(ImageCommand),
    /// Write an image to an oci-archive file
    Save(SaveArgs),
    /// Read an image from an oci-archive or docker-archive file
    Load(LoadArgs),
    /// Store credentials for a registry
    Login(LoginArgs),
    /// Remove the credentials for a registry
    Logout(LogoutArgs),
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Remove blobs and unpacked layers that no image references
    Prune,
    /// List stored images
    Ls(ImagesArgs),
    /// Remove images
    Rm(RmiArgs),
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// Image reference (`busybox`, `host:port/repo:tag`, `repo@sha256:…`) or local source
    pub image: String,
    /// The platform to pick from a multi-platform image
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<String>,
    /// Print only the image digest
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// The stored image
    pub image: String,
    /// Where to push it [default: the image's own name]
    pub destination: Option<String>,
    /// Print only the manifest digest
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Output format
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Print only image ids
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Image name, digest or id
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RmiArgs {
    /// Image names, digests or ids
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[derive(Debug, Args)]
pub struct SaveArgs {
    /// The stored image
    pub image: String,
    /// The archive to write
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The archive to read
    #[arg(short, long, value_name = "FILE")]
    pub input: PathBuf,
    /// Print only the image digest
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The registry (`host[:port]`)
    pub registry: String,
    /// User name
    #[arg(short, long)]
    pub username: Option<String>,
    /// Password (prefer --password-stdin)
    #[arg(short, long, conflicts_with = "password_stdin")]
    pub password: Option<String>,
    /// Read the password from standard input
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// The registry (`host[:port]`)
    pub registry: String,
}
