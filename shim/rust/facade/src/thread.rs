//! `std::thread` for the sandbox: the real module, except that spawning runs the closure on the build
//! script's own thread, when the program waits for it, instead of failing.
//!
//! wasm32-wasip1 has one thread and no way to start another: its std's `thread::spawn` panics with "failed
//! to spawn thread" (threads.rs makes the link work whatever the wasi-libc). Build scripts spawn threads
//! mostly to get a bigger stack (html5ever 0.26: `Builder::new().stack_size(128 MiB).spawn(..)` then
//! `join()`), or to wait on children while feeding them (cc 1.0's `parallel` feature: a thread that waits on
//! the compilers the main thread sends it over a channel, joined once the channel is closed).
//!
//! When a closure runs: lazily, when its handle is joined (`join`, or `is_finished`, which runs it and answers true)
//! or dropped unjoined (a detached thread; a scoped thread's handle is one or the other before its scope ends,
//! thread/scoped.rs); `join` returns the closure's value. Each is a schedule a real thread could have had: the
//! closure ran, start to end, between its spawn and the point the parent waited for it. Running at spawn would be
//! wrong for a thread that waits on what its parent does after spawning it (cc's waiter above, whose channel the
//! parent fills and closes only then): the parent would never get control back. Running at join is wrong the other
//! way round, for a parent that waits on its thread's output before joining it (it consumes a channel the thread
//! fills); a handle dropped at once (`thread::spawn(..);`) runs at once, so the common worker that only sends its
//! result does work. Where no real schedule fits, the waiting side waits for ever: on wasm32-wasip1 std's blocking
//! `recv` and `park` spin, so the run stops at its time limit; a wait with a timeout ends as natively when a thread
//! is slow.
//!
//! Sandbox differences, each the nearest thing std's documentation allows:
//! - Panics: natively a build script unwinds (cargo ignores a profile's `panic` for build scripts); its
//!   wasm copy is compiled with wasm32-wasip1's default, `panic=abort` (shim/compile/replay.py drops any `-C panic`;
//!   unwinding in wasm needs the exception-handling proposal), so a panic in a closure ends the run, with
//!   std's panic message, instead of reaching `join` as an `Err`. A script that recovers from a thread's
//!   panic fails where natively it would not; one that unwraps `join()` fails either way.
//! - `Builder::stack_size` is accepted and has no effect: the closure runs on the script's own stacks,
//!   the 8 MiB linear-memory stack set at link (shim/compile/replay.py's `STACK_SIZE_ARG`; placed first in memory,
//!   so overflowing it traps) and wasmtime's call stack (shim/build/run.py's `MAX_WASM_STACK`, 2 MiB,
//!   wasmtime's ceiling), where a wasm frame keeps its scalars. A stack of the requested size carved from
//!   the heap would have nothing below it that traps (an overflow would silently overwrite heap data
//!   instead of failing the run), and wasmtime's stack could not grow anyway. Together they hold about
//!   what a native 3 MiB stack does (tests/toolchain/test_facade_gaps.py: a recursion that overflows a default
//!   2 MiB thread natively fits; twice as deep, it stops the run as a stack overflow, never silently);
//!   html5ever 0.26's request for 128 MiB is a margin its script does not need here.
//! - The closure sees the spawning thread's `thread::current()` (its name, its id) and thread-locals.
//! - `available_parallelism()` answers cargo's `NUM_JOBS` (cargo's `-j`, by default the host's parallelism),
//!   1 without it; wasm32-wasip1's std fails with `Unsupported`. Scripts size `make -j` with it.
//! - A handle that is never dropped (`mem::forget`, or alive when `process::exit` skips the drops) never runs
//!   its closure, as a native thread still running at exit is killed.
//!
//! Everything else (`current`, `sleep`, `park`, `yield_now`, `Thread`, `ThreadId`, `LocalKey`,
//! `thread_local!`, `panicking`) is the real std's.

pub use real::thread::*;

use core::cell::Cell;
use core::fmt;
use core::num::NonZeroUsize;

use real::boxed::Box;
use real::io;
use real::string::String;

mod scoped;

pub use self::scoped::{scope, Scope, ScopedJoinHandle};

/// Thread factory, as std's: a name and a stack size, both accepted, neither used (module docs).
#[derive(Debug)]
pub struct Builder {
    name: Option<String>,
    stack_size: Option<usize>,
}

impl Builder {
    pub fn new() -> Builder {
        Builder { name: None, stack_size: None }
    }

    pub fn name(mut self, name: String) -> Builder {
        self.name = Some(name);
        self
    }

    pub fn stack_size(mut self, size: usize) -> Builder {
        self.stack_size = Some(size);
        self
    }

    /// Never fails: the closure runs when the handle is joined or dropped.
    pub fn spawn<F, T>(self, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        Ok(JoinHandle { task: Task::new(Box::new(f)), thread: current() })
    }

    /// As `spawn`, without `'static`; the caller's contract is std's (the closure's borrows outlive the
    /// handle's join or drop, which is when it runs here).
    pub unsafe fn spawn_unchecked<F, T>(self, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        let boxed: Box<dyn FnOnce() -> T + Send + '_> = Box::new(f);
        // SAFETY: std's contract for spawn_unchecked: whatever `f` borrows outlives the handle, and the
        // closure runs (or is dropped) no later than the handle.
        let boxed: Box<dyn FnOnce() -> T + Send + 'static> = unsafe { core::mem::transmute(boxed) };
        Ok(JoinHandle { task: Task::new(boxed), thread: current() })
    }

    pub fn spawn_scoped<'scope, 'env, F, T>(self, scope: &'scope Scope<'scope, 'env>, f: F)
                                            -> io::Result<ScopedJoinHandle<'scope, T>>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        Ok(scope.spawn(f))
    }
}

/// `Builder::new().spawn(f)`: never fails.
pub fn spawn<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    Builder::new().spawn(f).expect("failed to spawn thread")
}

/// `NUM_JOBS`, else 1 (module docs).
pub fn available_parallelism() -> io::Result<NonZeroUsize> {
    let jobs = real::env::var("NUM_JOBS").ok().and_then(|n| n.parse::<NonZeroUsize>().ok());
    Ok(jobs.unwrap_or(NonZeroUsize::MIN))
}

/// A spawned closure, run when it is joined or dropped (module docs).
pub struct JoinHandle<T> {
    task: Task<'static, T>,
    thread: Thread,
}

// SAFETY: wasm32-wasip1 has one thread, and neither this facade nor its std can start another (threads.rs):
// nothing is ever shared between threads. std's JoinHandle is Send and Sync for every `T` as well.
unsafe impl<T> Send for JoinHandle<T> {}
unsafe impl<T> Sync for JoinHandle<T> {}

impl<T> JoinHandle<T> {
    /// The spawning thread (module docs).
    pub fn thread(&self) -> &Thread {
        &self.thread
    }

    /// Runs the closure (unless `is_finished` already did) and returns its value; a panic ends the run.
    pub fn join(self) -> Result<T> {
        Ok(self.task.join())
    }

    /// Runs the closure if it has not run, then true (false only from inside the closure itself).
    pub fn is_finished(&self) -> bool {
        self.task.finish()
    }
}

impl<T> Drop for JoinHandle<T> {
    /// A detached thread runs to completion here.
    fn drop(&mut self) {
        self.task.finish();
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle").finish_non_exhaustive()
    }
}

/// One spawned closure and, once it has run, its value. A `Cell`, not a lock: the closure runs with the
/// state set to `Running`, so a re-entrant `is_finished` from inside it answers false instead of
/// deadlocking.
struct Task<'a, T> {
    state: Cell<State<'a, T>>,
}

enum State<'a, T> {
    Pending(Box<dyn FnOnce() -> T + Send + 'a>),
    Running,
    Done(T),
    Joined,
}

impl<'a, T> Task<'a, T> {
    fn new(f: Box<dyn FnOnce() -> T + Send + 'a>) -> Self {
        Task { state: Cell::new(State::Pending(f)) }
    }

    /// Runs the closure if it is pending; whether it has finished.
    fn finish(&self) -> bool {
        match self.state.replace(State::Running) {
            State::Pending(f) => {
                let value = f();
                self.state.set(State::Done(value));
                true
            }
            State::Running => false,
            other => {
                self.state.set(other);
                true
            }
        }
    }

    /// The closure's value, running it first if needed.
    fn join(&self) -> T {
        self.finish();
        match self.state.replace(State::Joined) {
            State::Done(value) => value,
            _ => unreachable!("cratecage: a thread's closure joined twice or from inside itself"),
        }
    }
}
