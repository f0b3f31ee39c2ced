//! Threads for the sandbox, reached through `--wrap=pthread_*` (shim/facade.py LINK_ARGS): there are none.
//!
//! wasm32-wasip1 is single-threaded. Rust's std for it (1.9x) still links `std::thread::spawn` to
//! wasi-libc's pthread functions, which newer wasi-libcs stub out; Debian's (2022), which cratecage's
//! private sysroot links, has no pthreads at all, so a build script that merely mentions
//! `std::thread::spawn` (cc's `parallel` feature, jobserver helpers) would not link. The wrappers answer
//! like the stubs: attributes are accepted, `pthread_create` fails with EAGAIN, so `thread::Builder::spawn`
//! returns an error and `thread::spawn` panics with "failed to spawn thread", as under rustup's wasi-libc.
//! Wrapping instead of defining avoids a duplicate definition where the libc has them.

use core::ffi::{c_int, c_void};

const EAGAIN: c_int = 6; // wasi-libc's errno numbering
const ESRCH: c_int = 71;

#[no_mangle]
pub extern "C" fn __wrap_pthread_attr_init(_attr: *mut c_void) -> c_int {
    0
}

#[no_mangle]
pub extern "C" fn __wrap_pthread_attr_setstacksize(_attr: *mut c_void, _size: usize) -> c_int {
    0
}

#[no_mangle]
pub extern "C" fn __wrap_pthread_attr_destroy(_attr: *mut c_void) -> c_int {
    0
}

#[no_mangle]
pub extern "C" fn __wrap_pthread_create(_thread: *mut c_void, _attr: *const c_void,
                                        _start: *const c_void, _arg: *mut c_void) -> c_int {
    EAGAIN
}

#[no_mangle]
pub extern "C" fn __wrap_pthread_join(_thread: *mut c_void, _result: *mut *mut c_void) -> c_int {
    ESRCH
}

#[no_mangle]
pub extern "C" fn __wrap_pthread_detach(_thread: *mut c_void) -> c_int {
    ESRCH
}
