//! `Child` and its pipes: a host handle shared by the child and the pipes taken from it.

use core::fmt;
use real::io::{self, Read, Write};
use real::sync::Arc;
use real::vec::Vec;

use super::status::{ExitStatus, Output};
use super::stdio::{Route, Sink};
use crate::cratecage_ffi as ffi;
use crate::cratecage_host::{self as host, Handle};

/// A started child. Its pipes share the host handle; the host forgets it when the last of them is dropped.
pub struct Child {
    handle: Arc<Handle>,
    status: Option<ExitStatus>,
    sinks: Vec<(i32, Sink)>,
    pub stdin: Option<ChildStdin>,
    pub stdout: Option<ChildStdout>,
    pub stderr: Option<ChildStderr>,
}

impl Child {
    /// The child the host started: pipes for the streams piped to the program, the copying for the rest.
    pub(super) fn connect(handle: Handle, [stdin, stdout, stderr]: [Route; 3]) -> io::Result<Child> {
        let handle = Arc::new(handle);
        let piped = |route: &Route| matches!(route, Route::Host(ffi::STDIO_PIPED));
        let mut child = Child {
            stdin: piped(&stdin).then(|| ChildStdin { handle: handle.clone() }),
            stdout: piped(&stdout).then(|| ChildStdout { handle: handle.clone() }),
            stderr: piped(&stderr).then(|| ChildStderr { handle: handle.clone() }),
            status: None,
            sinks: Vec::new(),
            handle,
        };
        for (stream, route) in [(ffi::STREAM_STDOUT, stdout), (ffi::STREAM_STDERR, stderr)] {
            if let Route::Sink(sink) = route {
                child.sinks.push((stream, sink));
            }
        }
        if let Route::Feed(mut source) = stdin {
            let mut pipe = ChildStdin { handle: child.handle.clone() };
            io::copy(&mut source, &mut pipe)?;
        }
        Ok(child)
    }

    pub fn kill(&mut self) -> io::Result<()> {
        if self.status.is_some() {
            return Ok(());
        }
        host::kill(&self.handle)
    }

    /// The host's handle number (there is no operating-system pid inside the sandbox).
    pub fn id(&self) -> u32 {
        self.handle.id() as u32
    }

    /// Closes stdin, then waits for the child to exit.
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        drop(self.stdin.take());
        if let Some(status) = self.status {
            return Ok(status);
        }
        let (kind, value) = host::wait(&self.handle)?;
        self.exited(ExitStatus::from_host(kind, value))
    }

    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        if let Some(status) = self.status {
            return Ok(Some(status));
        }
        match host::try_wait(&self.handle)? {
            Some((kind, value)) => self.exited(ExitStatus::from_host(kind, value)).map(Some),
            None => Ok(None),
        }
    }

    /// Closes stdin, reads stdout and stderr to their end, then waits.
    pub fn wait_with_output(mut self) -> io::Result<Output> {
        drop(self.stdin.take());
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        if let Some(mut pipe) = self.stdout.take() {
            pipe.read_to_end(&mut stdout)?;
        }
        if let Some(mut pipe) = self.stderr.take() {
            pipe.read_to_end(&mut stderr)?;
        }
        let status = self.wait()?;
        Ok(Output { status, stdout, stderr })
    }

    /// Records the status and copies what the child wrote into redirected files or pipes.
    fn exited(&mut self, status: ExitStatus) -> io::Result<ExitStatus> {
        self.status = Some(status);
        let mut buf = [0u8; 4096];
        for (stream, mut sink) in core::mem::take(&mut self.sinks) {
            loop {
                let n = host::read(&self.handle, stream, &mut buf)?;
                if n == 0 {
                    break;
                }
                sink.write_all(&buf[..n])?;
            }
            sink.flush()?;
        }
        Ok(status)
    }
}

impl fmt::Debug for Child {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Child")
            .field("stdin", &self.stdin)
            .field("stdout", &self.stdout)
            .field("stderr", &self.stderr)
            .finish_non_exhaustive()
    }
}

/// The writing end of a child's stdin; dropping it closes the stream (the child sees end of input).
pub struct ChildStdin {
    handle: Arc<Handle>,
}

impl Write for ChildStdin {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for &ChildStdin {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        host::stdin_write(&self.handle, buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for ChildStdin {
    fn drop(&mut self) {
        let _ = host::stdin_close(&self.handle);
    }
}

impl fmt::Debug for ChildStdin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildStdin").finish_non_exhaustive()
    }
}

/// The reading end of a child's stdout.
pub struct ChildStdout {
    handle: Arc<Handle>,
}

impl Read for ChildStdout {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        host::read(&self.handle, ffi::STREAM_STDOUT, buf)
    }
}

impl fmt::Debug for ChildStdout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildStdout").finish_non_exhaustive()
    }
}

/// The reading end of a child's stderr.
pub struct ChildStderr {
    handle: Arc<Handle>,
}

impl Read for ChildStderr {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        host::read(&self.handle, ffi::STREAM_STDERR, buf)
    }
}

impl fmt::Debug for ChildStderr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildStderr").finish_non_exhaustive()
    }
}
