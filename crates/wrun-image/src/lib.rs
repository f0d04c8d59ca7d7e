//! wrun-image
