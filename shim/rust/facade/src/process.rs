//! `std::process` for the sandbox: the whole public stable API of the real module, with every process
//! operation sent to the host (import table in ffi.rs, contract in shim/host/abi.py), where the policy decides.
//!
//! Real crates (cc, autocfg, version_check, rustc_version, pkg-config) use this module unchanged, so
//! it mirrors std's signatures and trait impls (notes/sandbox-experiments.md §5: a missing `Debug` for
//! `Command` is enough to break cc). The facade applies std's defaults before a request leaves the guest:
//! `spawn` and `status` inherit all three streams, `output` pipes stdout and stderr and nulls stdin;
//! stdio set explicitly always wins.
//!
//! Sandbox differences, each the nearest thing std's documentation allows:
//! - stdio that std would hand to the child as a file descriptor (a `File`, another child's pipe,
//!   `io::pipe()` ends) travels through a host pipe instead: input is copied in right after spawn, output
//!   is copied out when `wait`/`try_wait`/`wait_with_output` sees the child exit. Pipe ends are used up by
//!   the first spawn; later spawns of the same `Command` get the null device for that stream.
//! - `Child::id` is the host's handle number, not an operating-system pid.
//!
//! Everything else (`exit`, `abort`, `id`, `ExitCode`, `Termination`) is the real std's.

pub use real::process::*;

mod child;
mod command;
mod status;
mod stdio;

pub use self::child::{Child, ChildStderr, ChildStdin, ChildStdout};
pub use self::command::{Command, CommandArgs, CommandEnvs};
pub use self::status::{ExitStatus, Output};
pub use self::stdio::Stdio;
