//! The pthread functions of the real std's threads, reached through `--wrap=pthread_*` (shim/toolchain/facade.py
//! LINK_ARGS): there are none.
//!
//! wasm32-wasip1 is single-threaded. Rust's std for it (1.9x) still links `std::thread::spawn` to
//! wasi-libc's pthread functions, which newer wasi-libcs stub out; Debian's (2022), which cratecage's
//! private sysroot links, has no pthreads at all, so a module that reached the real `thread::spawn` would
//! not link. The facade's own `std::thread` (thread.rs) runs spawned closures without them, so nothing
//! compiled against the facade reaches these; they stay for whatever in the real std might. They answer
//! like the stubs: attributes are accepted, `pthread_create` fails with EAGAIN (the real
//! `thread::Builder::spawn` returns an error), as under rustup's wasi-libc. Wrapping instead of defining
//! avoids a duplicate definition where the libc has them.

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
