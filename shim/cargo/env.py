"""The environment of a rustc that cratecage runs for wasm: what a crate may see at compile time.

Why: `env!`/`option_env!` read the compiler's environment, and the compiled code then runs in the sandbox
and can print what it read. Cargo gives a compile its whole environment (HOME, CARGO_REGISTRY_TOKEN,
AWS_*, CI tokens), so cratecage's own wasm compiles never inherit it. They get, by exact name, never by
prefix (a `CARGO_*` prefix would pass CARGO_REGISTRY_TOKEN):
  - `COMPILE_ENV`: what cargo documents that it sets for a crate's compile (doc.rust-lang.org/cargo,
    "Environment variables Cargo sets for crates"), with the values cargo gave *that* compile (for a
    replayed library, the values shim.cargo.journal recorded when cargo compiled it natively);
  - the `rustc-env` values of the crate's own build script, as cargo kept them after cratecage's filter
    (`<OUT_DIR>/../output`; `<OUT_DIR>/../run/stdout` in cargo's new build-dir layout);
  - the variables the policy grants the crate (env-access), from the environment cargo gave us;
  - `TOOL_ENV`: what rustc itself uses (the jobserver, RUSTC_BOOTSTRAP), plus PATH, TMPDIR and
    LD_LIBRARY_PATH set by shim.compile.wasm_rustc to the toolchain and a private temp dir.
Warn mode (`mode = "warn"`) gives the whole environment, as the runner does; shim.compile.wasm_rustc then reports
each variable the compile read that enforce mode would not have given.

Standard library only: shim.cargo.journal imports `recorded` on the pass-through fast path.
"""

from __future__ import annotations

if False:  # typing only: importing typing costs ~10 ms on the pass-through fast path
    from typing import Callable, Final, Mapping

from shim.cargo import layout

# Set by cargo for a crate's compile (exact names). CARGO_BIN_EXE_*/CARGO_TARGET_TMPDIR are for integration
# tests only, which are never compiled for the sandbox.
COMPILE_ENV: Final[tuple[str, ...]] = (
    "CARGO", "CARGO_BIN_NAME", "CARGO_CRATE_NAME", "CARGO_MANIFEST_DIR", "CARGO_MANIFEST_LINKS",
    "CARGO_MANIFEST_PATH", "CARGO_PKG_AUTHORS", "CARGO_PKG_DESCRIPTION", "CARGO_PKG_HOMEPAGE",
    "CARGO_PKG_LICENSE", "CARGO_PKG_LICENSE_FILE", "CARGO_PKG_NAME", "CARGO_PKG_README",
    "CARGO_PKG_REPOSITORY", "CARGO_PKG_RUST_VERSION", "CARGO_PKG_VERSION", "CARGO_PKG_VERSION_MAJOR",
    "CARGO_PKG_VERSION_MINOR", "CARGO_PKG_VERSION_PATCH", "CARGO_PKG_VERSION_PRE", "CARGO_PRIMARY_PACKAGE",
    "CARGO_RUSTC_CURRENT_DIR", "OUT_DIR",
)
# Read by rustc itself, passed on from cargo's environment when set: the jobserver cargo shares with
# rustc, and the switch that lets a stable compiler accept unstable flags.
TOOL_ENV: Final[tuple[str, ...]] = ("CARGO_MAKEFLAGS", "RUSTC_BOOTSTRAP")
# Set by cratecage for the compile (shim.compile.wasm_rustc), never taken from cargo's environment.
OWN_ENV: Final[tuple[str, ...]] = ("PATH", "TMPDIR", "LD_LIBRARY_PATH")
_RUSTC_ENV_PREFIXES: Final = ("cargo::rustc-env=", "cargo:rustc-env=")


def recorded(environ: Mapping[str, str]) -> dict[str, str]:
    """The COMPILE_ENV values of one compile, for the journal (a few microseconds)."""
    out = {}
    for name in COMPILE_ENV:
        value = environ.get(name)
        if value is not None:
            out[name] = value
    return out


def script_rustc_env(out_dir: str | None) -> dict[str, str]:
    """`rustc-env` values the crate's own build script printed, as cargo kept them (after cratecage's filter
    of the script's stdout); {} when the crate has no build script or it has not run."""
    output = layout.script_output(out_dir) if out_dir else None
    if output is None:
        return {}
    found: dict[str, str] = {}
    for line in output.decode("utf-8", "surrogateescape").splitlines():
        for prefix in _RUSTC_ENV_PREFIXES:
            if line.startswith(prefix):
                name, eq, value = line[len(prefix):].partition("=")
                if eq and name:
                    found[name] = value
                break
    return found


def environment(cargo_vars: Mapping[str, str], host_env: Mapping[str, str], *, rustc_env: Mapping[str, str],
                allows_env: Callable[[str], bool], warn: bool, own: Mapping[str, str]) -> dict[str, str]:
    """The whole environment of one wasm compile.

    `cargo_vars`: where COMPILE_ENV values come from (cargo's environment for a build script's compile, the
    journal's record for a replayed library); `host_env`: cargo's environment for this wrapper call, for
    TOOL_ENV and granted variables; `own`: cratecage's PATH/TMPDIR/LD_LIBRARY_PATH, which win over all."""
    env = {k: v for k, v in host_env.items() if k not in COMPILE_ENV} if warn else {}
    env.update({k: host_env[k] for k in TOOL_ENV if k in host_env})
    env.update({k: v for k, v in host_env.items() if allows_env(k)})
    env.update({k: cargo_vars[k] for k in COMPILE_ENV if k in cargo_vars})
    env.update(rustc_env)
    for name in OWN_ENV:
        env.pop(name, None)
    env.update(own)
    return env


def visible(name: str, *, rustc_env: Mapping[str, str], allows_env: Callable[[str], bool]) -> bool:
    """Would enforce mode show `name` to the compile? (OWN_ENV values are cratecage's, never the host's.)"""
    return name in COMPILE_ENV or name in TOOL_ENV or name in OWN_ENV or name in rustc_env or allows_env(name)
