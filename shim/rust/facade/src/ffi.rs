//! The import table: the guest half of shim/host/abi.py's `ALL_IMPORTS` (`IMPORTS`, the process functions, then
//! `OBSERVE_IMPORTS`, then `NET_IMPORTS`, then `FILE_IMPORTS`), same names, same order, same module.
//!
//! Every parameter and result lowers to a wasm i32 (pointers and `usize` are 32 bits on wasm32).
//! Change this file and shim/host/abi.py together, and bump the module's version when a signature changes.
//! Safe wrappers live in host.rs; nothing else calls these directly. Unused constants stay: the table
//! is complete on purpose.
#![allow(dead_code)]

#[link(wasm_import_module = "cratecage-1")]
extern "C" {
    /// Copies at most `cap` bytes of the last failure's message; returns its full length.
    pub fn last_error(buf: *mut u8, cap: usize) -> i32;
    /// Copies at most `cap` bytes of the per-run temp dir path; returns its full length.
    pub fn temp_dir(buf: *mut u8, cap: usize) -> i32;
    /// Starts a child from an encoded request; returns a handle > 0 or an error code < 0.
    pub fn spawn(req: *const u8, req_len: usize) -> i32;
    /// Writes to the child's stdin; returns bytes written or an error code.
    pub fn stdin_write(handle: i32, buf: *const u8, len: usize) -> i32;
    /// Closes the child's stdin (the child sees end of input).
    pub fn stdin_close(handle: i32) -> i32;
    /// Reads from the child's stdout (1) or stderr (2); returns bytes read, 0 at the end.
    pub fn read(handle: i32, stream: i32, buf: *mut u8, cap: usize) -> i32;
    /// Waits for the child; writes 8 bytes of status (kind, value) at `status_out`.
    pub fn wait(handle: i32, status_out: *mut u8) -> i32;
    /// 1 and the status if the child exited, 0 if it runs.
    pub fn try_wait(handle: i32, status_out: *mut u8) -> i32;
    pub fn kill(handle: i32) -> i32;
    /// The guest dropped its last use of the handle.
    pub fn release(handle: i32) -> i32;
    /// Reports a failed file system access (REPORT_FS: `op \0 absolute path \0 errno name`) or an
    /// environment variable that was not set (REPORT_ENV: its name); in warn mode also successes (REPORT_FS
    /// with "OK", REPORT_ENV_FOUND); observe.rs sends them. 0, or REPORT_STOP once the host wants no more
    /// reports this run.
    pub fn report(kind: i32, buf: *const u8, len: usize) -> i32;
    /// Looks up a host name the crate's routes name: writes ADDR_SIZE-byte records (at most `cap` bytes);
    /// returns their full length.
    pub fn net_resolve(name: *const u8, name_len: usize, port: i32, out: *mut u8, cap: usize) -> i32;
    /// Connects to the address record at `addr` (0 ms: no timeout); returns a socket handle > 0.
    pub fn net_connect(addr: *const u8, timeout_ms: i32) -> i32;
    /// Reads (or with `peek` = 1, peeks) at most `cap` bytes; returns bytes read, 0 at the end.
    pub fn net_read(handle: i32, buf: *mut u8, cap: usize, peek: i32) -> i32;
    pub fn net_write(handle: i32, buf: *const u8, len: usize) -> i32;
    /// `how` is SHUT_READ, SHUT_WRITE or SHUT_BOTH.
    pub fn net_shutdown(handle: i32, how: i32) -> i32;
    pub fn net_set_option(handle: i32, option: i32, value: i32) -> i32;
    /// The option's value (>= 0).
    pub fn net_get_option(handle: i32, option: i32) -> i32;
    /// Writes the address record of the peer (NET_PEER) or of this end (NET_LOCAL) at `out`.
    pub fn net_addr(handle: i32, which: i32, out: *mut u8) -> i32;
    /// A second handle to the same socket.
    pub fn net_clone(handle: i32) -> i32;
    /// The guest dropped the handle; the socket closes with its last handle.
    pub fn net_close(handle: i32) -> i32;
    /// The permission bits (0o7777) of the absolute path, following a final symbolic link if `follow` is 1;
    /// an error where the host will not say (stat.rs then guesses).
    pub fn file_mode(path: *const u8, path_len: usize, follow: i32) -> i32;
    /// chmod of the absolute path to `mode & 0o777`, if the run may write it (modes.rs).
    pub fn chmod(path: *const u8, path_len: usize, mode: u32) -> i32;
}

// Error codes (negative results), as in shim/host/abi.py.
pub const E_DENIED: i32 = -1;
pub const E_NOT_FOUND: i32 = -2;
pub const E_INVALID: i32 = -3;
pub const E_IO: i32 = -4;
pub const E_UNSUPPORTED: i32 = -5;
pub const E_TIMED_OUT: i32 = -6;
pub const E_WOULD_BLOCK: i32 = -7;
pub const E_REFUSED: i32 = -8;
pub const E_RESET: i32 = -9;
pub const E_ABORTED: i32 = -10;
pub const E_NOT_CONNECTED: i32 = -11;
pub const E_BROKEN_PIPE: i32 = -12;
pub const E_ADDR_NOT_AVAILABLE: i32 = -13;

// Record tags of a spawn request.
pub const TAG_PROGRAM: u8 = 1;
pub const TAG_ARG: u8 = 2;
pub const TAG_ENV_SET: u8 = 3;
pub const TAG_ENV_REMOVE: u8 = 4;
pub const TAG_ENV_CLEAR: u8 = 5;
pub const TAG_CWD: u8 = 6;
pub const TAG_STDIN: u8 = 7;
pub const TAG_STDOUT: u8 = 8;
pub const TAG_STDERR: u8 = 9;

pub const STDIO_INHERIT: u8 = 0;
pub const STDIO_PIPED: u8 = 1;
pub const STDIO_NULL: u8 = 2;

pub const STREAM_STDOUT: i32 = 1;
pub const STREAM_STDERR: i32 = 2;

pub const STATUS_EXITED: i32 = 0;
pub const STATUS_SIGNALED: i32 = 1;
pub const STATUS_SIZE: usize = 8;

// Kinds of report, and the answer that asks the guest to stop reporting.
pub const REPORT_FS: i32 = 1;
pub const REPORT_ENV: i32 = 2;
pub const REPORT_ENV_FOUND: i32 = 3;
pub const REPORT_STOP: i32 = 1;

// Sockets: address records, shutdown directions (std::net::Shutdown's order), options, net_addr's which.
pub const ADDR_SIZE: usize = 20;
pub const FAMILY_V4: u8 = 4;
pub const FAMILY_V6: u8 = 6;
pub const SHUT_READ: i32 = 0;
pub const SHUT_WRITE: i32 = 1;
pub const SHUT_BOTH: i32 = 2;
pub const OPT_READ_TIMEOUT: i32 = 1;
pub const OPT_WRITE_TIMEOUT: i32 = 2;
pub const OPT_NODELAY: i32 = 3;
pub const OPT_TTL: i32 = 4;
pub const OPT_NONBLOCKING: i32 = 5;
pub const NET_PEER: i32 = 0;
pub const NET_LOCAL: i32 = 1;
