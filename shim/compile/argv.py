"""A recorded rustc command line made one for the sandbox: `wasm_argv` (see shim.compile.replay for why each
piece is there), by two tables:
  - `FLAG_ACTIONS`: what happens to each rustc flag (keep, drop, or replaced by cratecage's own value);
  - `CODEGEN_DROP`: which `-C` options are host-only (target-cpu, linker, link-arg, relocation-model,
    incremental, ...) and are dropped (notes/cargo-and-rustc.md, "Hazards when replaying host units").
"""

from __future__ import annotations

import os

from shim.cargo.rustc_args import tokens
from shim.errors import CratecageError
from shim.record import factory, record

WASM_TARGET = "wasm32-wasip1"

STACK_SIZE_ARG = "link-arg=-zstack-size=8388608"  # 8 MiB, so deep recursion behaves as natively

KEEP, DROP, OURS = "keep", "drop", "ours"

# By the flag's first name in shim.cargo.rustc_args.FLAGS; None is an input or a word the table does not know.
FLAG_ACTIONS: dict[str | None, str] = {
    None: KEEP,
    "--allow": KEEP, "--cap-lints": OURS, "--cfg": KEEP, "--check-cfg": KEEP, "--codegen": OURS,
    "--color": DROP, "--crate-attr": KEEP, "--crate-name": KEEP, "--crate-type": KEEP, "--deny": KEEP,
    "--diagnostic-width": DROP, "--edition": KEEP, "--emit": OURS, "--env-set": KEEP,
    "--error-format": OURS, "--explain": DROP, "--extern": OURS, "--forbid": KEEP, "--force-warn": KEEP,
    "--help": DROP, "--json": OURS, "--out-dir": OURS, "--pretty": DROP, "--print": DROP,
    "--remap-path-prefix": KEEP, "--remap-path-scope": KEEP, "--sysroot": OURS, "--target": OURS,
    "--test": KEEP, "--unpretty": DROP, "--verbose": DROP, "--version": DROP, "--warn": KEEP, "-L": OURS,
    "-O": KEEP, "-Z": DROP, "-g": KEEP, "-l": DROP, "-o": OURS,
}

# -C options that describe the host machine or the native link, not the crate.
CODEGEN_DROP: frozenset[str] = frozenset({
    "code-model", "control-flow-guard", "default-linker-libraries", "dlltool", "force-frame-pointers",
    "force-unwind-tables", "incremental", "instrument-coverage", "link-arg", "link-args", "link-dead-code",
    "link-self-contained", "linker", "linker-flavor", "linker-plugin-lto", "no-redzone", "panic",
    "prefer-dynamic", "profile-generate", "profile-use", "relocation-model", "relro-level", "rpath",
    "save-temps", "soft-float", "split-debuginfo", "target-cpu", "target-feature", "instrument-mcount",
})


class ReplayError(CratecageError):
    """A crate could not be compiled for wasm32-wasip1."""


@record
class WasmCompile:
    """One rustc command for wasm32-wasip1, and where its outputs go."""

    argv: list[str]
    cwd: str
    env: dict[str, str]
    dropped: list[str] = factory(list)


def wasm_argv(recorded: list[str], *, wasm_sysroot: str, facade: str, out_dir: str, wasm_deps: str,
              extern_map: dict[str, str], emit: str, lints_capped: bool, extra_codegen: tuple[str, ...] = (),
              json_diagnostics: bool = False) -> tuple[list[str], list[str]]:
    """(argv for the wasm compile, the words dropped from the recorded one)."""
    out: list[str] = []
    dropped: list[str] = []
    externs: set[str] = set()  # the new layout names a library twice (its .rlib and .rmeta): one wasm rlib
    for name, value, words in tokens(recorded):
        action = FLAG_ACTIONS.get(name, KEEP)
        if action == KEEP:
            out.extend(words)
        elif action == DROP:
            dropped.extend(words)
        elif name == "--codegen":
            key = (value or "").split("=", 1)[0].strip()
            if key in CODEGEN_DROP:
                dropped.extend(words)
            else:
                out.extend(["-C", value or ""])
        elif name == "--cap-lints":
            if not lints_capped:
                out.extend(words)
        elif name == "--extern":
            ext_name, eq, path = (value or "").partition("=")
            if eq and path in extern_map:
                if f"{ext_name}={extern_map[path]}" not in externs:
                    externs.add(f"{ext_name}={extern_map[path]}")
                    out.extend(["--extern", f"{ext_name}={extern_map[path]}"])
            else:
                out.extend(words)  # `--extern proc_macro`, proc-macro dylibs: native on purpose
        elif name == "-L":
            kind, _, _ = (value or "").partition("=")
            if kind != "dependency":
                dropped.extend(words)
        elif name in ("--error-format", "--json") and json_diagnostics:
            if name == "--error-format":
                out.append(f"--error-format={value}")
            else:  # keep the diagnostics cargo renders, never our artifact notifications
                kept = [k for k in (value or "").split(",") if k and k != "artifacts"]
                if kept:
                    out.append("--json=" + ",".join(kept))
        # OURS flags not handled above are replaced wholesale below
    out += ["--target", WASM_TARGET, "--sysroot", wasm_sysroot, "--extern", f"std={facade}",
            "-L", f"dependency={wasm_deps}", "-L", f"dependency={os.path.dirname(facade)}",
            f"--emit={emit}", "--out-dir", out_dir]
    if not json_diagnostics:
        out += ["--error-format=json", "--json=diagnostic-rendered-ansi"]
    if lints_capped:
        out += ["--cap-lints=allow"]
    for arg in extra_codegen:
        out += ["-C", arg]
    return out, dropped
