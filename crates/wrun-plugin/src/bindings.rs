//! Rust bindings for the `wrun:plugin` world, generated from `wit/`.
//!
//! Crate-private: no generated (Wasmtime) type reaches the public API. The
//! bindings are for `plugin-core`, the world without WASI; WASI comes from
//! `wasmtime-wasi`'s linker (see `host.rs`).

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "plugin-core",
});
