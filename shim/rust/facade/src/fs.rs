//! `std::fs` as the real one, but `copy` also gives the copy the source's permission bits, as std does
//! natively (its unix `copy` sets them; wasm32-wasip1's never does, so a copied `configure` or `*.sh`
//! lost its `+x` and tikv-jemalloc-sys's `config.status` failed with "Permission denied").
//!
//! The bits come from `metadata` (stat.rs asks the host for the real ones) and go through
//! `set_permissions`, i.e. libc's `chmod`, which modes.rs sends to the host (shim/host/files.py): it sets
//! `mode & 0o777` (never setuid, setgid or sticky) on a file the run may write, and refuses anything else.
//! Like std, only a regular file at `to` gets them; a copy whose bits already match is left alone.

pub use real::fs::*;

use real::io;
use real::path::Path;

/// `std::fs::copy`, with the source's permission bits on the copy (see the module docs).
pub fn copy<P: AsRef<Path>, Q: AsRef<Path>>(from: P, to: Q) -> io::Result<u64> {
    let (from, to) = (from.as_ref(), to.as_ref());
    let copied = real::fs::copy(from, to)?;
    let wanted = real::fs::metadata(from)?.permissions();
    let now = real::fs::metadata(to)?;
    if now.is_file() && now.permissions() != wanted {
        real::fs::set_permissions(to, wanted)?;
    }
    Ok(copied)
}
