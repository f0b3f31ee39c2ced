"""Proc macros in the sandbox: the macro crate compiled for wasm, the native trampoline rustc loads in its
place, and the server that runs the guest (PROTOCOL.md is the contract between them)."""
