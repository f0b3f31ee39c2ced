"""`rustc-env` names the shape rules refuse, as real crates print them (shim.env_names, shim/policy/curated.toml).

Real cargo through the real wrapper on fixtures/env-names, with no policy: libm (CFG_* names, curated),
mime_guess (MIME_TYPES_GENERATED_PATH, curated) and crunchy (CRUNCHY_LIB_SUFFIX, its own namespace) build
and run, as does a name in the member's own namespace; the hostile twin, a package named `ld`, gains no
LD_* name from its namespace. The layout cannot matter: `selected_cargo`, one workspace and target dir.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import FIXTURES, Cargo

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("env-names") / "env-names"
    shutil.copytree(FIXTURES / "env-names", root)
    return root, root.parent / "target"


def events(target: Path, event: str, crate: str | None = None) -> list[dict]:
    log = target / "cratecage" / "audit.jsonl"
    lines = log.read_text().splitlines() if log.exists() else []
    return [e for e in map(json.loads, lines) if e["event"] == event and crate in (None, e["crate"])]


def test_real_crates_whose_env_names_look_like_tool_settings_build_with_an_empty_policy(
        selected_cargo: Cargo, workspace: tuple[Path, Path]) -> None:
    root, target = workspace
    assert not (root / "cratecage.toml").exists()
    run = selected_cargo(root, "build", "--locked", "-p", "names", wrapped=True, target_dir=target, check=False)
    assert run.ok, run.proc.stderr[-4000:]
    ran = {e["crate"]: e["exit_code"] for e in events(target, "run")}  # as wasm, in the sandbox
    assert {crate: ran.get(crate) for crate in ("libm", "crunchy", "mime_guess", "names")} == dict.fromkeys(
        ("libm", "crunchy", "mime_guess", "names"), 0)
    assert [e["target"] for e in events(target, "denial")] == []
    out = subprocess.run([str(target / "debug" / "names")], capture_output=True, text=True, check=True).stdout
    words = out.split()
    assert words[:3] == ["names-own-value", "6", "4"] and "/" in words[3]


def test_a_package_named_after_the_linker_gains_no_loader_variables(
        selected_cargo: Cargo, workspace: tuple[Path, Path]) -> None:
    root, target = workspace
    run = selected_cargo(root, "build", "--locked", "-p", "ld", wrapped=True, target_dir=target, check=False)
    assert not run.ok
    refused = {e["target"] for e in events(target, "denial", "ld") if e["capability"] == "directives"}
    assert {"cargo:rustc-env=LD_PRELOAD=/tmp/not-a-library.so", "cargo:rustc-env=LD_LIBRARY_PATH=/tmp",
            "cargo:rustc-env=LD_BUILD_NOTE=harmless"} == refused
    assert 'directives = { action = "permit", list = ["rustc-env=LD_PRELOAD"] }' in run.proc.stderr
