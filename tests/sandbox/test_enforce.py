"""From grants to the sandbox and from observations to denials (shim.sandbox.enforce), warn mode above all: what
it widens (reads, the environment), what it keeps (writes), and which successes become denials."""

from __future__ import annotations

from pathlib import Path

import pytest

from shim.cargo.script_env import is_default_env
from shim.host import abi
from shim.host.context import Observation, RunContext
from shim.policy.model import Grant
from shim.sandbox import enforce

HOST_ENV = {"HOME": "/home/me", "SECRET": "s", "GRANTED": "g", "OUT_DIR": "/t/out", "CARGO_PKG_NAME": "c",
            "TMPDIR": "/host-tmp"}


def grant(mode: str) -> Grant:
    return Grant(kind="build", crate="c", version="1.0.0", mode=mode,
                 permits={"filesystem-access.paths": ("/granted",), "env-access.vars": ("GRANTED",)})


@pytest.fixture
def ctx(tmp_path: Path) -> RunContext:
    dirs = {name: tmp_path / name for name in ("pkg", "out", "tmp")}
    for path in dirs.values():
        path.mkdir()
    return RunContext(crate="c", version="1.0.0", package_dir=str(dirs["pkg"]), out_dir=str(dirs["out"]),
                      tmp_dir=str(dirs["tmp"]), env={"OUT_DIR": str(dirs["out"]), "TMPDIR": str(dirs["tmp"])},
                      host_env=dict(HOST_ENV), rustc="rustc", sysroot="/", visible_by_default=is_default_env)


def test_warn_mode_shows_the_whole_environment_but_keeps_the_run_s_tmpdir(ctx: RunContext) -> None:
    extra = enforce.env_extra(grant("warn"), ctx)
    assert extra == {"HOME": "/home/me", "SECRET": "s", "GRANTED": "g", "CARGO_PKG_NAME": "c",
                     abi.OBSERVE_ENV: abi.OBSERVE_ALL}
    assert enforce.env_extra(grant("enforce"), ctx) == {"GRANTED": "g"}
    assert enforce.env_extra(None, ctx) == {}


def test_warn_mode_preopens_the_root_read_only_last_and_no_read_only_grants(ctx: RunContext,
                                                                           tmp_path: Path) -> None:
    readable, writable = tmp_path / "readable", tmp_path / "writable"
    readable.mkdir()
    writable.mkdir()
    permits = {"filesystem-access.paths": (str(readable),), "filesystem-access.writable": (str(writable),)}
    enforcing = Grant(kind="build", crate="c", version="1", permits=permits)
    warning = Grant(kind="build", crate="c", version="1", mode="warn", permits=permits)
    assert enforce.preopens(enforcing, ctx) == [(str(writable), str(writable), True),
                                                (str(readable), str(readable), False)]
    assert enforce.preopens(warning, ctx) == [(str(writable), str(writable), True), ("/", "/", False)]


def ok(op: str, path: str) -> Observation:
    return Observation("fs", op, path, abi.ACCESS_OK)


def found(name: str) -> Observation:
    return Observation("env", "get", name, abi.ACCESS_OK)


@pytest.mark.parametrize("observation, shown", [
    (ok("read", "/etc/hostname"), ("filesystem-access", "read /etc/hostname", True)),
    (ok("list", "/usr/include"), ("filesystem-access", "list /usr/include", True)),
    (ok("stat", "/opt/x.h"), ("filesystem-access", "stat /opt/x.h", False)),  # existence only: not fatal
    (ok("read", "/granted/sub/file"), None),
    (ok("read", "{pkg}/src/x"), None),
    (ok("read", "{out}/gen.rs"), None),
    (ok("stat", "{tmp}/t"), None),
    (found("SECRET"), ("env-access", "SECRET", False)),
    (found("GRANTED"), None),
    (found("CARGO_PKG_NAME"), None),  # every build script sees it
    (found("CARGO_FEATURE_STD"), None),
    (found("TMPDIR"), None),
    (found("RUST_BACKTRACE"), None),  # std's own lookup
])
def test_in_warn_mode_a_success_enforce_mode_would_refuse_is_a_permitted_denial(
        ctx: RunContext, observation: Observation, shown: tuple[str, str, bool] | None) -> None:
    target = observation.target.format(pkg=ctx.package_dir, out=ctx.out_dir, tmp=ctx.tmp_dir)
    ctx.observations.append(Observation(observation.kind, observation.op, target, observation.errno))
    enforce.observed_denials(ctx, grant("warn"))
    assert [(d.capability, d.target, d.fatal) for d in ctx.denials] == ([shown] if shown else [])
    for denial in ctx.denials:
        assert denial.permitted and "not granted (warn mode: permitted)" in denial.render("c", "1.0.0")
        assert "[permissions.build.c]" in denial.fix


def test_successes_are_ignored_outside_warn_mode(ctx: RunContext) -> None:
    ctx.observations += [ok("read", "/etc/hostname"), found("SECRET")]
    enforce.observed_denials(ctx, grant("enforce"))
    enforce.observed_denials(ctx, None)
    assert ctx.denials == []


def test_in_warn_mode_a_refused_write_is_still_denied(ctx: RunContext, tmp_path: Path) -> None:
    ctx.observations.append(Observation("fs", "write", str(tmp_path / "canary"), "EPERM"))
    enforce.observed_denials(ctx, grant("warn"))
    [denial] = ctx.denials
    assert denial.fatal and not denial.permitted
    assert f"filesystem-access denied: write {tmp_path / 'canary'}" in denial.render("c", "1.0.0")


def test_a_granted_path_refused_through_a_link_gets_no_entry_that_would_change_nothing(
        ctx: RunContext, tmp_path: Path) -> None:
    granted, other = tmp_path / "granted", tmp_path / "other"
    granted.mkdir()
    other.mkdir()
    (other / "x.txt").write_text("x")
    (granted / "out").symlink_to(other)
    (granted / "plain.txt").write_text("p")
    g = Grant(kind="build", crate="c", version="1", permits={"filesystem-access.paths": (str(granted),)})
    ctx.observations += [Observation("fs", "read", str(granted / "out" / "x.txt"), "EPERM"),
                         Observation("fs", "read", str(granted / "plain.txt"), "ENOENT")]
    enforce.observed_denials(ctx, g)
    link, plain = ctx.denials
    assert link.fatal and "\n" not in link.fix and str(other / "x.txt") in link.reason
    assert f'filesystem-access paths = ["{other / "x.txt"}"]' in link.fix  # what opening the target needs
    assert plain.fatal and "\n" not in plain.fix and "granted, yet refused" in plain.reason
    # the same refusal of an ungranted path prints the entry that permits it
    ctx.denials.clear()
    ctx.observations[:] = [Observation("fs", "read", str(other / "x.txt"), "ENOENT")]
    enforce.observed_denials(ctx, g)
    [denial] = ctx.denials
    assert f'paths = ["{other / "x.txt"}"]' in denial.fix.splitlines()[-1]


def test_a_writable_grant_never_holds_what_runs_natively_next(ctx: RunContext, tmp_path: Path) -> None:
    """A writable grant is preopened (and given to granted programs) whole: one that holds the target
    directory (another crate's build-script launcher, a binary cargo runs), cratecage's cache (compiled
    modules the runner loads as native code) or cratecage itself stops the run, named; one inside the target
    directory, or beside what is guarded, works."""
    from shim.confine.fsview import CACHEDIR_SIGNATURE
    from shim.errors import CratecageError

    target = tmp_path / "build" / "target"
    (target / "debug" / "build" / "c-1" / "out").mkdir(parents=True)
    (target / "CACHEDIR.TAG").write_bytes(CACHEDIR_SIGNATURE + b"\n")
    (target / "sqlx").mkdir()
    (target / "debug" / ".fingerprint").mkdir()
    from shim.confine.fsview import tag_build_state

    tag_build_state(str(target / "cratecage"))
    ctx.out_dir = str(target / "debug" / "build" / "c-1" / "out")
    cache = tmp_path / "home" / ".cache" / "cratecage"
    cache.mkdir(parents=True)
    ctx.host_env["CRATECAGE_CACHE_DIR"] = str(cache)
    (tmp_path / "linked").symlink_to(tmp_path / "build")
    (tmp_path / "gen").mkdir()
    shim_dir = Path(enforce.__file__).resolve().parent.parent

    def writable(*paths: Path) -> Grant:
        return Grant(kind="build", crate="c", version="1.0.0",
                     permits={"filesystem-access.writable": tuple(str(p) for p in paths)})

    for path, what in ((tmp_path / "build", "cargo's target directory"), (tmp_path / "linked", "cargo's target"),
                       (target, "cargo's target directory"), (tmp_path / "home" / ".cache", "cratecage's cache"),
                       (target / "debug", "cargo's target directory"),  # a profile dir: launchers, binaries
                       (shim_dir.parent, "")):  # cratecage itself (or a cache tagged inside it)
        ctx.grant = writable(path)
        with pytest.raises(CratecageError, match=f"the writable grant {path} holds {what}"):
            enforce.check_writable(ctx.grant, ctx)
    (target / "cratecage" / "tmp" / "run-x" / "host").mkdir(parents=True)
    for inner in (target / "cratecage", target / "cratecage" / "tmp" / "run-x" / "host"):  # modules, run dirs
        for ctx.grant in (writable(inner), Grant(kind="build", crate="c", version="1.0.0",
                                                 permits={"filesystem-access.paths": (str(inner),)})):
            with pytest.raises(CratecageError, match="lies in cratecage's own build state"):
                enforce.check_writable(ctx.grant, ctx)
    (target / "x86_64-unknown-linux-gnu" / "debug").mkdir(parents=True)
    (target / "x86_64-unknown-linux-gnu" / "debug" / ".cargo-lock").write_bytes(b"")
    for inner, says in ((target / "debug" / "build", "lies in cargo's build output"),  # other crates' launchers
                        (target / "debug" / "build" / "c-1", "lies in cargo's build output"),
                        (target / "debug" / ".fingerprint", "lies in cargo's build output"),
                        (target / "x86_64-unknown-linux-gnu", "holds cargo's target directory")):  # a <triple> dir
        ctx.grant = writable(inner)
        with pytest.raises(CratecageError, match=f"the writable grant {inner} {says}"):
            enforce.check_writable(ctx.grant, ctx)
    ctx.grant = writable(target / "sqlx", tmp_path / "gen", cache.parent / "other-tool")
    enforce.check_writable(ctx.grant, ctx)  # the harmless twins


def test_a_writable_grant_in_any_cargo_build_output_stops_the_run(ctx: RunContext, tmp_path: Path) -> None:
    """Not only this build's target directory: another project's (its proc macros load into the next
    rustc there), an artifact dir beside a build.build-dir elsewhere, however the grant spells it (`..`, a
    link, a trailing slash, a directory not made yet). Found by the profile's lock or fingerprints, any depth."""
    from shim.errors import CratecageError

    other = tmp_path / "other-proj" / "target" / "debug"
    (other / "deps").mkdir(parents=True)
    (other / ".cargo-lock").write_bytes(b"")
    (other / "build" / "x-1" / "out" / "a" / "b" / "c" / "d" / "e" / "f" / "g").mkdir(parents=True)
    (tmp_path / "into-deps").symlink_to(other / "deps")
    (tmp_path / "free").mkdir()
    for spelling in (f"{other}/deps", f"{other}/deps/", f"{other}/build/../deps", f"{tmp_path}/into-deps",
                     f"{other}/deps/not-made-yet", f"{other}/build/x-1/out/a/b/c/d/e/f/g"):
        ctx.grant = Grant(kind="build", crate="c", version="1.0.0",
                          permits={"filesystem-access.writable": (spelling,)})
        with pytest.raises(CratecageError, match="lies in cargo's build output"):
            enforce.check_writable(ctx.grant, ctx)
    ctx.grant = Grant(kind="build", crate="c", version="1.0.0",
                      permits={"filesystem-access.writable": (str(tmp_path / "free"),)})
    enforce.check_writable(ctx.grant, ctx)  # the harmless twin
