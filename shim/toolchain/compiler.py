"""Which rustc, which wasm sysroot? Finding, checking and provisioning a wasm32-wasip1-capable toolchain.

Everything that compiles for the sandbox asks `resolve()` (or, from the wrapper, shim.toolchain.first_use.require_wasm_capable);
nothing else decides which compiler or sysroot to use. The wasm side must be compiled by the very compiler
cargo runs (identical `rustc -vV`), because rlib metadata and proc-macro dylibs only load into the compiler
that made them.

A compiler is wasm-capable when either
  - its own sysroot has the target (`rustup target add wasm32-wasip1`), or
  - cratecage built a private sysroot for it under the per-user cache, keyed by its exact `rustc -vV`:
    `<cache>/toolchains/<key>/sysroot/lib/rustlib/wasm32-wasip1/lib/` (std rlibs from the toolchain's
    rust-src via `-Zbuild-std`, wasi-libc's crt1-command.o and libc.a under `self-contained/`).

Cargo's own rustc is made capable on first use (shim.toolchain.first_use.require_wasm_capable), so
`RUSTC_WRAPPER` alone works with whatever toolchain cargo picks. `install()` makes one so ahead of time
(rustup first, then a build from rust-src) and records it as *selected* in `<cache>/selected.json`;
`env_vars()` gives the variables that make a shell use it, for compilers that cannot be made capable in
place. The build itself lives
in shim.toolchain.sysroot. Debian's packages for an offline machine are listed in DEBIAN_PACKAGES; the Makefile
installs them when nothing else works (notes/toolchain.md).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Final, Mapping

from shim.errors import ToolchainError
from shim.files import atomic_write, cache_root
from shim.record import record
from shim.toolchain.capable import is_capable_sysroot

# rust-web-clippy is not needed for wasm; it makes `cargo clippy` work with the same selected compiler.
DEBIAN_PACKAGES: Final = ("rustc-web", "cargo-web", "rust-web-src", "rust-web-llvm", "lld-22", "wasi-libc",
                          "rust-web-clippy")
DEBIAN_INSTALL: Final = "sudo apt-get install --no-install-recommends " + " ".join(DEBIAN_PACKAGES)
# Variables that would route our own compiler calls through a wrapper (possibly cratecage itself).
WRAPPER_VARS: Final = ("RUSTC_WRAPPER", "RUSTC_WORKSPACE_WRAPPER", "CARGO_BUILD_RUSTC_WRAPPER",
                       "CARGO_BUILD_RUSTC_WORKSPACE_WRAPPER")


@record(frozen=True)
class Compiler:
    """One rustc installation, identified by its `-vV` output."""

    rustc: str  # the real executable (rustup proxies resolved to the toolchain's bin/rustc)
    verbose_version: str
    sysroot: str

    @property
    def key(self) -> str:
        return hashlib.sha256(self.verbose_version.encode()).hexdigest()[:16]

    def field(self, name: str) -> str:
        for line in self.verbose_version.splitlines():
            if line.startswith(name + ": "):
                return line[len(name) + 2:].strip()
        return ""

    @property
    def release(self) -> str:
        return self.field("release")

    @property
    def host(self) -> str:
        return self.field("host")

    @property
    def version_line(self) -> str:
        return self.verbose_version.splitlines()[0] if self.verbose_version else "?"

    def sibling(self, program: str) -> str | None:
        """`cargo`, `rustdoc`, ... from the same toolchain's bin directory."""
        for base in (os.path.join(self.sysroot, "bin"), os.path.dirname(self.rustc)):
            path = os.path.join(base, program)
            if os.access(path, os.X_OK):
                return path
        return None


@record(frozen=True)
class Toolchain:
    """The answer to "which rustc, which wasm sysroot?"."""

    compiler: Compiler
    wasm_sysroot: str | None  # pass as `--sysroot` for wasm32-wasip1 compiles; None: not capable
    how: str  # "rustup target", "built from rust-src", or why it is not capable

    @property
    def ready(self) -> bool:
        return self.wasm_sysroot is not None

    @property
    def cargo(self) -> str | None:
        return self.compiler.sibling("cargo")

    @property
    def rustdoc(self) -> str | None:
        return self.compiler.sibling("rustdoc")


def scrubbed_env(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The environment for cratecage's own compiler calls: no wrappers, no RUSTFLAGS from the build."""
    env = {k: v for k, v in environ.items() if k not in WRAPPER_VARS}
    for name in ("RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "RUSTC_BOOTSTRAP"):
        env.pop(name, None)
    return env


def probe_compiler(rustc: str, environ: Mapping[str, str] = os.environ) -> Compiler:
    """Ask `rustc` who it is. Raises ToolchainError naming the program when it cannot answer."""
    program = shutil.which(rustc, path=environ.get("PATH")) if os.sep not in rustc else rustc
    if not program or not os.access(program, os.X_OK):
        raise ToolchainError(f"rustc `{rustc}` not found", hint="install Rust (rustup.rs) or set RUSTC")
    env = scrubbed_env(environ)
    try:
        vv = subprocess.run([program, "-vV"], capture_output=True, text=True, env=env, timeout=60)
        sysroot = subprocess.run([program, "--print", "sysroot"], capture_output=True, text=True, env=env,
                                 timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise ToolchainError(f"cannot run `{program} -vV`: {err}") from None
    if vv.returncode != 0 or sysroot.returncode != 0 or "release: " not in vv.stdout:
        detail = (vv.stderr or sysroot.stderr).strip().splitlines()[-1:] or ["no output"]
        raise ToolchainError(f"`{program} -vV` failed: {detail[0]}")
    root = sysroot.stdout.strip()
    real = os.path.join(root, "bin", "rustc")
    if not os.access(real, os.X_OK):
        real = os.path.realpath(program)
    # Our own line is never part of a compiler's identity (a wrapper may have added it).
    text = "\n".join(line for line in vv.stdout.splitlines() if not line.startswith("cratecage:"))
    return Compiler(rustc=real, verbose_version=text.strip() + "\n", sysroot=root)


def private_sysroot(compiler: Compiler, environ: Mapping[str, str] = os.environ) -> Path:
    return cache_root(environ) / "toolchains" / compiler.key / "sysroot"


def wasm_sysroot_of(compiler: Compiler, environ: Mapping[str, str] = os.environ) -> tuple[str | None, str]:
    """Where this compiler finds a wasm32-wasip1 std, and how it got there; (None, why) if nowhere."""
    private = str(private_sysroot(compiler, environ))
    if is_capable_sysroot(private):
        return private, "built from rust-src"
    if is_capable_sysroot(compiler.sysroot):
        return compiler.sysroot, "rustup target"
    return None, "no wasm32-wasip1 std for this compiler"


def toolchain_for(compiler: Compiler, environ: Mapping[str, str] = os.environ) -> Toolchain:
    sysroot, how = wasm_sysroot_of(compiler, environ)
    return Toolchain(compiler=compiler, wasm_sysroot=sysroot, how=how)


# -- the selected toolchain -------------------------------------------------------------------------------

def _selected_file(environ: Mapping[str, str]) -> Path:
    return cache_root(environ) / "selected.json"


def load_selected(environ: Mapping[str, str] = os.environ) -> dict[str, str] | None:
    """What `toolchain install` chose last: {"rustc", "key", "version"}; None if nothing was chosen."""
    try:
        data = json.loads(_selected_file(environ).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and "rustc" in data else None


def save_selected(tc: Toolchain, environ: Mapping[str, str] = os.environ) -> None:
    data = {"rustc": tc.compiler.rustc, "key": tc.compiler.key, "version": tc.compiler.version_line}
    atomic_write(_selected_file(environ), json.dumps(data, indent=2) + "\n", make_parents=True)


def resolve(rustc: str | None = None, environ: Mapping[str, str] = os.environ) -> Toolchain:
    """Which rustc, which wasm sysroot? `rustc` given: that compiler. Otherwise the selected one, falling
    back to what cargo would use in this environment ($RUSTC, then `rustc` on PATH)."""
    if rustc is None:
        chosen = load_selected(environ)
        if chosen and os.access(chosen["rustc"], os.X_OK):
            rustc = chosen["rustc"]
        else:
            rustc = environ.get("RUSTC") or "rustc"
    return toolchain_for(probe_compiler(rustc, environ), environ)


def cargo_rustc(environ: Mapping[str, str] = os.environ) -> str:
    """The compiler cargo would run from this directory: $RUSTC, else `rustc` on PATH (rustup's proxy
    picks the toolchain from RUSTUP_TOOLCHAIN, rust-toolchain.toml and `rustup override` of the cwd, as
    it does for cargo). `build.rustc` in a cargo config file is not read."""
    return environ.get("RUSTC") or environ.get("CARGO_BUILD_RUSTC") or "rustc"


def cargo_toolchain(environ: Mapping[str, str] = os.environ) -> Toolchain:
    """What `cratecage doctor` and `toolchain --check` answer for: the compiler cargo would run here."""
    return toolchain_for(probe_compiler(cargo_rustc(environ), environ), environ)


def env_hint() -> str:
    """For a compiler that cannot be made capable in place: how to make a shell use the selected one."""
    from shim import program

    return f'run `eval "$({program.command("toolchain env")})"` in this shell or CI step, then cargo as usual'


def env_vars(tc: Toolchain, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """Variables that make cargo use this toolchain: PATH (a directory of links to its rustc, cargo,
    rustdoc and clippy, so nothing else from e.g. /usr/bin jumps the queue), RUSTC, RUSTDOC, CARGO."""
    bindir = cache_root(environ) / "toolchains" / tc.compiler.key / "bin"
    programs = {"rustc": tc.compiler.rustc, "cargo": tc.cargo, "rustdoc": tc.rustdoc,
                "cargo-clippy": tc.compiler.sibling("cargo-clippy"),
                "clippy-driver": tc.compiler.sibling("clippy-driver")}
    bindir.mkdir(parents=True, exist_ok=True)
    for name, target in programs.items():
        link = bindir / name
        if target and (not link.is_symlink() or os.readlink(link) != target):
            tmp = bindir / f".{name}.{os.getpid()}"
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(target)
            os.replace(tmp, link)
    path = environ.get("PATH", "")
    parts = [p for p in path.split(os.pathsep) if p and p != str(bindir)]
    out = {"PATH": os.pathsep.join([str(bindir), *parts]), "RUSTC": tc.compiler.rustc}
    if tc.rustdoc:
        out["RUSTDOC"] = tc.rustdoc
    if tc.cargo:
        out["CARGO"] = tc.cargo
    return out



