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
    /// The store directory [env: WRUN_ROOT] [default: /var/lib/wrun as root, $XDG_DATA_HOME/wrun otherwise]
    // WRUN_ROOT is read by `Context`, not by clap, so that an empty one is
    // unset as an empty XDG_DATA_HOME is, not "a value is required for --root".
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// A registry to reach over plain HTTP (loopback registries always are); repeatable
    #[arg(long = "insecure-registry", global = true, value_name = "HOST[:PORT]")]
    pub insecure_registries: Vec<String>,
    /// wrun's configuration file [env: WRUN_CONFIG] [default: /etc/wrun/config.json as root, $XDG_CONFIG_HOME/wrun/config.json otherwise]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run an image (pulled first if missing) or a local .wasm/.wat file
    Run(Box<RunArgs>),
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

/// `wrun run [OPTIONS] IMAGE|FILE [ARG]...`: as in docker and podman (cobra's
/// `SetInterspersed(false)`), wrun's options come before IMAGE and everything
/// after it is the workload's, `--help`, `-e`, `-v` and `--` included. In
/// clap that is one positional, IMAGE and its arguments, whose first value
/// starts the trailing values: the options are parsed until IMAGE, never after.
#[derive(Debug, Args)]
#[command(override_usage = "wrun run [OPTIONS] IMAGE|FILE [ARG]...")]
pub struct RunArgs {
    /// Set an environment variable (`K=V`, or `K` to pass the host's value)
    #[arg(short, long, value_name = "K[=V]")]
    pub env: Vec<String>,
    /// Read environment variables from a file of K=V lines
    #[arg(long, value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// Grant a host directory: HOST:PATH[:ro|rw] (read-write unless :ro)
    #[arg(short, long, value_name = "HOST:PATH[:ro]")]
    pub volume: Vec<String>,
    /// Working directory inside
    #[arg(short, long, value_name = "DIR")]
    pub workdir: Option<String>,
    /// Replace the image's entrypoint ("" clears it)
    #[arg(long, value_name = "CMD")]
    pub entrypoint: Option<String>,
    /// Keep stdin connected
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a terminal (native only)
    #[arg(short, long)]
    pub tty: bool,
    /// Memory limit (e.g. 64m): Wasm linear memory, or the container's cgroup
    #[arg(short, long, value_name = "SIZE")]
    pub memory: Option<String>,
    /// Memory plus swap limit, -1 for unlimited swap (native only)
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Process limit (native only)
    #[arg(long, value_name = "N")]
    pub pids_limit: Option<i64>,
    /// CPU quota in CPUs (native only)
    #[arg(long, value_name = "N")]
    pub cpus: Option<f64>,
    /// CPU shares, a relative weight (native only)
    #[arg(long, value_name = "N")]
    pub cpu_shares: Option<u64>,
    /// Stop the workload after this long (e.g. 500ms, 10s, 2m); exits 124
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
    /// Wasm fuel: instructions the guest may execute (Wasm only); exits 134 when spent
    #[arg(long, value_name = "N")]
    pub fuel: Option<u64>,
    /// Network: none (the default) or host
    #[arg(long, default_value = "none", value_name = "none|host")]
    pub network: String,
    /// When to pull: missing, always or never
    #[arg(long, default_value = "missing", value_name = "POLICY")]
    pub pull: String,
    /// The platform to pull from a multi-platform image
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<String>,
    /// User to run as: USER or USER:GROUP, each a name or a number (native only)
    #[arg(short, long)]
    pub user: Option<String>,
    /// Hostname inside (native only)
    #[arg(long)]
    pub hostname: Option<String>,
    /// Mount a fresh tmpfs at PATH; OPTIONS as docker's: size, mode, uid, gid, exec, suid, dev, ro (default noexec,nosuid,nodev, mode 1777) (native only)
    #[arg(long, value_name = "PATH[:OPTIONS]")]
    pub tmpfs: Vec<String>,
    /// Give the container a host device, with PERMS a subset of rwm (native only)
    #[arg(long, value_name = "HOST[:CONTAINER][:PERMS]")]
    pub device: Vec<String>,
    /// Mount the root file system read-only (a Wasm guest's always is)
    #[arg(long)]
    pub read_only: bool,
    /// Add a capability to docker's default set (native only)
    #[arg(long, value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Drop a capability (native only)
    #[arg(long, value_name = "CAP")]
    pub cap_drop: Vec<String>,
    /// All capabilities, no seccomp filter, every host device (native only)
    #[arg(long)]
    pub privileged: bool,
    /// seccomp=unconfined or seccomp=PROFILE.json (native only)
    #[arg(long, value_name = "OPT")]
    pub security_opt: Vec<String>,
    /// Run an init as pid 1 that reaps zombies and forwards signals (native only)
    #[arg(long)]
    pub init: bool,
    /// Accepted for docker compatibility: wrun always removes a container when it ends
    #[arg(long)]
    pub rm: bool,
    /// Pull quietly
    #[arg(short, long)]
    pub quiet: bool,
    /// Say whether Wasm code was compiled or cached, and print trap backtraces
    #[arg(long)]
    pub debug: bool,
    /// The image (a reference, or a local .wasm/.wat file), then the
    /// arguments that replace its command: everything after IMAGE is the
    /// workload's
    #[arg(
        value_name = "IMAGE",
        required = true,
        num_args = 1..,
        trailing_var_arg = true
    )]
    pub command: Vec<String>,
}

impl RunArgs {
    /// The image reference or local file: the first of `command`.
    pub fn image(&self) -> &str {
        self.command.first().map_or("", String::as_str)
    }

    /// The workload's arguments: everything after the image.
    pub fn workload_args(&self) -> &[String] {
        self.command.get(1..).unwrap_or_default()
    }
}
