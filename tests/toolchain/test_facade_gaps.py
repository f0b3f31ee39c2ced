"""std APIs wasm32-wasip1 lacks that build scripts use, as the facade gives them (shim/rust/facade/src/env.rs,
env/path_var.rs, thread.rs, thread/scoped.rs): `PATH`-style lists and `home_dir` as on Linux, threads whose
closures run when joined or dropped. Each guest is also compiled natively against the real std where the
answers must agree (the plumbing is tests/guests.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from guests import (Compiler, GuestTrapped, Sandbox, cache_env, compiler, facade_rlib, run,  # noqa: F401 (fixtures)
                    sandbox, tc)

# -- PATH-style lists -------------------------------------------------------------------------------------

PATH_LISTS = r"""
use std::env;
use std::error::Error;
use std::ffi::{OsStr, OsString};
#[cfg(unix)]
use std::os::unix::ffi::OsStrExt;
#[cfg(target_os = "wasi")]
use std::os::wasi::ffi::OsStrExt;

const LISTS: &[&[u8]] = &[
    b"", b":", b"::", b"/usr/bin", b"/usr/bin:/bin", b":/bin", b"/bin:", b"a::b", b"rel/dir:./x:../y",
    b"with space:/x y", b"\xff\xfe:/ok", b"C:\\dir;D:\\x", b"~/bin:$HOME/bin", b"\"/q:uoted\"", b"/a/:/b//",
];
const JOINS: &[&[&[u8]]] = &[
    &[], &[b""], &[b"", b""], &[b"/a", b"/b"], &[b"a:b"], &[b"/a", b"b:c", b"/d"], &[b"\xff", b"x y"], &[b":"],
    &[b"/a", b""], &[b"C:\\x;y"],
];

fn joined_in_main() -> Result<OsString, Box<dyn Error>> {
    Ok(env::join_paths(["/x", "y:z"])?)
}

fn main() {
    for raw in LISTS {
        let list = OsStr::from_bytes(raw);
        let split = env::split_paths(list);
        let hint = split.size_hint();
        let parts: Vec<_> = split.collect();
        let rejoined = env::join_paths(&parts).map(|joined| joined == list);
        println!("split {:?} -> {:?} hint {:?} rejoined {:?}", list, parts, hint, rejoined);
    }
    for paths in JOINS {
        let paths: Vec<&OsStr> = paths.iter().map(|p| OsStr::from_bytes(p)).collect();
        match env::join_paths(paths.iter()) {
            Ok(joined) => println!("join {:?} -> Ok({:?})", paths, joined),
            #[allow(deprecated)]
            Err(e) => println!("join {:?} -> Err {:?} {:#?} / {} / {} / {}", paths, e, e, e, e.description(),
                               e.source().is_none()),
        }
    }
    let mut split: env::SplitPaths<'_> = env::split_paths("/a:/b");
    let first = split.next();
    println!("{:?} {:?} {:?}", split, first, split.size_hint());
    println!("{:?}", joined_in_main().map_err(|e| e.to_string()));
    let joined = env::join_paths(env::split_paths(&env::var_os("GUEST_PATH").unwrap_or_default()));
    println!("from the environment {:?}", joined);
}
"""


def test_split_and_join_paths_answer_as_linux_std_on_a_table(compiler: Compiler, sandbox: Sandbox) -> None:
    ran = sandbox.run(compiler.wasm("pathlists", PATH_LISTS), GUEST_PATH="/usr/local/bin::/usr/bin")
    assert ran.code == 0, ran.stderr
    native = subprocess.run([str(compiler.native("pathlists", PATH_LISTS))], capture_output=True, text=True,
                            env={"GUEST_PATH": "/usr/local/bin::/usr/bin"}, check=True).stdout
    assert ran.stdout == native
    lines = ran.stdout.splitlines()
    assert 'split "" -> [""] hint (1, Some(1)) rejoined Ok(true)' in lines
    assert 'split "a::b" -> ["a", "", "b"] hint (1, Some(5)) rejoined Ok(true)' in lines
    assert ('join ["a:b"] -> Err JoinPathsError { inner: JoinPathsError } JoinPathsError {\n    inner: '
            'JoinPathsError,\n} / path segment contains separator `:` / description() is deprecated; use Display'
            ' / true') in ran.stdout
    assert 'join ["", ""] -> Ok(":")' in lines
    assert lines[-1] == 'from the environment Ok("/usr/local/bin::/usr/bin")'


HOME_DIR = r"""
fn main() {
    #[allow(deprecated)]
    let home = std::env::home_dir();
    println!("{:?}", home);
}
"""


@pytest.mark.parametrize(("env", "expected"), [({"HOME": "/home/builder"}, 'Some("/home/builder")'),
                                               ({"HOME": ""}, "None"), ({}, "None")])
def test_home_dir_is_home_when_set_and_not_empty(compiler: Compiler, sandbox: Sandbox, env: dict[str, str],
                                                 expected: str) -> None:
    ran = sandbox.run(compiler.wasm("homedir", HOME_DIR), **env)
    assert (ran.code, ran.stdout.strip()) == (0, expected)


# -- threads ----------------------------------------------------------------------------------------------

THREADS = r"""
use std::sync::mpsc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::{self, JoinHandle, Scope, ScopedJoinHandle};

fn send_sync<T: Send + Sync>(_: &T) {}

static RAN: AtomicUsize = AtomicUsize::new(0);

fn main() {
    let handle: JoinHandle<u32> = thread::Builder::new().name("big".into()).stack_size(64 << 20)
        .spawn(|| 6 * 7).unwrap();
    send_sync(&handle);
    println!("builder {:?}", handle.join());

    // cc 1.0's `parallel` build: a waiter thread the parent feeds after spawning it, joined once closed
    let (tx, rx) = mpsc::channel::<u32>();
    let waiter = thread::spawn(move || rx.iter().sum::<u32>());
    for i in 1..=4 {
        tx.send(i).unwrap();
    }
    drop(tx);
    println!("waiter {:?}", waiter.join());

    // detached workers that only send their results
    let (tx, rx) = mpsc::channel();
    for i in 0..3u32 {
        let tx = tx.clone();
        thread::spawn(move || tx.send(i * i).unwrap());
    }
    drop(tx);
    let mut squares: Vec<u32> = rx.iter().collect();
    squares.sort();
    println!("workers {:?}", squares);

    let polled = thread::spawn(|| RAN.fetch_add(10, Ordering::SeqCst));
    while !polled.is_finished() {
        thread::yield_now();
    }
    println!("ran {}", RAN.load(Ordering::SeqCst));

    // scoped threads borrowing from the parent, joined or not
    let mut data = vec![1, 2, 3];
    let total = thread::scope(|s: &Scope<'_, '_>| {
        let data = &data;
        let sum: ScopedJoinHandle<'_, i32> = s.spawn(|| data.iter().sum());
        let nested = s.spawn(move || s.spawn(move || data.len()).join().unwrap());
        thread::Builder::new().spawn_scoped(s, || RAN.fetch_add(100, Ordering::SeqCst)).unwrap();
        sum.join().unwrap() + nested.join().unwrap() as i32
    });
    data.push(total);
    println!("scope {:?} ran {}", data, RAN.load(Ordering::SeqCst));

    let borrowed = String::from("borrowed");
    let unchecked = unsafe { thread::Builder::new().spawn_unchecked(|| borrowed.len()) }.unwrap();
    println!("unchecked {:?}", unchecked.join());
    println!("{:?}", thread::spawn(|| ()));
}
"""


def test_spawned_closures_run_and_join_with_their_values_as_natively(compiler: Compiler, sandbox: Sandbox) -> None:
    ran = sandbox.run(compiler.wasm("threads", THREADS))
    assert ran.code == 0, ran.stderr
    assert ran.stdout.splitlines() == [
        "builder Ok(42)", "waiter Ok(10)", "workers [0, 1, 4]", "ran 10", "scope [1, 2, 3, 9] ran 110",
        "unchecked Ok(8)", "JoinHandle { .. }"]
    assert ran.stdout == run([str(compiler.native("threads", THREADS))])


SANDBOX_THREADS = r"""
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

static RAN: AtomicUsize = AtomicUsize::new(0);

fn main() {
    println!("{:?}", thread::available_parallelism().map(|n| n.get()));
    let detached = thread::spawn(|| RAN.fetch_add(1, Ordering::SeqCst));
    println!("before drop {}", RAN.load(Ordering::SeqCst));
    drop(detached);
    println!("after drop {}", RAN.load(Ordering::SeqCst));
    let handle = thread::Builder::new().name("worker".into()).spawn(|| thread::current().name().map(String::from))
        .unwrap();
    let name = handle.thread().name().map(String::from);
    println!("{:?} {:?}", name, handle.join().unwrap());
}
"""


@pytest.mark.parametrize(("env", "parallelism"), [({"NUM_JOBS": "3"}, "Ok(3)"), ({}, "Ok(1)"),
                                                  ({"NUM_JOBS": "0"}, "Ok(1)")])
def test_a_closure_runs_on_the_main_thread_when_dropped_and_available_parallelism_is_num_jobs(
        compiler: Compiler, sandbox: Sandbox, env: dict[str, str], parallelism: str) -> None:
    ran = sandbox.run(compiler.wasm("sandboxthreads", SANDBOX_THREADS), **env)
    assert ran.stdout.splitlines() == [parallelism, "before drop 0", "after drop 1", 'Some("main") Some("main")']


PANICS = r"""
fn main() {
    let handle = std::thread::spawn(|| -> u32 { panic!("the closure gave up") });
    println!("spawned");
    let result = handle.join();
    println!("joined: {}", result.is_err());
}
"""


def test_a_panic_in_a_joined_thread_ends_the_run_where_natively_join_is_an_err(
        compiler: Compiler, sandbox: Sandbox) -> None:
    ctx = sandbox.context()
    with pytest.raises(GuestTrapped) as trapped:
        sandbox.run(compiler.wasm("panics", PANICS), ctx)
    assert "panicked at" in str(trapped.value) and "the closure gave up" in str(trapped.value)
    assert (Path(ctx.package_dir).parent / "stdout").read_text() == "spawned\n"  # never "joined"
    native = subprocess.run([str(compiler.native("panics", PANICS))], capture_output=True, text=True)
    assert native.stdout == "spawned\njoined: true\n"


DEEP = r"""
use std::thread;

#[inline(never)]
fn depth(n: u32, path: &mut Vec<u32>) -> u64 {
    let frame = [n; 32];
    if n == 0 {
        return path.len() as u64;
    }
    path.push(frame[(n % 32) as usize]);
    depth(n - 1, path) + frame[1] as u64 % 2
}

fn main() {
    let n: u32 = std::env::var("DEPTH").unwrap().parse().unwrap();
    let builder = match std::env::var("STACK") {
        Ok(size) => thread::Builder::new().stack_size(size.parse().unwrap()),
        Err(_) => thread::Builder::new(),
    };
    let handle = builder.spawn(move || depth(n, &mut Vec::new())).unwrap();
    println!("{}", handle.join().unwrap());
}
"""


def test_a_recursion_that_needs_a_bigger_thread_natively_fits_and_a_deeper_one_stops_the_run(
        compiler: Compiler, sandbox: Sandbox) -> None:
    """`stack_size` has no effect in the sandbox (thread.rs says why); the script's own stacks hold a
    recursion that overflows a default 2 MiB thread natively, and one beyond them traps, never corrupts."""
    native = compiler.native("deep", DEEP)
    overflows = subprocess.run([str(native)], env={"DEPTH": "20000"}, capture_output=True, text=True)
    assert overflows.returncode != 0 and "has overflowed its stack" in overflows.stderr
    big = subprocess.run([str(native)], env={"DEPTH": "20000", "STACK": str(32 << 20)}, capture_output=True,
                         text=True, check=True)
    wasm = compiler.wasm("deep", DEEP)
    ran = sandbox.run(wasm, DEPTH="20000", STACK=str(32 << 20))
    assert (ran.code, ran.stdout) == (0, big.stdout) and big.stdout == "30000\n"
    with pytest.raises(GuestTrapped, match="call stack exhausted"):
        sandbox.run(wasm, DEPTH="60000", STACK=str(256 << 20))
