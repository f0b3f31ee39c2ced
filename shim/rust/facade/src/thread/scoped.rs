//! `thread::scope` for the sandbox: a scoped closure runs as an unscoped one does (thread.rs), when its
//! handle is joined or dropped. Every handle is one or the other before the scope's closure returns (it
//! cannot leave the scope), so `scope` returns with every closure run, as std's returns with every scoped
//! thread joined. The exception is a handle kept alive by `mem::forget`: its closure never runs, where
//! std's `scope` would wait for ever (the forgotten handle holds the count of running threads up).

use core::fmt;
use core::marker::PhantomData;

use real::boxed::Box;

use super::{current, Result, Task, Thread};

/// A scope to spawn closures in that may borrow from outside it; see `scope`.
pub struct Scope<'scope, 'env: 'scope> {
    scope: PhantomData<&'scope mut &'scope ()>,
    env: PhantomData<&'env mut &'env ()>,
}

/// A scoped closure, run when its handle is joined or dropped.
pub struct ScopedJoinHandle<'scope, T> {
    task: Task<'scope, T>,
    thread: Thread,
}

// SAFETY: as for JoinHandle (thread.rs): no second thread exists.
unsafe impl<T> Send for ScopedJoinHandle<'_, T> {}
unsafe impl<T> Sync for ScopedJoinHandle<'_, T> {}

/// Runs `f` with a scope and returns its value; every closure spawned in the scope has run by then.
pub fn scope<'env, F, T>(f: F) -> T
where
    F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> T,
{
    f(&Scope { scope: PhantomData, env: PhantomData })
}

impl<'scope, 'env> Scope<'scope, 'env> {
    pub fn spawn<F, T>(&'scope self, f: F) -> ScopedJoinHandle<'scope, T>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        ScopedJoinHandle { task: Task::new(Box::new(f)), thread: current() }
    }
}

impl fmt::Debug for Scope<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope").finish_non_exhaustive()
    }
}

impl<'scope, T> ScopedJoinHandle<'scope, T> {
    /// The spawning thread (thread.rs).
    pub fn thread(&self) -> &Thread {
        &self.thread
    }

    /// Runs the closure (unless it has run) and returns its value; a panic ends the run.
    pub fn join(self) -> Result<T> {
        Ok(self.task.join())
    }

    /// Runs the closure if it has not run, then true (false only from inside the closure itself).
    pub fn is_finished(&self) -> bool {
        self.task.finish()
    }
}

impl<T> Drop for ScopedJoinHandle<'_, T> {
    /// An unjoined scoped thread runs to completion here, as an unscoped one does.
    fn drop(&mut self) {
        self.task.finish();
    }
}

impl<T> fmt::Debug for ScopedJoinHandle<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopedJoinHandle").finish_non_exhaustive()
    }
}
