"""Builds cratecage's wasm-side `proc_macro` (shim/rust/proc_macro) once per toolchain, for macro guests.

A proc-macro crate compiled as a wasm guest (shim/macro/) and its whole dependency closure (proc-macro2,
syn, ...) get `--extern proc_macro=<proc_macro_rlib(tc)>` in place of the compiler's own `proc_macro`, which
only works inside rustc (notes/sandbox-experiments.md §2, §6). Like every crate of a wasm graph it links the
std facade, so it is built with `--extern std=<facade rlib>`, and the facade's identity is part of its hash:

    <cache>/toolchains/<compiler key>/proc_macro/<hash>/libproc_macro.rlib

(shim.toolchain.shipped: the same cache layout, lock and identity rules as the facade).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final, Mapping

from shim.toolchain import facade, shipped
from shim.toolchain.capable import WASM_TARGET
from shim.toolchain.compiler import Toolchain

PROC_MACRO_DIR: Final = Path(__file__).resolve().parent.parent / "rust" / "proc_macro"
RLIB_NAME: Final = "libproc_macro.rlib"
FLAGS: Final = ("--crate-name", "proc_macro", "--crate-type", "rlib", "--edition", "2021", "--target", WASM_TARGET,
                "-C", "opt-level=2", "--cap-lints=allow")


def crate() -> shipped.Shipped:
    return shipped.Shipped("the wasm proc_macro crate", "proc_macro", PROC_MACRO_DIR, RLIB_NAME, FLAGS)


def proc_macro_sources() -> list[Path]:
    """Its Rust sources (for the dep-info of the guests that link it)."""
    return shipped.sources(PROC_MACRO_DIR)


def proc_macro_rlib(tc: Toolchain, environ: Mapping[str, str] = os.environ) -> Path:
    """The `proc_macro` rlib for this toolchain (and its facade), built first if needed. Raises ToolchainError."""
    std = facade.facade_rlib(tc, environ)
    return shipped.rlib(tc, crate(), externs=(("std", std),), environ=environ)
