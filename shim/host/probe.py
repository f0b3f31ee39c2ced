"""Safe rustc probes: what a sandboxed build script gets when it runs the compiler.

Build scripts run the compiler cargo gave them to learn what it supports (notes/prior-art.md §6):
`$RUSTC --version` (anyhow, serde, rustversion, libc), `-vV` (rustc_version, version_check),
`--emit=metadata`/`llvm-ir` compiles of stdin or a file in the package (autocfg, proc-macro2, anyhow,
thiserror, rustix 0.38 with `-o -`), and links that test whether a system library links (libudev-sys:
`rustc OUT_DIR/check.rs --out-dir OUT_DIR -l udev`). The host never executes the program the guest named:
`is_compiler_request` recognises cargo's chain `[$RUSTC_WRAPPER] [$RUSTC_WORKSPACE_WRAPPER] $RUSTC args`,
comparing with the environment *cargo* gave the guest (ctx.env), never with the request's own variables, and
`run_probe` runs `[ctx.rustc, *allowed args]` itself:
  - every flag is checked against `ALLOWED` (data, one row per flag) or copied verbatim from the owner's
    CARGO_ENCODED_RUSTFLAGS; `DENIED` and `CODEGEN_DENIED` say why the rest are refused (ProbeDenied);
  - the input is stdin or one file under the package (never in a cargo target directory there) or OUT_DIR,
    by its real path; outputs (`--out-dir`, `-o`) may only name
    places the guest could write itself, and are replaced by a throwaway directory; `-o -` (the output on
    stdout) stays, and that stdout is discarded like every compile's: it never comes back, and a query
    (whose stdout does) may not be combined with it;
  - `-l [static=|dylib=]NAME` names a library the crate may link: one its policy grants
    (`directives = ["rustc-link-lib=NAME"]`) or a plain system library, every file of that name in the
    linker's default directories root's (shim.confine.syslibs; the probe gets no `-L`, so nothing else is
    searched). No modifiers, no `:RENAME`, no path;
  - a probe links only an executable (its command line names no dynamic library; a `#![crate_type]` in
    the source of one that names no type is rustc's to honour, and links the same confined way), and only
    where Landlock confines the link: then rustc and everything it starts may execute the toolchain and
    the system's linker (cc, ld, gcc's passes: shim.confine.rustc_grants.linker_exec), read those, the system
    library directories and the one input file, never the rest of the package or OUT_DIR (where a build
    script or the package could leave an object that wakes the linker's LTO plugin, or a library a
    `+verbatim` `#[link]` reaches by `..`), and write only the throwaway directory;
  - the environment is fixed and scrubbed, the cwd is the throwaway directory (under the run's host-only
    scratch dir, ctx.host_scratch), there is a time limit (TIMEOUT_S, or the run's deadline if sooner)
    after which its process group is killed, and the run's end sweeps it like any child (shim.confine.reaper);
  - stderr is discarded (it can quote source and file contents); stdout comes back only for version and
    `--print` queries;
  - on Linux the child runs confined by Landlock (shim.confine.landlock, via shim.confine.landlock_exec): it may read the
    files the loader maps for rustc, `<sysroot>/lib/rustlib`, the package and OUT_DIR, and write only its
    throwaway directory. Without that, `include_bytes!("/any/file")` plus a const assert per bit would read
    any file through exit statuses. Where Landlock is unavailable the probe still runs scrubbed, and
    `landlock_status()` says so for the caller's once-per-build warning and `cratecage doctor`.

Not supported: `-Z`, `--extern`, `-L`, `-l` of any other library, `--sysroot`, `@argfile`s, `--test`, linking
a dynamic library, and a linking probe whose source reads other files (`mod`, `include!`), unless the flag is
verbatim in the owner's RUSTFLAGS. The owner's path-bearing RUSTFLAGS (`-L`, `--sysroot`) are passed
but not added to what the confined rustc may read.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import signal
import subprocess
import time
from typing import BinaryIO, Final

from shim.cargo import rustc_args
from shim.confine import landlock, landlock_exec, reaper
from shim.host import abi
from shim.host.context import RunContext
from shim.record import factory, record

__all__ = ["ALLOWED", "CODEGEN_ALLOWED", "CODEGEN_DENIED", "DENIED", "ProbeDenied", "ProbeResult", "check",
           "is_compiler_request", "landlock_status", "run_probe"]

TIMEOUT_S: Final = 60
DEADLINE_MARGIN_S: Final = 1.0  # a probe still running this long after the run's deadline is killed by itself
SAFE_PATH: Final = "/usr/bin:/bin"
LINK_FREE_CRATE_TYPES: Final = frozenset({"lib", "rlib", "staticlib"})  # rustc writes these itself
LINKED_CRATE_TYPES: Final = frozenset({"bin"})  # what a probe may link (confined: module docstring)
LIB_KINDS: Final = ("", "static", "dylib")  # `-l KIND=NAME` kinds a probe may name
STDOUT: Final = "-"  # `-o -`: the output goes to stdout
# `--print` requests answered while compiling; every other one makes rustc print and stop.
PRINTS_THAT_COMPILE: Final = frozenset({"link-args", "native-static-libs"})
FIX_FLAG: Final = ("a probe may use the flags in shim.host.probe.ALLOWED, and any flag the project owner put in "
                   "RUSTFLAGS, verbatim")


class ProbeDenied(Exception):
    """A probe the host will not run: which flag or path, why, and what would help."""

    def __init__(self, target: str, reason: str, fix: str = "") -> None:
        super().__init__(f"{target}: {reason}")
        self.target = target
        self.reason = reason
        self.fix = fix


@record
class ProbeResult:
    exit_code: int  # rustc's exit status; negative: killed by that signal
    stdout: bytes  # only for --version/-vV/--print queries, else b""


# -- the allowlist --------------------------------------------------------------------------------------

@record(frozen=True)
class Check:
    """How one flag's value is checked. `pattern` must match the whole value (or each comma-separated item
    when `items`); `special` names a check that is not a pattern."""

    pattern: str = ""
    items: bool = False
    special: str = ""  # "switch" (takes no value), "codegen", "target", "output", "lib"; "": the pattern only


_ANY: Final = Check(r"(?s).*")
_NONE: Final = Check(special="switch")
_LINT: Final = Check(r"[A-Za-z0-9_:-]+")

# rustc flag (first name in shim.cargo.rustc_args.FLAGS) -> how its value is checked.
ALLOWED: Final[dict[str, Check]] = {
    "--allow": _LINT,
    "--cap-lints": Check(r"allow|warn|deny|forbid"),
    "--cfg": _ANY,
    "--check-cfg": _ANY,
    "--codegen": Check(special="codegen"),
    "--color": Check(r"auto|always|never"),
    "--crate-name": Check(r"[A-Za-z_][A-Za-z0-9_]*"),
    "--crate-type": Check(r"bin|lib|rlib|dylib|cdylib|staticlib|proc-macro", items=True),
    "--deny": _LINT,
    "--diagnostic-width": Check(r"[0-9]+"),
    "--edition": Check(r"20[0-9][0-9]"),
    "--emit": Check(r"metadata|dep-info|llvm-ir|llvm-bc|asm|obj|mir|link", items=True),  # no `=path`
    "--error-format": Check(r"human|json|short"),
    "--forbid": _LINT,
    "--force-warn": _LINT,
    "--json": Check(r"[a-z-]+(,[a-z-]+)*"),
    "--out-dir": Check(special="output"),
    "--print": Check(r"[a-z][a-z0-9-]*"),  # no `=path`
    "--target": Check(special="target"),
    "--verbose": _NONE,
    "--version": _NONE,
    "--warn": _LINT,
    "-O": _NONE,
    "-g": _NONE,
    "-l": Check(special="lib"),
    "-o": Check(special="output"),
}

DENIED: Final[dict[str, str]] = {
    "--crate-attr": "injects crate attributes; put them in the probe's source",
    "--env-set": "sets what env! sees at compile time (unstable)",
    "--explain": "not a probe",
    "--extern": "makes rustc load a crate file the guest names",
    "--help": "not a probe",
    "--pretty": "prints the expanded source, which would return the contents of included files",
    "--remap-path-prefix": "rewrites paths in rustc's output; a probe has no output to keep",
    "--remap-path-scope": "rewrites paths in rustc's output; a probe has no output to keep",
    "--sysroot": "points rustc at another standard library",
    "--test": "builds a test harness, which links an executable",
    "--unpretty": "prints the expanded source, which would return the contents of included files",
    "-L": "adds a library search path for rustc to read",
    "-Z": "unstable options change what rustc reads, writes and runs",
}

# `-C key`: allowed keys (any value), and refused ones with the reason; other keys are refused too.
CODEGEN_ALLOWED: Final = frozenset({
    "code-model", "codegen-units", "debug-assertions", "debuginfo", "embed-bitcode", "extra-filename",
    "force-frame-pointers", "force-unwind-tables", "lto", "metadata", "no-redzone", "opt-level",
    "overflow-checks", "panic", "prefer-dynamic", "relocation-model", "strip", "symbol-mangling-version",
    "target-cpu", "target-feature",
})
_LINKER: Final = "a linker option; probes never link"
CODEGEN_DENIED: Final[dict[str, str]] = {
    "ar": _LINKER, "default-linker-libraries": _LINKER, "dlltool": _LINKER, "link-arg": _LINKER,
    "link-args": _LINKER, "link-dead-code": _LINKER, "link-self-contained": _LINKER, "linker": _LINKER,
    "linker-flavor": _LINKER, "linker-plugin-lto": _LINKER, "relro-level": _LINKER, "rpath": _LINKER,
    "incremental": "writes to a directory the guest names",
    "instrument-coverage": "instruments the output; a probe has none",
    "llvm-args": "LLVM options can load plugins and write files",
    "passes": "runs extra LLVM passes",
    "profile-generate": "writes profiles to a path the guest names",
    "profile-use": "reads a profile from a path the guest names",
    "remark": "prints optimisation remarks",
    "save-temps": "keeps intermediate files",
    "split-debuginfo": "writes debug info beside the output",
}

# Words that are not flags in shim.cargo.rustc_args.FLAGS.
_VERSION_WORDS: Final = frozenset({"-vV", "-Vv"})
_DROPPED_WORDS: Final = frozenset({"--rustc"})  # clippy-driver's "behave as rustc" (libc, rustversion)


# -- recognising a compiler request ---------------------------------------------------------------------

def is_compiler_request(ctx: RunContext, req: abi.SpawnRequest) -> bool:
    """Does the guest run the compiler cargo gave it, directly or through cargo's wrapper chain?"""
    return _rustc_args(ctx, req) is not None


def _rustc_args(ctx: RunContext, req: abi.SpawnRequest) -> list[str] | None:
    """The arguments meant for rustc, after `[$RUSTC_WRAPPER] [$RUSTC_WORKSPACE_WRAPPER] $RUSTC`; None when
    the request names some other program. Wrappers count only as cargo set them (ctx.env): a guest that
    sets RUSTC_WRAPPER=/bin/sh for its child and runs /bin/sh is running /bin/sh."""
    words = [req.program, *req.args]
    i = 0
    for name in ("RUSTC_WRAPPER", "RUSTC_WORKSPACE_WRAPPER"):
        wrapper = ctx.env.get(name, "")
        if wrapper and i < len(words) and words[i] == wrapper:
            i += 1
    compilers = {ctx.env.get("RUSTC", ""), ctx.rustc, "rustc"} - {""}
    if i < len(words) and words[i] in compilers:
        return words[i + 1:]
    return None


# -- checking a probe -----------------------------------------------------------------------------------

@record
class _Plan:
    """A checked probe: the arguments rustc gets (outputs still to add) and what the probe is."""

    args: list[str] = factory(list)
    inputs: list[str] = factory(list)  # "-" or a resolved path
    output_name: str | None = None  # the file name of the guest's `-o`, kept so the crate name stays
    to_stdout: bool = False  # `-o -`: rustc writes the output to stdout, which is discarded
    query: bool = False  # --version, -vV or --print: stdout goes back
    links: bool = False  # links an executable: confined with the linker's profile (`link_sets`)
    crate_types: list[str] = factory(list)
    emits: list[str] = factory(list)
    prints: list[str] = factory(list)


def check(ctx: RunContext, req: abi.SpawnRequest) -> _Plan:
    """Check every argument of a compiler request; raises ProbeDenied for the first one refused."""
    args = _rustc_args(ctx, req)
    if args is None:
        raise ProbeDenied(req.program, "not the compiler cargo gave this build script",
                          "only $RUSTC (optionally behind cargo's $RUSTC_WRAPPER) runs as a probe")
    owner = _owner_flags(ctx)
    plan = _Plan()
    for flag, value, words in rustc_args.tokens(args):
        try:
            if flag is None:
                _check_word(ctx, req, words[0], plan)
            else:
                _check_flag(ctx, req, flag, value, words, plan)
        except ProbeDenied:
            if not _is_owner_flag(flag, words, owner):
                raise
            plan.args += words  # the project owner's own RUSTFLAGS, verbatim: trusted as they are
    _check_shape(plan)
    return plan


def _is_owner_flag(flag: str | None, words: list[str], owner: set[tuple[str, ...]]) -> bool:
    """Is this a flag (never an input or an output) that appears verbatim in CARGO_ENCODED_RUSTFLAGS?"""
    if tuple(words) not in owner:
        return False
    if flag is None:
        return words[0].startswith(("-", "@")) and words[0] != "-"
    return ALLOWED.get(flag, _ANY).special != "output"


def _owner_flags(ctx: RunContext) -> set[tuple[str, ...]]:
    encoded = ctx.env.get("CARGO_ENCODED_RUSTFLAGS", "")
    return {tuple(words) for _, _, words in rustc_args.tokens(encoded.split("\x1f"))} if encoded else set()


def _check_word(ctx: RunContext, req: abi.SpawnRequest, word: str, plan: _Plan) -> None:
    """A word that is no flag of the table: -vV, an input, an argument file, or an unknown flag."""
    if word in _VERSION_WORDS:
        plan.args.append(word)
        plan.query = True
    elif word in _DROPPED_WORDS:
        pass
    elif word.startswith("@"):
        raise ProbeDenied(word, "argument files are read by rustc from a path the guest chooses",
                          "pass the arguments themselves")
    elif word == "-":
        plan.inputs.append(word)
    elif word.startswith("-"):
        raise ProbeDenied(word, "not a flag a probe may use", FIX_FLAG)
    else:
        plan.inputs.append(_input_path(ctx, req, word))


def _check_flag(ctx: RunContext, req: abi.SpawnRequest, flag: str, value: str | None, words: list[str],
                plan: _Plan) -> None:
    shown = " ".join(words)
    rule = ALLOWED.get(flag)
    if rule is None:
        raise ProbeDenied(shown, DENIED.get(flag, "not a flag a probe may use"), FIX_FLAG)
    if rule.special == "switch":
        plan.args += words
        plan.query |= flag == "--version"
        return
    if value is None:
        raise ProbeDenied(shown, "missing value")
    if rule.special == "output":
        _check_output(ctx, req, flag, value, plan)
        return
    if rule.special == "lib":
        _check_lib(ctx, shown, value)
    elif rule.special == "codegen":
        _check_codegen(shown, value)
    elif rule.special == "target":
        _check_target(ctx, shown, value)
    else:
        _check_pattern(shown, value, rule)
    plan.args += words
    _note(flag, value, plan)


def _check_pattern(shown: str, value: str, rule: Check) -> None:
    items = value.split(",") if rule.items else [value]
    for item in items:
        if not re.fullmatch(rule.pattern, item):
            raise ProbeDenied(shown, f"`{item}` is not allowed here (allowed: {rule.pattern})", FIX_FLAG)


def _note(flag: str, value: str, plan: _Plan) -> None:
    if flag == "--print":
        plan.query = True
        plan.prints.append(value)
    elif flag == "--crate-type":
        plan.crate_types += value.split(",")
    elif flag == "--emit":
        plan.emits += value.split(",")


def _check_codegen(shown: str, value: str) -> None:
    key = value.partition("=")[0].strip()
    if key not in CODEGEN_ALLOWED:
        raise ProbeDenied(shown, CODEGEN_DENIED.get(key, f"-C {key} is not an option a probe may use"),
                          FIX_FLAG)


def _check_target(ctx: RunContext, shown: str, value: str) -> None:
    allowed = {ctx.env.get("TARGET", ""), ctx.env.get("HOST", "")} - {""}
    if value not in allowed:
        raise ProbeDenied(shown, f"a probe may target only {' or '.join(sorted(allowed)) or 'nothing'}")


def _check_lib(ctx: RunContext, shown: str, value: str) -> None:
    """`-l [KIND=]NAME`: a library the crate may link (module docstring), named plainly."""
    from shim.cargo.directives import split_lib
    from shim.confine.syslibs import plain_lib, system_lib_problem

    kind, modifiers, name = split_lib(value)
    if kind not in LIB_KINDS or modifiers or not plain_lib(value):
        raise ProbeDenied(shown, "a probe names a library plainly: `-l NAME`, `-l static=NAME` or `-l dylib=NAME`, "
                                 "without modifiers, renames or paths", FIX_FLAG)
    grant = ctx.grant
    if grant is not None and grant.mode != "warn" and grant.allows_directive("rustc-link-lib", name):
        return
    problem = system_lib_problem(value, must_exist=False)
    if problem:
        raise ProbeDenied(shown, f"a probe links only a system library or one the policy grants: {problem}",
                          "grant it: directives = [\"rustc-link-lib=" + name + "\"]")


def _check_output(ctx: RunContext, req: abi.SpawnRequest, flag: str, value: str, plan: _Plan) -> None:
    """`--out-dir`/`-o` may name only places the guest could write itself; they are then replaced. `-o -`
    stays: the output goes to stdout, which the probe discards."""
    if flag == "-o" and value == STDOUT:
        plan.to_stdout = True
        return
    path = os.path.realpath(os.path.join(_guest_cwd(ctx, req), value))
    if not any(_inside(path, root) for root in (ctx.out_dir, ctx.tmp_dir) if root):
        raise ProbeDenied(f"{flag} {value}", "a probe may name outputs only inside OUT_DIR (or its temp dir)",
                          "write probe outputs under OUT_DIR (they go to a throwaway directory)")
    if flag == "-o":
        name = os.path.basename(path)
        plan.output_name = name if name and not name.startswith(".") else "probe"


def _input_path(ctx: RunContext, req: abi.SpawnRequest, word: str) -> str:
    """The input file's real path: in the package or OUT_DIR, and, unless in OUT_DIR, outside every cargo
    target directory of the package (other crates' build state, which the probe's read set leaves out: a
    linking probe reads its input by this path, so a link planted in OUT_DIR must not lead there)."""
    from shim.confine import fsview

    path = os.path.realpath(os.path.join(_guest_cwd(ctx, req), word))
    if not any(_inside(path, root) for root in (ctx.package_dir, ctx.out_dir) if root):
        raise ProbeDenied(word, "a probe compiles only stdin or a file in the package or OUT_DIR",
                          "pass the probe's source on stdin (`-`)")
    if not (ctx.out_dir and _inside(path, ctx.out_dir)) and any(_inside(path, h) for h in fsview.hidden_dirs(ctx)):
        raise ProbeDenied(word, "a probe never compiles a file in a cargo target directory (other crates' build "
                                "state)", "pass the probe's source on stdin (`-`)")
    return path


def _guest_cwd(ctx: RunContext, req: abi.SpawnRequest) -> str:
    """Where the child would start: the request's cwd, else the guest's own (the package directory)."""
    return os.path.join(ctx.package_dir, req.cwd) if req.cwd else ctx.package_dir


def _inside(path: str, root: str) -> bool:
    root = os.path.realpath(root)
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _check_shape(plan: _Plan) -> None:
    """One input (or a query with none); `-o -` never with a query; links only of executables, confined."""
    if len(plan.inputs) > 1:
        raise ProbeDenied(" ".join(plan.inputs), "a probe compiles one input")
    if plan.to_stdout and plan.query:
        raise ProbeDenied("-o -", "a query's stdout comes back to the build script, and `-o -` would put the "
                                  "compiled output there", "run the query and the compile as two probes")
    if not plan.inputs:
        if not plan.query:
            raise ProbeDenied("rustc", "neither an input nor a --version/--print query")
        return
    if plan.query and not set(plan.prints) & PRINTS_THAT_COMPILE:
        return  # rustc answers the query and stops: nothing is compiled or linked
    links = "link" in plan.emits or not plan.emits
    types = set(plan.crate_types or ["bin"])
    if not links or types <= LINK_FREE_CRATE_TYPES:
        return
    shown = "--crate-type " + (",".join(plan.crate_types) or "(default: bin)")
    if not types <= LINK_FREE_CRATE_TYPES | LINKED_CRATE_TYPES:
        raise ProbeDenied(shown, "a probe may link an executable, never a dynamic library",
                          "use --crate-type bin, --emit=metadata, or --crate-type lib")
    if landlock.abi_version() == 0:
        raise ProbeDenied(shown, "a probe links only confined by Landlock, which is unavailable here "
                                 f"({landlock.unavailable_reason() or 'not Linux'})",
                          "use --emit=metadata, or --crate-type lib")
    plan.links = True


# -- running a probe ------------------------------------------------------------------------------------

def run_probe(ctx: RunContext, req: abi.SpawnRequest, stdin: bytes) -> ProbeResult:
    """Run the checked probe with ctx.rustc. Raises ProbeDenied when refused; the caller records it."""
    plan = check(ctx, req)
    base = ctx.host_scratch("probe-")  # under the run's host dir: gone with the run however it ends
    try:
        out = os.path.join(base, "out")
        os.mkdir(out)
        argv = [ctx.rustc, *plan.args, *plan.inputs, *_output_args(plan, out)]
        return _run(ctx, plan, argv, base, out, stdin)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _output_args(plan: _Plan, out: str) -> list[str]:
    if plan.to_stdout:
        return ["-o", STDOUT]
    if plan.output_name:
        return ["-o", os.path.join(out, plan.output_name)]
    return ["--out-dir", out]


def _run(ctx: RunContext, plan: _Plan, argv: list[str], base: str, out: str, stdin: bytes) -> ProbeResult:
    """A probe is a child like any other (shim.confine.reaper): started through the run's gate, in its own process
    group that is killed when its time is up, which is TIMEOUT_S or the run's deadline, whichever is first;
    and swept with the run's other descendants if the run ends while it is still running."""
    env = probe_env(ctx, out)
    confined = landlock.abi_version() > 0
    if plan.links:
        execute, read = link_sets(ctx, env, plan)
        argv = landlock_exec.command(argv, read, [out, "/dev/null"], execute=execute)
    elif confined:
        argv = landlock_exec.command(argv, read_set(ctx, env), [out])
    # At the run's deadline the supervisor stops the run and kills the probe with it (shim.build.run); this
    # timeout, a little later, is the backstop for a caller without a supervisor.
    timeout, cause = min((TIMEOUT_S, f"ran longer than {TIMEOUT_S} s"),
                         (ctx.deadline + DEADLINE_MARGIN_S - time.monotonic(),
                          "was still running at the run's time limit (CRATECAGE_LIMIT_TIME)"))
    if timeout <= 0:
        raise ProbeDenied("rustc", f"the probe {cause}; not started")
    with open(os.path.join(base, "stderr"), "w+b") as err:
        piped = "-" in plan.inputs
        try:
            proc = reaper.popen(argv, env=env, cwd=out, start_new_session=True,
                                stdin=subprocess.PIPE if piped else subprocess.DEVNULL,
                                stdout=subprocess.PIPE if plan.query else subprocess.DEVNULL, stderr=err)
        except reaper.RunEnded as ended:
            raise ProbeDenied("rustc", str(ended)) from None
        try:
            stdout, _ = proc.communicate(stdin if piped else None, timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise ProbeDenied("rustc", f"the probe {cause} and was killed") from None
        finally:
            if proc.poll() is None:  # an error of ours mid-wait: never leave it running
                _kill_group(proc)
        if confined and proc.returncode == landlock_exec.LAUNCH_FAILED:
            _raise_if_launch_failed(err)
    return ProbeResult(proc.returncode, stdout if plan.query else b"")


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.communicate()


def _raise_if_launch_failed(err: BinaryIO) -> None:
    err.seek(0)
    text = err.read(4096).decode("utf-8", "replace")
    if text.startswith(landlock_exec.STDERR_PREFIX):
        detail = text[len(landlock_exec.STDERR_PREFIX):].strip()
        raise ProbeDenied("rustc", f"could not confine the probe with Landlock: {detail}",
                          "report this: cratecage never runs a probe unconfined where Landlock exists")


def probe_env(ctx: RunContext, out: str) -> dict[str, str]:
    """The whole environment of a probe: nothing from cargo, the guest or the user but the loader path
    into rustc's own sysroot (for toolchains that need it); HOME and TMPDIR are the throwaway directory."""
    env = {"PATH": SAFE_PATH, "LANG": "C", "LC_ALL": "C", "HOME": out, "TMPDIR": out}
    lib_path = [p for p in ctx.host_env.get("LD_LIBRARY_PATH", "").split(os.pathsep)
                if p and _inside(os.path.realpath(p), ctx.sysroot)]
    if lib_path:
        env["LD_LIBRARY_PATH"] = os.pathsep.join(lib_path)
    return env


def read_set(ctx: RunContext, env: dict[str, str]) -> list[str]:
    """What the confined rustc may read: what the loader maps to start it, the sysroot's rustlib (std for
    every installed target), a target spec file if TARGET is one, the package minus the target directory
    (shim.confine.fsview) and OUT_DIR."""
    from shim.confine import fsview

    package = fsview.landlock_paths(ctx.package_dir, fsview.hidden_dirs(ctx)) if ctx.package_dir else []
    paths = [*_loader_files(ctx.rustc, env.get("LD_LIBRARY_PATH", ""), ctx.sysroot),
             os.path.join(ctx.sysroot, "lib", "rustlib"), *package, ctx.out_dir]
    target = ctx.env.get("TARGET", "")
    if target.endswith(".json") and os.path.isfile(target):
        paths.append(target)
    return [p for p in paths if p]


def link_sets(ctx: RunContext, env: dict[str, str], plan: _Plan) -> tuple[list[str], list[str]]:
    """(execute, read) of a linking probe: rustc, the sysroot's rustlib (std, rust-lld and its gcc-ld) and
    the system's linker (shim.confine.rustc_grants.linker_exec) to execute; those, the system library
    directories and the loader's configuration (shim.confine.rustc_grants.SYSTEM_READ) and the one input file to
    read. Neither the package nor OUT_DIR: see the module docstring."""
    from shim.confine.rustc_grants import SYSTEM_READ, linker_exec

    execute = [*_loader_files(ctx.rustc, env.get("LD_LIBRARY_PATH", ""), ctx.sysroot),
               os.path.join(ctx.sysroot, "lib", "rustlib"), *linker_exec("cc", env["PATH"])]
    read = [*SYSTEM_READ, f"/usr/{os.uname().machine}-linux-gnu", *(i for i in plan.inputs if i != "-")]
    target = ctx.env.get("TARGET", "")
    if target.endswith(".json") and os.path.isfile(target):
        read.append(target)
    return [p for p in execute if p], read


@functools.lru_cache(maxsize=8)
def _loader_files(rustc: str, ld_library_path: str, sysroot: str) -> tuple[str, ...]:
    env = {"LD_LIBRARY_PATH": ld_library_path} if ld_library_path else {}
    files = landlock.loader_files(rustc, env)
    if files is not None:
        return tuple(files)
    # The loader would not say (static or non-glibc rustc): the usual library directories instead.
    return (rustc, os.path.join(sysroot, "lib"), "/etc/ld.so.cache", "/lib", "/lib64", "/usr/lib", "/usr/lib64")


def landlock_status() -> str:
    """One line for `cratecage doctor` and the once-per-build warning."""
    abi_version = landlock.abi_version()
    if abi_version > 0:
        return f"available (ABI {abi_version})"
    return f"unavailable: {landlock.unavailable_reason() or 'not Linux'}; rustc probes and granted programs run " \
           f"unconfined and could read any file the user can"
