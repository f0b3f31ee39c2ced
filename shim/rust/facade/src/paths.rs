//! One meaning for every spelling of a path: `<manifest>/../VERSION`, `./../VERSION`, `src/../../VERSION`,
//! `//ws//VERSION` and `/ws/VERSION` all name `/ws/VERSION`, by every route (open, stat, opendir, mkdir,
//! unlink, rename, link, symlink, chdir, canonicalize) and in every report to the host.
//!
//! Why: wasi-libc resolves a path by taking the preopened directory whose guest path is the longest prefix
//! of it and handing the rest, verbatim, to `path_open` & co. on that directory's fd. So
//! `<manifest>/../VERSION` went to the package's preopen as `../VERSION`, which wasmtime refuses as an
//! escape (EPERM), even when the policy grants `/ws/VERSION` and the runner preopened it (shim/confine/fsview.py
//! `file_views`); and the report named `/ws/VERSION`, so the paste-ready entry asked for what was granted.
//!
//! How: every path function of wasi-libc (posix.c's `open`, `stat`, `opendir`, `linkat`, ..., preopens.c's
//! `__wasilibc_find_relpath`, chdir.c's `chdir`) finds its directory through `__wasilibc_find_relpath_alloc`,
//! which chdir.c defines *weak* (the header `wasi/libc-find-relpath.h` declares it so) and which makes a
//! relative path absolute against the current directory. The strong definition here replaces it in the
//! link (no `--wrap`, so calls from inside chdir.c come here too): it makes the path absolute and
//! normalises it *lexically* (`normalize`: empty and `.` components dropped, `..` takes back one component,
//! never above "/"), then lets wasi-libc's `__wasilibc_find_abspath` pick the preopen and the relative rest,
//! which holds no `..` any more. What that rest may reach is still decided by wasmtime alone: it opens it
//! beneath the preopen's fd, and refuses any symbolic link on the way that leads out (notes/
//! sandbox-experiments.md §3). So normalising chooses *which* grant a path is looked up in, never widens one.
//!
//! Lexical is not POSIX where a symbolic link precedes `..`: natively `OUT_DIR/l/../x` with `l -> /etc`
//! is `/x`; here it is `OUT_DIR/x`. That is the sandbox-safe choice: a link the script planted (or found)
//! cannot change what a path with `..` means, so a spelling names the same thing for the preopen choice,
//! for the observation report (observe.rs) and for the policy (which matches grants on normalised text,
//! shim/policy/capabilities.py), and `canonicalize` answers for the same file (realpath.rs normalises first too).
//! A link's own target is still followed physically, by wasmtime, inside its preopen.
//!
//! Kept from POSIX: a path that ends in `/`, `/.` or `/..` keeps a trailing `/` (it must be a directory);
//! "" is ENOENT (wasi-libc took it for the current directory). No length limit is added: as before, only
//! the part below the preopen reaches the host (and Linux's PATH_MAX there); a long `..` chain shrinks.
//! The normalised path lives in a `malloc`ed buffer for the length of the call: nothing here calls std
//! (whose fs is built on these very functions) or Rust's allocator. wasi-libc's callers turn any failure
//! here into ENOENT ("no preopen holds it").

use core::ffi::{c_char, c_int, c_void, CStr};

const ENOENT: c_int = 44; // wasi-libc's errno numbering (WASI preview 1)
const ENOMEM: c_int = 48;
const ERANGE: c_int = 68;
/// Linux's PATH_MAX: the longest path (with its NUL) the host takes, and observe.rs reports.
pub(crate) const PATH_MAX: usize = 4096;

extern "C" {
    #[allow(non_upper_case_globals)]
    static mut errno: c_int;
    /// wasi-libc's current directory (getcwd.c), absolute; `chdir` replaces it.
    static __wasilibc_cwd: *const c_char;
    fn __wasilibc_find_abspath(path: *const c_char, abs_prefix: *mut *const c_char,
                               relative_path: *mut *const c_char) -> c_int;
    fn malloc(size: usize) -> *mut c_void;
    fn realloc(ptr: *mut c_void, size: usize) -> *mut c_void;
    fn free(ptr: *mut c_void);
}

/// Appends the components of `path` to the absolute path `buf[base..*len]` ("" there is "/"): empty and
/// `.` components are dropped, `..` takes back one component (never above "/"). False when `buf` is too
/// small (then `*len` is undefined); the result never needs more than `*len - base + 1 + path.len()`.
pub(crate) fn normalize(buf: &mut [u8], len: &mut usize, base: usize, path: &[u8]) -> bool {
    for component in path.split(|&b| b == b'/') {
        match component {
            b"" | b"." => {}
            b".." => {
                let slash = buf[base..*len].iter().rposition(|&b| b == b'/');
                *len = base + slash.unwrap_or(0);
            }
            _ => {
                let end = *len + 1 + component.len();
                if end > buf.len() {
                    return false;
                }
                buf[*len] = b'/';
                buf[*len + 1..end].copy_from_slice(component);
                *len = end;
            }
        }
    }
    true
}

/// Whether a path must name a directory: it ends in `/`, or its last component is `.` or `..`.
fn names_a_directory(path: &[u8]) -> bool {
    path.ends_with(b"/") || path == b"." || path == b".." || path.ends_with(b"/.") || path.ends_with(b"/..")
}

/// `path` (not empty) made absolute against `cwd` and normalised into `buf`, which needs room for
/// `cwd.len() + path.len() + 3` bytes, with a trailing `/` where it must name a directory and a NUL;
/// returns its length without the NUL.
pub(crate) fn absolute_into(buf: &mut [u8], cwd: &[u8], path: &[u8]) -> usize {
    let mut len = 0;
    if path[0] != b'/' {
        normalize(buf, &mut len, 0, cwd);
    }
    normalize(buf, &mut len, 0, path);
    if len == 0 || names_a_directory(path) {
        buf[len] = b'/';
        len += 1;
    }
    buf[len] = 0;
    len
}

/// wasi-libc's hook (see the module docs): the preopened fd to resolve `path` from, `*abs_prefix` set to
/// that preopen's name and `*relative_buf` (grown with `realloc` when `can_realloc`, else ERANGE) to the
/// path below it; -1 and errno when no preopen holds it.
#[no_mangle]
pub unsafe extern "C" fn __wasilibc_find_relpath_alloc(
    path: *const c_char,
    abs_prefix: *mut *const c_char,
    relative_buf: *mut *mut c_char,
    relative_buf_len: *mut usize,
    can_realloc: c_int,
) -> c_int {
    let path = if path.is_null() { &b""[..] } else { CStr::from_ptr(path).to_bytes() };
    if path.is_empty() {
        errno = ENOENT;
        return -1;
    }
    let cwd = if path[0] == b'/' || __wasilibc_cwd.is_null() { &b"/"[..] } else { CStr::from_ptr(__wasilibc_cwd).to_bytes() };
    let room = cwd.len() + path.len() + 3;
    let raw = malloc(room) as *mut u8;
    if raw.is_null() {
        errno = ENOMEM;
        return -1;
    }
    let buf = core::slice::from_raw_parts_mut(raw, room);
    absolute_into(buf, cwd, path);
    let fd = found(raw as *const c_char, abs_prefix, relative_buf, relative_buf_len, can_realloc);
    free(raw as *mut c_void);
    fd
}

/// The part of `__wasilibc_find_relpath_alloc` after normalising: wasi-libc's longest-prefix choice, and the
/// relative rest copied out of `abspath` (which the caller frees).
unsafe fn found(abspath: *const c_char, abs_prefix: *mut *const c_char, relative_buf: *mut *mut c_char,
                relative_buf_len: *mut usize, can_realloc: c_int) -> c_int {
    let mut rel: *const c_char = core::ptr::null();
    let fd = __wasilibc_find_abspath(abspath, abs_prefix, &mut rel);
    if fd == -1 {
        return -1;
    }
    let rel = CStr::from_ptr(rel).to_bytes_with_nul();
    if *relative_buf_len < rel.len() {
        if can_realloc == 0 {
            errno = ERANGE;
            return -1;
        }
        let grown = realloc(*relative_buf as *mut c_void, rel.len()) as *mut c_char;
        if grown.is_null() {
            errno = ENOMEM;
            return -1;
        }
        *relative_buf = grown;
        *relative_buf_len = rel.len();
    }
    core::ptr::copy_nonoverlapping(rel.as_ptr() as *const c_char, *relative_buf, rel.len());
    fd
}
