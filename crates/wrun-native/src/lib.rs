//! wrun-native (being written)
