//! `split_paths` and `join_paths`, `PATH`-style lists, as on Linux: wasm32-wasip1's std has no such list
//! (its `split_paths` panics with "unsupported", its `join_paths` always fails), while build scripts pass
//! `PATH`, `CMAKE_PREFIX_PATH` or `PKG_CONFIG_PATH` around (the cmake crate calls both on every build).
//!
//! The code is Unix's std (library/std/src/sys/pal/unix/os.rs) over the same `OsStr` bytes: `:` separates,
//! an empty segment is an empty path (the current directory, for `PATH`), and a path that contains `:`
//! cannot be joined. The public types mirror std::env's: their `Debug` and `Display` print what Linux's do,
//! since build scripts print them in their own messages.

use core::fmt;
use core::iter::Map;
use core::slice::Split;

use real::error::Error;
use real::ffi::{OsStr, OsString};
use real::os::wasi::ffi::{OsStrExt, OsStringExt};
use real::path::PathBuf;
use real::vec::Vec;

const PATH_SEPARATOR: u8 = b':';

/// An iterator over the paths of a `PATH`-style list, from [`split_paths`].
#[must_use = "iterators are lazy and do nothing unless consumed"]
pub struct SplitPaths<'a> {
    inner: Map<Split<'a, u8, fn(&u8) -> bool>, fn(&'a [u8]) -> PathBuf>,
}

/// The paths of `unparsed`, split at every `:` (Linux's std).
pub fn split_paths<T: AsRef<OsStr> + ?Sized>(unparsed: &T) -> SplitPaths<'_> {
    fn is_separator(b: &u8) -> bool {
        *b == PATH_SEPARATOR
    }
    fn into_pathbuf(part: &[u8]) -> PathBuf {
        PathBuf::from(OsStr::from_bytes(part))
    }
    let bytes = unparsed.as_ref().as_bytes();
    SplitPaths { inner: bytes.split(is_separator as fn(&u8) -> bool).map(into_pathbuf as fn(&[u8]) -> PathBuf) }
}

impl<'a> Iterator for SplitPaths<'a> {
    type Item = PathBuf;
    fn next(&mut self) -> Option<PathBuf> {
        self.inner.next()
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl fmt::Debug for SplitPaths<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SplitPaths").finish_non_exhaustive()
    }
}

/// A path given to [`join_paths`] contained the separator `:`.
pub struct JoinPathsError {
    _private: (),
}

/// `JoinPathsError { inner: JoinPathsError }`, as Linux's prints (its inner type has the same name).
impl fmt::Debug for JoinPathsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinPathsError").field("inner", &format_args!("JoinPathsError")).finish()
    }
}

/// `paths` joined with `:`, or an error if one of them contains `:` (Linux's std).
pub fn join_paths<I, T>(paths: I) -> Result<OsString, JoinPathsError>
where
    I: IntoIterator<Item = T>,
    T: AsRef<OsStr>,
{
    let mut joined = Vec::new();
    for (i, path) in paths.into_iter().enumerate() {
        let path = path.as_ref().as_bytes();
        if i > 0 {
            joined.push(PATH_SEPARATOR);
        }
        if path.contains(&PATH_SEPARATOR) {
            return Err(JoinPathsError { _private: () });
        }
        joined.extend_from_slice(path);
    }
    Ok(OsString::from_vec(joined))
}

impl fmt::Display for JoinPathsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "path segment contains separator `{}`", char::from(PATH_SEPARATOR))
    }
}

impl Error for JoinPathsError {}
