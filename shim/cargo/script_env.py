"""The environment a build script sees: exactly what cargo documents for build scripts, by name and by
family, never a prefix like `CARGO_*` that would let CARGO_REGISTRY_TOKEN through; what a grant adds comes
from shim.sandbox.enforce."""

from __future__ import annotations

import os
from typing import Mapping

RERUN_ENV = "CRATECAGE_WASM_RERUN"  # set by shim.compile.script_rerun for its run for wasm32-wasip1: not recorded
# Variables cargo documents for build scripts, by exact name...
BUILD_SCRIPT_ENV: frozenset[str] = frozenset({
    "CARGO", "CARGO_MANIFEST_DIR", "CARGO_MANIFEST_PATH", "CARGO_MANIFEST_LINKS", "CARGO_MAKEFLAGS",
    "CARGO_ENCODED_RUSTFLAGS", "CARGO_PRIMARY_PACKAGE", "CARGO_TRIM_PATHS",
    "CARGO_PKG_AUTHORS", "CARGO_PKG_DESCRIPTION", "CARGO_PKG_HOMEPAGE", "CARGO_PKG_LICENSE",
    "CARGO_PKG_LICENSE_FILE", "CARGO_PKG_NAME", "CARGO_PKG_README", "CARGO_PKG_REPOSITORY",
    "CARGO_PKG_RUST_VERSION", "CARGO_PKG_VERSION", "CARGO_PKG_VERSION_MAJOR", "CARGO_PKG_VERSION_MINOR",
    "CARGO_PKG_VERSION_PATCH", "CARGO_PKG_VERSION_PRE",
    "OUT_DIR", "TARGET", "HOST", "NUM_JOBS", "OPT_LEVEL", "DEBUG", "PROFILE",
    "RUSTC", "RUSTDOC", "RUSTC_LINKER", "RUSTC_WRAPPER", "RUSTC_WORKSPACE_WRAPPER",
})

# ...and the families whose members cargo names after the package's own features, cfgs and links.
BUILD_SCRIPT_ENV_FAMILIES: tuple[str, ...] = ("CARGO_CFG_", "CARGO_FEATURE_", "DEP_")


def is_default_env(name: str) -> bool:
    """Whether every build script sees `name` (when cargo sets it): the documented variables, and TMPDIR,
    which the runner points at the run's temp dir."""
    return name in BUILD_SCRIPT_ENV or name.startswith(BUILD_SCRIPT_ENV_FAMILIES) or name == "TMPDIR"


def guest_environment(host_env: dict[str, str], tmp_dir: str,
                      inherited: Mapping[str, str] | None = None) -> dict[str, str]:
    """The documented variables, and the families cargo names after the package's features, cfgs and
    links, less those cargo did not set but inherited (`inherited`: the environment cargo itself was
    started with, where it can be read): a `DEP_TOKEN` or `CARGO_FEATURE_X` of the user's shell is no
    variable cargo gives build scripts, and would otherwise pass by its prefix."""
    inherited = inherited or {}
    env = {k: v for k, v in host_env.items() if is_default_env(k)
           and not (k.startswith(BUILD_SCRIPT_ENV_FAMILIES) and inherited.get(k) == v)}
    env["TMPDIR"] = tmp_dir
    return env


def cargo_environment(pid: int | None = None) -> dict[str, str]:
    """The environment the process that ran this launcher (cargo) was started with; {} where /proc cannot
    say. Cargo starts build scripts itself, so the parent is the cargo that set their variables."""
    from shim.cargo.workspace import process_environ

    return process_environ(pid or os.getppid()) or {}
