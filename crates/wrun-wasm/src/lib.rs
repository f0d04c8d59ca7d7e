//! wrun-wasm (being written)
