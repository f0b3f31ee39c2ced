"""The commands a person types: `cratecage toolchain [install|env]`, `doctor`, `--version`, `--help`.

`toolchain`, `toolchain --check` and `doctor` answer for the compiler cargo would run in the current
directory (RUSTC, or rustup's choice from RUSTUP_TOOLCHAIN, rust-toolchain.toml, `rustup override`), which
is the one a build uses; `toolchain env` exports the *selected* one (`toolchain install`).

Parsed with argparse into plain functions; errors are raised as CratecageError and rendered by shim.cli.main.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys

from shim import VERSION_LINE, __version__, program
from shim.errors import ToolchainError, UsageError
from shim.toolchain import compiler as tcmod
from shim.toolchain import sysroot


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message, hint=f"see `{self.prog} --help`")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="cratecage",
        description="Runs Rust build scripts and proc macros in a WebAssembly sandbox. Set it as cargo's "
        "RUSTC_WRAPPER (RUSTC_WRAPPER=/path/to/cratecage cargo build).",
    )
    p.add_argument("--version", action="version", version=f"cratecage {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    t = sub.add_parser("toolchain", help="the rustc cargo runs here: can it do wasm32-wasip1? install, export")
    t.add_argument("--check", action="store_true",
                   help="print nothing; exit 0 only if the rustc cargo runs here can compile for wasm32-wasip1")
    tsub = t.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    i = tsub.add_parser("install", help="make a compiler wasm32-wasip1-capable and select it")
    i.add_argument("--rustc", help="the compiler to make capable (default: $RUSTC, rustc on PATH, Debian's)")
    e = tsub.add_parser("env", help="print shell `export` lines that select the toolchain")
    e.add_argument("--shell", choices=("sh", "fish"), default="sh")
    pol = sub.add_parser("policy", help="validate the build's policy without building")
    pol_sub = pol.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    pol_sub.add_parser("check", help="find, read and validate the policy; list its entries")
    ini = sub.add_parser("init", help="build in warn mode and propose a cratecage.toml with the grants used")
    ini.add_argument("--output", help="where to write the proposal (default: <workspace>/cratecage.toml)")
    ini.add_argument("--force", action="store_true", help="replace an existing file")
    ini.add_argument("cargo_args", nargs=argparse.REMAINDER, help="arguments for cargo build, after --")
    sub.add_parser("doctor", help="check the toolchain, wasmtime and the confinement of native children")
    r = sub.add_parser("audit", help="the last sandboxed run of each crate: grants used, denials")
    r.add_argument("target_dir", nargs="?", default=None,
                   help="cargo's target or build directory (default: the ones cargo uses here, else target)")
    sub.add_parser("version", help="print the version line cratecage adds to `rustc -vV`")
    sub.add_parser("help", help="show this help")
    return p


def dispatch(argv: list[str]) -> int:
    parser = _parser()
    ns = parser.parse_args(argv)
    if ns.command in (None, "help"):
        parser.print_help()
        return 0
    if ns.command == "version":
        print(VERSION_LINE)
        return 0
    if ns.command == "init":
        from shim.cli import init_policy

        args = ns.cargo_args[1:] if ns.cargo_args[:1] == ["--"] else ns.cargo_args
        return init_policy.run(args, output=ns.output, force=ns.force)
    if ns.command == "policy":
        return policy_check()
    if ns.command == "doctor":
        return doctor()
    if ns.command == "audit":
        return audit_summary(ns.target_dir)
    if ns.action == "install":
        return toolchain_install(rustc=ns.rustc)
    if ns.action == "env":
        return toolchain_env(shell=ns.shell)
    return toolchain_report(check=ns.check)


def toolchain_install(*, rustc: str | None) -> int:
    from shim.log import get_logger

    tc = sysroot.install(rustc, log=get_logger("toolchain").info)
    print(f"rustc:          {tc.compiler.rustc} ({tc.compiler.version_line})")
    print(f"wasm32-wasip1:  ready ({tc.how}, sysroot {tc.wasm_sysroot})")
    if _cargo_key() != tc.compiler.key:
        print(f"next:           cargo here runs another rustc; {tcmod.env_hint()}")
    return 0


def toolchain_env(*, shell: str) -> int:
    tc = tcmod.resolve()
    if not tc.ready:
        raise ToolchainError(
            f"{tc.compiler.rustc} ({tc.compiler.version_line}) cannot compile for wasm32-wasip1",
            hint=f"run `{program.command('toolchain install')}` first",
        )
    for name, value in tcmod.env_vars(tc).items():
        if shell == "fish":
            print(f"set -gx {name} {shlex.quote(value)};")
        else:
            print(f"export {name}={shlex.quote(value)}")
    return 0


def _cargo_key() -> str | None:
    """The compiler cargo would run here right now, if it can be asked."""
    try:
        return tcmod.probe_compiler(tcmod.cargo_rustc()).key
    except ToolchainError:
        return None


def _wasm_lines(tc: tcmod.Toolchain) -> list[str]:
    """`wasm32-wasip1:` and what the first build would do about it, for the report and the doctor."""
    if tc.ready:
        return [f"wasm32-wasip1:  ready ({tc.how}, sysroot {tc.wasm_sysroot})"]
    from shim.toolchain import first_use

    return [f"wasm32-wasip1:  not ready ({tc.how})",
            f"first use:      {first_use.describe(tc.compiler, os.environ)}",
            f"fix now:        {program.command('toolchain install')}"]


def toolchain_report(*, check: bool) -> int:
    """The compiler cargo would run in this directory (not the selected one): can it do wasm32-wasip1?"""
    tc = tcmod.cargo_toolchain()
    if check:
        return 0 if tc.ready else 3
    comp = tc.compiler
    print(f"rustc:          {comp.rustc} ({comp.version_line})")
    print(f"cargo:          {tc.cargo or 'not found beside rustc'}")
    print(f"rustdoc:        {tc.rustdoc or 'not found beside rustc'}")
    print(f"cache:          {tcmod.cache_root()}")
    print("\n".join(_wasm_lines(tc)))
    chosen = tcmod.load_selected()
    if chosen and chosen.get("key") != comp.key:
        print(f"toolchain env:  selects {chosen['rustc']} ({chosen.get('version', '?')})")
    return 0 if tc.ready else 3


def audit_summary(target_dir: str | None) -> int:
    from pathlib import Path

    from shim.sandbox import audit

    tried = [audit.log_path(Path(d)) for d in audit_dirs(target_dir)]
    log = next((p for p in tried if p.is_file()), None)
    if log is None:
        raise UsageError(f"no sandboxed runs recorded in {' or '.join(map(str, tried))}",
                         hint=f"build with RUSTC_WRAPPER={program.path()} first, or name the target directory")
    print("\n".join(audit.summary(log)))
    return 0


def audit_dirs(given: str | None) -> list[str]:
    """The build directories whose audit log `cratecage audit` reads, first found wins: the one named, or
    cargo's `target` here; and, when that is cargo's target directory, cargo's build directory
    (`build.build-dir`, where the units and so cratecage's state are when it is set elsewhere)."""
    import json
    import subprocess

    first = given or "target"
    try:
        done = subprocess.run(["cargo", "metadata", "--no-deps", "--format-version", "1", "--offline"],
                              capture_output=True, text=True, timeout=60)
        meta = json.loads(done.stdout) if done.returncode == 0 else {}
    except (OSError, ValueError, subprocess.SubprocessError):
        meta = {}
    target, build = meta.get("target_directory"), meta.get("build_directory")
    if given is None and target:
        first = target
    out = [first]
    if build and target and os.path.realpath(first) == os.path.realpath(target):
        out.append(build)
    return list(dict.fromkeys(out))


def doctor() -> int:
    """What cratecage can and cannot do on this machine, one line each, for the compiler cargo would run
    in this directory; exit 3 if builds would fail (not capable, and the first build could not fix it)."""
    from importlib.metadata import PackageNotFoundError, version

    from shim.confine import hostns, landlock_exec, pidns
    from shim.host import probe

    try:
        wasmtime_version = version("wasmtime")
    except PackageNotFoundError:
        wasmtime_version = "not installed"

    tc = tcmod.cargo_toolchain()
    print(f"cratecage:      {VERSION_LINE}")
    print(f"rustc:          {tc.compiler.rustc} ({tc.compiler.version_line})")
    print("\n".join(_wasm_lines(tc)))
    print(f"wasmtime:       {wasmtime_version}")
    print(f"landlock:       {probe.landlock_status()}")
    print(f"metadata:       {landlock_exec.describe_guard()}")
    print(f"processes:      {pidns.available()}")
    print(f"privileges:     {hostns.available()}")
    if tc.ready:
        return 0
    from shim.toolchain import first_use

    return 0 if first_use.plan(tc.compiler, os.environ).route else 3


def policy_check() -> int:
    """Find the policy the way a build would (from here), validate it, and list what it holds."""
    from shim.cargo.workspace import root_for_command
    from shim.policy import discover

    root = root_for_command()
    policy, warnings = discover(root, os.environ)
    for warning in warnings:
        print(warning, file=sys.stderr)
    if policy.source is None:
        print(f"no policy for {root}: every crate gets the defaults (see README, Policy format)")
        return 0
    count = len(policy.entries)
    print(f"{policy.source}: {count} {'entry' if count == 1 else 'entries'}, mode {policy.mode}")
    known = _locked_packages(root)
    for entry in policy.entries:
        note = ""
        if known is not None and entry.crate.replace("_", "-") not in known:
            note = "  (warning: no package of that name in Cargo.lock)"
        print(f"  {entry.source.file}:{entry.source.line}: {entry.kind} {entry.crate}{note}")
    return 0


def _locked_packages(root) -> set[str] | None:  # type: ignore[no-untyped-def]
    lock = root / "Cargo.lock"
    if not lock.is_file():
        return None
    names = set()
    for line in lock.read_text().splitlines():
        if line.startswith('name = "'):
            names.add(line.split('"')[1].replace("_", "-"))
    return names
