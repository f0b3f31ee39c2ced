"""cratecage: run Rust build scripts and proc macros inside a WebAssembly sandbox.

The package is entered through `shim.cli.main`, which cargo runs as `RUSTC_WRAPPER` for every rustc call.
Keep this file free of imports: it runs on the pass-through fast path.
"""

__version__ = "0.8.0"

# The line cratecage appends to `rustc -vV` output. Cargo hashes every line of that output into artifact
# metadata, so sandboxed artifacts never share hashes (or target-dir files) with native ones. Bump the
# sandbox ABI number whenever what cratecage produces for the same inputs changes.
SANDBOX_ABI = 6  # 6: proc macros are trampolines to wasm (0.8.0): never reuse a native proc-macro dylib
VERSION_LINE = f"cratecage: {__version__} (sandbox abi {SANDBOX_ABI})"

# `CRATECAGE_TRACE=<file>`: one JSON line per event (shim.trace); here so the fast path asks without importing it.
TRACE_ENV = "CRATECAGE_TRACE"
