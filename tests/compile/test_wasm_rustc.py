"""What a confined wasm compile may read of the native proc macros it loads (shim.compile.wasm_rustc.read_set): the
dylibs its `--extern`s name, as files, wherever the build-dir layout puts them (old: `deps/`, new:
`build/<pkg>/<H>/out/`), never their directories or the rest of the target dir. The proc macros of its
dependencies come through its private `deps/` (hard links, shim.compile.dirs), tests/build/test_build_dep_graphs.py
builds that end to end."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shim.cargo.rustc_args import native_externs
from shim.compile import wasm_rustc

# layout -> (the proc macro the compile names, one it does not), relative to the profile directory
PROC_MACROS = {
    "old": ("deps/libphf_macros-1111.so", "deps/libother_macros-2222.so"),
    "new": ("build/phf_macros/1111/out/libphf_macros-1111.so", "build/other_macros/2222/out/libother_macros-2222.so"),
}


def touch(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.mark.parametrize("layout", sorted(PROC_MACROS))
def test_a_compile_reads_the_proc_macros_it_names_and_nothing_beside_them(tmp_path: Path, layout: str) -> None:
    package = tmp_path / "phf"
    touch(package / "Cargo.toml", '[package]\nname = "phf"\n')
    source = touch(package / "src" / "lib.rs")
    target = package / "target"  # inside the package, as for most projects
    touch(target / "CACHEDIR.TAG", "Signature: 8a477f597d28d172789f06886806bc55\n")
    profile = target / "debug"
    touch(profile / ".cargo-lock")
    named, other = (touch(profile / rel, "ELF") for rel in PROC_MACROS[layout])
    secret = touch(named.parent / "phf_macros-1111.d", "# env-dep:TOKEN=secret\n")
    unit = profile / ("deps" if layout == "old" else "build/phf/3333/out")
    rlib = touch(unit / "libphf_shared-4444.rlib")
    private_deps = target / "cratecage" / "tmp" / "wasm-x" / "deps"
    private_deps.mkdir(parents=True)
    recorded = ["--crate-name", "phf", str(source), "--extern", f"phf_macros={named}",
                "--extern", f"phf_shared={rlib}", "--extern", f"phf_shared={rlib.with_suffix('.rmeta')}"]
    inputs = native_externs(recorded, str(package))
    assert inputs == [str(named)]

    tools = wasm_rustc.Tools(rustc=str(tmp_path / "tc" / "bin" / "rustc"), sysroot=str(tmp_path / "tc"),
                             wasm_sysroot=str(tmp_path / "tc"), facade_dir=str(tmp_path / "facade"),
                             host="x86_64-unknown-linux-gnu")
    scope = wasm_rustc.Scope(subject="build-dependency phf 0.11.3", package="phf", version="0.11.3",
                             manifest_dir=str(package), out_dir=None, build_dir=str(unit), sources=(str(source),),
                             cargo_vars={})
    hidden = wasm_rustc.hidden_dirs(scope, {})
    reads = wasm_rustc.read_set(tools, scope, [str(private_deps), *inputs], hidden)

    assert str(named) in reads
    in_target = [p for p in reads if p == str(target) or p.startswith(str(target) + os.sep)]
    assert sorted(in_target) == sorted([str(named), str(private_deps)])
    for unreadable in (other, secret, rlib, named.parent):
        assert not any(str(unreadable) == p or str(unreadable).startswith(p + os.sep) for p in reads), unreadable
