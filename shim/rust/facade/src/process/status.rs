//! What a finished child leaves: `ExitStatus` and `Output`, with std's formatting.

use core::fmt;
use real::str;
use real::vec::Vec;

use crate::cratecage_ffi as ffi;

/// How a child ended: an exit code, or (for a child the host killed) a signal number.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ExitStatus {
    kind: i32,
    value: i32,
}

impl ExitStatus {
    /// The two i32s the host wrote (shim/host/abi.py `encode_status`).
    pub(super) fn from_host(kind: i32, value: i32) -> ExitStatus {
        ExitStatus { kind, value }
    }

    pub fn success(&self) -> bool {
        self.code() == Some(0)
    }

    pub fn code(&self) -> Option<i32> {
        (self.kind == ffi::STATUS_EXITED).then_some(self.value)
    }
}

impl Default for ExitStatus {
    /// Success, as std's.
    fn default() -> Self {
        ExitStatus { kind: ffi::STATUS_EXITED, value: 0 }
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.code() {
            Some(code) => write!(f, "exit status: {}", code),
            None => write!(f, "signal: {}", self.value),
        }
    }
}

impl fmt::Debug for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ExitStatus({})", self)
    }
}

/// What `Command::output` collected.
#[derive(PartialEq, Eq, Clone)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// As std's: streams shown as text when they are UTF-8, as bytes otherwise.
impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stdout_utf8 = str::from_utf8(&self.stdout);
        let stdout: &dyn fmt::Debug = match stdout_utf8 { Ok(ref text) => text, Err(_) => &self.stdout };
        let stderr_utf8 = str::from_utf8(&self.stderr);
        let stderr: &dyn fmt::Debug = match stderr_utf8 { Ok(ref text) => text, Err(_) => &self.stderr };
        f.debug_struct("Output")
            .field("status", &self.status)
            .field("stdout", stdout)
            .field("stderr", stderr)
            .finish()
    }
}
