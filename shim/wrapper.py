"""cratecage as cargo's RUSTC_WRAPPER: look at one rustc call, then hand it on.

Every call is classified (shim.classify):
  - build scripts are compiled for wasm32-wasip1 and replaced by a launcher (shim.build_script);
  - linked libraries compiled without `--target` are journaled, then passed through (shim.journal): a
    build script may need them replayed for wasm;
  - proc macros still pass through in this version, after checking that cargo's rustc is the wasm-capable
    one, so a build never silently depends on a compiler cratecage cannot use;
  - everything else passes through.

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
from shim.classify import BUILD_SCRIPT, HOST_LIBRARY, SANDBOXED, Unit, classify, is_verbose_version
from shim.errors import CratecageError, UsageError
from shim.rustc_args import ArgfileError, expand_argfiles, parse, split_chain

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
    return _exec(chain + rustc_args, environ)


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
