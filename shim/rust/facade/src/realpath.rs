//! `realpath` for the sandbox, reached through `--wrap=realpath` (shim/toolchain/facade.py LINK_ARGS) whatever the
//! sysroot's wasi-libc has. Debian's wasi-libc (2022), which cratecage's private wasm32-wasip1 sysroot links,
//! has no `realpath`, so `std::fs::canonicalize` (std's unix fs over wasi-libc calls `realpath(path, NULL)`
//! and `free`s the answer) would not link; rustup's newer wasi-libc has musl's, which fails for every
//! absolute path below a preopen. Wrapping instead of defining `realpath` avoids a duplicate definition.
//!
//! POSIX semantics, in Rust over std (never `fs::canonicalize`, which would call this very function), but
//! for the `..` the caller wrote: the path is first made absolute against `env::current_dir()` and
//! normalised lexically, as every path function resolves it (paths.rs), so `canonicalize(p)` names the file
//! that opening `p` opens (`OUT_DIR/l/../x` is `OUT_DIR/x` whatever the link `l` points to). Then every
//! component is `lstat`ed (`fs::symlink_metadata`) and symbolic links are replaced by their `fs::read_link`
//! target (relative to the link's directory, or from "/" for an absolute one), at most 40 times (then
//! ELOOP); a `..` *in a link's target* removes the last component of the resolved prefix, after that
//! prefix's links were followed (physical, as wasmtime follows links on the host). A missing component
//! is ENOENT; a component that is not a directory but is followed by `/` (`file/x`, `file/`, `file/..`) is
//! ENOTDIR. The result goes to `resolved` (the caller's `PATH_MAX` = 4096 byte buffer; ENAMETOOLONG if it
//! does not fit) or, when `resolved` is NULL, to a string from libc's `malloc` that the caller `free`s.
//!
//! One WASI twist: only the preopened directories are visible, so `lstat("/tmp")` fails (ENOENT) while
//! `lstat("/tmp/…/pkg")`, a preopen, succeeds. A component whose `lstat` fails with ENOENT, EACCES, EPERM or
//! ENOTCAPABLE is therefore taken provisionally as a plain directory, and the walk goes on: a later component
//! that exists proves it (an absolute path into a preopen resolves). If nothing after it exists, or a `..`
//! would step back over it, the first such error is the answer, as natively. (wasi-libc's own newer
//! `realpath`, musl's, fails for every absolute path below a preopen; this one answers what a native run does,
//! except for symbolic links in a preopen's own host path, which the sandbox cannot see.)
//!
//! errno: std reaches wasi-libc's through the data symbol `errno` (std's `sys/io/error/wasi.rs`; the libc
//! crate declares `__errno_location`, but the 2022 wasi-libc has none). wasm32-wasip1 has no threads, and
//! both wasi-libcs define `errno` as plain data, so an extern static is it.
//!
//! The walk's own `lstat`s and `readlink`s go through the wrappers of stat.rs and observe.rs; it runs
//! `quiet()`, and a failed `realpath` is reported once, as a "stat" of the path it was asked about (in warn
//! mode a successful one too).

use core::ffi::{c_char, c_int, c_void, CStr};

use crate::cratecage_observe as observe;
use crate::cratecage_paths as paths;

use real::ffi::OsStr;
use real::io;
use real::os::wasi::ffi::{OsStrExt, OsStringExt};
use real::path::Path;
use real::vec::Vec;

const PATH_MAX: usize = paths::PATH_MAX;
/// Linux's MAXSYMLINKS.
const MAX_SYMLINKS: u32 = 40;

// wasi-libc's errno values (WASI preview 1, `__errno_values.h`).
const EACCES: c_int = 2;
const EINVAL: c_int = 28;
const EIO: c_int = 29;
const ELOOP: c_int = 32;
const ENAMETOOLONG: c_int = 37;
const ENOENT: c_int = 44;
const ENOMEM: c_int = 48;
const ENOTDIR: c_int = 54;
const EPERM: c_int = 63;
const ENOTCAPABLE: c_int = 76;

extern "C" {
    #[allow(non_upper_case_globals)]
    static mut errno: c_int;
    fn malloc(size: usize) -> *mut c_void;
}

#[no_mangle]
pub unsafe extern "C" fn __wrap_realpath(path: *const c_char, resolved: *mut c_char) -> *mut c_char {
    if path.is_null() {
        return fail(EINVAL);
    }
    // The walk probes components that may well not exist (ancestors of a preopen): none of that is
    // reported, only the answer for the whole path.
    let walked = {
        let _quiet = observe::quiet();
        canonical(CStr::from_ptr(path).to_bytes())
    };
    let answer = match walked {
        Ok(answer) => {
            observe::succeeded(observe::Op::Stat, path);
            answer
        }
        Err(code) => {
            observe::fs_failure(observe::Op::Stat, path, code);
            return fail(code);
        }
    };
    let len = answer.len() + 1;
    let dst = if resolved.is_null() {
        let buf = malloc(len) as *mut c_char;
        if buf.is_null() {
            return fail(ENOMEM);
        }
        buf
    } else if len > PATH_MAX {
        return fail(ENAMETOOLONG);
    } else {
        resolved
    };
    core::ptr::copy_nonoverlapping(answer.as_ptr() as *const c_char, dst, answer.len());
    *dst.add(answer.len()) = 0;
    dst
}

unsafe fn fail(code: c_int) -> *mut c_char {
    errno = code;
    core::ptr::null_mut()
}

fn code_of(err: io::Error) -> c_int {
    err.raw_os_error().unwrap_or(EIO)
}

fn as_path(bytes: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(bytes))
}

/// Removes the last component of an absolute path ("/" stays "/").
fn pop(out: &mut Vec<u8>) {
    match out.iter().rposition(|&b| b == b'/') {
        Some(0) | None => out.truncate(1),
        Some(slash) => out.truncate(slash),
    }
}

/// `path` (not empty) made absolute against `cwd` and normalised lexically (paths.rs), a trailing "/"
/// where it must name a directory.
fn lexical(cwd: &[u8], path: &[u8]) -> Vec<u8> {
    if path.is_empty() {
        return Vec::new();
    }
    let mut buf: Vec<u8> = real::vec![0; cwd.len() + path.len() + 3];
    let len = paths::absolute_into(&mut buf, cwd, path);
    buf.truncate(len);
    buf
}

/// Whether the absolute path `prefix` is `dir` or one of its ancestors (`dir` may end in "/").
fn ancestor_or_self(prefix: &[u8], dir: &[u8]) -> bool {
    dir.starts_with(prefix) && (prefix == b"/" || matches!(dir.get(prefix.len()), None | Some(b'/')))
}

/// The canonical absolute form of `path`, or the errno that says why there is none.
fn canonical(path: &[u8]) -> Result<Vec<u8>, c_int> {
    if path.is_empty() {
        return Err(ENOENT);
    }
    let cwd: Vec<u8> = real::env::current_dir().map(|d| d.into_os_string().into_vec()).unwrap_or_default();
    if path[0] != b'/' && cwd.first() != Some(&b'/') {
        return Err(ENOENT);
    }
    // The caller's `..` are gone from here on; `rest` ends in "/" where the path must name a directory.
    let rest = lexical(&cwd, path);
    // Directories known to exist though the sandbox may not show them: the current directory, OUT_DIR and
    // their ancestors (`canonicalize("..")` from the package is its parent, as natively).
    let out_dir = real::env::var_os("OUT_DIR").map(|d| lexical(b"/", d.as_encoded_bytes())).unwrap_or_default();
    let known = [lexical(b"/", &cwd), out_dir];
    let mut rest = rest;
    let mut out: Vec<u8> = Vec::from(&b"/"[..]);
    // The first error of a component not yet proven to exist (0: `out` is known to exist).
    let mut unproven: c_int = 0;
    let mut links = 0u32;
    let mut pos = 0usize;
    loop {
        while pos < rest.len() && rest[pos] == b'/' {
            pos += 1;
        }
        if pos == rest.len() {
            break;
        }
        let end = rest[pos..].iter().position(|&b| b == b'/').map_or(rest.len(), |i| pos + i);
        let (start, more) = (pos, end < rest.len());
        pos = end;
        match &rest[start..end] {
            b"." => continue,
            b".." => {
                if unproven != 0 {
                    return Err(unproven);
                }
                pop(&mut out);
                continue;
            }
            _ => {}
        }
        let parent_len = out.len();
        if out.last() != Some(&b'/') {
            out.push(b'/');
        }
        out.extend_from_slice(&rest[start..end]);
        match real::fs::symlink_metadata(as_path(&out)) {
            Ok(meta) if meta.file_type().is_symlink() => {
                unproven = 0;
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(ELOOP);
                }
                let mut target = real::fs::read_link(as_path(&out)).map_err(code_of)?.into_os_string().into_vec();
                if target.is_empty() {
                    return Err(ENOENT);
                }
                out.truncate(parent_len);
                if target[0] == b'/' {
                    out.truncate(1);
                }
                target.extend_from_slice(&rest[pos..]);
                rest = target;
                pos = 0;
            }
            Ok(meta) => {
                unproven = 0;
                if more && !meta.is_dir() {
                    return Err(ENOTDIR);
                }
            }
            Err(err) => match code_of(err) {
                _ if known.iter().any(|dir| ancestor_or_self(&out, dir)) => {}
                code @ (ENOENT | EACCES | EPERM | ENOTCAPABLE) => {
                    if unproven == 0 {
                        unproven = code;
                    }
                }
                code => return Err(code),
            },
        }
    }
    if unproven != 0 {
        return Err(unproven);
    }
    Ok(out)
}
