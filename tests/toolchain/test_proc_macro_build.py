"""shim.toolchain.proc_macro: cratecage's wasm-side proc_macro built once per toolchain against the std
facade, with the facade's cache layout, lock and identity rules (shim.toolchain.shipped)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from shim.errors import ToolchainError
from shim.toolchain import compiler as toolchain
from shim.toolchain import proc_macro, shipped

from conftest import scrubbed
from guests import cache_env, facade_rlib, tc  # noqa: F401 (fixtures)
from macro_guests import proc_macro_rlib  # noqa: F401 (fixtures)


def test_it_is_built_once_per_toolchain_next_to_the_facade(tc: toolchain.Toolchain, proc_macro_rlib: Path,  # noqa: F811
                                                            facade_rlib: Path, cache_env: dict[str, str]) -> None:
    digest = shipped.source_hash(proc_macro.PROC_MACRO_DIR, proc_macro.FLAGS, [("std", facade_rlib)])
    cache = Path(cache_env["CRATECAGE_CACHE_DIR"]) / "toolchains" / tc.compiler.key
    assert proc_macro_rlib == cache / "proc_macro" / digest / "libproc_macro.rlib"
    assert facade_rlib.parent.parent == cache / "facade"
    mtime = proc_macro_rlib.stat().st_mtime_ns
    assert proc_macro.proc_macro_rlib(tc, cache_env) == proc_macro_rlib
    assert proc_macro_rlib.stat().st_mtime_ns == mtime
    names = {p.name for p in proc_macro.proc_macro_sources()}
    assert names >= {"lib.rs", "lexer.rs", "print.rs", "cratecage.rs", "span.rs", "literal.rs", "tokens.rs"}


def test_its_identity_covers_the_facade_it_links(facade_rlib: Path) -> None:  # noqa: F811
    ours = shipped.source_hash(proc_macro.PROC_MACRO_DIR, proc_macro.FLAGS, [("std", facade_rlib)])
    other = facade_rlib.parent.with_name("0123456789abcdef") / facade_rlib.name
    assert shipped.source_hash(proc_macro.PROC_MACRO_DIR, proc_macro.FLAGS, [("std", other)]) != ours
    assert shipped.source_hash(proc_macro.PROC_MACRO_DIR, proc_macro.FLAGS) != ours


def test_a_broken_source_is_a_toolchain_error_naming_the_crate_and_rustc_s_error(
        tc: toolchain.Toolchain, facade_rlib: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    copy = tmp_path / "proc_macro"
    shutil.copytree(proc_macro.PROC_MACRO_DIR, copy)
    with (copy / "src" / "span.rs").open("a") as fh:
        fh.write("\nfn broken() -> u8 { \"no\" }\n")
    monkeypatch.setattr(proc_macro, "PROC_MACRO_DIR", copy)
    env = {**scrubbed(dict(os.environ)), "CRATECAGE_CACHE_DIR": str(tmp_path / "cache")}
    shutil.copytree(facade_rlib.parent, tmp_path / "cache" / "toolchains" / tc.compiler.key / "facade" /
                    facade_rlib.parent.name)  # the facade as built, so only proc_macro compiles here
    with pytest.raises(ToolchainError, match=r"wasm proc_macro crate.*error\[E0308\]: mismatched types"):
        proc_macro.proc_macro_rlib(tc, env)
    built = tmp_path / "cache" / "toolchains" / tc.compiler.key / "proc_macro"
    assert [p for p in built.iterdir() if not p.name.endswith(".lock")] == []
