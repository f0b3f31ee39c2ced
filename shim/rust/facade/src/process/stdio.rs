//! `Stdio`: how each of a child's streams is connected, and how that maps onto the host's three modes.
//!
//! The host knows inherit, piped and null. Everything else std accepts (a `File`, another child's pipe,
//! an `io::pipe()` end, the parent's stdout/stderr) becomes a host pipe that the facade copies through:
//! a `Route::Feed` into the child's stdin right after spawn, a `Route::Sink` out of its stdout/stderr
//! once it has exited.

use core::fmt;
use real::boxed::Box;
use real::fs;
use real::io::{self, Read, Write};
use real::sync::Arc;

use super::child::{ChildStderr, ChildStdin, ChildStdout};
use crate::cratecage_ffi as ffi;

pub(super) type Source = Box<dyn Read + Send + Sync>;
pub(super) type Sink = Box<dyn Write + Send + Sync>;

/// How one of a child's standard streams is connected.
pub struct Stdio(Mode);

enum Mode {
    Inherit,
    Piped,
    Null,
    ParentStdout,
    ParentStderr,
    File(Arc<fs::File>),
    Reader(Option<Source>), // used up by the first spawn
    Writer(Option<Sink>),
}

impl Stdio {
    pub fn piped() -> Stdio {
        Stdio(Mode::Piped)
    }
    pub fn inherit() -> Stdio {
        Stdio(Mode::Inherit)
    }
    pub fn null() -> Stdio {
        Stdio(Mode::Null)
    }
}

impl fmt::Debug for Stdio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stdio").finish_non_exhaustive()
    }
}

impl From<ChildStdin> for Stdio {
    fn from(child: ChildStdin) -> Stdio {
        Stdio(Mode::Writer(Some(Box::new(child))))
    }
}

impl From<ChildStdout> for Stdio {
    fn from(child: ChildStdout) -> Stdio {
        Stdio(Mode::Reader(Some(Box::new(child))))
    }
}

impl From<ChildStderr> for Stdio {
    fn from(child: ChildStderr) -> Stdio {
        Stdio(Mode::Reader(Some(Box::new(child))))
    }
}

impl From<fs::File> for Stdio {
    fn from(file: fs::File) -> Stdio {
        Stdio(Mode::File(Arc::new(file)))
    }
}

impl From<io::Stdout> for Stdio {
    fn from(_: io::Stdout) -> Stdio {
        Stdio(Mode::ParentStdout)
    }
}

impl From<io::Stderr> for Stdio {
    fn from(_: io::Stderr) -> Stdio {
        Stdio(Mode::ParentStderr)
    }
}

impl From<io::PipeWriter> for Stdio {
    fn from(pipe: io::PipeWriter) -> Stdio {
        Stdio(Mode::Writer(Some(Box::new(pipe))))
    }
}

impl From<io::PipeReader> for Stdio {
    fn from(pipe: io::PipeReader) -> Stdio {
        Stdio(Mode::Reader(Some(Box::new(pipe))))
    }
}

#[derive(Clone, Copy, PartialEq)]
pub(super) enum Slot {
    Stdin,
    Stdout,
    Stderr,
}

/// Where one stream goes: a mode the host implements, or a host pipe the facade copies through.
pub(super) enum Route {
    Host(u8),
    Feed(Source),
    Sink(Sink),
}

impl Route {
    pub(super) fn mode(&self) -> u8 {
        match self {
            Route::Host(mode) => *mode,
            Route::Feed(_) | Route::Sink(_) => ffi::STDIO_PIPED,
        }
    }
}

/// A file shared by every spawn of one Command (`&File` reads and writes).
struct SharedFile(Arc<fs::File>);

impl Read for SharedFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self.0).read(buf)
    }
}

impl Write for SharedFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self.0).write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        (&*self.0).flush()
    }
}

pub(super) fn route(stdio: Option<&mut Stdio>, default: u8, slot: Slot) -> io::Result<Route> {
    let mode = match stdio {
        None => return Ok(Route::Host(default)),
        Some(stdio) => &mut stdio.0,
    };
    let input = slot == Slot::Stdin;
    Ok(match mode {
        Mode::Inherit => Route::Host(ffi::STDIO_INHERIT),
        Mode::Piped => Route::Host(ffi::STDIO_PIPED),
        Mode::Null => Route::Host(ffi::STDIO_NULL),
        Mode::ParentStdout if slot == Slot::Stdout => Route::Host(ffi::STDIO_INHERIT),
        Mode::ParentStderr if slot == Slot::Stderr => Route::Host(ffi::STDIO_INHERIT),
        Mode::ParentStdout if slot == Slot::Stderr => Route::Sink(Box::new(io::stdout())),
        Mode::ParentStderr if slot == Slot::Stdout => Route::Sink(Box::new(io::stderr())),
        Mode::File(file) if input => Route::Feed(Box::new(SharedFile(file.clone()))),
        Mode::File(file) => Route::Sink(Box::new(SharedFile(file.clone()))),
        Mode::Reader(source) if input => source.take().map_or(Route::Host(ffi::STDIO_NULL), Route::Feed),
        Mode::Writer(sink) if !input => sink.take().map_or(Route::Host(ffi::STDIO_NULL), Route::Sink),
        _ if input => return Err(misuse("an output stream as a child's stdin")),
        _ => return Err(misuse("an input stream as a child's stdout or stderr")),
    })
}

fn misuse(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, real::format!("cratecage: cannot use {}", what))
}
