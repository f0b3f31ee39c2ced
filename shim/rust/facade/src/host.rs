//! Safe wrappers over the import table: handles that release themselves, strings fetched with the
//! "copy at most cap, return the full length" convention, and error codes turned into `io::Error`s
//! whose message is the host's explanation (it starts with `cratecage:` and names what was refused).

use real::string::String;
use real::vec::Vec;
use real::io;

use crate::cratecage_ffi as ffi;

/// A child the host knows by a small integer. Dropping the last use tells the host to forget it.
#[derive(Debug)]
pub(crate) struct Handle(i32);

impl Handle {
    pub(crate) fn id(&self) -> i32 {
        self.0
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        unsafe { ffi::release(self.0) };
    }
}

/// A string the host hands out: ask once with a guess, again with the full length if it was longer.
fn host_string(call: unsafe extern "C" fn(*mut u8, usize) -> i32) -> Option<Vec<u8>> {
    let mut buf = Vec::with_capacity(256);
    loop {
        let cap = buf.capacity();
        let full = unsafe { call(buf.as_mut_ptr(), cap) };
        if full < 0 {
            return None;
        }
        let full = full as usize;
        if full <= cap {
            unsafe { buf.set_len(full) };
            return Some(buf);
        }
        buf.reserve_exact(full);
    }
}

pub(crate) fn temp_dir() -> Option<Vec<u8>> {
    host_string(ffi::temp_dir)
}

fn kind_of(code: i32) -> io::ErrorKind {
    match code {
        ffi::E_DENIED => io::ErrorKind::PermissionDenied,
        ffi::E_NOT_FOUND => io::ErrorKind::NotFound,
        ffi::E_INVALID => io::ErrorKind::InvalidInput,
        ffi::E_UNSUPPORTED => io::ErrorKind::Unsupported,
        _ => io::ErrorKind::Other,
    }
}

/// A non-negative result as it is; a negative one as the error the host explained in `last_error`.
pub(crate) fn check(rc: i32) -> io::Result<usize> {
    if rc >= 0 {
        return Ok(rc as usize);
    }
    let message = host_string(ffi::last_error)
        .map(|raw| String::from_utf8_lossy(&raw).into_owned())
        .filter(|text| !text.is_empty())
        .unwrap_or_else(|| real::format!("cratecage: the host refused the request (code {})", rc));
    Err(io::Error::new(kind_of(rc), message))
}

pub(crate) fn spawn(request: &[u8]) -> io::Result<Handle> {
    let rc = unsafe { ffi::spawn(request.as_ptr(), request.len()) };
    check(rc).map(|id| Handle(id as i32))
}

pub(crate) fn stdin_write(handle: &Handle, buf: &[u8]) -> io::Result<usize> {
    check(unsafe { ffi::stdin_write(handle.0, buf.as_ptr(), buf.len()) })
}

pub(crate) fn stdin_close(handle: &Handle) -> io::Result<()> {
    check(unsafe { ffi::stdin_close(handle.0) }).map(drop)
}

pub(crate) fn read(handle: &Handle, stream: i32, buf: &mut [u8]) -> io::Result<usize> {
    check(unsafe { ffi::read(handle.0, stream, buf.as_mut_ptr(), buf.len()) })
}

/// (kind, value) as the host wrote them.
fn decode_status(raw: &[u8; ffi::STATUS_SIZE]) -> (i32, i32) {
    let kind = i32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]);
    let value = i32::from_le_bytes([raw[4], raw[5], raw[6], raw[7]]);
    (kind, value)
}

pub(crate) fn wait(handle: &Handle) -> io::Result<(i32, i32)> {
    let mut raw = [0u8; ffi::STATUS_SIZE];
    check(unsafe { ffi::wait(handle.0, raw.as_mut_ptr()) })?;
    Ok(decode_status(&raw))
}

pub(crate) fn try_wait(handle: &Handle) -> io::Result<Option<(i32, i32)>> {
    let mut raw = [0u8; ffi::STATUS_SIZE];
    let exited = check(unsafe { ffi::try_wait(handle.0, raw.as_mut_ptr()) })?;
    Ok(if exited == 1 { Some(decode_status(&raw)) } else { None })
}

pub(crate) fn kill(handle: &Handle) -> io::Result<()> {
    check(unsafe { ffi::kill(handle.0) }).map(drop)
}
