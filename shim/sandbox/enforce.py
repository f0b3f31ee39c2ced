"""From a crate's policy grant to the sandbox of one run, and from what happened back to denials.

    load(environ)            the build's policy (policy.discover from the workspace root), once per process
    grant(...)               what this crate's build script may do
    preopens(grant, ctx)     extra WASI directories: granted trees at their own paths, minus the target
                             directory; a granted *file* appears alone, through a view of hard links (or
                             copies, read-only) preopened at the file's parent path (shim.confine.fsview)
    env_extra(grant, ctx)    host variables the grant adds to the guest's environment
    warn_mode(grant)         whether the grant is warn mode's; suggest(...) the entry that permits a denial
    observed_denials(...)    failed accesses the guest reported (shim.host.observe) that a grant would allow,
                             and in warn mode successful ones that enforce mode would have refused

Every denial carries the entry that would permit it, ready to paste (policy.suggest_entry).

Warn mode (`mode = "warn"`) is for learning what a build needs (`cratecage init`), so it must let the
build get as far as a native one would: it widens reads and the environment, never writes, spawns or
network. `preopens` adds "/" read-only, `env_extra` the whole host environment plus the request that the
facade report successes too (shim/host/abi.py `OBSERVE_ENV`), and `observed_denials` turns each success outside
what enforce mode allows into a non-fatal denial marked `permitted`, with its entry. Directives a grant
lacks are passed on, also marked `permitted`. Everything else is refused as in enforce mode, but reported
without failing the build.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

if False:  # typing only. The policy package is imported only when a policy or curated entry applies; the
    # host's ABI and run context only by a run (a wasm compile asks `grant` alone).
    from shim.host.context import Observation, RunContext
    from shim.limits import Limits
    from shim.policy import Grant, Policy


_CACHE: dict[str, tuple[Policy, list[str]]] = {}
# Variables std itself looks up (panics, thread stacks): never a script's request.
STD_INTERNAL_ENV = frozenset({"RUST_BACKTRACE", "RUST_LIB_BACKTRACE", "RUST_MIN_STACK"})


def load(environ: Mapping[str, str]) -> tuple[Policy, list[str]]:
    """The build's policy and the warnings about sources it hid. Raises PolicyError when malformed, and
    shim.cargo.workspace.WorkspaceUnknown when the workspace cannot be determined (and no absolute
    CRATECAGE_POLICY makes it unnecessary): the policy never comes from a dependency's own directory."""
    from shim.cargo.workspace import workspace_root_if_known
    from shim.policy import discover

    root = workspace_root_if_known(environ)
    key = f"{root}\0{environ.get('CRATECAGE_POLICY', '')}"
    if key not in _CACHE:
        _CACHE[key] = discover(root, environ)
    return _CACHE[key]


def grant(kind: str, crate: str, version: str, environ: Mapping[str, str],
          package_dir: str | None = None) -> tuple[Grant | None, Policy | None]:
    """This crate's grant and the build's policy; (None, None) when no policy applies: the defaults.
    `package_dir` (default: CARGO_MANIFEST_DIR) tells entries with `source = "registry"` whether they apply."""
    from shim.cargo.workspace import package_source, policy_may_apply

    if not policy_may_apply(kind, crate, environ):
        return None, None
    policy, _warnings = load(environ)
    origin = package_source(package_dir or environ.get("CARGO_MANIFEST_DIR"), environ)
    return policy.resolve(kind, crate, version, origin), policy


def _covered(path: str, roots: list[str]) -> bool:
    from shim.lexical import inside

    return any(root and inside(path, root) for root in roots)  # "" (a macro's package dir) covers nothing


def warn_mode(grant: Grant | None) -> bool:
    return grant is not None and grant.mode == "warn"


def preopens(grant: Grant | None, ctx: RunContext) -> list[tuple[str, str, bool]]:
    """(host dir, guest path, writable) for every granted path not already preopened; in warn mode the
    writable ones and "/" read-only, last (shim.build.run.preopen_table says why the order matters). Read-only
    grants need no preopen of their own under "/", and a granted file's directory of links would hide the
    file's siblings from it.

    Granted files are shown through views in the run's host-only scratch directory (shim.confine.fsview: never under
    the guest's temp dir, where a write through the link would reach a read-only host file). A readable tree
    that holds the target directory, warn mode's "/" included, is shown without it (shim.confine.fsview)."""
    if grant is None:
        return []
    from shim.confine import fsview

    hidden = fsview.hidden_dirs(ctx)
    out: list[tuple[str, str, bool]] = []
    files: list[tuple[str, bool]] = []
    granted = ((grant.writable, True),) if warn_mode(grant) else ((grant.writable, True), (grant.readable, False))
    for paths, writable in granted:
        for path in paths:
            in_hidden = any(_covered(path, [h]) for h in hidden)  # only an explicit grant reaches it
            shown = [g for _h, g, w in out if w or not (writable or in_hidden)]
            if _covered(path, [ctx.out_dir, ctx.tmp_dir, *shown]) or (
                    not writable and not in_hidden and _covered(path, [ctx.package_dir])):
                continue
            if os.path.isdir(path):
                if writable or in_hidden:
                    out.append((path, path, writable))
                else:
                    out += fsview.preopens(path, (path,), hidden, ctx.host_scratch)
            elif os.path.exists(path):
                files.append((path, writable))
    out += fsview.file_views(files, ctx.host_scratch)
    if warn_mode(grant):
        seen = {guest for _h, guest, _w in out}
        view = fsview.preopens("/", ("/",), [*hidden, *([ctx.host_dir] if ctx.host_dir else [])],
                               ctx.host_scratch)
        out += [p for p in view if p[1] == "/" or p[1] not in seen]
    return out


def guarded_dirs(ctx: RunContext, module_cache: str = "") -> list[tuple[str, str]]:
    """(what, directory) that no writable grant may hold: cargo's target directories and build state
    (shim.confine.fsview: found under the crate's granted trees too, so a profile dir such as `target/debug` or
    `<target>/cratecage` counts: other crates' outputs, their build-script launchers and wasm modules,
    which cargo and cratecage run next),
    cratecage's cache (compiled module caches are native code the runner loads; the facade and wasm sysroot
    every build script is linked with), cratecage itself and the Python that runs it, and the toolchain."""
    import sys

    from shim.confine import fsview
    from shim.files import cache_root

    found = [*(("cargo's target directory", h) for h in fsview.hidden_dirs(ctx)),
             ("cratecage's cache", str(cache_root(ctx.host_env))), ("cratecage's module cache", module_cache),
             ("cratecage itself", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))),
             ("the Python that runs cratecage", sys.prefix), ("the toolchain", ctx.sysroot)]
    return [(what, path) for what, path in found if path and os.path.isabs(path)]


def check_writable(grant: Grant | None, ctx: RunContext, module_cache: str = "") -> None:
    """Raise CratecageError when a writable grant holds one of `guarded_dirs`. A writable grant is preopened
    (and given to granted programs) as it is, with no view to leave a directory out, so a script granted
    the workspace root, or a directory holding CARGO_TARGET_DIR or ~/.cache, could rewrite the launcher of
    another crate's build script, a binary cargo runs next, or a compiled module the runner loads as native
    code. A writable grant inside the target directory (`target/sqlx`) holds none of it and stays usable.
    No grant, readable or writable, may lie in `<target>/cratecage` either."""
    from shim.confine import fsview
    from shim.errors import CratecageError
    from shim.lexical import inside

    if grant is None or not grant.readable:
        return
    hidden = fsview.hidden_dirs(ctx)
    own = [os.path.join(h, "cratecage") for h in hidden]  # its journal, wasm modules and each run's scratch
    for path in grant.readable:  # writable ones included
        real = os.path.realpath(path)
        state = next((d for d in own if inside(path, d) or inside(real, os.path.realpath(d))), None)
        if state is not None:
            raise CratecageError(
                f"{ctx.named()}: the grant {path} lies in cratecage's own build "
                f"state ({state}): other runs' scratch space there shows the files granted to other crates, "
                "and its wasm modules run with their grants",
                hint=f"grant a directory outside {state}")
    guarded = [(what, d, os.path.realpath(d)) for what, d in guarded_dirs(ctx, module_cache)]
    for path in grant.writable:
        real = os.path.realpath(path)
        for what, directory, real_dir in guarded:
            if inside(directory, path) or inside(real_dir, real):
                raise CratecageError(
                    f"{ctx.named()}: the writable grant {path} holds {what} "
                    f"({directory}), which a {_guest(ctx)} must never write: what it changed there would run "
                    "natively next, outside every sandbox",
                    hint=f"grant a directory that does not hold {directory}, e.g. one beside it")
        profile = next((p for p in (path, real) for p in [_cargo_output_at(p, hidden)] if p), None)
        if profile is not None:
            raise CratecageError(
                f"{ctx.named()}: the writable grant {path} lies in cargo's build "
                f"output ({profile}): other crates' libraries, build-script launchers and binaries there run "
                "natively next, outside every sandbox",
                hint="grant a directory of its own instead, beside the profile directories (e.g. target/sqlx)")


def _cargo_output_at(path: str, targets: list[str]) -> str | None:
    """The cargo profile directory `path` lies in, in any target or build dir and at any depth, by its lexical
    form or its real path (shim.cargo.layout.cargo_output_of: a lock or fingerprints above it), or that it holds
    one level down (a `<triple>` dir) below one of the `targets` (shim.confine.fsview.hidden_dirs); None where it holds
    no build output (`target/sqlx`)."""
    from shim.cargo import layout
    from shim.lexical import inside

    found = layout.cargo_output_of(path)
    if found is not None:
        return found
    if not any(inside(os.path.normpath(path), t) and os.path.normpath(path) != os.path.normpath(t) for t in targets):
        return None
    try:
        children = [os.path.join(path, c) for c in os.listdir(path)][:4096]
    except OSError:
        children = []
    marked = lambda d: any(os.path.lexists(os.path.join(d, m)) for m in layout.OUTPUT_MARKERS)  # noqa: E731
    return next((c for c in children if os.path.isdir(c) and marked(c)), None)


def limits(grant: Grant | None, environ: Mapping[str, str]) -> Limits:
    """The run's limits: the policy's `limits` replace the defaults; CRATECAGE_LIMIT_* (tests, one-off runs)
    beats both. The policy's fields are named as shim.limits' (shim.policy.model.Limits)."""
    from shim.limits import from_env

    return from_env(environ) if grant is None else with_grant_limits(from_env(environ), grant, environ)


def with_grant_limits(limits: Limits, grant: Grant, environ: Mapping[str, str]) -> Limits:
    """`limits` with the grant's own `limits` in place of each value no CRATECAGE_LIMIT_* variable sets."""
    from shim.limits import set_in_env
    from shim.record import field_names, replace

    changes = {name: getattr(grant.limits, name) for name in field_names(type(grant.limits))
               if getattr(grant.limits, name) is not None and not set_in_env(name, environ)}
    return replace(limits, **changes)


def env_extra(grant: Grant | None, ctx: RunContext) -> dict[str, str]:
    """What to add to the guest's default environment (ctx.env): the granted host variables; in warn mode
    every host variable the defaults do not set (TMPDIR stays the run's) and abi.OBSERVE_ENV."""
    if grant is None:
        return {}
    if warn_mode(grant):
        from shim.host import abi

        return {**{k: v for k, v in ctx.host_env.items() if k not in ctx.env}, abi.OBSERVE_ENV: abi.OBSERVE_ALL}
    return {k: v for k, v in ctx.host_env.items() if grant.allows_env(k)}


def suggest(kind: str, crate: str, capability: str, target: str, *, writable: bool = False) -> str:
    from shim.policy import suggest_entry

    return suggest_entry(kind, crate, capability, target, writable=writable)


def observed_denials(ctx: RunContext, grant: Grant | None, kind: str | None = None,
                     observations: list[Observation] | None = None) -> None:
    """Turn what the guest reported (shim.host.observe) into denials: a failed access a grant would
    allow, and in warn mode a successful one enforce mode would have refused (non-fatal, `permitted`).
    Successes are asked for only in warn mode; any other run's are ignored. `kind` defaults to the
    context's; `observations` to all of the run's (a macro server's: one expansion's)."""
    warn = warn_mode(grant)
    kind = kind or ctx.kind
    seen: set[tuple[str, str]] = set()
    for obs in ctx.observations if observations is None else observations:
        if (obs.kind, obs.target) in seen or (obs.succeeded and not warn):
            continue
        seen.add((obs.kind, obs.target))
        if obs.kind == "env":
            if obs.target in STD_INTERNAL_ENV or (grant is not None and grant.allows_env(obs.target)):
                continue
            if obs.succeeded and not ctx.visible_by_default(obs.target):
                ctx.deny("env-access", obs.target,
                         f"not granted, so enforce mode would show the {_guest(ctx)} it unset",
                         suggest(kind, ctx.crate, "env-access", obs.target), fatal=False, permitted=True)
            elif not obs.succeeded and obs.target in ctx.host_env:
                ctx.deny("env-access", obs.target,
                         f"set on the host but not granted, so the {_guest(ctx)} saw it unset",
                         suggest(kind, ctx.crate, "env-access", obs.target), fatal=False)
        elif obs.kind == "fs":
            _fs_denial(ctx, grant, kind, obs.op, os.path.normpath(obs.target), obs.errno)


def _guest(ctx: RunContext) -> str:
    return "proc macro" if ctx.kind == "macro" else "build script"


def _fs_denial(ctx: RunContext, grant: Grant | None, kind: str, op: str, path: str, errno: str) -> None:
    write = op == "write"
    own = [ctx.package_dir, ctx.out_dir, ctx.tmp_dir]
    fatal = op != "stat"  # testing whether a path exists is not using it
    from shim.host import abi

    if errno == abi.ACCESS_OK:  # warn mode: it worked; would it have without warn mode?
        if _covered(path, own) or grant is None or grant.allows_read(path) or grant.allows_write(path):
            return
        ctx.deny("filesystem-access", f"{op} {path}", f"outside the {_guest(ctx)}'s grants",
                 suggest(kind, ctx.crate, "filesystem-access", path), fatal=fatal, permitted=True)
        return
    if not write and (_covered(path, own) or not os.path.exists(path)):
        return  # inside the default grants, or missing on the host too: nothing to grant
    if write and _covered(path, [ctx.out_dir, ctx.tmp_dir]):
        return
    if grant is not None and (grant.allows_write(path) if write else grant.allows_read(path)):
        _granted_yet_refused(ctx, grant, op, path, errno, write, fatal)
        return
    ctx.deny("filesystem-access", f"{op} {path}", f"outside the {_guest(ctx)}'s grants ({errno})",
             suggest(kind, ctx.crate, "filesystem-access", _grant_target(path, write), writable=write),
             fatal=fatal)


def _granted_yet_refused(ctx: RunContext, grant: Grant, op: str, path: str, errno: str, write: bool,
                         fatal: bool) -> None:
    """A refused access to a path the grant covers: an entry for the path would change nothing (and be
    printed again on every build). The usual cause is a symbolic link on the way that leads out of the
    granted directory holding it: wasmtime follows links only inside their preopen."""
    real = os.path.realpath(path)
    if real == path:
        ctx.deny("filesystem-access", f"{op} {path}", f"granted, yet refused by the sandbox ({errno})",
                 "see the README's Limits", fatal=fatal)
        return
    key = "writable" if write else "paths"
    allowed = grant.allows_write(real) if write else grant.allows_read(real)
    ctx.deny("filesystem-access", f"{op} {path}",
             f"granted, but reached through a symbolic link to {real}, which the sandbox follows only inside the "
             f"granted directory holding the link ({errno})",
             f"no policy entry makes this path work: the script must open {real} itself"
             + ("" if allowed else f", which needs filesystem-access {key} = [\"{real}\"]"), fatal=fatal)


def _grant_target(path: str, write: bool) -> str:
    """What to suggest granting: the file itself for reads, its directory for writes that create it."""
    return path if (not write or os.path.exists(path)) else str(Path(path).parent)
