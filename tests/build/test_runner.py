"""Pure parts of the runner (shim.build.run): the directives that make a policy edit rerun a build script, and
the order of the preopens."""

from __future__ import annotations

import pytest

from shim.build import run as runner
from shim.sandbox import enforce
from shim.sandbox import engine
from shim.host.context import RunContext
from shim.cargo.workspace import ROOT_ENV

POLICY = "/ws/cratecage.toml"


def context(package: str, out_dir: str) -> RunContext:
    return RunContext(crate="c", version="1.0.0", package_dir=package, out_dir=out_dir, tmp_dir="/tmp/run",
                      env={}, host_env={ROOT_ENV: "/ws"}, rustc="rustc", sysroot="/")


@pytest.mark.parametrize("printed, package, out_dir, added", [
    # a script that names its inputs: the policy file joins them, wherever the package is
    ("cargo:rerun-if-changed=build.rs\n", "/ws/app", "/ws/target/debug/build/c-1/out", [POLICY]),
    ("cargo:rerun-if-env-changed=X\n", "/reg/c-1.0.0", "/ws/target/debug/build/c-1/out", [POLICY]),
    # none, in a package outside the workspace (registry, git, a path elsewhere): the package and the policy
    ("", "/reg/c-1.0.0", "/ws/target/debug/build/c-1/out", ["/reg/c-1.0.0", POLICY]),
    ("cargo:rustc-cfg=x\n", "/elsewhere/c", "/ws/target/debug/build/c-1/out", ["/elsewhere/c", POLICY]),
    # none, in the workspace: cargo's default stays
    ("", "/ws/app", "/ws/target/debug/build/c-1/out", []),
    ("", "/ws", "/ws/target/debug/build/c-1/out", []),
    # none, outside the workspace but holding the target directory: every build would change the scan
    ("", "/elsewhere/c", "/elsewhere/c/target/debug/build/c-1/out", []),
])
def test_a_policy_edit_reruns_the_scripts_it_can_without_changing_cargo_s_defaults(
        printed: str, package: str, out_dir: str, added: list[str]) -> None:
    lines = runner.rerun_on_policy_edits(printed.encode(), context(package, out_dir), POLICY)
    assert lines.decode().splitlines() == [f"cargo:rerun-if-changed={path}" for path in added]


def test_dot_comes_before_granted_preopens_so_a_granted_root_wins_absolute_paths() -> None:
    ctx = context("/ws/app", "/ws/target/out")
    table = engine.preopen_table(ctx, [("/", "/", False)])
    guests = [guest for _host, guest, _writable in table]
    assert guests == ["/ws/app", ".", "/ws/target/out", "/tmp/run", "/"]
    assert [writable for _h, _g, writable in table] == [False, False, True, True, False]


def test_policy_limits_fill_every_field_the_environment_leaves_unset() -> None:
    from shim.policy.model import Grant, Limits as PolicyLimits
    from shim.limits import from_env

    grant = Grant("build", "c", "1.0.0", limits=PolicyLimits(time_s=300, processes=512, child_memory=8 << 30,
                                                                 disk=1 << 40))
    env = {"CRATECAGE_LIMIT_OUT_DIR": "1MiB", "CRATECAGE_LIMIT_PROCESSES": "7"}  # OUT_DIR: DISK's old name
    limits = enforce.with_grant_limits(from_env(env), grant, env)
    assert (limits.time_s, limits.processes, limits.child_memory, limits.disk) == (300, 7, 8 << 30, 1 << 20)


def test_family_variables_cargo_did_not_set_but_inherited_never_reach_the_script() -> None:
    """`DEP_*`, `CARGO_FEATURE_*` and `CARGO_CFG_*` pass by prefix only when cargo set them: the same name and
    value in the environment cargo was started with is the user's shell (a CI secret named DEP_TOKEN)."""
    host = {"DEP_Z_INCLUDE": "/inc", "DEP_TOKEN": "s3cret", "CARGO_FEATURE_STD": "1", "CARGO_FEATURE_SECRET": "s",
            "CARGO_CFG_UNIX": "", "CARGO_CFG_SECRET": "s", "OUT_DIR": "/o", "CARGO_PKG_NAME": "c", "HOME": "/root"}
    inherited = {"DEP_TOKEN": "s3cret", "CARGO_FEATURE_SECRET": "s", "CARGO_CFG_SECRET": "s", "HOME": "/root",
                 "CARGO_PKG_NAME": "c", "CARGO_FEATURE_STD": "0"}  # a different value: cargo set it
    env = runner.guest_environment(host, "/tmp/run", inherited)
    assert env == {"DEP_Z_INCLUDE": "/inc", "CARGO_FEATURE_STD": "1", "CARGO_CFG_UNIX": "", "OUT_DIR": "/o",
                   "CARGO_PKG_NAME": "c", "TMPDIR": "/tmp/run"}


def test_the_environment_cargo_started_with_is_read_from_proc() -> None:
    import os
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "import sys; print('ready', flush=True); sys.stdin.read()"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             env={"DEP_PROBE_MARK": "x=1", "PATH": os.environ.get("PATH", "")})
    try:
        assert child.stdout is not None and child.stdout.readline() == b"ready\n"  # exec'd: its own environ
        assert runner.cargo_environment(child.pid)["DEP_PROBE_MARK"] == "x=1"
    finally:
        child.communicate(b"")
    assert runner.cargo_environment(2 ** 22 + 7) == {}
