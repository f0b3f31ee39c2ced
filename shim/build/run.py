"""Runs one build script's wasm module the way cargo would run the native binary.

Cargo executes the launcher cratecage left at the build script's path (shim.build.script); the launcher
calls `main_build_script`. The module runs in the sandbox (shim.sandbox.engine) and sees only:
  - the package directory, read-only, at its own absolute path and as "." (cargo's cwd);
  - OUT_DIR and a per-run temporary directory, read-write, at their own paths;
  - exactly the environment cargo documents for build scripts (shim.cargo.script_env);
  - and what the crate's grant adds (shim.sandbox.enforce). In warn mode that is every file the user can read
    ("/" preopened read-only) and the whole environment cargo gave the launcher; writes stay confined.
  - TCP connections to the routes its grant permits (shim.host.net), all closed when the run ends.

After the run: what it left in the directories it could write (shim.sandbox.engine.check_leftovers), reads it
tried inside the target directory (`target_reads`), what it reported (shim.sandbox.enforce.observed_denials),
and its stdout, filtered to the directives cargo may see (`filter_stdout`, shim.build.directives). Every
failure names the crate, version and cause.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

from shim.cargo.script_env import RERUN_ENV, cargo_environment, guest_environment, is_default_env
from shim.cargo import layout
from shim.host.context import RunContext
from shim.limits import Limits
from shim.sandbox import enforce
from shim.sandbox.engine import GuestRun, Outcome, check_leftovers, leftovers_before, make_run_dir, removed_note

if False:  # typing only: policy is imported when a run starts
    from shim.policy import Grant


def warn_once_without_landlock(ctx: RunContext) -> None:
    """Where Landlock is missing, rustc probes run unconfined: say so once per cargo run (shim.once), from the
    first build script of a workspace package to run: cargo shows the `cargo:warning` lines of local
    packages only, so a registry crate's would be lost."""
    from shim.confine import landlock

    if landlock.abi_version() > 0:
        return
    from shim.lexical import inside
    from shim.errors import CratecageError
    from shim.cargo.workspace import workspace_root_if_known

    try:
        root = workspace_root_if_known(ctx.host_env)
    except CratecageError:
        root = None
    if root is None or not inside(ctx.package_dir, str(root)):
        return
    from shim import once
    from shim.host.probe import landlock_status

    if once.first("no landlock: build scripts", ctx.host_env):
        print(f"cargo:warning=cratecage: Landlock {landlock_status()}", flush=True)


def run_build_script(ctx: RunContext, wasm: Path, limits: Limits, module_cache: Path,
                     grant: Grant | None = None, policy_file: str | None = None) -> Outcome:
    """Run the module under `grant` (None: the defaults alone), then check what it did and left behind.
    Stdout reaches cargo only after the run, filtered to the directives the grant allows."""
    from shim.sandbox import enforce

    cc_dir = Path(layout.state_of_module(str(wasm)))
    warn_once_without_landlock(ctx)
    started = time.monotonic()
    ctx.env.update(enforce.env_extra(grant, ctx))
    ctx.grant = grant
    enforce.check_writable(grant, ctx, str(module_cache))
    before = leftovers_before(ctx)
    run = GuestRun(ctx, wasm, limits, module_cache, enforce.preopens(grant, ctx), what="build script",
                   argv=[ctx.env.get("CARGO_MANIFEST_DIR", "") + "/build-script"])
    try:
        outcome = run.run()
    finally:
        run.close()
    check_leftovers(ctx, before)
    if run.usage is not None and run.usage.disk_exceeded:  # no gigabytes left behind (shim.sandbox.usage)
        outcome = Outcome(outcome.exit_code, outcome.message + removed_note(run.usage.remove_added(), ctx))
    target_reads(ctx)
    enforce.observed_denials(ctx, grant)
    stdout = filter_stdout(bytes(run.stdout), ctx, grant)
    if policy_file:
        stdout += rerun_on_policy_edits(stdout, ctx, policy_file)
    warn = grant is not None and grant.mode == "warn"
    if any(d.fatal for d in ctx.denials) and outcome.exit_code == 0 and not warn:
        fatal = sum(1 for d in ctx.denials if d.fatal)
        notes = sum(1 for d in ctx.denials if not d.fatal and not d.expected)
        outcome = Outcome(1, f"cratecage: build script of {ctx.crate} {ctx.version} failed: {fatal} denied "
                             f"request{'s' if fatal > 1 else ''}"
                             + (f" (and {notes} not granted, reported only)" if notes else "") + ", listed below")
    if outcome.exit_code == 0:  # cargo shows a successful script's stderr to nobody: warnings it shows
        for denial in (d for d in ctx.denials if not d.expected):  # the policy's own denies: audit log only
            for line in denial.render(ctx.crate, ctx.version).splitlines():
                stdout += f"cargo:warning={line}\n".encode()
    sys.stdout.buffer.write(stdout)
    sys.stdout.flush()
    if outcome.message:
        print(outcome.message, file=sys.stderr)
    if outcome.exit_code != 0:
        for denial in ctx.denials:
            print(denial.render(ctx.crate, ctx.version), file=sys.stderr)
    from shim.sandbox import audit

    audit.record(cc_dir, ctx, grant, outcome.exit_code, outcome.message,
                 time.monotonic() - started)
    return outcome


def target_reads(ctx: RunContext) -> None:
    """A read the guest reported failing inside the target directory but OUT_DIR and its own temp dir (which
    lives there, shim.build.run.make_run_dir) is a fatal denial (shim.confine.fsview hides the rest: other crates'
    fingerprints and `.d` files hold variables' values); no policy entry grants it, short of naming a path
    inside the target directory."""
    from shim.confine import fsview
    from shim.lexical import inside

    hidden = fsview.hidden_dirs(ctx)
    grant = ctx.grant
    granted = [*(grant.readable if grant is not None else ()), *(grant.writable if grant is not None else ())]
    for obs in ctx.observations:
        if obs.kind != "fs" or obs.op not in ("read", "list") or obs.succeeded:
            continue
        path = os.path.normpath(obs.target)
        if (any(inside(path, h) for h in hidden) and not inside(path, ctx.out_dir) and not inside(path, ctx.tmp_dir)
                and not any(inside(path, g) for g in granted)):
            ctx.deny("filesystem-access", f"{obs.op} {path}",
                     "inside the target directory, which holds other crates' build state; a build script "
                     "reads only its own OUT_DIR there", "read what the build needs from the package or "
                     "OUT_DIR instead")


def rerun_on_policy_edits(stdout: bytes, ctx: RunContext, policy_file: str) -> bytes:
    """Directives that make cargo rerun the script when the policy file changes: cargo does not know the
    policy, and a script that stays fresh keeps the output of its old grants.

    One rerun-if line replaces cargo's default of rerunning on any change in the package, so:
      - a script that names its inputs (prints rerun-if-*) gets the policy file added to them;
      - a script that names none, of a package outside the workspace (registry crates, git checkouts, path
        dependencies elsewhere), also gets its package directory: cargo scans a directory recursively,
        which is what its default does for such a package anyway (and finds nothing new in an immutable
        one). Not when the target directory is inside the package, where every build changes the scan;
      - a workspace package that names none keeps cargo's default and is not rerun by a policy edit (the
        README's limits say so): cargo lists a local package's files as packaging would (honouring
        `exclude` and .gitignore), so a whole-directory scan would rerun the script for edits cargo
        deliberately ignores.
    """
    from shim.lexical import inside

    if b"rerun-if-" in stdout:
        return f"cargo:rerun-if-changed={policy_file}\n".encode()
    from shim.cargo.workspace import workspace_root_if_known

    package = ctx.package_dir
    root = workspace_root_if_known(ctx.host_env)  # None: an absolute CRATECAGE_POLICY, no known workspace
    if inside(ctx.out_dir, package) or (root is not None and inside(package, str(root))):
        return b""
    return f"cargo:rerun-if-changed={package}\ncargo:rerun-if-changed={policy_file}\n".encode()


def context_from_env(environ: dict[str, str], rustc: str, sysroot: str, tmp_dir: str) -> RunContext:
    """The run's context. The package and OUT_DIR take shim.lexical's form, which is how the guest resolves
    every path (a preopen at `/w/m/../t/out` would match nothing) and what reports are compared with; where
    a link made that another directory, the guest's variables name the resolved one."""
    from shim.lexical import normal_dir, normal_path

    package_dir = normal_dir(environ.get("CARGO_MANIFEST_DIR") or os.getcwd())
    out_dir = normal_dir(environ["OUT_DIR"]) if environ.get("OUT_DIR") else ""
    env = guest_environment(environ, tmp_dir, cargo_environment())
    for name, value in (("CARGO_MANIFEST_DIR", package_dir), ("OUT_DIR", out_dir)):
        if name in env and normal_path(env[name]) != value:
            env[name] = value
            if name == "CARGO_MANIFEST_DIR" and "CARGO_MANIFEST_PATH" in env:
                env["CARGO_MANIFEST_PATH"] = os.path.join(value, os.path.basename(env["CARGO_MANIFEST_PATH"]))
    return RunContext(
        crate=environ.get("CARGO_PKG_NAME", "?"), version=environ.get("CARGO_PKG_VERSION", "?"),
        package_dir=package_dir, out_dir=out_dir, tmp_dir=tmp_dir,
        env=env, host_env=dict(environ), rustc=rustc, sysroot=sysroot, visible_by_default=is_default_env,
    )


def main_build_script(wasm: str, rustc: str, sysroot: str, module_cache: str) -> None:
    """Entry from the launcher. Never returns: exits with the outcome (os._exit, see wasmtime-py.md §9)."""
    from shim.startup import enable_site_packages
    from shim.errors import CratecageError

    enable_site_packages()
    environ = dict(os.environ)
    code = 101
    run_dir = make_run_dir(layout.state_of_module(wasm))  # host/: the host's own; tmp/: the guest's TMPDIR
    host_dir, tmp_dir = os.path.join(run_dir, "host"), os.path.join(run_dir, "tmp")
    os.mkdir(host_dir, 0o700)
    os.mkdir(tmp_dir, 0o700)
    try:
        if not environ.get("OUT_DIR"):
            raise CratecageError("the build script launcher must be run by cargo (OUT_DIR is not set)")
        ctx = context_from_env(environ, rustc, sysroot, tmp_dir)
        ctx.host_dir = host_dir
        if not environ.get(RERUN_ENV):  # how it ran, should a replay need it for wasm (shim.compile.script_rerun)
            from shim.compile.run_record import record

            record(wasm, rustc, sysroot, module_cache, environ)
        from shim.sandbox import enforce

        grant, policy = enforce.grant("build", ctx.crate, ctx.version, environ, ctx.package_dir)
        limits = enforce.limits(grant, environ)
        code = run_build_script(ctx, Path(wasm), limits, Path(module_cache), grant,
                                str(policy.source) if policy is not None and policy.source else None).exit_code
    except CratecageError as err:
        from shim.once import report

        report(err, environ)  # a build-wide one (the policy, the workspace, a limit) once per cargo run
        code = err.exit_code
    except Exception as err:  # noqa: BLE001 - one line, never a traceback
        if environ.get("CRATECAGE_DEBUG"):
            import traceback

            traceback.print_exc()
        print(f"cratecage: internal error running build script of {environ.get('CARGO_PKG_NAME', '?')}: "
              f"{type(err).__name__}: {err}", file=sys.stderr)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def filter_stdout(stdout: bytes, ctx: RunContext, grant: Grant | None, kind: str = "build") -> bytes:
    """The build script's stdout as cargo will read it (shim.build.directives.filter), each denial recorded on
    `ctx` with the entry that would permit it: a `directives` item, or for `rerun-if-env-changed` of a
    variable the script may not see (only cargo's defaults and granted variables) an `env-access` one.
    That denial does not fail the build (the dropped line changes nothing the script could see) and is
    reported only when the variable is set on the host and no lookup of it was reported already. In warn
    mode denied directives pass on, marked `permitted`."""
    from shim.build.directives import RULES
    from shim.build.directives import filter as filter_directives

    allows = grant.allows_directive if grant is not None else (lambda key, target=None: False)

    def visible(name: str) -> bool:
        return is_default_env(name) or (grant is not None and grant.allows_env(name))

    from shim.confine.fsview import hidden_dirs

    kept, denied = filter_directives(stdout, out_dir=ctx.out_dir, grant_allows_directive=allows,
                                     env_visible=visible, target=ctx.env.get("TARGET", ""),
                                     package_dir=ctx.package_dir, hidden=tuple(hidden_dirs(ctx)),
                                     package=ctx.crate)
    for directive, reason in denied:
        rule = RULES.get(directive.key)
        capability = rule.capability if rule is not None and not directive.problem else "directives"
        passed_on = enforce.warn_mode(grant) and directive.canonical is not None
        if capability == "directives":
            item = directive.grant_item
            fix = enforce.suggest(kind, ctx.crate, "directives", item) if item else ""
            ctx.deny("directives", directive.canonical or directive.raw, reason, fix, permitted=passed_on)
        elif passed_on or (directive.target in ctx.host_env and not any(
                d.capability == capability and d.target == directive.target for d in ctx.denials)):
            ctx.deny(capability, directive.target, reason, enforce.suggest(kind, ctx.crate, capability, directive.target),
                     fatal=rule is not None and rule.fatal, permitted=passed_on)
        if passed_on:
            kept.append(directive.canonical)
    return ("\n".join(kept) + "\n").encode() if kept else b""
