//! `std::env` as the real one, with these sandbox fixes:
//! - `temp_dir()`: wasm32-wasip1's std panics there ("no filesystem"), while build scripts (cc among them)
//!   expect a writable directory. The host names the per-run temp dir it preopened read-write
//!   (RunContext.tmp_dir), so files written there stay inside the sandbox.
//! - the current directory: cargo runs a build script in its package directory (CARGO_MANIFEST_DIR), but
//!   wasi-libc starts every module in "/", so `current_dir()` said "/" and `current_dir()?.join("x")`
//!   named a file no preopen holds, while the relative "x" (through the runner's "." preopen) was the
//!   package's. Before `main`, a constructor changes to CARGO_MANIFEST_DIR, which the runner also preopens
//!   at its own path; from then on the real `current_dir`, `set_current_dir`, `path::absolute` and relative
//!   paths agree with a native run. If that directory is not preopened, the change fails and "/" stays.
//! - `split_paths`, `join_paths` (path_var.rs): Linux's, where wasm32-wasip1's std panics or fails.
//! - `home_dir()`: wasm32-wasip1's std always answers `None`; Linux's answers `$HOME` when it is set and
//!   not empty, else the user's passwd entry. The facade answers `$HOME` the same way, which a build script
//!   sees only when its grant passes it (`env-access`), and never looks up a passwd entry (the answer would
//!   name a host directory no grant named); so `None` where Linux would have fallen back to passwd.
//!
//! Not changed: `current_exe()` fails with `Unsupported` as on wasm32-wasip1 (the module has no path a
//! native run would give: cargo runs cratecage's launcher, not the script), `args()` holds one made-up
//! program name, `vars()` holds only the run's granted variables.

pub use real::env::*;

mod path_var;

pub use self::path_var::{join_paths, split_paths, JoinPathsError, SplitPaths};

use real::string::String;
use real::path::{Path, PathBuf};

/// The per-run temporary directory the host preopened for this run.
pub fn temp_dir() -> PathBuf {
    match crate::cratecage_host::temp_dir() {
        Some(raw) if !raw.is_empty() => PathBuf::from(String::from_utf8_lossy(&raw).into_owned()),
        _ => panic!("cratecage: the host has no temp dir for this run"),
    }
}

/// `$HOME` if it is set and not empty, as Linux's std; `None` otherwise (see the module docs).
pub fn home_dir() -> Option<PathBuf> {
    real::env::var_os("HOME").filter(|home| !home.is_empty()).map(PathBuf::from)
}

/// Runs before `main` (wasi-libc's `_start` calls the `.init_array` functions after its own setup). Never
/// panics: a failure leaves wasi-libc's "/".
extern "C" fn cratecage_enter_package_dir() {
    if let Some(dir) = real::env::var_os("CARGO_MANIFEST_DIR") {
        if Path::new(&dir).is_absolute() {
            let _ = real::env::set_current_dir(&dir);
        }
    }
}

// `#[used]` keeps it in every link, as rustc makes the linker load each upstream `#[used]` static.
#[used]
#[link_section = ".init_array"]
static CRATECAGE_ENTER_PACKAGE_DIR: extern "C" fn() = cratecage_enter_package_dir;
