//! Unpacks one layer file into a directory and prints what it found and how long it took.
//!
//! ```text
//! cargo run --release -p wrun-image --example unpack -- LAYER.tar.gz DEST [gzip|zstd|none]
//! ```
//!
//! `DEST` must not exist yet; it is created. Used to measure the unpacker against `tar -xzf`.

use std::time::Instant;

use wrun_image::unpack::{Compression, UnpackOptions, unpack_layer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1);
    let usage = "usage: unpack LAYER DEST [gzip|zstd|none]";
    let layer = args.next().ok_or(usage)?;
    let dest = args.next().ok_or(usage)?;
    let compression = match args.next().as_deref().and_then(|s| s.to_str()) {
        None | Some("gzip") => Compression::Gzip,
        Some("zstd") => Compression::Zstd,
        Some("none") => Compression::None,
        Some(_) => return Err(usage.into()),
    };

    // The example is a command-line tool: opening the paths it was given is its job.
    std::fs::create_dir(&dest)?;
    let dir = cap_std::fs::Dir::open_ambient_dir(&dest, cap_std::ambient_authority())?;
    let file = std::fs::File::open(&layer)?;

    let start = Instant::now();
    let unpacked = unpack_layer(file, compression, &dir, &UnpackOptions::new())?;
    let elapsed = start.elapsed();
    println!(
        "{} entries, {} bytes uncompressed, diff_id {}, {:.3} s",
        unpacked.entries,
        unpacked.size,
        unpacked.diff_id,
        elapsed.as_secs_f64()
    );
    Ok(())
}
