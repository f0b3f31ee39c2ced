"""cratecage as cargo's RUSTC_WRAPPER: look at one rustc call, then hand it on.

Every call is classified (shim.classify):
  - build scripts are compiled for wasm32-wasip1 and replaced by a launcher (shim.build_script);
  - linked libraries compiled without `--target` are journaled, then passed through (shim.journal): a
    build script may need them replayed for wasm;
  - proc macros still pass through in this version, after checking that cargo's rustc is the wasm-capable
    one, so a build never silently depends on a compiler cratecage cannot use;
  - everything else passes through.

A call that consumes a build script's output (`consumes_script_output`: `-l`, a `-L` other than
`dependency=`, `-C link-arg(s)`, or a package whose build script printed `rustc-env`/`rustc-link-*`/
`rustc-flags`) is not exec'd but run confined (shim.confined_compile): those values drive rustc, LLVM and
the linker natively. The decision reads the argv and at most one small file, in this process.

Pass-through is `os.execvp`: the process becomes rustc (or the inner wrapper, `CRATECAGE_WRAPPER`), keeping
stdin, stderr streaming and cargo's jobserver file descriptors. The original argv is passed on unchanged,
`@argfile`s included (expanding them could exceed the kernel's argument limit that made cargo use them).
The one call we do not exec is `rustc -vV`: its output gets one line naming cratecage, so sandboxed
artifacts get their own hashes.

This module is the fast path: standard library only, nothing heavy until a sandboxed unit needs it.
"""

from __future__ import annotations

import os
import sys

from shim import VERSION_LINE
from shim import journal, trace
from shim.trace import TRACE_ENV
from shim.classify import BUILD_SCRIPT, HOST_LIBRARY, PROBE, SANDBOXED, Unit, classify, is_verbose_version
from shim.errors import CratecageError, UsageError
from shim.rustc_args import ArgfileError, RustcArgs, expand_argfiles, parse, split_chain, tokens

INNER_WRAPPER_ENV = "CRATECAGE_WRAPPER"


def run(argv: list[str], environ: os._Environ[str] | dict[str, str] = os.environ) -> int:
    """Handle one wrapper call; `argv` is everything after cratecage's own name. Returns only on error."""
    if not argv:
        raise UsageError(
            "no program to run: cargo calls the wrapper as `cratecage <rustc> <args>`",
            hint="set RUSTC_WRAPPER to this program and run cargo, or see `cratecage --help`",
        )
    chain, rustc_args = split_chain(argv, cargo_env="CARGO" in environ)
    try:
        expanded = expand_argfiles(rustc_args)
        args = parse(expanded)
    except ArgfileError:
        # rustc reads the same file and reports the problem in its own words.
        return _exec(chain + rustc_args, environ)
    unit = classify(args, environ)
    if environ.get(TRACE_ENV):
        trace.event(environ, kind=unit.kind, reason=unit.reason, crate=args.crate_name, chain=chain,
                    argfile=any(a.startswith("@") for a in rustc_args))
    if unit.kind == BUILD_SCRIPT:
        from shim.cli import enable_site_packages

        enable_site_packages()  # policy (tomli on old Pythons), psutil
        from shim.build_script import compile_build_script

        return compile_build_script(chain, args, expanded, dict(environ))
    if unit.kind == HOST_LIBRARY:
        try:
            journal.record(args, expanded, os.getcwd())
        except OSError:
            pass  # a replay that needs this entry will say so, naming the crate
    if unit.kind in SANDBOXED:
        _require_wasm_toolchain(chain[-1], args.crate_name, unit, environ)
    if is_verbose_version(args):
        return _version_with_our_line(chain + rustc_args, environ)
    if unit.kind != PROBE:
        why = consumes_script_output(args, expanded, environ)
        if why is not None:
            from shim import confined_compile

            status = confined_compile.run(chain + rustc_args, args, rustc_args, dict(environ), why)
            if status is not None:
                return status
    return _exec(chain + rustc_args, environ)


# Directive keys whose values reach the package's own rustc (cargo's `output` file holds what the runner
# let through, one `cargo:KEY=VALUE` or `cargo::KEY=VALUE` line each; a mention anywhere is enough).
CONSUMED_DIRECTIVES = (b"rustc-env", b"rustc-link-", b"rustc-flags")
# Where cargo keeps a build-script run's stdout, relative to its OUT_DIR: the classic layout, then the
# build-dir layout of notes/cargo-build-dir-layout.md.
SCRIPT_OUTPUT_FILES = (("..", "output"), ("..", "run", "stdout"))
# Codegen options that hand the linker arguments.
LINK_ARG_OPTIONS = frozenset({"link-arg", "link-args", "pre-link-arg", "pre-link-args"})


def consumes_script_output(args: RustcArgs, expanded: list[str],
                           environ: os._Environ[str] | dict[str, str]) -> str | None:
    """Why this call consumes a build script's output (a stable reason), or None: it does not."""
    if any(kind != "dependency" for kind, _ in args.lib_paths):
        return "search path"
    if any(key in LINK_ARG_OPTIONS for key, _ in args.codegen) or any(
            u.partition("=")[0] in LINK_ARG_OPTIONS for u in args.unstable):
        return "link argument"
    if any(a.startswith("-l") for a in expanded) and any(name == "-l" for name, _, _ in tokens(expanded)):
        return "link library"
    out_dir = environ.get("OUT_DIR")
    if not out_dir:
        return None
    for parts in SCRIPT_OUTPUT_FILES:
        try:
            with open(os.path.join(out_dir, *parts), "rb") as fh:
                output = fh.read()
        except OSError:
            continue
        return "build script directives" if any(d in output for d in CONSUMED_DIRECTIVES) else None
    return None


def _inner_wrapper(environ: os._Environ[str] | dict[str, str]) -> str | None:
    value = environ.get(INNER_WRAPPER_ENV, "").strip()
    return value or None


def _command(cmd: list[str], environ: os._Environ[str] | dict[str, str]) -> list[str]:
    inner = _inner_wrapper(environ)
    return [inner, *cmd] if inner else cmd


def _exec(cmd: list[str], environ: os._Environ[str] | dict[str, str]) -> int:
    full = _command(cmd, environ)
    try:
        os.execvp(full[0], full)
    except OSError as err:
        raise _cannot_run(full[0], err, environ) from None
    return 127  # not reached


def _version_with_our_line(cmd: list[str], environ: os._Environ[str] | dict[str, str]) -> int:
    import subprocess

    full = _command(cmd, environ)
    try:
        done = subprocess.run(full, stdout=subprocess.PIPE, close_fds=False, check=False)
    except OSError as err:
        raise _cannot_run(full[0], err, environ) from None
    out = done.stdout
    if done.returncode == 0:
        if out and not out.endswith(b"\n"):
            out += b"\n"
        out += VERSION_LINE.encode() + b"\n"
    sys.stdout.buffer.write(out)
    sys.stdout.flush()
    return done.returncode


def _cannot_run(program: str, err: OSError, environ: os._Environ[str] | dict[str, str]) -> CratecageError:
    what = err.strerror or str(err)
    if program == _inner_wrapper(environ):
        return UsageError(
            f"cannot run the inner wrapper {program!r} named by {INNER_WRAPPER_ENV}: {what}",
            hint=f"install it, give its full path, or unset {INNER_WRAPPER_ENV}",
        )
    return UsageError(
        f"cannot run {program!r}: {what}",
        hint="cargo passes the compiler after the wrapper; check RUSTC / `build.rustc` in your cargo config",
    )


def _require_wasm_toolchain(
    rustc: str, crate_name: str | None, unit: Unit, environ: os._Environ[str] | dict[str, str]
) -> None:
    from shim.capable import verified_sysroot

    if verified_sysroot(rustc, environ) is not None:
        return
    from shim import toolchain  # asks the compiler itself; only the first sandboxed unit pays for this

    toolchain.require_wasm_capable(rustc, what=f"{unit.kind} `{crate_name or '?'}`", environ=environ)
