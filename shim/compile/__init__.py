"""Compiling for wasm32-wasip1: the confined wasm rustc, the replay of a crate's closure, its private dirs."""
