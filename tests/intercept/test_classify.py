"""Classification of the argv shapes cargo produces (notes/cargo-and-rustc.md §2-§5)."""

from __future__ import annotations

import pytest

from shim.cargo.rustc_args import parse
from shim.intercept.classify import (BUILD_SCRIPT, HOST_LIBRARY, OTHER, PROBE, PROC_MACRO, classify, is_verbose_version,
                                     unit_name)

T = "/t"
COMMON = "--error-format=json --json=diagnostic-rendered-ansi,artifacts,future-incompat -C embed-bitcode=no"
BUILD_SCRIPT_ARGV = (f"--crate-name build_script_build --edition=2021 build.rs {COMMON} --crate-type bin "
                     f"--emit=dep-info,link -C metadata=m -C extra-filename=-h --out-dir {T}/debug/build/p-h "
                     f"-L dependency={T}/debug/deps")
PROC_MACRO_ARGV = (f"--crate-name pm --edition=2021 /ws/pm/src/lib.rs {COMMON} --crate-type proc-macro "
                   f"--emit=dep-info,link -C prefer-dynamic -C metadata=m -C extra-filename=-h "
                   f"--out-dir {T}/debug/deps -L dependency={T}/debug/deps --extern proc_macro")
HOST_LIB_ARGV = (f"--crate-name bdep --edition=2021 /ws/bdep/src/lib.rs {COMMON} --crate-type lib "
                 f"--emit=dep-info,metadata,link -C metadata=m --out-dir {T}/debug/deps")
PROBE_ARGV = ("- --crate-name ___ --print=file-names --crate-type bin --crate-type rlib --crate-type dylib "
              "--crate-type cdylib --crate-type staticlib --crate-type proc-macro --print=sysroot "
              "--print=split-debuginfo --print=crate-name --print=cfg -Wwarnings")
AUTOCFG_PROBE = "--crate-name probe0 --crate-type lib --emit=metadata --out-dir /t/debug/build/p-h/out -"


@pytest.mark.parametrize(
    "argv, env, kind, reason",
    [
        (BUILD_SCRIPT_ARGV, {}, BUILD_SCRIPT, "build script binary"),
        ("--crate-name build_script_gen tools/gen.rs --crate-type bin --emit=dep-info,link", {}, BUILD_SCRIPT,
         "build script binary"),
        (PROC_MACRO_ARGV, {}, PROC_MACRO, "proc-macro crate, linked"),
        (PROC_MACRO_ARGV.replace("dep-info,link", "dep-info,metadata"), {}, OTHER, "proc-macro crate, not linked"),
        (HOST_LIB_ARGV, {}, HOST_LIBRARY, "linked library without --target"),
        (HOST_LIB_ARGV + " --target x86_64-unknown-linux-gnu", {}, OTHER, "target library"),
        (HOST_LIB_ARGV.replace("metadata,link", "metadata"), {}, OTHER, "other compile"),
        ("-vV", {}, PROBE, "version query"),
        ("--version", {}, PROBE, "version query"),
        (PROBE_ARGV, {}, PROBE, "print query"),
        (PROBE_ARGV + " --target wasm32-wasip1", {}, PROBE, "print query"),
        (AUTOCFG_PROBE, {"CARGO_CFG_TARGET_ARCH": "x86_64"}, PROBE, "compile started by a build script"),
        ("--crate-name x --crate-type lib --emit=metadata -", {}, PROBE, "source on stdin"),
        ("--crate-name app --edition=2021 src/main.rs --crate-type bin --emit=dep-info,link", {}, OTHER,
         "other compile"),
        ("--crate-name app --edition=2021 src/main.rs --emit=dep-info,link --test", {}, OTHER, "test harness"),
        ("--crate-name pm src/lib.rs --emit=dep-info,link --test --crate-type proc-macro", {}, OTHER,
         "test harness"),
        ("--explain E0308", {}, PROBE, "explain"),
        ("--crate-type lib", {}, OTHER, "no input"),
    ],
)
def test_classification(argv: str, env: dict[str, str], kind: str, reason: str) -> None:
    unit = classify(parse(argv.split()), env)
    assert (unit.kind, unit.reason) == (kind, reason)


def test_a_build_script_compile_is_never_a_probe_even_in_build_script_env() -> None:
    # A nested cargo started by a build script inherits CARGO_CFG_*; its build scripts stay build scripts.
    unit = classify(parse(BUILD_SCRIPT_ARGV.split()), {"CARGO_CFG_TARGET_ARCH": "x86_64"})
    assert unit.kind == BUILD_SCRIPT


@pytest.mark.parametrize("argv, expected", [("-vV", True), ("-V -v", True), ("--version --verbose", True),
                                            ("-V", False), ("-vV --print cfg", False), ("-vV x.rs", False)])
def test_verbose_version_detection(argv: str, expected: bool) -> None:
    assert is_verbose_version(parse(argv.split())) is expected


PKG = {"CARGO_PKG_NAME": "serde-derive", "CARGO_PKG_VERSION": "1.0.2"}


@pytest.mark.parametrize("argv, env, name", [
    (BUILD_SCRIPT_ARGV, PKG, "build script of serde-derive 1.0.2"),
    (PROC_MACRO_ARGV, PKG, "proc macro serde-derive 1.0.2"),
    (HOST_LIB_ARGV, PKG, "library serde-derive 1.0.2"),
    ("--crate-name app src/main.rs --crate-type bin --emit=dep-info,link", PKG, "binary `app` of serde-derive 1.0.2"),
    ("--crate-name it tests/it.rs --emit=dep-info,link --test", PKG, "test `it` of serde-derive 1.0.2"),
    (BUILD_SCRIPT_ARGV, {}, "build script of build_script_build"),  # run by hand: rustc's name is all there is
])
def test_units_are_named_by_their_package(argv: str, env: dict, name: str) -> None:
    assert unit_name(parse(argv.split()), env) == name
