//! File permission bits, which WASI preview 1 can neither report nor change, asked of the host
//! (shim/host/files.py has the rules, shim/host/abi.py the imports `file_mode` and `chmod`).
//!
//! wasm32-wasip1's std is the unix one over wasi-libc: `fs::set_permissions` calls libc's `chmod`, which
//! wasi-libc answers with ENOSYS, and `fs::copy` never sets the copy's mode on wasi. Like stat.rs this
//! works below std's API: shim/toolchain/facade.py's `LINK_ARGS` wrap `chmod`, so `fs::set_permissions` (and C code)
//! reach `__wrap_chmod` here, which sends the absolute normal path to the host; the host applies `mode &
//! 0o777` to a regular file or directory the run may write, or refuses (errno EPERM for a denial, with
//! the host's message in the audit and the build's denials). The facade's `fs::copy` (fs.rs) copies and
//! then sets the source's bits the same way. stat.rs fills `st_mode`'s permission bits from `host_mode`.
//!
//! Not covered: `File::set_permissions` (libc's `fchmod`: an fd's path is unknown to the guest, so it still
//! fails as unsupported) and `fchmodat` relative to a directory fd. Build scripts set modes by path.
//!
//! Like observe.rs, nothing here allocates or calls std's fs: the path is built in a stack buffer.

use core::ffi::{c_char, c_int, CStr};

use crate::cratecage_ffi as ffi;
use crate::cratecage_paths as paths;

extern "C" {
    #[allow(non_upper_case_globals)]
    static mut errno: c_int;
    fn getcwd(buf: *mut c_char, size: usize) -> *mut c_char;
}

const PATH_MAX: usize = paths::PATH_MAX;
// wasi-libc's errno values (libc crate, src/wasi/mod.rs).
const EINVAL: c_int = 28;
const EIO: c_int = 29;
const ENOENT: c_int = 44;
const ENOTSUP: c_int = 58;
const EPERM: c_int = 63;

/// `path` made absolute against the current directory and normalised (paths.rs), into `buf`; its length.
unsafe fn absolute(path: *const c_char, buf: &mut [u8; PATH_MAX + 1]) -> Option<usize> {
    if path.is_null() {
        return None;
    }
    let path = CStr::from_ptr(path).to_bytes();
    if path.is_empty() {
        return None;
    }
    let mut len = 0;
    if path[0] != b'/' {
        let mut cwd = [0u8; PATH_MAX];
        if getcwd(cwd.as_mut_ptr() as *mut c_char, cwd.len()).is_null() {
            return None;
        }
        let cwd = CStr::from_ptr(cwd.as_ptr() as *const c_char).to_bytes();
        if !paths::normalize(buf, &mut len, 0, cwd) {
            return None;
        }
    }
    if !paths::normalize(buf, &mut len, 0, path) {
        return None;
    }
    if len == 0 {
        buf[0] = b'/';
        len = 1;
    }
    (len <= PATH_MAX).then_some(len)
}

/// The permission bits the host reports for `path` (following a final link if `follow`), if it will say.
pub(crate) unsafe fn host_mode(path: *const c_char, follow: bool) -> Option<u32> {
    let saved = errno;
    let mut buf = [0u8; PATH_MAX + 1];
    let mode = absolute(path, &mut buf).map(|len| ffi::file_mode(buf.as_ptr(), len, follow as i32));
    errno = saved;
    mode.filter(|&m| m >= 0).map(|m| m as u32)
}

#[no_mangle]
pub unsafe extern "C" fn __wrap_chmod(path: *const c_char, mode: u32) -> c_int {
    let mut buf = [0u8; PATH_MAX + 1];
    let Some(len) = absolute(path, &mut buf) else {
        errno = if path.is_null() || *path == 0 { ENOENT } else { EINVAL };
        return -1;
    };
    let rc = ffi::chmod(buf.as_ptr(), len, mode);
    if rc >= 0 {
        return 0;
    }
    errno = match rc {
        ffi::E_DENIED => EPERM,
        ffi::E_NOT_FOUND => ENOENT,
        ffi::E_INVALID => EINVAL,
        ffi::E_UNSUPPORTED => ENOTSUP,
        _ => EIO,
    };
    -1
}
