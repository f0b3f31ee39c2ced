"""cratecage's own compiles go through sccache (CRATECAGE_WRAPPER=sccache, shim.compile.sccache), rustc still
confined: Debian's sccache, its server on a port and a disk cache of the test's own (stopped afterwards),
builds fixtures/sccache-demo (a build script on autocfg, a thiserror derive) clean into target A and then
target B, each with an empty per-user wasm-compile cache of its own (CRATECAGE_CACHE_DIR, linking the
user's per-toolchain entries) so that sccache alone can give B its replays: the server's log shows every
replay of B (wasm32-wasip1 compiles) as a cache hit, and the program runs.

Debian's sccache 0.4 is built without Redis, S3, GCS or GHA (`sccache --help` lists them false): only the
disk cache is tested here."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from shim.compile import sccache, shared_cache
from shim.files import cache_root

from conftest import FIXTURES, Cargo

SCCACHE = shutil.which("sccache")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The environment naming a private sccache server (port, disk cache, debug log); stopped at the end."""
    if SCCACHE is None:
        pytest.fail("sccache is not installed: run `make sccache-tool` (Debian's sccache)")
    root = tmp_path_factory.mktemp("sccache")
    env = {"SCCACHE_DIR": str(root / "cache"), "SCCACHE_SERVER_PORT": str(_free_port()),
           "SCCACHE_ERROR_LOG": str(root / "server.log"), "SCCACHE_LOG": "sccache::compiler=debug",
           "SCCACHE_IDLE_TIMEOUT": "120"}
    yield env
    subprocess.run([SCCACHE, "--stop-server"], env={**os.environ, **env}, capture_output=True, timeout=60)
    assert not sccache._listening(int(env["SCCACHE_SERVER_PORT"])), "the sccache server is still running"


def _private_cache(parent: Path) -> Path:
    """An empty per-user wasm-compile cache, with links to the user's per-toolchain entries (facade, ...)."""
    own = parent / "cratecage-cache"
    own.mkdir()
    user = cache_root(os.environ)
    for entry in user.iterdir() if user.is_dir() else ():
        if entry.name not in (shared_cache.DIR, "sccache"):
            (own / entry.name).symlink_to(entry)
    return own


def _wasm_results(log: str, since: int) -> dict[str, str]:
    """crate -> "hit"/"miss" of the wasm32-wasip1 compiles in the server's log after offset `since`."""
    kinds: dict[str, bool] = {}
    out: dict[str, str] = {}
    for line in log[since:].splitlines():
        asked = re.search(r"\[(\w+)\]: get_cached_or_compile: (.*)", line)
        if asked:
            kinds[asked.group(1)] = "wasm32-wasip1" in asked.group(2)
        result = re.search(r"\[(\w+)\]: Cache (hit|miss)", line)
        if result and kinds.get(result.group(1)):
            out[result.group(1)] = result.group(2)
    return out


def test_a_second_clean_build_gets_its_replays_from_sccache(selected_cargo: Cargo, server: dict[str, str],
                                                            tmp_path: Path) -> None:
    log = Path(server["SCCACHE_ERROR_LOG"])
    runs = []
    for name in ("a", "b"):
        since = len(log.read_text()) if log.exists() else 0
        (tmp_path / name).mkdir()
        env = {**server, "CRATECAGE_WRAPPER": "sccache", "CRATECAGE_CACHE_DIR": str(_private_cache(tmp_path / name))}
        run = selected_cargo(FIXTURES / "sccache-demo", "run", "--locked", wrapped=True,
                             target_dir=tmp_path / name / "target", extra_env=env)
        assert "sccache demo: ok recent=true" in run.proc.stdout
        runs.append((run, _wasm_results(log.read_text(), since)))
    (_first, first_wasm), (second, second_wasm) = runs
    replayed = set(second.replays())
    assert {"autocfg", "syn", "proc_macro2"} <= replayed  # the script's closure and the derive's
    assert set(first_wasm) >= replayed and set(first_wasm.values()) == {"miss"}, first_wasm
    assert {c: second_wasm.get(c) for c in replayed} == {c: "hit" for c in replayed}, second_wasm


def test_the_shim_runs_nothing_without_the_confinement_cratecage_gives_it(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != sccache.CONFINE_ENV}
    env["CRATECAGE_CACHE_DIR"] = str(tmp_path)
    shim = sccache.shim_path(env)
    done = subprocess.run([shim, "-vV"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == sccache.LAUNCH_FAILED
    assert done.stdout == "" and done.stderr.startswith("cratecage: ")
    # with a command, the shim becomes it, without SCCACHE_* or its own variable in the environment
    env[sccache.CONFINE_ENV] = '{"command": ["/usr/bin/env"], "write": [], "tmp": ""}'
    env["SCCACHE_DIR"] = str(tmp_path)
    done = subprocess.run([shim], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    names = {line.partition("=")[0] for line in done.stdout.splitlines()}
    assert "SCCACHE_DIR" not in names and sccache.CONFINE_ENV not in names and "PATH" in names


def test_a_replay_through_sccache_is_still_confined(selected_cargo: Cargo, server: dict[str, str],
                                                    tmp_path: Path) -> None:
    """A build-dependency's `include_str!` of a file outside its package is refused as without sccache (the
    compile sccache's server runs is the confined one), and the canary reaches no output."""
    canary = "CANARY" + os.urandom(8).hex()
    (tmp_path / "secret.txt").write_text(canary + "\n")
    dep = tmp_path / "escdep"
    (dep / "src").mkdir(parents=True)
    (dep / "Cargo.toml").write_text('[package]\nname = "escdep"\nversion = "0.1.0"\nedition = "2021"\n')
    (dep / "src" / "lib.rs").write_text(f'pub const S: &str = include_str!("{tmp_path / "secret.txt"}");\n')
    pkg = tmp_path / "esc"
    (pkg / "src").mkdir(parents=True)
    (pkg / "Cargo.toml").write_text('[package]\nname = "esc"\nversion = "0.1.0"\nedition = "2021"\n\n'
                                    '[build-dependencies]\nescdep = { path = "../escdep" }\n')
    (pkg / "build.rs").write_text('fn main() { println!("cargo:warning={}", escdep::S); }\n')
    (pkg / "src" / "main.rs").write_text("fn main() {}\n")
    env = {**server, "CRATECAGE_WRAPPER": "sccache"}
    run = selected_cargo(pkg, "build", wrapped=True, target_dir=tmp_path / "target", extra_env=env, check=False)
    stderr = run.proc.stderr
    assert not run.ok
    assert "cratecage: build-dependency escdep 0.1.0" in stderr and "filesystem-access denied: " in stderr, stderr
    assert canary not in stderr and canary not in run.proc.stdout
    log = Path(server["SCCACHE_ERROR_LOG"]).read_text()
    assert re.search(r"\[escdep\]: get_cached_or_compile: .*wasm32-wasip1", log)  # sccache's server ran it
    wasm = tmp_path / "target" / "cratecage"
    assert not [p for p in wasm.rglob("*") if p.is_file() and canary.encode() in p.read_bytes()]
