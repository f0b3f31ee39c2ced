"""Granted programs: a native child a build script starts, because the policy names it for the crate.

`process-spawn = { action = "permit", programs = ["cc"] }` lets the build script of that crate run `cc`
through the facade's `std::process::Command`. The program is native code acting on the guest's
arguments (a `-fplugin=` or a `-B` into OUT_DIR makes a compiler load code the script wrote), so each
child is started like this, and nothing is left to the guest:

  - the program: a bare name is looked up on the *host's* PATH (cargo's, never the guest's); a path
    must be the one a granted name resolves to, or itself granted. A program reached through anything the
    guest can write (OUT_DIR, the temp dir, a writable grant) is refused: the binary itself, or any link on
    the way from the name to it (`writable_hop`), which the guest may have planted or swapped. Its profile
    is that of the name it is granted as (`granted_as`), never of the guest's spelling.
  - the environment: what the guest asked for, starting from its own (which holds only what cargo gives
    build scripts and what the policy grants), minus every variable that changes how programs load or
    find tools (shim.build.directives' loader list: LD_*, COMPILER_PATH, GCC_*, ...) unless the guest had it
    from a grant; PATH is the host's, HOME and TMPDIR the run's temp dir.
  - the working directory: the guest's choice, inside the package, OUT_DIR, the temp dir or a grant.
  - confinement (Landlock, through shim.confine.landlock_exec): read and execute the program's own files, its
    curated profile (shim/policy/programs.toml: a C compiler reads system headers); a build driver (sh, make,
    cmake, configure, ...) also executes what this run built in OUT_DIR and the temp dir (configure's
    `./conftest`: `output_trees`); read the package, OUT_DIR,
    the temp dir and the crate's granted paths, never the rest of the target directory (shim.confine.fsview);
    write OUT_DIR, the temp dir and writable grants, where it may create regular files, directories and
    symbolic links but no FIFO, socket or device node (shim.confine.landlock); TCP connect only to the ports of
    the crate's network routes; change the metadata of nothing outside the write set (shim.confine.landlock_exec).
  - its own wall-clock budget (shim.limits: CRATECAGE_LIMIT_CHILD_TIME, default 300 s), and the run's
    deadline.
  - a hard RLIMIT_FSIZE of the run's disk limit (CRATECAGE_LIMIT_DISK); the supervisor (shim.build.run)
    counts its processes, their memory and the bytes in every writable directory while it runs.
  - the end of the program ends what it started: the launcher runs it in a PID namespace of its own whose
    init exits with it, and the kernel then kills the rest (shim.confine.pidns, where namespaces can be made).
  - the end of the run ends it: every child is in its own process group, the runner is a child
    subreaper, so a double-forked grandchild is reparented to it, and `sweep()` stops and kills every
    descendant (a process is alive while any of its threads is), round after round, until none is left
    (shim.confine.reaper), before the post-run checks; one it cannot end fails the run.

Pipes are served from threads that drain the child's stdout and stderr into buffers (so a child never
blocks on a full pipe the guest is not reading); a stream the guest inherits goes where the guest's own
output goes: stdout into the captured output that the directive filter sees, stderr to the runner's.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import select
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Final

from shim.cargo import workspace
from shim.confine import reaper
from shim.env_names import LOADER_ENV_NAMES, LOADER_ENV_PREFIXES
from shim.host import abi
from shim.host.context import RunContext
from shim.lexical import entries_on_the_way, inside, normal_path

if TYPE_CHECKING:
    from shim.host.process import Sinks
    from shim.policy.programs import Profile

MAX_BUFFERED: Final = 64 << 20  # bytes of one piped stream not yet read by the guest
MAX_READ: Final = 1 << 20  # bytes one read of a pipe returns at most
_CHUNK: Final = 64 << 10
NOT_GRANTED: Final = "the policy does not grant this program to the crate"


EXPLICITLY_DENIED: Final = "not run: the policy denies it (an explicit deny)"


class SpawnRefused(Exception):
    """The policy does not let this run: `capability`, `target` and `reason` for the denial."""

    def __init__(self, target: str, reason: str, *, program_denial: bool = True, expected: bool = False) -> None:
        super().__init__(reason)
        self.target = target
        self.reason = reason
        self.program_denial = program_denial  # False: granted, but asked for something else (cwd, ...)
        self.expected = expected  # an explicit deny named it: "not found" to the script, no failure


# Programs a crate tries only after another was refused, as its fallback for the same job: the pkg-config
# crate runs `pkgconf` when `pkg-config` failed to start. A refusal of the fallback after the first one was
# refused in the same run is its consequence: reported without an entry, since granting the first is the fix
# (suggesting `pkgconf` would grant a program the crate never needed).
FALLBACK_OF: Final = {"pkgconf": "pkg-config"}


def fallback_after_refusal(ctx: RunContext, program: str) -> str | None:
    """The program whose refusal in this run made the crate try `program`, if it is such a fallback."""
    first = FALLBACK_OF.get(os.path.basename(program))
    refused = {d.target for d in ctx.denials if d.capability == "process-spawn" and not d.expected}
    return first if first is not None and first in refused else None


# -- what may run ---------------------------------------------------------------------------------------

def host_path(ctx: RunContext) -> str:
    """The host's PATH, absolute entries only (a relative entry would resolve against the guest's cwd)."""
    raw = ctx.host_env.get("PATH", os.defpath)
    return os.pathsep.join(p for p in raw.split(os.pathsep) if os.path.isabs(p))


def guest_writable(ctx: RunContext) -> list[str]:
    grant = ctx.grant
    return [ctx.out_dir, ctx.tmp_dir, *(grant.writable if grant is not None else ())]


def resolve(ctx: RunContext, program: str) -> str:
    """The executable a granted request runs; raises SpawnRefused when the policy does not name it. In warn
    mode a program that is not granted runs too, under the same confinement, and is reported."""
    grant = ctx.grant
    if denied_outright(ctx, program):
        raise SpawnRefused(program, EXPLICITLY_DENIED, expected=True)
    warn = grant is not None and grant.mode == "warn"
    if not warn and (grant is None or not grant.programs):
        raise SpawnRefused(program, NOT_GRANTED)
    path = host_path(ctx)
    if "/" not in program:
        if not grant.allows_program(program):
            if not warn:
                raise SpawnRefused(program, NOT_GRANTED)
            ctx.deny("process-spawn", program, NOT_GRANTED, suggest(ctx, program), permitted=True)
        found = shutil.which(program, path=path)
        if found is None:
            raise SpawnRefused(program, f"granted, but not found on the host's PATH ({path})",
                               program_denial=False)
        named_at = found
    else:
        if not os.path.isabs(program):
            raise SpawnRefused(program, "a relative program path; name the program or give an absolute path")
        # What the guest means by it (`..` lexically, shim.lexical) is what is checked and what runs: a link
        # before a `..` (planted in OUT_DIR) must not make the host run another binary than the one granted.
        program = normal_path(program)
        named_at = program
        if not (grant.allows_program(program) or os.path.realpath(program) in _named(ctx)):
            if not warn:
                raise SpawnRefused(program, NOT_GRANTED + " (nor is it what a granted name resolves to)")
            ctx.deny("process-spawn", program, NOT_GRANTED, suggest(ctx, program), permitted=True)
    # Every step of the way from the name to the file, links included, must be out of the guest's reach:
    # a link it planted in a directory it can write (OUT_DIR, or one on the host's PATH, or beside a granted
    # path) would turn a granted name into any binary on the host, which then runs as granted.
    hop = writable_hop(named_at, [w for d in guest_writable(ctx) if d for w in (d, os.path.realpath(d))])
    if hop is not None:
        raise SpawnRefused(program, f"{hop} is in a directory the build script can write", program_denial=False)
    resolved = os.path.realpath(named_at)
    if not (os.path.isfile(resolved) and os.access(resolved, os.X_OK)):
        raise SpawnRefused(program, f"{resolved} is not an executable file", program_denial=False)
    return resolved


def denied_outright(ctx: RunContext, program: str) -> bool:
    """Whether an explicit deny names `program` for this crate: the owner's, or a curated one (policy/
    curated.toml: `git` for registry packages). Without a grant (no policy source, no curated entry naming
    the crate) the curated defaults are resolved here, on the first spawn, rather than for every run."""
    grant = ctx.grant
    if grant is None:
        from shim.cargo.workspace import package_source
        from shim.policy import Policy

        grant = Policy().resolve(ctx.kind, ctx.crate, ctx.version, package_source(ctx.package_dir, ctx.host_env))
    return grant.denies_program(program if "/" not in program else normal_path(program))


def _named(ctx: RunContext) -> dict[str, str]:
    """The files the grant's bare program names resolve to on the host's PATH: real path -> name."""
    path = host_path(ctx)
    out: dict[str, str] = {}
    for name in ctx.grant.programs if ctx.grant is not None else ():
        found = shutil.which(name, path=path) if "/" not in name else None
        if found:
            out.setdefault(os.path.realpath(found), name)
    return out


def writable_hop(path: str, writable: list[str]) -> str | None:
    """The first directory entry on the way `path` resolves (shim.lexical.entries_on_the_way) that lies in
    one of the `writable` directories, or None. Those are entries the guest may have made or swapped;
    `writable` should hold each directory's real path too."""
    return next((e for e in entries_on_the_way(path) if any(inside(e, d) for d in writable)), None)


def granted_as(ctx: RunContext, requested: str, program: str) -> str:
    """The name under which the policy permits what runs: the bare name the guest asked for (checked by
    `resolve`), the granted path it named, or the granted name that resolves to the same file. What picks
    the program's profile: never the guest's own spelling, which a link it planted can give any name."""
    if "/" not in requested:
        return requested
    grant = ctx.grant
    lexical = normal_path(requested)
    if grant is not None and grant.allows_program(lexical):
        return lexical
    return _named(ctx).get(program, program)


def suggest(ctx: RunContext, program: str) -> str:
    from shim.policy import suggest_entry

    return suggest_entry(ctx.kind, ctx.crate, "process-spawn", program)


def _loader_affecting(name: str) -> bool:
    upper = name.upper()
    return upper in LOADER_ENV_NAMES or upper.startswith(LOADER_ENV_PREFIXES)


def child_env(ctx: RunContext, req: abi.SpawnRequest) -> dict[str, str]:
    """The guest's requested environment minus what changes loading or tool lookup, with the host's
    PATH and the run's temp dir for HOME/TMPDIR. A loader variable survives only with the exact value
    the guest was given (a grant of LD_LIBRARY_PATH is the owner's decision)."""
    wanted = req.environment(ctx.env)
    env = {k: v for k, v in wanted.items() if not _loader_affecting(k) or ctx.env.get(k) == v}
    for name in ("RUSTC_WRAPPER", "RUSTC_WORKSPACE_WRAPPER"):  # a nested cargo must not run us unchecked
        env.pop(name, None)
    # Nor choose the workspace or policy a cratecage under it would use: this build's, pinned absolutely.
    env = {k: v for k, v in env.items() if not k.startswith("CRATECAGE_")}
    env.update(workspace.child_env(ctx.host_env))
    env["PATH"] = host_path(ctx)
    env["HOME"] = env["TMPDIR"] = ctx.tmp_dir
    return env


def child_cwd(ctx: RunContext, req: abi.SpawnRequest) -> str:
    base = ctx.package_dir or ctx.tmp_dir  # a proc macro has no package directory: its temp dir
    cwd = normal_path(os.path.join(base, req.cwd)) if req.cwd else base
    grant = ctx.grant
    roots = [ctx.package_dir, ctx.out_dir, ctx.tmp_dir,
             *(grant.readable if grant is not None else ()), *(grant.writable if grant is not None else ())]
    if not any(inside(cwd, r) for r in roots if r) or not os.path.isdir(cwd):
        raise SpawnRefused(req.program, f"working directory {cwd} is outside the package, OUT_DIR and the "
                                        "crate's grants", program_denial=False)
    return cwd


@dataclass(frozen=True)
class Confinement:
    """What a granted program may do (shim.confine.landlock.restrict): run and read `execute`, read `read`, write
    `write`, and connect to `ports`; run `output` too (`output_trees`); `report`: the file where the launcher
    notes what the program's tree tried to run outside `execute` and what it ran of `output`
    (shim.confine.exec_watch)."""

    execute: list[str]
    read: list[str]
    write: list[str]
    ports: tuple[int, ...]
    file_size: int | None = None  # hard RLIMIT_FSIZE, set by the launcher before the program starts
    report: str | None = None
    output: list[str] = dataclasses.field(default_factory=list)

    def command(self, argv: list[str], argv0: str | None = None) -> list[str]:
        from shim.confine import landlock_exec

        return landlock_exec.command(argv, self.read, self.write, self.ports, self.execute, self.file_size, argv0,
                                     self.report, self.output)


def confinement(ctx: RunContext, program: str, requested: str) -> Confinement:
    """See the module docstring. The profile is found by the name the policy grants it as (`cc`, never the
    guest's spelling: `granted_as`), by the file it resolved to (`x86_64-linux-gnu-gcc-12` is no name anyone
    grants) or, for a script, by its interpreter (`#!/bin/sh`: a build driver). Nothing the guest can write
    is executable: a program runs its own files, its interpreter's, its profile's root-owned system paths
    and the crate's `may-run` (`runnable`)."""
    from shim.policy.capabilities import parse_route

    grant = ctx.grant
    writable = [w for d in guest_writable(ctx) if d for w in (d, os.path.realpath(d))]
    name = granted_as(ctx, requested, program)
    execute = [*runnable(ctx, program, name, writable),
               *(p for item in grant.may_run for p in may_run_paths(ctx, item, writable))]
    from shim.confine import fsview

    hidden = fsview.hidden_dirs(ctx)  # the package and readable grants minus the target dir, but OUT_DIR
    read = [*(p for root in (ctx.package_dir, *grant.readable) if root for p in fsview.landlock_paths(root, hidden)),
            ctx.out_dir, ctx.tmp_dir]
    write = [ctx.out_dir, ctx.tmp_dir, *grant.writable, "/dev/null"]
    ports = tuple(sorted({int(port) for port in (parse_route(r)[1] for r in grant.routes) if port != "*"}))
    return Confinement(sorted({p for p in execute if p}), [p for p in read if p], [p for p in write if p], ports,
                       output=output_trees(ctx, program, name))


def output_trees(ctx: RunContext, program: str, name: str) -> list[str]:
    """What a build driver may also run: the files this run builds in OUT_DIR and its temp dir (autoconf's
    `./conftest`), in its one confinement, each run reported (shim.confine.exec_watch). Only for a profile that says
    `runs-output` (shim/policy/programs.toml says why that adds no power); never a writable grant, never the rest
    of the target dir (another crate's OUT_DIR), never for a compiler (its `-B OUT_DIR`)."""
    profile = _profile(ctx, program, name)
    return [d for d in (ctx.out_dir, ctx.tmp_dir) if d] if profile is not None and profile.runs_output else []


def _profile(ctx: RunContext, program: str, name: str) -> Profile | None:
    """The profile of `program` granted as `name`: by that name, by the file, or by a script's interpreter."""
    from shim.policy.programs import profile_for

    interpreters = script_interpreters(program, host_path(ctx))
    return profile_for(name) or profile_for(program) or (profile_for(interpreters[-1]) if interpreters else None)


def runnable(ctx: RunContext, program: str, name: str, writable: list[str]) -> list[str]:
    """What `program` (granted as `name`) needs to run and may start: its own files and the loader's, its
    script interpreter's, and its profile's system paths."""
    interpreters = script_interpreters(program, host_path(ctx))
    execute = [program, *_loader_files(program)]
    for interpreter in interpreters:
        execute += [interpreter, *_loader_files(interpreter)]
    profile = _profile(ctx, program, name)
    if profile is not None:
        execute += [p for p in profile.read if system_path(p, writable)]
    return execute


def system_path(path: str, writable: list[str]) -> bool:
    """Whether a profile's path may be read and run: it exists, is owned by root and writable by no one else
    (group or others), and neither lies in nor holds a directory the guest can write (`writable`, real paths
    included: Landlock's rights add up down a tree, so a run right on /usr/lib would reach a writable grant
    below it). A /usr/local that a user owns, or a PATH directory inside a writable grant, is left out."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    real = os.path.realpath(path)
    return (st.st_uid == 0 and not st.st_mode & 0o022
            and not any(inside(real, w) or inside(w, real) for w in writable))


def may_run_paths(ctx: RunContext, item: str, writable: list[str]) -> list[str]:
    """The paths one `may-run` item adds to what the crate's programs may run: a bare name as it resolves on
    the host's PATH (with its loader files, interpreter and profile, as if granted), a path as it is (a
    file, or a tree). None reached through what the guest can write: a spawn then is refused."""
    if "/" not in item:
        found = shutil.which(item, path=host_path(ctx))
        if found is None:
            return []
        hop = writable_hop(found, writable)
        if hop is not None:
            raise SpawnRefused(item, f"may-run {item}: {hop} is in a directory the build script can write",
                               program_denial=False)
        output = cargo_output_hop(ctx, found)
        if output is not None:  # a PATH holding `target/debug` or `.`
            raise SpawnRefused(item, f"may-run {item}: found as {found}, in cargo's build output ({output}), "
                                     "whose files are never run", program_denial=False)
        return runnable(ctx, os.path.realpath(found), item, writable)
    hop = writable_hop(item, writable) or next((w for w in writable if inside(os.path.realpath(item), w)
                                               or inside(w, os.path.realpath(item))), None)
    if hop is not None:
        raise SpawnRefused(item, f"may-run {item}: {hop} is (or holds) a directory the build script can write, "
                                 "whose files are never run", program_denial=False)
    output = cargo_output_hop(ctx, item)
    if output is not None:
        raise SpawnRefused(item, f"may-run {item}: {output} is (or holds) cargo's build output, where other "
                                 "crates' build scripts and compiles write: its files are never run",
                           program_denial=False)
    return [item] if os.path.exists(item) else []


def cargo_output_hop(ctx: RunContext, path: str) -> str | None:
    """The directory of cargo's build output that `path` lies in (shim.cargo.layout.cargo_output_of: another crate's
    OUT_DIR, deps/, a launcher, in any target or build dir) or holds (a target directory of the build, below
    a tree such as the workspace root), else None: what a driver started from there is another crate's
    product, which its own build script or compile chose."""
    from shim.cargo import layout
    from shim.confine import fsview

    found = layout.cargo_output_of(path)
    if found is not None:
        return found
    lexical, real = os.path.normpath(os.path.abspath(path)), os.path.realpath(path)
    held = [*fsview.hidden_dirs(ctx), *(fsview.cargo_dirs(real) if os.path.isdir(real) else ())]
    return next((h for h in held if inside(h, lexical) or inside(os.path.realpath(h), real)), None)


def script_interpreters(program: str, path: str) -> list[str]:
    """The real paths of what the kernel runs for a `#!` script: the interpreter it names and, for
    `#!/usr/bin/env NAME`, NAME as env finds it on the host's PATH; [] for a binary or a name that does
    not exist."""
    from shim.files import shebang

    words = shebang(program)
    if not words or not os.path.isfile(words[0]):
        return []
    out = [os.path.realpath(words[0])]
    if os.path.basename(words[0]) == "env" and len(words) > 1 and not words[1].startswith("-"):
        found = shutil.which(words[1], path=path)
        out += [os.path.realpath(found)] if found else []
    return out


@functools.lru_cache(maxsize=32)
def _loader_files(program: str) -> tuple[str, ...]:
    """What the loader maps for `program` (asked once per program and run: cc-rs runs cc dozens of times)."""
    from shim.confine import landlock

    return tuple(landlock.loader_files(program) or ("/etc/ld.so.cache", "/lib", "/lib64", "/usr/lib"))


def child_budget(ctx: RunContext) -> float:
    """CRATECAGE_LIMIT_CHILD_TIME, read like every other limit (shim.limits; the runner already refused a
    malformed value before the guest started)."""
    from shim.limits import from_env

    return from_env(ctx.host_env).child_time_s


# -- what granted programs tried to run ------------------------------------------------------------------

EXEC_REPORT: Final = "exec-refused"


def exec_report(ctx: RunContext) -> str | None:
    """The run's report file of refused execs (shim.confine.exec_watch), in the host's own scratch directory, which
    no child can reach; None where the caller made none (tests)."""
    return os.path.join(ctx.host_dir, EXEC_REPORT) if ctx.host_dir else None


def watched_execs(ctx: RunContext) -> None:
    """What the granted programs' trees ran of this run's output (`ctx.output_runs`, for the audit trail) and
    a denial for each program they tried to run and were refused (shim.confine.exec_watch), with what would let it:
    never a file the build script can write, nor one in cargo's build output; anything else by `may-run`.
    Not fatal: the refusal happened whatever the script made of it (a configure check that falls back), and
    a script that fails shows them beside its failure."""
    from shim.confine import fsview
    from shim.confine.exec_watch import read_report
    from shim.host.context import OutputRun

    path = exec_report(ctx)
    try:
        with open(path or "", "rb") as fh:
            events = read_report(fh.read())
    except OSError:
        return
    writable = [w for d in guest_writable(ctx) if d for w in (d, os.path.realpath(d))]
    built = [w for d in (ctx.out_dir, ctx.tmp_dir) if d for w in (d, os.path.realpath(d))]
    cargo_output = [w for d in fsview.hidden_dirs(ctx) for w in (d, os.path.realpath(d))]
    ran: dict[tuple[str, str], int] = {}
    for event in events:
        refused, by, granted = event["file"], event["by"], event["granted"]
        named = normal_path(event["program"])
        started = f"{granted} ({by})" if by and os.path.basename(by) != granted else granted
        if event["verdict"] == "ran":
            ran[(named, started)] = ran.get((named, started), 0) + 1
            continue
        if os.path.realpath(named) == refused:
            refused = named  # as the program named it (~/.cargo/bin/rustc, not the rustup it links to)
        if any(inside(refused, w) for w in built):
            ctx.deny("process-spawn", refused, f"started by {started}: what the run builds in OUT_DIR and the temp dir "
                     "runs only under a granted build driver (sh, make, cmake, configure, ...), and may-run cannot "
                     "name it", fatal=False)
        elif any(inside(refused, w) for w in writable):
            ctx.deny("process-spawn", refused, f"started by {started}: a file in a directory the build script "
                     "can write (a writable grant) is never run, and may-run cannot name one", fatal=False)
        elif any(inside(refused, w) for w in cargo_output) or cargo_output_hop(ctx, refused) is not None:
            ctx.deny("process-spawn", refused, f"started by {started}: a file in cargo's build output (another "
                     "crate's OUT_DIR or product) is never run, and may-run cannot name one", fatal=False)
        else:
            ctx.deny("process-spawn", refused, f"started by {started}: granted programs run only their own files, "
                     "their profile's system tools and the crate's may-run", suggest_may_run(ctx, refused),
                     fatal=False)
    ctx.output_runs.extend(OutputRun(program, started, count) for (program, started), count in ran.items())


def suggest_may_run(ctx: RunContext, path: str) -> str:
    """The crate's process-spawn entry with `path` added to `may-run`, ready to paste in place of its own."""
    from shim.policy.suggest import toml_key, toml_string

    grant = ctx.grant
    programs = ", ".join(toml_string(p) for p in (grant.programs if grant is not None else ()))
    may_run = ", ".join(toml_string(p) for p in sorted({*(grant.may_run if grant is not None else ()), path}))
    return (f"[permissions.build.{toml_key(ctx.crate)}]\n"
            f"process-spawn = {{ action = \"permit\", programs = [{programs}], may-run = [{may_run}] }}")


# -- a running child --------------------------------------------------------------------------------------

class Stream:
    """One piped output stream, drained by a thread into a buffer the guest reads from."""

    def __init__(self, fd: int, child: RealChild, sink: Callable[[bytes], None] | None) -> None:
        self.buf = bytearray()
        self.eof = False
        self.cond = threading.Condition()
        self.sink = sink  # inherited: forward instead of buffering
        self.thread = threading.Thread(target=self._drain, args=(fd, child), daemon=True, name="child-pipe")
        self.thread.start()

    def _drain(self, fd: int, child: RealChild) -> None:
        try:
            while True:
                try:
                    data = os.read(fd, _CHUNK)
                except OSError:
                    data = b""
                if not data:
                    break
                if self.sink is not None:
                    try:
                        self.sink(data)
                    except OSError:
                        child.kill()  # the run's output limit: the guest is being stopped
                        break
                    continue
                with self.cond:
                    if len(self.buf) + len(data) > MAX_BUFFERED:
                        child.overflowed = True
                        child.kill()
                        break
                    self.buf += data
                    self.cond.notify_all()
        finally:
            os.close(fd)
            with self.cond:
                self.eof = True
                self.cond.notify_all()

    def read(self, cap: int, deadline: float) -> bytes:
        with self.cond:
            while not self.buf and not self.eof:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("the run's time is up")
                self.cond.wait(min(left, 1.0))
            chunk = bytes(self.buf[:cap])
            del self.buf[:cap]
            return chunk


class RealChild:
    """A granted program, started confined; the guest's handle to it."""

    def __init__(self, ctx: RunContext, req: abi.SpawnRequest, program: str, sinks: Sinks) -> None:
        from shim.confine import landlock

        self.request = req
        self.program = program
        self.overflowed = False
        self.timed_out = False
        self.status: tuple[int, int] | None = None
        # The file runs under the name it is granted as, as natively (`cc`, not x86_64-linux-gnu-gcc-12): a
        # multi-call binary (busybox, ccache's links, clang++) picks what it does by argv[0], so neither its
        # real path nor a name the script spelled through a link may choose for it.
        name = granted_as(ctx, req.program, program)
        argv = [program, *req.args]
        env = child_env(ctx, req)
        cwd = child_cwd(ctx, req)
        confined = landlock.abi_version() > 0
        executable = None
        if confined:
            limits = dataclasses.replace(confinement(ctx, program, req.program), file_size=_disk_limit(ctx),
                                         report=exec_report(ctx))
            argv = limits.command(argv, argv0=name)
        else:
            argv, executable = [name, *req.args], program
        pipe, null = subprocess.PIPE, subprocess.DEVNULL
        self.proc = reaper.popen(
            argv, executable=executable, env=env, cwd=cwd, start_new_session=True, close_fds=True,
            stdin=pipe if req.stdin == abi.STDIO_PIPED else null,
            stdout=null if req.stdout == abi.STDIO_NULL else pipe,
            stderr=null if req.stderr == abi.STDIO_NULL else pipe)
        if not confined:  # unconfined children get the limit just after they start (a poll still backs it)
            _limit_file_size(self.proc.pid, ctx)
        self.argv_shown = [req.program, *req.args]
        self.streams: dict[int, Stream] = {}
        for stream, mode, pipe_file, sink in ((abi.STREAM_STDOUT, req.stdout, self.proc.stdout, sinks.stdout),
                                              (abi.STREAM_STDERR, req.stderr, self.proc.stderr, sinks.stderr)):
            if pipe_file is not None:
                fd = os.dup(pipe_file.fileno())
                pipe_file.close()
                self.streams[stream] = Stream(fd, self, None if mode == abi.STDIO_PIPED else sink)
        self.budget = threading.Timer(child_budget(ctx), self._out_of_time)
        self.budget.daemon = True
        self.budget.start()

    def _out_of_time(self) -> None:
        self.timed_out = True
        self.kill()

    def write_stdin(self, data: bytes, deadline: float) -> int:
        pipe = self.proc.stdin
        if pipe is None or pipe.closed:
            raise BrokenPipeError("the child's stdin is closed")
        fd, view, done = pipe.fileno(), memoryview(data), 0
        while done < len(view):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the run's time is up")
            _, ready, _ = select.select([], [fd], [], min(left, 1.0))
            if ready:
                done += os.write(fd, view[done:done + _CHUNK])
        return done

    def close_stdin(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except OSError:
                pass

    def read(self, stream: int, cap: int, deadline: float) -> bytes:
        return self.streams[stream].read(min(cap, MAX_READ), deadline)

    def wait(self, deadline: float) -> tuple[int, int]:
        self.close_stdin()
        if self.status is None:
            try:
                code = self.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise TimeoutError("the run's time is up") from None
            self._finished(code)
        return self.status  # type: ignore[return-value]

    def try_wait(self) -> tuple[int, int] | None:
        if self.status is None:
            code = self.proc.poll()
            if code is None:
                return None
            self._finished(code)
        return self.status

    def _finished(self, code: int) -> None:
        self.budget.cancel()
        for stream in self.streams.values():  # the output is complete once the pipes are drained
            stream.thread.join(timeout=5)
        self.status = (abi.STATUS_EXITED, code) if code >= 0 else (abi.STATUS_SIGNALED, -code)

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def problems(self) -> list[str]:
        """What went wrong that the build should fail on, once the child is done."""
        out = []
        if self.timed_out:
            out.append(f"ran longer than its own budget of {self.budget.interval:g} s and was killed "
                       "(CRATECAGE_LIMIT_CHILD_TIME)")
        if self.overflowed:
            out.append(f"wrote more than {MAX_BUFFERED} bytes the build script did not read; killed")
        return out


# -- the end of the run -----------------------------------------------------------------------------------

def become_subreaper() -> None:
    """Orphaned descendants of our children are reparented to this process (shim.confine.reaper)."""
    reaper.become_subreaper()


def _disk_limit(ctx: RunContext) -> int:
    from shim.limits import from_env

    return from_env(ctx.host_env).disk


def _limit_file_size(pid: int, ctx: RunContext) -> None:
    """RLIMIT_FSIZE = the run's disk limit, hard, on a child that runs without the launcher (no Landlock),
    right after it started: no single file it writes outgrows the limit between two polls of the
    supervisor. The launcher sets it itself before anything runs (`Confinement.file_size`)."""
    import resource

    size = _disk_limit(ctx)
    try:
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (size, size))
    except (OSError, ValueError):
        pass


def sweep(children: list[RealChild]) -> int:
    """Kill every child, its process group and every other descendant of this process (shim.confine.reaper: stop
    them all so none can fork, then kill, until none is left); returns how many processes were ended."""
    for child in children:
        child.budget.cancel()
    ended = reaper.kill_all()
    for child in children:
        child.kill()  # its process group: anything outside this process's tree that kept it
    for child in children:
        child.close_stdin()
        try:
            child.proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            pass
    return ended
