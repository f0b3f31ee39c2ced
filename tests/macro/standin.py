"""The stand-in wasm `proc_macro` rlib (standin_proc_macro/lib.rs) for a Toolchain, built once per toolchain
and source into the system temp directory: `proc_macro_rlib(tc)` has the signature of the real crate's
builder, so a test switches by changing the one import that names it."""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from pathlib import Path

from shim.toolchain import facade

SOURCE = Path(__file__).parent / "standin_proc_macro" / "lib.rs"


def proc_macro_rlib(tc) -> str:  # type: ignore[no-untyped-def]
    facade_rlib = str(facade.facade_rlib(tc))
    key = hashlib.sha256(f"{tc.compiler.rustc}|{facade_rlib}|".encode() + SOURCE.read_bytes()).hexdigest()[:16]
    out = Path(tempfile.gettempdir(), f"cratecage-test-proc-macro-{key}")
    rlib = out / "libproc_macro.rlib"
    if rlib.is_file():
        return str(rlib)
    tmp = Path(tempfile.mkdtemp(prefix="standin-", dir=tempfile.gettempdir()))
    subprocess.run([tc.compiler.rustc, "--crate-name", "proc_macro", "--crate-type", "rlib", "--edition", "2021",
                    "--target", "wasm32-wasip1", "--sysroot", tc.wasm_sysroot, "--extern", f"std={facade_rlib}",
                    "-L", f"dependency={os.path.dirname(facade_rlib)}", "--out-dir", str(tmp), str(SOURCE)],
                   check=True, capture_output=True, text=True)
    try:
        os.rename(tmp, out)
    except OSError:
        pass  # another test session built it first
    return str(rlib)
