"""The README's GitHub Actions recipe, run as Actions runs it: each `run:` step's lines, in order, by
`bash --noprofile --norc -eo pipefail` in the workspace, with a fresh `$GITHUB_ENV` file per step whose
`NAME=value` lines reach the later steps. The runner is a private rustup whose default toolchain has no
wasm32-wasip1 target (tests/fresh_rustup.py), a fresh cache, and the fixture with two build scripts;
`$CRATECAGE` (the recipe's job-level variable: what pip installs) is a copy of this checkout."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import FIXTURES, REPO
from fresh_rustup import FRESH_TOOLCHAIN, WASM, private_rustup

HEADING = "### GitHub Actions"


def recipe(readme: str) -> tuple[dict[str, str], list[str]]:
    """(the job's `env:`, the `run:` scripts in order) of the first yaml block under HEADING."""
    after = readme.split(HEADING, 1)[1]
    block = after.split("```yaml\n", 1)[1].split("```", 1)[0]
    lines = block.splitlines()
    env: dict[str, str] = {}
    steps: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        indent = len(line) - len(line.lstrip())
        key = line.strip().removeprefix("- ")
        i += 1
        if key == "env:" and indent == 4:  # the job's env
            while i < len(lines) and len(lines[i]) - len(lines[i].lstrip()) > indent:
                name, value = lines[i].strip().split(": ", 1)
                env[name] = value.split("  #", 1)[0].strip()
                i += 1
        elif key == "run: |":
            body = []
            while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
                body.append(lines[i])
                i += 1
            width = min(len(b) - len(b.lstrip()) for b in body if b.strip())
            steps.append("\n".join(b[width:] for b in body) + "\n")
        elif key.startswith("run: "):
            steps.append(key.removeprefix("run: ") + "\n")
    return env, steps


def read_github_env(path: Path) -> dict[str, str]:
    """`NAME=value` lines, and `NAME<<DELIMITER` ... `DELIMITER` blocks, as the runner reads them."""
    out: dict[str, str] = {}
    lines = path.read_text().splitlines() if path.exists() else []
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            value = []
            while lines[i] != delimiter:
                value.append(lines[i])
                i += 1
            i += 1
            out[name] = "\n".join(value)
        elif "=" in line:
            name, value = line.split("=", 1)
            out[name] = value
    return out


def checkout_copy(dest: Path) -> Path:
    """The files of this checkout that git tracks (as `actions/checkout` would give them), as they are now."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        if (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    return dest


def test_the_recipe_is_what_the_readme_says() -> None:
    env, steps = recipe((REPO / "README.md").read_text())
    assert "CRATECAGE" in env and any('"$CRATECAGE"' in s for s in steps)
    assert any('>> "$GITHUB_ENV"' in s and "RUSTC_WRAPPER=" in s for s in steps)
    assert steps[-2:] == ["cargo build --locked\n", "cargo test --locked\n"]  # the job's own steps


@pytest.mark.integration
def test_the_readme_s_github_actions_recipe_builds_with_build_scripts_sandboxed(tmp_path: Path) -> None:
    r = private_rustup(tmp_path)
    (r.home / "settings.toml").write_text(f'version = "12"\ndefault_toolchain = "{r.toolchain}"\n')
    (r.cache / "selected.json").unlink()  # a fresh runner: nothing selected, nothing cached
    job_env, steps = recipe((REPO / "README.md").read_text())
    workspace = tmp_path / "workspace"
    shutil.copytree(FIXTURES / "toolchain-pick", workspace)
    runner_temp = tmp_path / "runner-temp"
    runner_temp.mkdir()
    env = r.env(GITHUB_WORKSPACE=str(workspace), RUNNER_TEMP=str(runner_temp), CI="true",
                GITHUB_ACTIONS="true", **job_env)
    env["CRATECAGE"] = str(checkout_copy(tmp_path / "cratecage-checkout"))  # instead of the git URL
    assert not [k for k in env if k.startswith("RUSTC")]
    logs = []
    for n, script in enumerate(steps):
        github_env = runner_temp / f"set_env_{n}"
        github_env.touch()
        step = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script], cwd=workspace,
                              env={**env, "GITHUB_ENV": str(github_env)}, capture_output=True, text=True,
                              timeout=900)
        assert step.returncode == 0, f"step {n + 1}:\n{script}\n{step.stdout[-2000:]}\n{step.stderr[-4000:]}"
        env.update(read_github_env(github_env))
        logs.append(step.stderr)
    assert env["RUSTC_WRAPPER"].startswith(str(runner_temp))
    announcement = f"cratecage: adding the {WASM} target to toolchain {FRESH_TOOLCHAIN} (once; about 20 s)"
    assert "".join(logs).count(announcement) == 1  # in the build step, not replayed by cargo test
    audit = [json.loads(line) for line in (workspace / "target" / "cratecage" / "audit.jsonl").read_text().splitlines()]
    assert {e["crate"] for e in audit if e.get("event") == "run" and e["exit_code"] == 0} == {"pick-app", "pick-probe"}
    run = subprocess.run([str(workspace / "target" / "debug" / "pick-app")], capture_output=True, text=True, check=True)
    assert re.fullmatch(rf"app: wasm32 rustc {re.escape(FRESH_TOOLCHAIN)} \(.*\)\nprobe: wasm32 .*\n", run.stdout)
