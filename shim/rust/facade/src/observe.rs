//! Observation of what a sandboxed program was refused, for denials a person can act on (issue 4 item 6).
//!
//! The host cannot see a guest's failed opens: wasi-libc resolves every path against the preopened
//! directories inside the guest, and a path outside them fails without any host call (notes/
//! sandbox-experiments.md §3); nor can it see which environment variables the guest looked for. So the
//! guest says so: every failed filesystem access and every environment lookup that found nothing is sent to
//! the host's `report` import (shim/host/abi.py has the payload format, shim/host/observe.py the host side).
//! This is observation only: the preopens still do all the enforcing, and a guest that does not report
//! gains nothing.
//!
//! In warn mode the runner preopens "/" read-only and passes the host's whole environment, so reads and
//! lookups outside the grants succeed, and the host must learn of them to propose grants (`cratecage
//! init`). It asks for that with `CRATECAGE_OBSERVE=all` in the guest's environment (shim/host/abi.py
//! `OBSERVE_ENV`), read once through the unwrapped `__real_getenv`; then every successful read, stat,
//! listing and lookup is reported too, marked "OK" (REPORT_ENV_FOUND for a variable). Successful writes
//! never are: they can only land where the run may write anyway. In enforce mode a success costs one load
//! of a flag.
//!
//! Like stat.rs, this works at link time, below std's API, so std's types stay untouched and Rust std, the
//! libc crate and C code are all covered: shim/toolchain/facade.py's `LINK_ARGS` pass `--wrap=<name>` to wasm-ld for
//! each wrapped libc function, which sends every call from outside the defining object file to
//! `__wrap_<name>` here; `__real_<name>` is the original. A wrapper calls the original and reports when it
//! failed (in warn mode also when a read, stat, listing or lookup succeeded). The wrapped functions (what
//! they report):
//!
//!   open                     "write" if the flags ask for writing (O_WRONLY/O_RDWR, O_CREAT, O_TRUNC,
//!                            O_APPEND), else "read": std's File::open, OpenOptions::open, fs::read,
//!                            fs::write, File::create, fs::copy; wasi-libc's `openat(AT_FDCWD, ..)` (std's
//!                            remove_dir_all) calls it too
//!   __wasilibc_open_nomode   the same, for C's `fopen` (wasi-libc's fopen calls it rather than `open`)
//!   opendir                  "list": fs::read_dir
//!   stat, lstat, fstatat     "stat" (in stat.rs): fs::metadata, symlink_metadata, Path::exists/is_file/is_dir
//!   access                   "stat": C code's access(); faccessat is not wrapped
//!   realpath                 "stat" (in realpath.rs): fs::canonicalize, reported once for the whole path
//!   mkdir                    "write": fs::create_dir, create_dir_all, DirBuilder
//!   unlink, rmdir            "write": fs::remove_file, remove_dir
//!   rename                   "write", for both paths (errno does not say which one failed)
//!   symlink                  "write", for the link's path (the target is only a string)
//!   readlink                 "read": fs::read_link
//!   getenv                   an environment lookup that returned NULL (in warn mode also one that found a
//!                            value): env::var, var_os, C's getenv
//!
//! Only the errors a grant could change are reported: ENOENT (wasi-libc's answer for a path outside the
//! preopens when "." is preopened, as the runner does), EACCES, EPERM (a write into a read-only preopen,
//! a symbolic link leading out of one), EROFS and ENOTCAPABLE (a path no preopen covers). Paths are made
//! absolute against the current directory (wasi-libc's, which env.rs sets to CARGO_MANIFEST_DIR) and
//! normalized lexically (`.`, `..` and repeated slashes) exactly as paths.rs resolves them, so every
//! spelling of a path is one report, naming what was looked up, and the host can compare it with grants.
//!
//! Rules the wrappers keep:
//!   - no recursion: nothing here calls std's fs or env, or allocates; the payload is built in fixed
//!     buffers on the stack (a path whose normal form is longer than PATH_MAX is not reported; a long `..`
//!     chain that shrinks is), and the current directory comes
//!     from libc's `getcwd`, which is not wrapped;
//!   - errno is what the original left: every report restores it;
//!   - each (kind, op, path, and whether it succeeded) is sent once per run as far as a small
//!     direct-mapped table of hashes remembers
//!     (the host dedups exactly as well), and once the host answers `REPORT_STOP` (its cap is reached)
//!     nothing more is sent;
//!   - code of the facade that probes paths on purpose (realpath.rs walking a path's components) runs
//!     inside `quiet()`, and reports its own overall failure instead.
//!
//! Not observed: calls relative to a directory fd other than AT_FDCWD (the fd's path is unknown: std's
//! remove_dir_all inside a directory, `openat(dirfd, ..)` from C), `link`/`linkat` (fs::hard_link),
//! `chdir` (env::set_current_dir), utimensat (File/fs::set_times), `truncate`, `faccessat`, and failures
//! of operations on an open fd (a read or write refused after a successful open). The wrappers see every
//! call of the module, std's own included: a panic's lookup of RUST_BACKTRACE is reported like any other.

use core::ffi::{c_char, c_int, c_void, CStr};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering::Relaxed};

use crate::cratecage_ffi as ffi;
use crate::cratecage_paths as paths;

/// What a failed access tried to do (shim/host/abi.py `FS_OPS`).
#[derive(Clone, Copy)]
pub(crate) enum Op {
    Read,
    Write,
    Stat,
    List,
}

impl Op {
    fn name(self) -> &'static [u8] {
        match self {
            Op::Read => b"read",
            Op::Write => b"write",
            Op::Stat => b"stat",
            Op::List => b"list",
        }
    }
}

// wasi-libc's errno values (WASI preview 1, `__errno_values.h`): the ones a grant could change.
const EACCES: c_int = 2;
const ENOENT: c_int = 44;
const EPERM: c_int = 63;
const EROFS: c_int = 69;
const ENOTCAPABLE: c_int = 76;

fn errno_name(code: c_int) -> Option<&'static [u8]> {
    Some(match code {
        ENOENT => b"ENOENT",
        EACCES => b"EACCES",
        EPERM => b"EPERM",
        EROFS => b"EROFS",
        ENOTCAPABLE => b"ENOTCAPABLE",
        _ => return None,
    })
}

// wasi-libc's open flags (libc crate, `src/wasi/mod.rs`).
const O_APPEND: c_int = 0x0001;
const O_CREAT: c_int = 0x0001 << 12;
const O_TRUNC: c_int = 0x0008 << 12;
const O_WRONLY: c_int = 0x1000_0000; // also part of O_RDWR
/// wasi-libc's AT_FDCWD (the libc crate's; fcntl.h's -100 is for other targets).
pub(crate) const AT_FDCWD: c_int = -2;

const PATH_MAX: usize = paths::PATH_MAX;
/// Room for an op, a path of PATH_MAX bytes, an errno name and the two separators.
const PAYLOAD_MAX: usize = PATH_MAX + 64;
const DEDUP_SLOTS: usize = 1024;

static SEEN: [AtomicU64; DEDUP_SLOTS] = [const { AtomicU64::new(0) }; DEDUP_SLOTS];
static STOPPED: AtomicBool = AtomicBool::new(false);
static QUIET: AtomicU32 = AtomicU32::new(0);
/// Whether successes are reported too: SUCCESSES_UNKNOWN until the first success asks the environment.
static SUCCESSES: AtomicU8 = AtomicU8::new(SUCCESSES_UNKNOWN);
const SUCCESSES_UNKNOWN: u8 = 0;
const SUCCESSES_NO: u8 = 1;
const SUCCESSES_YES: u8 = 2;

/// The error field of a successful access (shim/host/abi.py `ACCESS_OK`).
const ACCESS_OK: &[u8] = b"OK";
/// The variable and value by which the host asks for successes too (shim/host/abi.py `OBSERVE_ENV`, `OBSERVE_ALL`).
const OBSERVE_ENV: &CStr = c"CRATECAGE_OBSERVE";
const OBSERVE_ALL: &[u8] = b"all";

extern "C" {
    #[allow(non_upper_case_globals)]
    static mut errno: c_int;
    fn getcwd(buf: *mut c_char, size: usize) -> *mut c_char;
}

/// While one lives, nothing is reported (the facade's own probing, see the module docs).
pub(crate) struct Quiet(());

pub(crate) fn quiet() -> Quiet {
    QUIET.fetch_add(1, Relaxed);
    Quiet(())
}

impl Drop for Quiet {
    fn drop(&mut self) {
        QUIET.fetch_sub(1, Relaxed);
    }
}

fn muted() -> bool {
    STOPPED.load(Relaxed) || QUIET.load(Relaxed) != 0
}

/// Whether the host asked for successes too (warn mode). Asks the environment once, unwrapped.
unsafe fn successes_wanted() -> bool {
    match SUCCESSES.load(Relaxed) {
        SUCCESSES_YES => true,
        SUCCESSES_NO => false,
        _ => {
            let value = __real_getenv(OBSERVE_ENV.as_ptr());
            let yes = !value.is_null() && CStr::from_ptr(value).to_bytes() == OBSERVE_ALL;
            SUCCESSES.store(if yes { SUCCESSES_YES } else { SUCCESSES_NO }, Relaxed);
            yes
        }
    }
}

/// A payload under construction, on the stack.
struct Payload {
    data: [u8; PAYLOAD_MAX],
    len: usize,
}

impl Payload {
    fn new() -> Payload {
        Payload { data: [0; PAYLOAD_MAX], len: 0 }
    }

    fn push(&mut self, bytes: &[u8]) -> bool {
        let end = self.len + bytes.len();
        if end > self.data.len() {
            return false;
        }
        self.data[self.len..end].copy_from_slice(bytes);
        self.len = end;
        true
    }

    /// Appends the components of `path` to the absolute path that starts at `base`, normalised as every
    /// path is (paths.rs `normalize`).
    fn push_components(&mut self, base: usize, path: &[u8]) -> bool {
        paths::normalize(&mut self.data, &mut self.len, base, path)
    }

    fn as_bytes(&self) -> &[u8] {
        &self.data[..self.len]
    }
}

/// FNV-1a over the kind and the payload's key, never 0 (an empty slot).
fn key_hash(kind: i32, key: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in core::iter::once(&(kind as u8)).chain(key) {
        hash = (hash ^ byte as u64).wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash | 1
}

/// Sends `payload` unless its first `key_len` bytes were sent just before (as far as the table remembers).
fn send(kind: i32, payload: &[u8], key_len: usize) {
    let hash = key_hash(kind, &payload[..key_len]);
    let slot = &SEEN[(hash >> 7) as usize % DEDUP_SLOTS];
    if slot.load(Relaxed) == hash {
        return;
    }
    slot.store(hash, Relaxed);
    if unsafe { ffi::report(kind, payload.as_ptr(), payload.len()) } == ffi::REPORT_STOP {
        STOPPED.store(true, Relaxed);
    }
}

/// Reports that `op` on `path` failed with `code`, if a grant could change that. Keeps errno.
pub(crate) unsafe fn fs_failure(op: Op, path: *const c_char, code: c_int) {
    if path.is_null() || muted() {
        return;
    }
    let Some(error) = errno_name(code) else { return };
    // One key for every error of (op, path): the first one tells the host enough.
    fs_report(op, path, error, false);
}

/// Reports that `op` on `path` succeeded, if the host asked for successes (warn mode). Keeps errno.
pub(crate) unsafe fn succeeded(op: Op, path: *const c_char) {
    if path.is_null() || muted() || !successes_wanted() {
        return;
    }
    fs_report(op, path, ACCESS_OK, true);
}

/// Sends `op \0 path \0 error`, deduplicated on (op, path), and on the error too when `keyed_on_error`.
unsafe fn fs_report(op: Op, path: *const c_char, error: &[u8], keyed_on_error: bool) {
    let saved = errno;
    let path = CStr::from_ptr(path).to_bytes();
    if !path.is_empty() {
        let mut payload = Payload::new(); // build_fs refuses a normal form longer than PATH_MAX
        if build_fs(&mut payload, op, path, error) {
            let key_len = if keyed_on_error { payload.len } else { payload.len - error.len() - 1 };
            send(ffi::REPORT_FS, payload.as_bytes(), key_len);
        }
    }
    errno = saved;
}

/// `op \0 absolute-normalized-path \0 error` into `payload`; false if it does not fit or there is no cwd.
unsafe fn build_fs(payload: &mut Payload, op: Op, path: &[u8], error: &[u8]) -> bool {
    payload.push(op.name());
    payload.push(b"\0");
    let base = payload.len;
    if path[0] != b'/' {
        let mut cwd = [0u8; PATH_MAX];
        if getcwd(cwd.as_mut_ptr() as *mut c_char, cwd.len()).is_null() {
            return false;
        }
        let cwd = CStr::from_ptr(cwd.as_ptr() as *const c_char).to_bytes();
        if !payload.push_components(base, cwd) {
            return false;
        }
    }
    if !payload.push_components(base, path) || (payload.len == base && !payload.push(b"/")) {
        return false;
    }
    payload.len - base <= PATH_MAX && payload.push(b"\0") && payload.push(error)
}

/// The same as `fs_failure`, with the errno the failed call just set.
pub(crate) unsafe fn failed(op: Op, path: *const c_char) {
    fs_failure(op, path, errno);
}

/// Reports an environment lookup of `name` that found nothing (REPORT_ENV), or in warn mode one that
/// found a value (REPORT_ENV_FOUND).
unsafe fn env_lookup(name: *const c_char, found: bool) {
    if name.is_null() || muted() || (found && !successes_wanted()) {
        return;
    }
    let saved = errno;
    let name = CStr::from_ptr(name).to_bytes();
    if !name.is_empty() && name.len() <= PAYLOAD_MAX {
        send(if found { ffi::REPORT_ENV_FOUND } else { ffi::REPORT_ENV }, name, name.len());
    }
    errno = saved;
}

/// Reports a failed open, or in warn mode a successful open for reading (writes can only succeed where the
/// run may write anyway).
unsafe fn opened(fd: c_int, oflag: c_int, path: *const c_char) {
    match (fd < 0, open_op(oflag)) {
        (true, op) => failed(op, path),
        (false, Op::Read) => succeeded(Op::Read, path),
        (false, _) => {}
    }
}

fn open_op(oflag: c_int) -> Op {
    if oflag & (O_WRONLY | O_CREAT | O_TRUNC | O_APPEND) != 0 {
        Op::Write
    } else {
        Op::Read
    }
}

// The originals. `open` is variadic in C; on wasm32 the variadic arguments travel in memory and the
// function takes one more i32, a pointer to them, which is passed on untouched: at the wasm level
// `(i32, i32, i32) -> i32` on both sides, whatever mode the caller gave.
extern "C" {
    fn __real_open(path: *const c_char, oflag: c_int, varargs: *const c_void) -> c_int;
    fn __real___wasilibc_open_nomode(path: *const c_char, oflag: c_int) -> c_int;
    fn __real_opendir(path: *const c_char) -> *mut c_void;
    fn __real_access(path: *const c_char, amode: c_int) -> c_int;
    fn __real_mkdir(path: *const c_char, mode: u32) -> c_int;
    fn __real_unlink(path: *const c_char) -> c_int;
    fn __real_rmdir(path: *const c_char) -> c_int;
    fn __real_rename(old: *const c_char, new: *const c_char) -> c_int;
    fn __real_symlink(target: *const c_char, link: *const c_char) -> c_int;
    fn __real_readlink(path: *const c_char, buf: *mut c_char, size: usize) -> isize;
    fn __real_getenv(name: *const c_char) -> *mut c_char;
}

#[no_mangle]
pub unsafe extern "C" fn __wrap_open(path: *const c_char, oflag: c_int, varargs: *const c_void) -> c_int {
    let fd = __real_open(path, oflag, varargs);
    opened(fd, oflag, path);
    fd
}

#[no_mangle]
pub unsafe extern "C" fn __wrap___wasilibc_open_nomode(path: *const c_char, oflag: c_int) -> c_int {
    let fd = __real___wasilibc_open_nomode(path, oflag);
    opened(fd, oflag, path);
    fd
}

#[no_mangle]
pub unsafe extern "C" fn __wrap_opendir(path: *const c_char) -> *mut c_void {
    let dir = __real_opendir(path);
    if dir.is_null() {
        failed(Op::List, path);
    } else {
        succeeded(Op::List, path);
    }
    dir
}

#[no_mangle]
pub unsafe extern "C" fn __wrap_access(path: *const c_char, amode: c_int) -> c_int {
    let rc = __real_access(path, amode);
    if rc != 0 {
        failed(Op::Stat, path);
    } else {
        succeeded(Op::Stat, path);
    }
    rc
}

#[no_mangle]
pub unsafe extern "C" fn __wrap_mkdir(path: *const c_char, mode: u32) -> c_int {
    let rc = __real_mkdir(path, mode);
    if rc != 0 {
        failed(Op::Write, path);
    }
    rc
}

#[no_mangle]
pub unsafe extern "C" fn __wrap_unlink(path: *const c_char) -> c_int {
    let rc = __real_unlink(path);
    if rc != 0 {
        failed(Op::Write, path);
    }
    rc
}

#[no_mangle]
pub unsafe extern "C" fn __wrap_rmdir(path: *const c_char) -> c_int {
    let rc = __real_rmdir(path);
    if rc != 0 {
        failed(Op::Write, path);
    }
    rc
}

#[no_mangle]
pub unsafe extern "C" fn __wrap_rename(old: *const c_char, new: *const c_char) -> c_int {
    let rc = __real_rename(old, new);
    if rc != 0 {
        failed(Op::Write, old);
        failed(Op::Write, new);
    }
    rc
}

#[no_mangle]
pub unsafe extern "C" fn __wrap_symlink(target: *const c_char, link: *const c_char) -> c_int {
    let rc = __real_symlink(target, link);
    if rc != 0 {
        failed(Op::Write, link);
    }
    rc
}

#[no_mangle]
pub unsafe extern "C" fn __wrap_readlink(path: *const c_char, buf: *mut c_char, size: usize) -> isize {
    let len = __real_readlink(path, buf, size);
    if len < 0 {
        failed(Op::Read, path);
    } else {
        succeeded(Op::Read, path);
    }
    len
}

#[no_mangle]
pub unsafe extern "C" fn __wrap_getenv(name: *const c_char) -> *mut c_char {
    let value = __real_getenv(name);
    env_lookup(name, !value.is_null());
    value
}
