//! Plausible permission bits for `stat`: wasm32-wasip1's std is the unix one over wasi-libc, whose `stat`
//! family fills `st_mode` with the file type only (WASI preview 1 has no permission bits), so
//! `fs::metadata(dir)?.permissions().readonly()` is true for everything, and autocfg's `AutoCfg::new()`
//! refuses OUT_DIR as "not a writable directory".
//!
//! The fix is at link time, so std's own types stay untouched (a shadow `fs::Metadata` would not mix with
//! `DirEntry::metadata()` or `File::metadata()`): shim/toolchain/facade.py's `LINK_ARGS` pass `--wrap=<name>` to
//! wasm-ld for wasi-libc's four `stat` entry points, which redirects every call to `__wrap_<name>` here;
//! `__real_<name>` is the original. std 1.96 calls `stat` (`fs::metadata`), `lstat` (`symlink_metadata`,
//! `DirEntry::metadata`) and `fstat` (`File::metadata`); `fstatat` serves C code and the libc crate.
//!
//! A wrapper calls the original and, when it succeeded, fills in the permission bits: for a regular file
//! or directory reached by path (`stat`, `lstat`, `fstatat` from the current directory or absolute) the
//! host's answer (modes.rs, `file_mode`: the real bits, so `fs::set_permissions(dst,
//! fs::metadata(src)?.permissions())` keeps an `+x`), else, and when the mode carries no permission bits,
//! what a umask of 022 gives natively: 0o755 for directories, 0o777 for symbolic links, 0o644 for everything
//! else (`fstat` has no path). The type bits and every other field stay as wasi-libc wrote them. (wasmtime reports the same
//! fd rights for read-only and writable preopens, so the guest cannot tell them apart at this level.)
//!
//! The bits are plausible, not a promise: the preopens enforce what is writable (OUT_DIR and the temp dir
//! are, the package directory is not), exactly as a native file whose mode says 0o644 can still sit on a
//! read-only mount. wasi-libc's own internal calls (`stat`/`lstat` reach `__wasilibc_nocwd_fstatat`
//! directly) are not wrapped and need not be: every caller outside libc goes through one of the four.
//!
//! A failed `stat`, `lstat` or `fstatat` (with a path, relative to the current directory or absolute) is
//! also reported to the host as a "stat" observation (observe.rs), and in warn mode a successful one too;
//! `fstat` has no path to report.
//!
//! Every wasm link with the facade must pass `LINK_ARGS`: rustc exports every `#[no_mangle]` function from
//! a wasm module (so `__wrap_stat` & co. also appear among its exports, harmlessly), which keeps the
//! wrappers in every link, and without `--wrap` nothing defines `__real_stat`: wasm-ld fails with
//! "undefined symbol: __real_stat". That is loud on purpose; a weak fallback needs unstable Rust, and a
//! `__real_stat` defined here is inlined into its caller and then wrapped itself (endless recursion).

use core::ffi::{c_char, c_int};

use crate::cratecage_modes as modes;
use crate::cratecage_observe::{self as observe, Op};

/// The leading fields of wasi-libc's `struct stat` on wasm32 (libc crate, `src/wasi/mod.rs`): `st_dev`,
/// `st_ino` and `st_nlink` are 64-bit, so `st_mode` (a `mode_t`, u32) is at byte 24.
#[repr(C)]
struct StatHead {
    st_dev: u64,
    st_ino: u64,
    st_nlink: u64,
    st_mode: u32,
}

const _: () = assert!(core::mem::offset_of!(StatHead, st_mode) == 24);

const S_IFMT: u32 = 0o170000;
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
/// wasi-libc's AT_SYMLINK_NOFOLLOW.
const AT_SYMLINK_NOFOLLOW: c_int = 0x1;
const S_IFLNK: u32 = 0o120000;
const PERMISSION_BITS: u32 = 0o7777;

/// The permission bits a file of this type would typically have natively.
fn plausible_permissions(mode: u32) -> u32 {
    match mode & S_IFMT {
        S_IFDIR => 0o755,
        S_IFLNK => 0o777,
        _ => 0o644,
    }
}

/// Passes `rc` through; on success, adds permission bits to a mode that has none.
unsafe fn with_permissions(rc: c_int, buf: *mut u8) -> c_int {
    if rc == 0 && !buf.is_null() {
        let head = buf as *mut StatHead;
        let mode = (*head).st_mode;
        if mode & PERMISSION_BITS == 0 {
            (*head).st_mode = mode | plausible_permissions(mode);
        }
    }
    rc
}

/// Passes `rc` through; on success, a regular file's or directory's permission bits as the host reports
/// them for `path` (see the module docs), else as `with_permissions` guesses.
unsafe fn with_host_permissions(rc: c_int, buf: *mut u8, path: *const c_char, follow: bool) -> c_int {
    if rc == 0 && !buf.is_null() {
        let head = buf as *mut StatHead;
        let mode = (*head).st_mode;
        if matches!(mode & S_IFMT, S_IFREG | S_IFDIR) {
            if let Some(bits) = modes::host_mode(path, follow) {
                (*head).st_mode = (mode & !PERMISSION_BITS) | (bits & PERMISSION_BITS);
                return rc;
            }
        }
    }
    with_permissions(rc, buf)
}

// `struct stat *` is an opaque pointer here (`*mut u8`): only `StatHead` is ever read or written.
extern "C" {
    fn __real_stat(path: *const c_char, buf: *mut u8) -> c_int;
    fn __real_lstat(path: *const c_char, buf: *mut u8) -> c_int;
    fn __real_fstat(fd: c_int, buf: *mut u8) -> c_int;
    fn __real_fstatat(dirfd: c_int, path: *const c_char, buf: *mut u8, flags: c_int) -> c_int;
}

#[no_mangle]
pub unsafe extern "C" fn __wrap_stat(path: *const c_char, buf: *mut u8) -> c_int {
    let rc = __real_stat(path, buf);
    if rc != 0 {
        observe::failed(Op::Stat, path);
    } else {
        observe::succeeded(Op::Stat, path);
    }
    with_host_permissions(rc, buf, path, true)
}

#[no_mangle]
pub unsafe extern "C" fn __wrap_lstat(path: *const c_char, buf: *mut u8) -> c_int {
    let rc = __real_lstat(path, buf);
    if rc != 0 {
        observe::failed(Op::Stat, path);
    } else {
        observe::succeeded(Op::Stat, path);
    }
    with_host_permissions(rc, buf, path, false)
}

#[no_mangle]
pub unsafe extern "C" fn __wrap_fstat(fd: c_int, buf: *mut u8) -> c_int {
    with_permissions(__real_fstat(fd, buf), buf)
}

#[no_mangle]
pub unsafe extern "C" fn __wrap_fstatat(dirfd: c_int, path: *const c_char, buf: *mut u8, flags: c_int) -> c_int {
    let rc = __real_fstatat(dirfd, path, buf, flags);
    // A path relative to a directory fd other than the current directory's cannot be made absolute.
    if !path.is_null() && (dirfd == observe::AT_FDCWD || *path == b'/' as c_char) {
        if rc != 0 {
            observe::failed(Op::Stat, path);
        } else {
            observe::succeeded(Op::Stat, path);
        }
        return with_host_permissions(rc, buf, path, flags & AT_SYMLINK_NOFOLLOW == 0);
    }
    with_permissions(rc, buf)
}
