//! cratecage's std facade: a crate named `std` that is the real std everywhere except where wasm32-wasip1
//! lacks a capability the host can grant (shim/host/abi.py has the contract; notes/sandbox-experiments.md §1
//! the experiment behind it).
//!
//! Every crate compiled for the sandbox gets `--extern std=<this rlib>`, so `use std::process::Command`
//! in a build script, or in cc/autocfg/version_check, resolves to `process::Command` here, whose calls
//! go to host functions where the policy decides. All other paths (`println!`, `vec!`, `std::fs`, the
//! preludes) resolve through `pub use real::*` to the real std, because a local item shadows a glob import.
//!
//! Local module names must never be names of std modules: a private `mod ffi` would shadow `std::ffi`
//! and make it private to every user. Hence the `cratecage_` prefixes.
//!
//! Below std's API, stat.rs wraps libc's `stat` family at link time (shim/toolchain/facade.py's `LINK_ARGS`) so that
//! `fs::Metadata::permissions()` reports plausible bits instead of "read-only" for everything, and
//! paths.rs gives every spelling of a path one meaning (`<manifest>/../VERSION` is
//! `<workspace>/VERSION`) by replacing wasi-libc's weak `__wasilibc_find_relpath_alloc`, where every libc
//! path function picks its preopened directory. realpath.rs replaces libc's `realpath` (for `fs::canonicalize`) through `--wrap=realpath`: Debian's
//! wasi-libc lacks it and rustup's fails on absolute paths into preopened directories. observe.rs wraps the
//! libc functions behind `std::fs` and `std::env::var*` the same way, to report every failed access and
//! every variable looked up in vain to the host, and in warn mode every successful read and lookup too
//! (the preopens still do the enforcing).
//!
//! `std::thread` (thread.rs) runs a spawned closure on the script's own thread when its handle is joined or
//! dropped, where wasm32-wasip1's std cannot start a thread; `std::env` (env.rs) adds Linux's
//! `split_paths`/`join_paths`, the run's temp dir and the package directory as the current directory.
//!
//! `std::fs` (fs.rs) is the real one but for `copy`, which also copies the source's permission bits as std
//! does natively (wasip1's std does not); modes.rs wraps libc's `chmod` (`fs::set_permissions`) and asks the
//! host, which alone can change a mode, and only of what the run may write.
//!
//! `std::net` (net.rs) replaces `TcpStream` and `ToSocketAddrs` the same way: connections and name lookups
//! go to the host, which allows only the crate's granted routes.
//!
//! The code for building this crate is shim/toolchain/facade.py; the host side of the imports is
//! shim/host/process.py (processes), shim/host/observe.py (reports), shim/host/net.py (sockets) and
//! shim/host/files.py (permission bits).
#![no_std]

extern crate std as real;

pub use real::*;

#[path = "ffi.rs"]
mod cratecage_ffi;
#[path = "host.rs"]
mod cratecage_host;
#[path = "paths.rs"]
mod cratecage_paths;
#[path = "stat.rs"]
mod cratecage_stat;
#[path = "realpath.rs"]
mod cratecage_realpath;
#[path = "observe.rs"]
mod cratecage_observe;
#[path = "threads.rs"]
mod cratecage_threads;
#[path = "modes.rs"]
mod cratecage_modes;

pub mod env;
pub mod fs;
pub mod net;
pub mod process;
pub mod thread;
