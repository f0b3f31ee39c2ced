"""cratecage as cargo's RUSTC_WRAPPER: look at one rustc call, then hand it on.

Every call is classified (shim.intercept.classify):
  - build scripts are compiled for wasm32-wasip1 and replaced by a launcher (shim.build.script);
  - linked libraries compiled without `--target` are journaled, then passed through (shim.cargo.journal): a
    build script may need them replayed for wasm;
  - proc macros are compiled for wasm32-wasip1 and replaced by a native trampoline that runs them in the
    sandbox (shim.macro.unit);
  - everything else passes through.

A call that consumes a build script's output (`consumes_script_output`: `-l`, a `-L` other than
`dependency=`/`crate=`, or a package whose build script printed `rustc-env`/`rustc-link-*`/`rustc-flags`/
`rustc-cdylib-link-arg`) is not exec'd but run confined (shim.intercept.confined): those values drive rustc,
LLVM and the linker natively. The decision reads the argv and at most one small file, in this process.
A bare `-C link-arg` is no trigger: a script's link arguments reach only its own package's targets, which
the output file shows, and a user's `RUSTFLAGS=-C link-arg=-fuse-ld=mold` must not confine every call.

A call that links (bin, test, cdylib, dylib, proc-macro) a package outside the workspace root (cargo gives
its source as an absolute path and runs rustc in the package's directory) runs in an empty directory
instead (`link_cwd`): linkers resolve relative names against the cwd first (lld looks up the members of a
`GROUP(libgcc_s.so.1 ...)` script there), so a file the package ships must not be found there.

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

from shim import TRACE_ENV, VERSION_LINE
from shim.cargo import journal, layout
from shim.cargo.rustc_args import ArgfileError, RustcArgs, expand_argfiles, parse, split_chain, tokens
from shim.intercept.classify import (BUILD_SCRIPT, HOST_LIBRARY, PROBE, PROC_MACRO, classify, is_verbose_version,
                                     unit_name)

if False:  # typing only: shim.errors and shim.trace are imported where a call needs them, off the fast path
    from shim.errors import CratecageError

INNER_WRAPPER_ENV = "CRATECAGE_WRAPPER"


def run(argv: list[str], environ: os._Environ[str] | dict[str, str] = os.environ) -> int:
    """Handle one wrapper call; `argv` is everything after cratecage's own name. Returns only on error."""
    if not argv:
        from shim import program
        from shim.errors import UsageError

        raise UsageError(
            "no program to run: cargo calls the wrapper as `cratecage <rustc> <args>`",
            hint=f"set RUSTC_WRAPPER to this program and run cargo, or see `{program.command('--help')}`",
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
        from shim import trace

        trace.event(environ, kind=unit.kind, reason=unit.reason, crate=args.crate_name, chain=chain,
                    argfile=any(a.startswith("@") for a in rustc_args))
    if unit.kind == BUILD_SCRIPT:
        from shim.startup import enable_site_packages

        enable_site_packages()  # policy (tomli on old Pythons), psutil
        from shim.build.script import compile_build_script

        return compile_build_script(chain, args, expanded, dict(environ))
    if unit.kind == PROC_MACRO:
        from shim.startup import enable_site_packages

        enable_site_packages()
        from shim.macro.unit import compile_proc_macro

        status = compile_proc_macro(chain, args, expanded, dict(environ))
        if status is not None:
            return status
        # `sandbox = "native"` for this macro crate: the owner's decision, on to the native compile below
    if unit.kind == HOST_LIBRARY:
        try:
            journal.record(args, expanded, os.getcwd())
        except OSError:
            pass  # a replay that needs this entry will say so, naming the crate
    if is_verbose_version(args):
        return _version_with_our_line(chain, rustc_args, environ)
    dropped: set[str] = set()
    if unit.kind != PROBE and outside_workspace(args):
        scrubbed = without_user_credentials(environ)
        dropped, environ = set(environ) - set(scrubbed), scrubbed
    if unit.kind != PROBE:
        empty = link_cwd(args)
        if empty is not None:
            os.chdir(empty)
        why = consumes_script_output(args, expanded, environ)
        if why is not None:
            from shim.intercept import confined as confined_compile

            status = confined_compile.run(chain + rustc_args, args, rustc_args, dict(environ), why)
            if status is not None:
                return status
    if dropped and not _inner_wrapper(environ):
        from shim.intercept import confined as confined_compile

        return confined_compile.run_without_credentials(chain + rustc_args, dict(environ), dropped,
                                                        unit_name(args, environ))
    return _exec(chain + rustc_args, environ)


# Directive keys whose values reach the package's own rustc (cargo's copy of the script's stdout,
# shim.cargo.layout.script_output, holds what the runner let through, one `cargo:KEY=VALUE` or
# `cargo::KEY=VALUE` line each; a mention anywhere is enough).
CONSUMED_DIRECTIVES = (b"rustc-env", b"rustc-link-", b"rustc-flags", b"rustc-cdylib-link-arg")
# `-L` kinds that hold crates only (cargo's own); any other kind is a native search path.
CRATE_SEARCH = frozenset({"dependency", "crate"})
# Crate types whose compile runs the linker.
LINKED_TYPES = frozenset({"bin", "cdylib", "dylib", "proc-macro"})
EMPTY_CWD = "empty"  # under <build dir>/cratecage/: the cwd of a link outside the workspace root


def consumes_script_output(args: RustcArgs, expanded: list[str],
                           environ: os._Environ[str] | dict[str, str]) -> str | None:
    """Why this call consumes a build script's output (a stable reason), or None: it does not."""
    if any(kind not in CRATE_SEARCH for kind, _ in args.lib_paths):
        return "search path"
    if any(a.startswith("-l") for a in expanded) and any(name == "-l" for name, _, _ in tokens(expanded)):
        return "link library"
    out_dir = environ.get("OUT_DIR")
    output = layout.script_output(out_dir) if out_dir else None
    if output is None:
        return None
    return "build script directives" if any(d in output for d in CONSUMED_DIRECTIVES) else None


def link_cwd(args: RustcArgs) -> str | None:
    """The empty directory to run this call in, or None to keep cargo's cwd: only for a call that links
    and whose paths are all absolute (cargo's shape for a package outside the workspace root)."""
    links = "link" in args.emit or not args.emit
    if not links or not (args.test or LINKED_TYPES.intersection(args.crate_types) or not args.crate_types):
        return None
    paths = [*args.inputs, args.out_dir or "", args.output or "", *(p for _, p in args.lib_paths),
             *(p for _, p in args.externs if p)]
    if not args.inputs or not args.out_dir or not all(os.path.isabs(p) for p in paths if p):
        return None
    if layout.locked_profile(args.out_dir) is None:
        return None  # not a unit of a cargo build
    empty = os.path.join(layout.state_dir(args.out_dir, args.target), EMPTY_CWD)
    try:
        if not os.listdir(empty):
            return empty
    except FileNotFoundError:
        try:
            os.makedirs(empty, mode=0o555)
            return empty
        except FileExistsError:  # a parallel call made it
            return empty if not os.listdir(empty) else "/"
        except OSError:
            return "/"
    except OSError:
        return "/"
    return "/"  # something was put there: the root holds nothing a package ships either


# Words of a variable name that make it a credential (CARGO_REGISTRY_TOKEN, GITHUB_TOKEN, CI_JOB_TOKEN,
# AWS_SECRET_ACCESS_KEY, NPM_TOKEN, DB_PASSWORD, SENTRY_AUTH_TOKEN), and KEY after one of KEY_QUALIFIERS.
CREDENTIAL_WORDS = frozenset({"TOKEN", "TOKENS", "SECRET", "SECRETS", "PASSWORD", "PASSWORDS", "PASSWD",
                              "PASSPHRASE", "CREDENTIAL", "CREDENTIALS", "APIKEY", "AUTH", "COOKIE"})
KEY_QUALIFIERS = frozenset({"API", "ACCESS", "PRIVATE", "SECRET", "SIGNING", "DEPLOY", "ENCRYPTION", "MASTER",
                            "LICENSE", "SSH"})


def credential_name(name: str) -> bool:
    words = set(name.upper().split("_"))
    return bool(words & CREDENTIAL_WORDS) or ("KEY" in words and bool(words & KEY_QUALIFIERS))


def outside_workspace(args: RustcArgs) -> bool:
    """Cargo passes a package outside the workspace (registry, git, a path elsewhere) by absolute source
    paths, a workspace member by paths relative to the workspace root (notes/cargo-and-rustc.md §6)."""
    return bool(args.inputs) and all(os.path.isabs(p) for p in args.inputs)


def without_user_credentials(environ: os._Environ[str] | dict[str, str]) -> os._Environ[str] | dict[str, str]:
    """The environment for a compile of a package outside the workspace, less the user's credentials
    (named like CREDENTIAL_WORDS and present, with the same value, in the environment cargo was started
    with: a dependency's own build script may set such a name for its crate with `rustc-env`). Cargo hands
    every rustc its whole environment, so `option_env!("CARGO_REGISTRY_TOKEN")` in any dependency, a
    build-dependency's native compile included, would compile the token in; without it the variable reads
    as unset. Where cargo's environment cannot be read, every credential-named variable goes."""
    names = [k for k in environ if credential_name(k)]
    if not names:
        return environ
    from shim.cargo.workspace import process_environ

    cargo_env = process_environ(os.getppid())
    drop = {k for k in names if cargo_env is None or cargo_env.get(k) == environ[k]} - _named_by_policy(environ)
    return {k: v for k, v in environ.items() if k not in drop} if drop else environ


def _named_by_policy(environ: os._Environ[str] | dict[str, str]) -> set[str]:
    """Credential names the project's policy mentions (an `env-access` grant such as "VICTIM_TOKEN" or
    "DEPLOY_*" for a crate whose compile reads it): the owner's decision, so those stay. Read as text (the
    policy package costs ~25 ms to import, and this runs on every compile outside the workspace)."""
    from shim.cargo import workspace
    from shim.errors import CratecageError

    try:
        root = workspace.find_workspace_root(environ)
    except CratecageError:
        return set()
    named = environ.get(workspace.POLICY_ENV, "")
    texts = []
    for path in (os.path.join(root, named) if named else "", os.path.join(root, "cratecage.toml"),
                 os.path.join(root, "Cargo.toml")):
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                texts.append(fh.read())
        except OSError:
            pass
    words = {w.strip("\"'") for text in texts for w in text.replace(",", " ").replace("[", " ").replace("]", " ").split()
             if w[:1] in "\"'"}
    exact = {w for w in words if not w.endswith("*")}
    prefixes = tuple(w[:-1] for w in words if w.endswith("*"))
    return {k for k in environ if credential_name(k) and (k in exact or (prefixes and k.startswith(prefixes)))}


def _inner_wrapper(environ: os._Environ[str] | dict[str, str]) -> str | None:
    value = environ.get(INNER_WRAPPER_ENV, "").strip()
    return value or None


def _command(cmd: list[str], environ: os._Environ[str] | dict[str, str]) -> list[str]:
    inner = _inner_wrapper(environ)
    return [inner, *cmd] if inner else cmd


def _exec(cmd: list[str], environ: os._Environ[str] | dict[str, str]) -> int:
    full = _command(cmd, environ)
    try:
        if environ is os.environ:
            os.execvp(full[0], full)
        os.execvpe(full[0], full, environ)
    except OSError as err:
        raise _cannot_run(full[0], err, environ) from None
    return 127  # not reached


def _version_with_our_line(chain: list[str], rustc_args: list[str],
                           environ: os._Environ[str] | dict[str, str]) -> int:
    """`rustc -vV` plus VERSION_LINE. A compiler run directly (no workspace or inner wrapper) answers
    from shim.toolchain.verbose_version when it was asked before: no child on the build's critical path."""
    full = _command(chain + rustc_args, environ)
    direct = len(full) == len(chain) + len(rustc_args) and len(chain) == 1
    out = None
    if direct:
        from shim.toolchain import verbose_version

        out = verbose_version.cached(chain[0], environ)
    status = 0
    if out is None:
        import subprocess

        try:
            done = subprocess.run(full, stdout=subprocess.PIPE, close_fds=False, check=False)
        except OSError as err:
            raise _cannot_run(full[0], err, environ) from None
        out, status = done.stdout, done.returncode
        if direct and status == 0:
            verbose_version.remember(chain[0], out, environ)
    if status == 0:
        if out and not out.endswith(b"\n"):
            out += b"\n"
        out += VERSION_LINE.encode() + b"\n"
    sys.stdout.buffer.write(out)
    sys.stdout.flush()
    return status


def _cannot_run(program: str, err: OSError, environ: os._Environ[str] | dict[str, str]) -> CratecageError:
    from shim.errors import UsageError

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
