"""A private rustup installation for tests that need a toolchain in a fresh state, without the shared one.

`make test` installs FRESH_TOOLCHAIN (`rustup toolchain install 1.99.1 --profile minimal`: no wasm32-wasip1
target) into the user's rustup. `private_rustup()` gives a test its own RUSTUP_HOME whose `toolchains/`
holds a hard-link copy of it (only the files rustup rewrites when it adds or removes a target, the
top-level files of `lib/rustlib/`, are real copies; a target is added as new files), with the target
removed if anyone added it, and a CARGO_HOME whose `bin/` has rustup's proxies (hard links to the rustup
binary, as rustup's installer makes them). So `rustup target add` downloads into the copy and the shared
toolchain never changes. The shared stable toolchain (which has the target) is linked in as the default,
and the private cache selects it, so a test can tell the toolchain it asked for from the ones it did not.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from shim.toolchain import compiler as toolchain

from conftest import scrubbed

FRESH_TOOLCHAIN = "1.99.1"  # the Makefile's FRESH_TOOLCHAIN: keep the two equal
WASM = "wasm32-wasip1"
PROXIES = ("rustup", "cargo", "rustc", "rustdoc")


def shared_rustup_home() -> Path:
    return Path(os.environ.get("RUSTUP_HOME") or Path.home() / ".rustup")


def shared_cargo_bin() -> Path:
    return Path(os.environ.get("CARGO_HOME") or Path.home() / ".cargo") / "bin"


def host() -> str:
    out = subprocess.run(["rustc", "-vV"], capture_output=True, text=True, check=True,
                         env=scrubbed(dict(os.environ))).stdout
    return next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("host: "))


@dataclass(frozen=True)
class Rustup:
    home: Path  # RUSTUP_HOME
    cargo_home: Path  # CARGO_HOME, with the proxies in bin/
    cache: Path  # CRATECAGE_CACHE_DIR, selecting the shared stable toolchain
    toolchain: str  # the fresh toolchain's full name, e.g. 1.99.1-x86_64-unknown-linux-gnu
    default: str  # the default toolchain's full name (the shared stable, linked)

    @property
    def rustc(self) -> Path:
        return self.home / "toolchains" / self.toolchain / "bin" / "rustc"

    @property
    def target_dir(self) -> Path:
        return self.home / "toolchains" / self.toolchain / "lib" / "rustlib" / WASM

    def env(self, **extra: str) -> dict[str, str]:
        """A shell whose PATH finds the private proxies first and never the shared ones."""
        env = scrubbed(dict(os.environ))
        shared = str(shared_cargo_bin())
        path = [p for p in env.get("PATH", "").split(os.pathsep) if p and os.path.abspath(p) != shared]
        env.update(RUSTUP_HOME=str(self.home), CARGO_HOME=str(self.cargo_home), CRATECAGE_CACHE_DIR=str(self.cache),
                   PATH=os.pathsep.join([str(self.cargo_home / "bin"), *path]), CARGO_TERM_COLOR="never")
        env.pop("RUSTUP_TOOLCHAIN", None)
        env.update(extra)
        return env

    def version_line(self) -> str:
        out = subprocess.run([str(self.rustc), "-V"], capture_output=True, text=True, check=True).stdout
        return out.strip()


def private_rustup(tmp: Path) -> Rustup:
    triple = host()
    name = f"{FRESH_TOOLCHAIN}-{triple}"
    shared = shared_rustup_home() / "toolchains" / name
    if not (shared / "bin" / "rustc").is_file():
        pytest.fail(f"toolchain {name} is not installed: run `make test`, or "
                    f"`rustup toolchain install {FRESH_TOOLCHAIN} --profile minimal`")
    stable = f"stable-{triple}"
    home, cargo_home = tmp / "rustup", tmp / "cargo-home"
    copy = home / "toolchains" / name
    copy.parent.mkdir(parents=True)
    if subprocess.run(["cp", "-al", str(shared), str(copy)]).returncode != 0:
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(shared, copy, symlinks=True)  # another filesystem: a real copy
    for entry in (copy / "lib" / "rustlib").iterdir():
        if entry.is_file() and not entry.is_symlink():
            data = entry.read_bytes()
            entry.unlink()
            entry.write_bytes(data)
    (home / "toolchains" / stable).symlink_to(os.path.realpath(shared_rustup_home() / "toolchains" / stable))
    (home / "settings.toml").write_text(f'version = "12"\ndefault_toolchain = "{stable}"\nprofile = "minimal"\n')
    (cargo_home / "bin").mkdir(parents=True)
    rustup = os.path.realpath(shared_cargo_bin() / "rustup")
    for proxy in PROXIES:
        try:
            os.link(rustup, cargo_home / "bin" / proxy)
        except OSError:
            (cargo_home / "bin" / proxy).symlink_to(rustup)
    cache = tmp / "cache"
    cache.mkdir()
    r = Rustup(home=home, cargo_home=cargo_home, cache=cache, toolchain=name, default=stable)
    if r.target_dir.exists():  # someone added the target to the shared toolchain: take it out of the copy
        subprocess.run(["rustup", "target", "remove", WASM, "--toolchain", name], env=r.env(), check=True,
                       capture_output=True)
    assert not r.target_dir.exists()
    selected = toolchain.resolve(str(home / "toolchains" / stable / "bin" / "rustc"), r.env())
    assert selected.ready, selected.how
    toolchain.save_selected(selected, r.env())
    return r
