//! `std::env` as the real one, with two sandbox fixes:
//! - `temp_dir()`: wasm32-wasip1's std panics there ("no filesystem"), while build scripts (cc among them)
//!   expect a writable directory. The host names the per-run temp dir it preopened read-write
//!   (RunContext.tmp_dir), so files written there stay inside the sandbox.
//! - the current directory: cargo runs a build script in its package directory (CARGO_MANIFEST_DIR), but
//!   wasi-libc starts every module in "/", so `current_dir()` said "/" and `current_dir()?.join("x")`
//!   named a file no preopen holds, while the relative "x" (through the runner's "." preopen) was the
//!   package's. Before `main`, a constructor changes to CARGO_MANIFEST_DIR, which the runner also preopens
//!   at its own path; from then on the real `current_dir`, `set_current_dir`, `path::absolute` and relative
//!   paths agree with a native run. If that directory is not preopened, the change fails and "/" stays.

pub use real::env::*;

use real::string::String;
use real::path::{Path, PathBuf};

/// The per-run temporary directory the host preopened for this run.
pub fn temp_dir() -> PathBuf {
    match crate::cratecage_host::temp_dir() {
        Some(raw) if !raw.is_empty() => PathBuf::from(String::from_utf8_lossy(&raw).into_owned()),
        _ => panic!("cratecage: the host has no temp dir for this run"),
    }
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
