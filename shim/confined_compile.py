"""Run a native rustc call that consumes a build script's output confined, and leave nothing behind.

Why: cargo hands what a build script printed to native tools. `rustc-env` values go into the environment
of the package's rustc (and so of LLVM, the linker driver `cc`, `ld` and whatever they start);
`rustc-link-search`/`-lib`/`-arg` and `rustc-flags` become `-L`/`-l`/`-C link-arg` of the package's compiles
and of every dependent's link. shim.directives decides which of those lines pass; this module is the
defence behind it: such a compile runs under Landlock (shim.landlock), so whatever a variable, a library
file, a linker script or a plugin makes rustc or the linker do, they can only:

    execute  the toolchain (rustc's sysroot incl. rust-lld and gcc-ld, clippy-driver, rustup's proxy and
             RUSTUP_HOME/toolchains when argv[1] is the proxy), the linker (`-C linker=` and `cc`, and a
             `#!` linker script's interpreter), gcc's internal passes (/usr/lib*/gcc, /usr/libexec/gcc), the
             system `ld`, `ld.bfd`, `ld.gold`, `ld.lld` and the ELF loader;
    read     the above, the package (CARGO_MANIFEST_DIR), rustc's cwd (the workspace root for members),
             OUT_DIR, every directory the argv names (--out-dir, -C incremental, -L, --extern, `@argfile`s,
             a target spec), the system library directories the linker searches, the loader's
             configuration, /dev/null and /dev/urandom;
    write    the output directory, the incremental directory, /dev/null and a private TMPDIR under
             `<target>/cratecage/tmp/`, removed afterwards.

TCP is left alone (`handle_tcp=False`): proc macros still run natively inside rustc, and some connect
(sqlx). shim.seccomp still refuses other socket families (Unix sockets such as an ssh agent or
docker.sock, netlink). The caller (shim.wrapper) decides which calls come here; everything else keeps the
exec fast path.

Nothing outlives the call: the wrapper becomes a child subreaper (prctl PR_SET_CHILD_SUBREAPER), so
orphans of rustc's descendants are reparented to it; after rustc exits, every remaining descendant is
killed with SIGKILL, found in /proc, repeatedly until none is left.

The inner wrapper (CRATECAGE_WRAPPER, e.g. sccache) is skipped here: its server, started outside this call,
would run rustc outside the confinement. Where Landlock is unavailable the call runs as before, with one
warning per target directory.

The confinement is applied between fork and exec in the wrapper's own process: the wrapper is
single-threaded, so the caveats that make shim.landlock_exec a separate launcher for the runner do not apply
here, and the launcher's interpreter start-up (~15 ms) is saved.
"""

from __future__ import annotations

import os
import signal
import sys
import time

from shim.rustc_args import RustcArgs

LAUNCH_FAILED = 71  # EX_OSERR, as shim.landlock_exec: the program never ran
WARNED_MARKER = "native-unconfined-warned"

# What a native compile and link may read besides the paths its own arguments name.
SYSTEM_READ = ("/lib", "/lib32", "/lib64", "/usr/lib", "/usr/lib32", "/usr/lib64", "/usr/libexec",
               "/usr/local/lib", "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d",
               "/dev/null", "/dev/urandom")
# gcc's own passes (collect2, lto-wrapper, lto1) live here; the driver starts them.
GCC_INTERNALS = ("/usr/lib/gcc", "/usr/lib64/gcc", "/usr/libexec/gcc", "/usr/lib/gcc-cross")
# The linkers the driver may start, searched on PATH and in the multiarch binutils directory.
LINKERS = ("ld", "ld.bfd", "ld.gold", "ld.lld")
# The ELF loaders of the usual Linux ABIs (the kernel opens a program's PT_INTERP as an executable).
ELF_LOADERS = ("/lib64/ld-linux-x86-64.so.2", "/lib/ld-linux-aarch64.so.1", "/lib/ld-linux-armhf.so.3",
               "/lib/ld-linux.so.2", "/lib64/ld64.so.2", "/lib/ld-linux-riscv64-lp64d.so.1",
               "/lib/ld-musl-x86_64.so.1", "/lib/ld-musl-aarch64.so.1")
# Sysroots shared with the rest of the system: only their rustlib is executable, not all of /usr/bin.
SYSTEM_PREFIXES = ("/", "/usr", "/usr/local")


class Grants:
    """What the confined rustc and everything it starts may execute, read and write (absolute paths)."""

    __slots__ = ("execute", "read", "write")

    def __init__(self, execute: list[str], read: list[str], write: list[str]) -> None:
        self.execute, self.read, self.write = execute, read, write


def grants(chain: list[str], rustc_args: list[str], args: RustcArgs, environ: dict[str, str],
           tmp: str) -> Grants:
    """See the module docstring; `rustc_args` are rustc's own arguments as cargo gave them."""
    path = environ.get("PATH", os.defpath)
    programs = [p for p in (_which(c, path) for c in chain) if p]
    execute = [*programs, *_toolchain_exec(programs, args, environ), *GCC_INTERNALS]
    execute += [i for p in programs for i in _interpreter(p)]  # a workspace wrapper may be a script
    for linker in {args.codegen_value("linker") or "cc", "cc"}:  # a configured linker may be a wrapper of cc
        found = _which(linker, path)
        if found:
            execute += [found, *_interpreter(found)]
    multiarch = f"/usr/{os.uname().machine}-linux-gnu"
    for directory in [*path.split(os.pathsep), os.path.join(multiarch, "bin")]:
        execute += [os.path.realpath(os.path.join(directory, n)) for n in LINKERS
                    if directory and os.path.exists(os.path.join(directory, n))]
    execute += [os.path.realpath(p) for p in ELF_LOADERS if os.path.exists(p)]
    write = [tmp, "/dev/null"]
    out = args.out_dir or (os.path.dirname(os.path.abspath(args.output)) if args.output else os.getcwd())
    write.append(out)
    incremental = args.codegen_value("incremental")
    if incremental:
        write.append(incremental)
    read = [*SYSTEM_READ, multiarch, os.getcwd(), *execute]
    read += [environ.get(name, "") for name in ("CARGO_MANIFEST_DIR", "OUT_DIR")]
    read += [os.path.dirname(os.path.abspath(p)) for p in args.inputs if p != "-"]
    read += [p for _, p in args.lib_paths]
    read += [os.path.dirname(p) for _, p in args.externs if p]
    read += [a[1:] for a in rustc_args if a.startswith("@") and not a.startswith("@shell:")]
    if args.target and args.target.endswith(".json"):
        read.append(args.target)
    if args.sysroot:
        read.append(args.sysroot)
    return Grants(_absolute(execute), _absolute(read), _absolute(write))


def _absolute(paths: list[str]) -> list[str]:
    return sorted({os.path.abspath(p) for p in paths if p})


def _which(program: str, path: str) -> str | None:
    """`program` resolved like execvp would (a bare name on PATH), as a real path; None if not found."""
    if os.sep in program:
        return os.path.realpath(program) if os.path.exists(program) else None
    for directory in path.split(os.pathsep):
        candidate = os.path.join(directory or ".", program)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return os.path.realpath(candidate)
    return None


def _toolchain_exec(programs: list[str], args: RustcArgs, environ: dict[str, str]) -> list[str]:
    """The toolchain trees rustc may execute from: rustup's toolchains when argv[1] is rustup's proxy,
    else the sysroot of each program (the whole sysroot, or only its rustlib when it is /usr)."""
    out = []
    for program in programs:
        if os.path.basename(program).startswith("rustup"):
            home = environ.get("RUSTUP_HOME") or os.path.join(os.path.expanduser("~"), ".rustup")
            out += [os.path.join(home, "toolchains"), os.path.join(home, "settings.toml")]
            continue
        sysroot = os.path.dirname(os.path.dirname(program))
        if not os.path.isdir(os.path.join(sysroot, "lib", "rustlib")):
            continue  # not a toolchain's program (a workspace wrapper script): only the program itself
        out.append(os.path.join(sysroot, "lib", "rustlib") if sysroot in SYSTEM_PREFIXES else sysroot)
    if args.sysroot:
        out.append(os.path.join(args.sysroot, "lib", "rustlib"))
    return out


def _interpreter(program: str) -> list[str]:
    """A `#!` script's interpreter (a linker wrapper script), so the script can run; else nothing."""
    try:
        with open(program, "rb") as fh:
            head = fh.read(256)
    except OSError:
        return []
    if not head.startswith(b"#!"):
        return []
    words = head[2:].split(b"\n", 1)[0].split()
    return [os.path.realpath(os.fsdecode(words[0]))] if words else []


# -- running ----------------------------------------------------------------------------------------------

def target_dir(args: RustcArgs) -> str:
    """The target directory: the nearest ancestor of the output directory that cargo tagged with
    CACHEDIR.TAG (both build-dir layouts), else the output directory's parent."""
    out = os.path.abspath(args.out_dir or os.getcwd())
    here = out
    for _ in range(8):
        if os.path.isfile(os.path.join(here, "CACHEDIR.TAG")):
            return here
        parent = os.path.dirname(here)
        if parent == here:
            break
        here = parent
    return os.path.dirname(out)


def run(cmd: list[str], args: RustcArgs, rustc_args: list[str], environ: dict[str, str],
        reason: str) -> int | None:
    """Run `cmd` (the program chain and rustc's arguments) confined; its exit status. None when Landlock
    is unavailable here: the caller then runs it as before (warned once per target directory)."""
    from shim import landlock, trace

    target = target_dir(args)
    abi = landlock.abi_version()
    if environ.get(trace.TRACE_ENV):
        trace.event(environ, kind="confined-compile", why=reason, crate=args.crate_name, landlock=abi,
                    chain=cmd[:len(cmd) - len(rustc_args)])
    if abi == 0:
        _warn_once(target, args.crate_name, landlock.unavailable_reason())
        return None
    tmp = os.path.join(target, "cratecage", "tmp", f"native-{os.getpid()}-{os.urandom(4).hex()}")
    os.makedirs(tmp, mode=0o700)
    try:
        allowed = grants(cmd[:len(cmd) - len(rustc_args)], rustc_args, args, environ, tmp)
        env = {**environ, "TMPDIR": tmp}
        become_subreaper()
        status = _spawn_and_wait(cmd, env, allowed, args.crate_name or "?")
        sweep()
    finally:
        _remove_tree(tmp)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)  # die the way rustc died, as exec would have
        return 128 + sig
    return os.waitstatus_to_exitcode(status)


def _remove_tree(top: str) -> None:
    """shutil.rmtree without importing shutil; the tree holds only what the compile left in TMPDIR."""
    for root, dirs, files in os.walk(top, topdown=False):
        for name in files:
            _quietly(os.unlink, os.path.join(root, name))
        for name in dirs:
            path = os.path.join(root, name)
            _quietly(os.unlink if os.path.islink(path) else os.rmdir, path)
    _quietly(os.rmdir, top)


def _quietly(remove, path: str) -> None:
    try:
        remove(path)
    except OSError:
        pass


def _spawn_and_wait(cmd: list[str], env: dict[str, str], allowed: Grants, crate: str) -> int:
    """Fork; the child confines itself and execs `cmd` (stdin, stderr and cargo's jobserver fds are
    inherited as they are); the parent forwards SIGINT/SIGTERM/SIGHUP and returns the wait status."""
    from shim import landlock, seccomp

    pid = os.fork()
    if pid == 0:  # the child: never returns
        try:
            landlock.restrict(allowed.read, allowed.write, execute=allowed.execute, handle_tcp=False)
            seccomp.restrict_sockets(udp=True)
            os.execvpe(cmd[0], cmd, env)
        except OSError as err:
            os.write(2, f"error: cratecage: could not run the compile of crate `{crate}` confined: {err}\n"
                        f"  (it consumes a build script's output; set CRATECAGE_TRACE to see why)\n".encode())
        finally:
            os._exit(LAUNCH_FAILED)

    def forward(signum: int, _frame: object) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, forward)
    return os.waitpid(pid, 0)[1]


_PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> None:
    """Orphaned descendants are reparented to this process instead of init, so `sweep` finds them."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def sweep(limit_s: float = 10.0) -> int:
    """Kill every descendant of this process and reap it, until none is left (a descendant that keeps
    forking is caught on a later pass: its orphans come to us); returns how many were killed."""
    killed = 0
    deadline = time.monotonic() + limit_s
    while True:
        found = descendants(os.getpid())
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        killed += len(found)
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                pid = -1
            if pid <= 0:
                break
        if (not found and pid == -1) or time.monotonic() > deadline:
            return killed
        time.sleep(0.005)


def descendants(root: int) -> list[int]:
    """Live or zombie descendants of `root`, from /proc (no psutil on this path)."""
    try:
        direct = open(f"/proc/{root}/task/{root}/children").read().split()
    except OSError:
        direct = ["?"]  # no CONFIG_PROC_CHILDREN: scan everything
    if not direct:
        return []
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(b")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(name))
    out: list[int] = []
    todo = [root]
    while todo:
        kids = children.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def _warn_once(target: str, crate: str | None, why: str) -> None:
    """Landlock is missing: say once per target directory that such compiles run unconfined."""
    marker = os.path.join(target, "cratecage", WARNED_MARKER)
    if os.path.exists(marker):
        return
    print(f"warning: cratecage: Landlock is unavailable ({why or 'not Linux'}); compiles that consume a build "
          f"script's output (first: `{crate or '?'}`) run unconfined", file=sys.stderr, flush=True)
    try:
        os.makedirs(os.path.dirname(marker), exist_ok=True)
        open(marker, "a").close()
    except OSError:
        pass
