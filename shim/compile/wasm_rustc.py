"""Every rustc that cratecage runs for wasm32-wasip1 runs confined, seeing only what the crate may.

Why: compiling is reading. `include_str!`/`include_bytes!`/`include!`, `#[path = "..."] mod` and
`env!`/`option_env!` make rustc read files and variables while it compiles a build script or one of its
build-dependencies, and the sandboxed program then holds (and prints) what was read. So each such rustc:
  - runs under Landlock through shim.confine.landlock_exec (`read_set`): it may read the crate's package directory
    and what the policy grants the crate (`filesystem-access`), each minus cargo's target directories
    (`hidden_dirs`, shim.confine.fsview: other crates' outputs, `.d` files holding the values of their variables,
    fingerprints, cratecage's journal), and of those only the exact inputs: its own sources and OUT_DIR,
    its private closure of wasm rlibs and the native proc-macro libraries named by `--extern`
    (shim.compile.dirs); the toolchain (rustc's loader files, both sysroots' rustlib, the facade). It
    may execute only rustc and the wasm linker, and write only its private output directory and TMPDIR
    (shim.compile.dirs), never the shared wasm-deps;
  - gets the environment of shim.cargo.env (cargo's per-crate variables, the crate's own `rustc-env`,
    its `env-access` grant), never cargo's whole environment;
  - and when that stops it, says so (`denials`): a `couldn't read` error of a file that exists outside the
    grants, or of any path in a target directory (existing or not: names there are predictable), an
    `env!`/`option_env!` of a variable that is set on the host but not granted (the `.d` file's
    `# env-dep:NAME` line without a value) become `cratecage:` denials naming the crate and the policy
    entry that would permit it (none for the target directory). Fatal when the compile failed; a warning when it succeeded (option_env!).
Warn mode (`mode = "warn"` on the crate's entry) reads "/" (minus the target directories) and sees the whole environment, like the
runner's warn mode, and reports every file (the `.d` dependencies) and variable beyond enforce mode's.
Where Landlock is unavailable the compile runs with the scrubbed environment but unconfined reads (the
runner warns once per build: shim.build.run.warn_once_without_landlock).

Which policy entry applies: the build script's own (`[permissions.build.<its package>]`); for a replayed
library, the entry named after the library's package: its compile-time reads are its own, whichever script
uses it (and its wasm rlib is shared by all of them).
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from typing import Mapping

from shim.cargo import env as compile_env
from shim.cargo import layout
from shim.compile.dirs import CompileDirs
from shim.confine import landlock, landlock_exec
from shim.confine.explain import unreadable_path
from shim.errors import CratecageError
from shim.host.context import Denial
from shim.record import factory, record

if False:  # typing only
    from shim.policy import Grant

STDERR_CAP = 4 << 20  # bytes of rustc's stderr kept for reading diagnostics (all of it is still shown)
_ENV_NOT_DEFINED = ("environment variable `", "` not defined at compile time")


@record(frozen=True)
class Tools:
    """The toolchain a wasm compile uses: the real rustc (never a rustup proxy, which reads HOME), both
    sysroots and the facade's directory."""

    rustc: str
    sysroot: str
    wasm_sysroot: str
    facade_dir: str
    host: str


@record
class Scope:
    """What one compile is for, and so what it may see."""

    subject: str  # "build script of foo 1.2.3", "build-dependency bar 0.1.0": the start of every message
    package: str  # the policy key: whose grant applies
    version: str
    manifest_dir: str
    out_dir: str | None  # the crate's own OUT_DIR (a library with a build script), readable
    build_dir: str  # a directory of this build (the unit's out-dir): never read through the package grant
    sources: tuple[str, ...]  # the compile's input files, absolute
    cargo_vars: Mapping[str, str]  # COMPILE_ENV values cargo gave the crate's compile
    grant: Grant | None = None
    rustc_env: dict[str, str] = factory(dict)  # its build script's rustc-env

    @property
    def warn(self) -> bool:
        return self.grant is not None and self.grant.mode == "warn"

    def allows_env(self, name: str) -> bool:
        return self.grant is not None and self.grant.allows_env(name)

    def allows_read(self, path: str) -> bool:
        return self.grant is not None and self.grant.allows_read(path)


@record(frozen=True)
class Outcome:
    returncode: int
    stderr: str  # what rustc printed (capped at STDERR_CAP)
    denials: tuple[Denial, ...]

    def messages(self, subject: str) -> list[str]:
        """Each denial's lines (Denial.render_for), with a subject that may be a build-dependency."""
        return [d.render_for(subject) for d in self.denials]


# -- what the compile may read, run and see -----------------------------------------------------------

def hidden_dirs(scope: Scope, host_env: Mapping[str, str]) -> list[str]:
    """cargo's target directories, which no readable root (the package, a grant, warn mode's "/") shows:
    shim.confine.fsview's, for the unit's own directory, plus the target directory that directory lies in."""
    from shim.confine import fsview
    from shim.host.context import RunContext

    unit_dir = os.path.join(scope.build_dir, "out")  # fsview looks for the target dir above an OUT_DIR
    ctx = RunContext(crate=scope.package, version=scope.version, package_dir=scope.manifest_dir,
                     out_dir=scope.out_dir or unit_dir, tmp_dir="", env={}, host_env=dict(host_env), rustc="",
                     sysroot="", grant=scope.grant)
    found = [*fsview.hidden_dirs(ctx), fsview.target_dir_of(unit_dir), layout.build_root(scope.build_dir),
             scope.build_dir]
    return list(dict.fromkeys(os.path.realpath(p) for p in found if p))


def readable_roots(scope: Scope) -> list[str]:
    """The trees the compile reads through (minus the target dirs): its package, and its grants."""
    roots = [scope.manifest_dir]
    if scope.warn:
        roots.append("/")
    elif scope.grant is not None:
        roots += scope.grant.readable
    return roots


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


@functools.lru_cache(maxsize=16)
def _loader(program: str, ld_library_path: str) -> tuple[str, ...]:
    files = landlock.loader_files(program, {"LD_LIBRARY_PATH": ld_library_path} if ld_library_path else {})
    if files is not None:
        return tuple(files)
    return (program, "/etc/ld.so.cache", "/lib", "/lib64", "/usr/lib", "/usr/lib64")


def _linkers(tools: Tools) -> list[str]:
    """The wasm linker rustc runs: rust-lld in either sysroot's host tools (a private sysroot holds a link
    to the system's), with what it resolves to."""
    found = []
    for sysroot in dict.fromkeys((tools.wasm_sysroot, tools.sysroot)):
        bindir = os.path.join(sysroot, "lib", "rustlib", tools.host, "bin")
        lld = os.path.join(bindir, "rust-lld")
        if os.path.exists(lld):
            found += [bindir, os.path.realpath(lld)]
    return found


def toolchain_env(tools: Tools, host_env: Mapping[str, str], tmp: str) -> dict[str, str]:
    """cratecage's own PATH (the toolchain's), TMPDIR (private) and LD_LIBRARY_PATH (into the sysroot)."""
    path = [os.path.dirname(tools.rustc)] + [p for p in _linkers(tools) if os.path.isdir(p)]
    env = {"PATH": os.pathsep.join(dict.fromkeys(path)), "TMPDIR": tmp}
    sysroot = os.path.realpath(tools.sysroot)
    lib = [p for p in host_env.get("LD_LIBRARY_PATH", "").split(os.pathsep)
           if p and _inside(os.path.realpath(p), sysroot)]
    if lib:
        env["LD_LIBRARY_PATH"] = os.pathsep.join(lib)
    return env


def execute_set(tools: Tools, ld_library_path: str) -> list[str]:
    """What may be executed (and read): rustc with its loader files, the wasm linker with its own."""
    out = list(_loader(tools.rustc, ld_library_path))
    for path in _linkers(tools):
        out.append(path)
        if os.path.isfile(path):
            out += _loader(path, ld_library_path)
    return list(dict.fromkeys(out))


def read_set(tools: Tools, scope: Scope, inputs: list[str], hidden: list[str]) -> list[str]:
    """What the compile may read (not execute): the toolchain, its readable roots minus the target dirs
    `hidden`, and the exact files and directories inside them it needs: its sources, its own OUT_DIR and
    `inputs` (its private closure of wasm rlibs, the native proc-macro libraries of its `--extern`s)."""
    from shim.confine import fsview

    reads = [os.path.join(tools.sysroot, "lib", "rustlib"), os.path.join(tools.wasm_sysroot, "lib", "rustlib"),
             tools.facade_dir]
    for root in readable_roots(scope):
        real = os.path.realpath(root)
        # A Landlock rule follows a symbolic link: a link among the entries (`<package>/t -> <target>`) would
        # grant what it points at. Without the rule, reads through it are judged by where it leads.
        reads += [p for p in fsview.landlock_paths(real, hidden) if p == real or not os.path.islink(p)]
    reads += _source_reads(scope, hidden)
    reads += inputs
    if scope.out_dir:
        reads.append(scope.out_dir)
    return list(dict.fromkeys(reads))


def environment(tools: Tools, scope: Scope, host_env: Mapping[str, str], tmp: str) -> dict[str, str]:
    return compile_env.environment(scope.cargo_vars, host_env, rustc_env=scope.rustc_env,
                                   allows_env=scope.allows_env, warn=scope.warn,
                                   own=toolchain_env(tools, host_env, tmp))


def scope_key(tools: Tools, scope: Scope, host_env: Mapping[str, str]) -> str:
    """What a compile may see and read, for a replay's freshness stamp: a grant edit compiles it again."""
    env = environment(tools, scope, host_env, "")
    for name in ("TMPDIR", "CARGO_MAKEFLAGS"):
        env.pop(name, None)
    return json.dumps([sorted(env.items()), readable_roots(scope), scope.sources, scope.out_dir])


def visible_env_lines(env_lines: list[str], scope: Scope) -> list[str]:
    """The `# env-dep:` lines cargo may keep: of variables the compile could see. A line for an ungranted
    variable would make cargo compare (and store, in its fingerprint) the host's value on every build;
    the policy file in the `.d` covers a grant that later makes it visible."""
    kept = []
    for line in env_lines:
        name = line[len("# env-dep:"):].partition("=")[0]
        if compile_env.visible(name, rustc_env=scope.rustc_env, allows_env=scope.allows_env):
            kept.append(line)
    return kept


# -- running it ---------------------------------------------------------------------------------------

def run(tools: Tools, scope: Scope, argv: list[str], *, cwd: str, dirs: CompileDirs, inputs: list[str],
        host_env: Mapping[str, str], dep_info: str, stream: bool) -> Outcome:
    """Run `rustc argv` confined. It writes only `dirs.out` (its `--out-dir`, holding `dep_info`) and
    `dirs.tmp`; it reads `dirs.deps` and `inputs` besides what `read_set` gives every compile. With
    `stream`, rustc's stderr goes on to ours as it comes (cargo renders the JSON diagnostics); else it is
    only returned."""
    env = environment(tools, scope, host_env, dirs.tmp)
    hidden = hidden_dirs(scope, host_env)
    rustc_args = _argfile_if_long(argv, dirs.tmp)
    cmd = [tools.rustc]
    if landlock.abi_version() > 0:
        cmd = landlock_exec.command(cmd, read_set(tools, scope, [dirs.deps, *inputs], hidden), [dirs.out, dirs.tmp],
                                    execute=execute_set(tools, env.get("LD_LIBRARY_PATH", "")))
    # The servers of the (sandboxed) proc macros rustc loads for the crate: started here, outside the
    # confinement, their pipes handed to rustc (shim.compile.macro_servers).
    from shim.compile import macro_servers

    env.pop(macro_servers.ENV, None)
    from shim.cargo.rustc_args import parse

    loadable = macro_servers.loadable(parse(argv), cwd)
    # Through sccache (CRATECAGE_WRAPPER) where it can serve it: not with macro servers, whose pipes only
    # cratecage's own children inherit (shim.compile.sccache).
    from shim.compile import sccache

    program = sccache.wrapper(host_env) if not loadable else None
    if program is not None:
        cmd = sccache.command(program, cmd, sccache.without_own_sysroot(rustc_args, tools.sysroot), [dirs.out, dirs.tmp],
                              dirs.tmp, env, host_env)
    else:
        cmd = [*cmd, *rustc_args]
    servers, fds = macro_servers.start(layout.state_dir(scope.build_dir), loadable, env, cwd)
    try:
        code, stderr = _spawn(cmd, cwd, env, stream, close_after_start=fds)
    finally:
        macro_servers.let_finish(servers)
    if code == landlock_exec.LAUNCH_FAILED and stderr.startswith(landlock_exec.STDERR_PREFIX):
        raise CratecageError(f"{scope.subject}: could not confine its wasm compile with Landlock: "
                             f"{stderr[len(landlock_exec.STDERR_PREFIX):].strip()}",
                             hint="report this: cratecage never compiles for the sandbox unconfined where "
                                  "Landlock exists")
    found = denials(scope, stderr, dep_info, cwd, host_env, hidden, failed=code != 0)
    return Outcome(code, stderr, tuple(found))


# Beyond this many bytes of arguments, they go to rustc in an `@argfile`, as cargo sends them (the kernel's
# limit is ~2 MB for argv and environment together; cargo switches earlier too).
ARGFILE_ABOVE = 64 * 1024


def _argfile_if_long(argv: list[str], tmp: str) -> list[str]:
    """`argv`, or `[@<file in tmp>]` holding it one argument a line (rustc's format) when it is too long
    for a command line (3 MB of `build.rustflags` reach a proc macro's compile)."""
    if sum(len(a) + 1 for a in argv) <= ARGFILE_ABOVE or any("\n" in a for a in argv):
        return argv
    path = os.path.join(tmp, "rustc-args")
    with open(path, "w", encoding="utf-8", errors="surrogateescape") as fh:
        fh.write("\n".join(argv))
    return [f"@{path}"]


def _spawn(cmd: list[str], cwd: str, env: dict[str, str], stream: bool,
           close_after_start: list[int] = ()) -> tuple[int, str]:
    try:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                close_fds=False)  # cargo's jobserver fds (CARGO_MAKEFLAGS) stay open
    finally:
        for fd in close_after_start:  # rustc holds them now: a macro server sees EOF when rustc is gone
            os.close(fd)
    kept = bytearray()
    assert proc.stderr is not None
    for line in proc.stderr:
        if stream:
            sys.stderr.buffer.write(line)
            sys.stderr.flush()
        if len(kept) < STDERR_CAP:
            kept += line
    return proc.wait(), kept.decode("utf-8", "replace")


# -- what it was refused ------------------------------------------------------------------------------

_TARGET_DIR_REASON = ("inside cargo's target directory (other crates' outputs and dep-info, fingerprints, "
                      "cratecage's own state), which no grant makes readable at compile time")


def denials(scope: Scope, stderr: str, dep_info: str, cwd: str, host_env: Mapping[str, str],
            hidden: list[str], *, failed: bool) -> list[Denial]:
    """Denials for what the confinement refused (or, in warn mode, what it let through)."""

    def deny(capability: str, target: str, reason: str, *, permitted: bool = False, fix: bool = True) -> None:
        from shim.policy import suggest_entry  # only with something to report: the package costs ~50 ms

        entry = suggest_entry("build", scope.package, capability, target) if fix else ""
        denial = Denial(capability, target, reason, entry, fatal=failed and not permitted, permitted=permitted)
        if denial not in out:
            out.append(denial)

    out: list[Denial] = []
    unread, unset = _refused(stderr)
    deps, env_lines = _dep_info(dep_info)
    unset += [line[len("# env-dep:"):] for line in env_lines if "=" not in line]
    visible = functools.partial(compile_env.visible, rustc_env=scope.rustc_env, allows_env=scope.allows_env)
    for name in dict.fromkeys(unset):
        if name in host_env and not visible(name):
            deny("env-access", name, "set on the host but not granted, so the compile saw it unset")
    for shown in unread:
        path = os.path.realpath(os.path.join(cwd, shown))
        if _readable_by_default(scope, path, hidden):
            continue
        if any(_inside(path, h) for h in hidden):  # existing or not: a predicted name is the attack
            deny("filesystem-access", path, _TARGET_DIR_REASON, fix=False)
        elif os.path.exists(path) and not scope.allows_read(path):
            deny("filesystem-access", path, "read at compile time (include_str!, include_bytes!, include!, "
                 "#[path]) outside the crate's package and grants")
    if scope.warn:
        for line in env_lines:
            name = line[len("# env-dep:"):].partition("=")[0]
            if "=" in line and not visible(name):
                deny("env-access", name, "read at compile time; enforce mode would show it unset", permitted=True)
        for dep in deps:
            path = os.path.realpath(os.path.join(cwd, dep))
            if not _readable_by_default(scope, path, hidden) and not scope.allows_read(path):
                deny("filesystem-access", path, "read at compile time; enforce mode would refuse it",
                     permitted=True)
    return out


def source_denial(scope: Scope, source: str, host_env: Mapping[str, str]) -> Denial | None:
    """Why the compile may not read `source` (a file cratecage itself reads for it: a proc-macro crate's root,
    whose rewritten copy the compile reads in its place), as `_source_reads` judges its sources: by the real
    path, inside the package (not its target dirs) or OUT_DIR, or granted; None when it may."""
    real = os.path.realpath(source)
    hidden = hidden_dirs(scope, host_env)
    if _source_readable(scope, real, hidden):
        return None
    from shim.policy import suggest_entry

    if any(_inside(real, h) for h in hidden):
        return Denial("filesystem-access", real, _TARGET_DIR_REASON, "")
    return Denial("filesystem-access", real, "its crate root (`[lib] path`, or a link) lies outside the crate's "
                  "package and grants", suggest_entry("build", scope.package, "filesystem-access", real))


def _source_reads(scope: Scope, hidden: list[str]) -> list[str]:
    """The compile's own source files, as the files they really are: only those inside its package (or
    OUT_DIR), or granted. Cargo takes `build = "/abs/file"`, `[lib] path` and a `build.rs` that is a symbolic
    link as they are; a Landlock rule would follow the link, so the real path is judged and granted."""
    reads = (os.path.realpath(source) for source in scope.sources)
    return [real for real in reads if _source_readable(scope, real, hidden)]


def _source_readable(scope: Scope, real: str, hidden: list[str]) -> bool:
    """Whether the compile may read the source whose real path is `real`: inside its package (not its target
    dirs) or OUT_DIR, or granted."""
    return _readable_by_default(scope, real, hidden) or scope.allows_read(real)


def _readable_by_default(scope: Scope, path: str, hidden: list[str]) -> bool:
    """Its own OUT_DIR, and its package but the target dirs in it."""
    if scope.out_dir and _inside(path, os.path.realpath(scope.out_dir)):
        return True
    return _inside(path, os.path.realpath(scope.manifest_dir)) and not any(_inside(path, h) for h in hidden)


def _refused(stderr: str) -> tuple[list[str], list[str]]:
    """(paths rustc could not read, variables `env!` found undefined) from its JSON diagnostics."""
    paths: list[str] = []
    names: list[str] = []
    for line in stderr.splitlines():
        if not line.startswith("{"):
            continue
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        text = msg.get("message") if isinstance(msg, dict) and msg.get("level") == "error" else None
        if not isinstance(text, str):
            continue
        unreadable = unreadable_path(text)
        if unreadable is not None:
            paths.append(unreadable)
        elif text.startswith(_ENV_NOT_DEFINED[0]) and text.endswith(_ENV_NOT_DEFINED[1]):
            names.append(text[len(_ENV_NOT_DEFINED[0]):-len(_ENV_NOT_DEFINED[1])])
    return paths, names


def _dep_info(path: str) -> tuple[list[str], list[str]]:
    from pathlib import Path

    from shim.cargo.depinfo import read_dep_info

    try:
        return read_dep_info(Path(path))
    except OSError:
        return [], []
