//! Sample plugins for `wrun-plugin`, built from WAT at compile time.
//!
//! Each `wat/*.wat` here becomes a WebAssembly component in Cargo's `OUT_DIR`
//! (see `build.rs`), so nothing binary is committed and a fresh clone needs
//! no toolchain beyond Rust. Each sample is a constant with its bytes and the
//! path of the built file:
//!
//! | sample | what it does |
//! | --- | --- |
//! | [`UPPER`] | well-behaved: upper-cases the payload, logs, reads config key `prefix` |
//! | [`ECHO`] | well-behaved, trivial: answers the payload unchanged (benchmarks) |
//! | [`FILES`] | reads a file through WASI from its first granted directory |
//! | [`SPIN`] | misbehaves: loops forever |
//! | [`HOG`] | misbehaves: grows memory until refused, then aborts |
//! | [`TRAP`] | misbehaves: traps |
//! | [`WRONG_WORLD`] | exports `greet`, not `wrun:plugin/handler` |
//! | [`FOREIGN_IMPORT`] | imports `acme:db/query`, which no host offers |
//! | [`BAD_CALL`] | exports `handler.call` with the wrong type |
#![deny(missing_docs)]

/// A built sample plugin.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// The sample's name (its `.wat` file's stem).
    pub name: &'static str,
    /// Where the build put the component (inside Cargo's `OUT_DIR`).
    pub path: &'static str,
    /// The component's bytes.
    pub bytes: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/samples.rs"));
