"""The record of how cargo started a build script's host run, for shim.compile.script_rerun's wasm rerun.

Why a module of its own: shim.build.run writes the record before every build-script run, and the runner's
start-up is paid per run; script_rerun's own imports (subprocess, shutil, hashlib) serve only the rerun.
"""

from __future__ import annotations

import json
import os
from typing import Mapping

from shim.cargo import layout

RUNS_DIR = "runs"  # <state>/runs/<unit>.json: how the host run of a build script was started


def run_unit(out_dir: str) -> str:
    """`<pkg>-<H>` of a build-script run from its OUT_DIR: the old layout's `build/<pkg>-<H>/out`, the new
    one's `build/<pkg>/<H>/out` (shim.cargo.layout.unit_name)."""
    out = os.path.normpath(out_dir)
    return layout.unit_name(out) if layout.unit_layout(out) == layout.NEW else os.path.basename(os.path.dirname(out))


def record_path(out_dir: str, target: str | None = None) -> str:
    """Where the record of the run with this OUT_DIR is; `target`: cargo's TARGET for the run, whose
    `<triple>` level a `--target` build adds above the OUT_DIRs of the target's scripts (shim.cargo.layout)."""
    return os.path.join(layout.state_dir(out_dir, target), RUNS_DIR, run_unit(out_dir) + ".json")


def record(wasm: str, rustc: str, sysroot: str, module_cache: str, environ: Mapping[str, str]) -> None:
    """For shim.build.run, before a run: the module and the documented variables cargo gave it."""
    from shim.cargo.script_env import is_default_env
    from shim.files import atomic_write

    env = {k: v for k, v in environ.items() if is_default_env(k) and k != "TMPDIR"}
    atomic_write(record_path(environ["OUT_DIR"], environ.get("TARGET")), json.dumps(
        {"wasm": wasm, "rustc": rustc, "sysroot": sysroot, "module_cache": module_cache, "env": env},
        sort_keys=True), make_parents=True)
