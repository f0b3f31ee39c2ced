"""Run a native rustc call that consumes a build script's output confined, and leave nothing behind.

Why: cargo hands what a build script printed to native tools. `rustc-env` values go into the environment
of the package's rustc (and so of LLVM, the linker driver `cc`, `ld` and whatever they start);
`rustc-link-search`/`-lib`/`-arg` and `rustc-flags` become `-L`/`-l`/`-C link-arg` of the package's compiles
and of every dependent's link. shim.build.directives decides which of those lines pass; this module is the
defence behind it: such a compile runs under Landlock (shim.confine.landlock) with the grants of
shim.confine.rustc_grants (the toolchain and the user's linker to execute; the package, the exact inputs and
the crate files of the target directory to read; the output directory and a private TMPDIR, under
`<target>/cratecage/tmp/` and removed afterwards, to write), plus what the crate's owner granted its build
script (`[permissions.build.<crate>] filesystem-access`; the policy is loaded only when one may apply).

TCP is left alone (`handle_tcp=False`): proc macros still run natively inside rustc, and some connect
(sqlx). shim.confine.seccomp still refuses other socket families (Unix sockets such as an ssh agent or
docker.sock, netlink) and the calls that would undo the rest (`refuse_host_calls`: io_uring, the mount API,
new namespaces, fallocate, memfd_create), and every capability is dropped first (shim.confine.caps): root's rustc,
linker and proc macros need none. A private mount namespace, read-only outside the write set (shim.confine.mountns,
as for the launcher's children), refuses chmod, chown, utimes, xattrs and inode flags elsewhere; where none
can be made they are not refused (seccomp's blanket refusal would also stop the linker making its output
executable). No PID namespace: the subreaper sweep below ends what rustc leaves. The caller (shim.intercept.wrapper)
decides which calls come here; everything else keeps the exec fast path.

rustc's stderr passes through this process unchanged, line by line, so that a refusal can be explained
afterwards in one `cratecage:` line: a `couldn't read` of a file outside the grants names the crate and
the `filesystem-access` entry to paste; a proc macro that panicked on a refused file or program says that
proc macros run under the same confinement here.

Nothing outlives the call: the wrapper becomes a child subreaper (prctl PR_SET_CHILD_SUBREAPER), so
orphans of rustc's descendants are reparented to it; after rustc exits, shim.confine.reaper's sweep (the runner's:
stop through pidfds until nothing new appears, then kill, round after round) ends every one left.

The inner wrapper (CRATECAGE_WRAPPER, e.g. sccache) is skipped here: its server, started outside this call,
would run rustc outside the confinement. Where Landlock is unavailable the call runs as before, with one
warning per cargo run (shim.once).

The confinement is applied between fork and exec in the wrapper's own process: the wrapper is
single-threaded, so the caveats that make shim.confine.landlock_exec a separate launcher for the runner do not apply
here, and the launcher's interpreter start-up (~15 ms) is saved.
"""

from __future__ import annotations

import os
import time

# signal's own source of these, without its enum wrappers (~3 ms of every confined call's CPU)
from _signal import SIG_DFL, SIGHUP, SIGINT, SIGTERM
from _signal import signal as set_handler

from shim.cargo import layout
from shim.cargo.rustc_args import RustcArgs
from shim.confine.explain import UNREADABLE_WORDS
from shim.confine.rustc_grants import Grants, grants

LAUNCH_FAILED = 71  # EX_OSERR, as shim.confine.landlock_exec: the program never ran
STDERR_KEEP = 64  # diagnostics lines kept for the explanation after a failure (all of stderr is shown)


# -- running ----------------------------------------------------------------------------------------------

def target_dir(args: RustcArgs) -> str:
    """The build directory the unit belongs to (shim.cargo.layout: either build-dir layout, `--target` too)."""
    return layout.build_root(args.out_dir or os.getcwd(), args.target)


def run(cmd: list[str], args: RustcArgs, rustc_args: list[str], environ: dict[str, str],
        reason: str) -> int | None:
    """Run `cmd` (the program chain and rustc's arguments) confined; its exit status. None when Landlock
    is unavailable here: the caller then runs it as before (warned once per cargo run)."""
    from shim import trace
    from shim.confine import landlock
    from shim.intercept.classify import unit_name

    target = target_dir(args)
    unit = unit_name(args, environ)
    abi = landlock.abi_version()
    if environ.get(trace.TRACE_ENV):
        trace.event(environ, kind="confined-compile", why=reason, crate=args.crate_name, landlock=abi,
                    chain=cmd[:len(cmd) - len(rustc_args)])
    if abi == 0:
        _warn_once(unit, landlock.unavailable_reason(), environ)
        return None
    owner = owner_grant(environ)
    tmp = os.path.join(target, layout.STATE_DIR, "tmp", f"native-{os.getpid()}-{os.urandom(4).hex()}")
    os.makedirs(tmp, mode=0o700)
    try:
        allowed = grants(cmd[:len(cmd) - len(rustc_args)], rustc_args, args, environ, tmp, target=target,
                         owner=owner)
        env = {**environ, "TMPDIR": tmp}
        report = _check_link(args, tmp, env, allowed)
        if report:
            cmd = [*cmd, "-C", f"linker={env.pop(_LINKER_PATH)}"]
        from shim.confine import reaper

        reaper.become_subreaper()
        env.pop(MACRO_SERVERS_ENV, None)  # only the servers started below: never a value from elsewhere
        from shim.compile import macro_servers

        servers, fds = macro_servers.start(os.path.join(target, layout.STATE_DIR),
                                           macro_servers.loadable(args, os.getcwd()), env, os.getcwd())
        status, seen = _spawn_and_wait(cmd, env, allowed, unit, close_after_fork=fds)
        macro_servers.let_finish(servers)
        reaper.kill_all()  # the runner's sweep: frozen through pidfds, thread groups counted
        refused = _read_quietly(report) if report else ""
    finally:
        _remove_tree(tmp)
    if refused:
        path, _, what = refused.partition("\t")
        os.write(2, (f"error: cratecage: the link of the {unit} would read {path}, which is {what}: a library on "
                     "a search path a build script printed is checked whichever way the link names it "
                     "(`#[link]`, `+verbatim`); remove the file or the crate that links it\n").encode())
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        set_handler(sig, SIG_DFL)
        os.kill(os.getpid(), sig)  # die the way rustc died, as exec would have
        return 128 + sig
    code = os.waitstatus_to_exitcode(status)
    if code != 0 and seen:
        from shim.confine.explain import explain

        for line in explain(seen, environ, owner, args.crate_name or "?"):
            os.write(2, (line + "\n").encode())
    return code


# Where _check_link leaves the checking linker's path for run (popped before the environment is used).
_LINKER_PATH = "\0linker"
LINKED_TYPES = frozenset({"bin", "cdylib", "dylib", "proc-macro"})


def _check_link(args: RustcArgs, tmp: str, env: dict[str, str], allowed: Grants) -> str:
    """When this call links with a native search path (a build script's), install the checking linker
    (shim.confine.linkcheck) in `<build dir>/cratecage/linkcheck` (`tmp` is `<build dir>/cratecage/tmp/native-*`,
    which the compile may write; that directory it may not), point `env` at it and widen `allowed` to run it; the report file's path, or
    "" when the call does not link so. Only where rustc's linker is a `cc`-like driver: a configured
    `-C linker=`, or a Linux target's default `cc`."""
    native = [p for kind, p in args.lib_paths if kind not in ("dependency", "crate")]
    links = ("link" in args.emit or not args.emit) and (args.test or LINKED_TYPES.intersection(args.crate_types)
                                                         or not args.crate_types)
    configured = args.codegen_value("linker")
    if not native or not links or not (configured or not args.target or "-linux" in args.target):
        return ""
    from shim.confine import linkcheck

    granted = granted_search_paths(env)
    policed = [os.path.abspath(p) for p in native if not any(_matches(g, os.path.abspath(p)) for g in granted)]
    linker = configured or "cc"
    path = linkcheck.install(os.path.join(os.path.dirname(os.path.dirname(tmp)), "linkcheck"), linker)
    report = os.path.join(tmp, "linkcheck.report")
    env.update({linkcheck.LINKER_ENV: linker, linkcheck.DIRS_ENV: "\n".join(policed),
                linkcheck.TARGET_ENV: args.target or "", linkcheck.REPORT_ENV: report,
                linkcheck.OUT_ENV: os.path.abspath(args.out_dir or os.path.dirname(os.path.abspath(args.output or "x"))),
                _LINKER_PATH: path})
    allowed.execute = sorted({*allowed.execute, path, linkcheck.interpreter()})
    allowed.read = sorted({*allowed.read, path, *linkcheck.reads()})
    allowed.listable = sorted({*allowed.listable, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(linkcheck.__file__))))})
    return report


def granted_search_paths(environ: dict[str, str]) -> list[str]:
    """The search paths some `[permissions.build.*]` entry (the policy's or a curated one) permits by path
    (`directives = ["rustc-link-search=/opt/conda/lib"]`, a prefix when it ends in `*`): the owner chose
    those, so their files link as they are. A grant of every search path names none. Where no policy
    applies (`policy_may_apply`, asked first: it raises where the workspace is unknown, and then nothing is
    granted), the curated defaults' alone, from the per-user cache (`curated_search_paths`)."""
    from shim.errors import CratecageError

    try:
        from shim.cargo.workspace import policy_may_apply

        if not policy_may_apply("build", "*", environ):
            return curated_search_paths(environ)
        from shim.policy import curated
        from shim.sandbox import enforce
        from shim.startup import enable_site_packages

        enable_site_packages()
        return _search_paths([*curated.entries(), *enforce.load(environ)[0].entries])
    except CratecageError:
        return []


def _search_paths(entries: list) -> list[str]:
    prefix = "rustc-link-search="
    return [item[len(prefix):] for e in entries if e.kind == "build" for r in e.rules
            if r.capability == "directives" and r.action == "permit"
            for _, items in r.lists for item in items if item.startswith(prefix)]


# The curated defaults' search paths, kept in the per-user cache (shim.files.cache_dir) under the identity
# of curated.toml and of the code that reads it: nothing a crate or a build can change decides them, and
# reading them costs the policy package's ~35 ms of imports on every confined link.
CURATED_PATHS_CACHE = "curated-search-paths"
_CURATED_PATHS_MAGIC = "cratecage-curated-search-paths-1"
_CURATED_PATHS_CODE = ("policy/curated.toml", "policy/curated.py", "policy/load.py", "policy/model.py",
                       "policy/capabilities.py", "intercept/confined.py")


def curated_search_paths(environ: dict[str, str]) -> list[str]:
    """`granted_search_paths` of the curated entries alone: cached, or read and then cached."""
    from shim.files import atomic_write, cache_dir

    ident = _curated_identity()
    path = os.path.join(cache_dir(environ), CURATED_PATHS_CACHE)
    if ident is not None:
        stored, _, paths = _read_quietly(path).partition("\0\0")
        if stored == ident:
            return paths.split("\n") if paths else []
    from shim.policy import curated
    from shim.startup import enable_site_packages

    enable_site_packages()
    found = _search_paths(list(curated.entries()))
    if ident is not None and not any("\n" in p or "\0" in p for p in found):
        try:
            atomic_write(path, f"{ident}\0\0" + "\n".join(found), make_parents=True)
        except OSError:
            pass  # a read-only cache: read them again next time
    return found


def _curated_identity() -> str | None:
    """cratecage's version and the device, inode, size, mtime and ctime of curated.toml and the modules that
    read it; None when one cannot be examined (then nothing is cached)."""
    import shim

    shim_dir = os.path.dirname(os.path.abspath(shim.__file__))
    parts = [_CURATED_PATHS_MAGIC, shim.__version__]
    for name in _CURATED_PATHS_CODE:
        try:
            st = os.stat(os.path.join(shim_dir, name))
        except OSError:
            return None
        parts.append(f"{shim_dir}/{name} {st.st_dev} {st.st_ino} {st.st_size} {st.st_mtime_ns} {st.st_ctime_ns}")
    return "\n".join(parts)


def _matches(pattern: str, path: str) -> bool:
    from shim.lexical import prefix_match

    return prefix_match(pattern, path)


def _read_quietly(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            return f.read()
    except OSError:
        return ""


def owner_grant(environ: dict[str, str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(readable, writable) paths of the crate's `[permissions.build.<package>]` grant; nothing when no
    policy may apply (a cheap test first: the policy package costs ~25 ms to import) or none can be found."""
    crate = environ.get("CARGO_PKG_NAME")
    if not crate:
        return (), ()
    from shim.errors import CratecageError

    try:
        from shim.cargo.workspace import policy_may_apply

        if not policy_may_apply("build", crate, environ):
            return (), ()
        from shim.sandbox import enforce
        from shim.startup import enable_site_packages

        enable_site_packages()  # tomli on old Pythons
        grant, _policy = enforce.grant("build", crate, environ.get("CARGO_PKG_VERSION", "0.0.0"), environ)
    except CratecageError:
        return (), ()  # a malformed policy or an unknown workspace stops the build script, which ran first
    if grant is None or grant.mode == "warn":
        return (), ()
    return tuple(grant.readable), tuple(grant.writable)


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


MACRO_SERVERS_ENV = "CRATECAGE_MACRO_SERVERS"  # shim.compile.macro_servers.ENV, without importing it first


def _spawn_and_wait(cmd: list[str], env: dict[str, str], allowed: Grants | None, unit: str,
                    watched: tuple[bytes, ...] | None = None,
                    close_after_fork: list[int] = ()) -> tuple[int, list[bytes]]:
    """Fork; the child confines itself (unless `allowed` is None) and execs `cmd` (stdin and cargo's
    jobserver fds are inherited as they are, stderr goes through a pipe); the parent copies stderr on as it
    comes, keeps the lines worth explaining (`watched`, default `WATCHED`), forwards SIGINT/SIGTERM/SIGHUP
    and returns the wait status and those lines."""
    from shim.confine import caps, landlock, mountns, seccomp

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        try:
            os.close(read_end)
            os.dup2(write_end, 2)
            os.close(write_end)
            if allowed is None:
                os.execvpe(cmd[0], cmd, env)
            try:  # chmod, chown, utimes, xattrs and inode flags outside the write set fail (shim.confine.mountns)
                mountns.read_only_outside(allowed.write)
            except mountns.Unavailable:
                pass  # no namespace here: not refused (seccomp's refusal would also break the link's chmod)
            caps.drop_all()  # a root build's rustc, linker and proc macros need none (shim.confine.caps)
            landlock.restrict(allowed.read, allowed.write, execute=allowed.execute, handle_tcp=False,
                              list_only=allowed.listable)
            seccomp.restrict_sockets(udp=True)
            seccomp.refuse_host_calls()  # io_uring, the mount API, new namespaces, ... (shim.confine.seccomp)
            os.execvpe(cmd[0], cmd, env)
        except OSError as err:
            os.write(2, f"error: cratecage: could not run the compile of the {unit} confined: {err}\n"
                        f"  (it consumes a build script's output; set CRATECAGE_TRACE to see why)\n".encode())
        finally:
            os._exit(LAUNCH_FAILED)
    os.close(write_end)
    for fd in close_after_fork:  # rustc holds them now: a server sees EOF when rustc is gone
        os.close(fd)

    def forward(signum: int, _frame: object) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for sig in (SIGINT, SIGTERM, SIGHUP):
        set_handler(sig, forward)
    try:
        status, seen = _copy_stderr(read_end, pid, WATCHED if watched is None else watched)
    finally:
        os.close(read_end)
    return (os.waitpid(pid, 0)[1] if status is None else status), seen


# Lines of rustc's stderr (human or JSON diagnostics) that shim.confine.explain may explain.
WATCHED = (*UNREADABLE_WORDS, b"panicked")


def _copy_stderr(fd: int, pid: int, watched: tuple[bytes, ...] = WATCHED) -> tuple[int | None, list[bytes]]:
    """Copy `fd` to our stderr until EOF, or until rustc has exited while a descendant still holds the pipe
    (the sweep that follows kills it); rustc's wait status when it was reaped here, and the WATCHED lines
    (at most STDERR_KEEP)."""
    import select

    seen: list[bytes] = []
    partial = b""
    status = None
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    while True:
        if not poller.poll(200):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done == pid:
                return status, seen
            status = None
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        _write_all(2, chunk)
        lines = (partial + chunk).split(b"\n")
        partial = lines.pop()[-65536:]
        seen += [line for line in lines if len(seen) < STDERR_KEEP and any(w in line for w in watched)]
    if partial and any(w in partial for w in watched):
        seen.append(partial)
    return None, seen


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            time.sleep(0.001)
        except OSError:
            return  # our stderr is gone (cargo was interrupted): keep draining rustc's


def _warn_once(unit: str, why: str, environ: dict[str, str]) -> None:
    """Landlock is missing: say once per cargo run (shim.once) that such compiles run unconfined."""
    from shim import once

    once.say(f"warning: cratecage: Landlock is unavailable ({why or 'not Linux'}); compiles that consume a build "
             f"script's output (first: the {unit}) run unconfined", "no landlock: confined compiles",
             environ=environ)


def run_without_credentials(cmd: list[str], env: dict[str, str], dropped: set[str], unit: str) -> int:
    """Run `cmd` (unconfined) with the user's credentials `dropped` from `env` (shim.intercept.wrapper), and when the
    compile then fails on `env!` of one of them, say why in one `cratecage:` line: rustc's own error names
    the variable, not the reason it is unset."""
    status, seen = _spawn_and_wait(cmd, env, None, unit, watched=(b"not defined at compile time",))
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        set_handler(sig, SIG_DFL)
        os.kill(os.getpid(), sig)
        return 128 + sig
    code = os.waitstatus_to_exitcode(status)
    named = sorted(name for name in dropped if any(f"`{name}`".encode() in line for line in seen))
    if code != 0 and named:
        os.write(2, (f"error: cratecage: the {unit}, of a package outside the workspace, read "
                     f"{', '.join(named)} at compile time: cratecage does not pass the user's credentials "
                     f"(variables named like tokens, secrets, passwords and keys) to dependencies' compiles\n"
                     ).encode())
    return code
