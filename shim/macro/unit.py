"""A proc-macro unit, start to finish: the wrapper's entry for a call classify names `proc-macro`.

1. The policy first (`[permissions.macro.<package>]`): a malformed one stops the build at this unit, and
   `sandbox = "native"` on the entry is the owner's one escape: the call goes on to rustc unchanged (the
   wrapper's own pass-through, confinement rules included), said on stderr for every such unit.
2. The guest (shim.macro.compile): the crate root rewritten, compiled for wasm32-wasip1 with its closure.
3. The server's launcher beside the guest module (shim.macro.server), with everything it needs baked in.
4. The trampoline (shim.macro.trampoline) where cargo expects the macro crate's dylib, and its `.d`.

Any failure is one `cratecage:` message and a failed compile: nothing falls back to the native macro.
"""

from __future__ import annotations

import os
import sys
import time

from shim import trace

if False:  # typing only
    from shim.cargo.rustc_args import RustcArgs

SERVER_LAUNCHER = "macro-server"  # beside the guest module: what the trampoline runs


def compile_proc_macro(chain: list[str], args: RustcArgs, expanded: list[str],
                       environ: dict[str, str]) -> int | None:
    """rustc's exit status for the unit (its trampoline in place), or None: compile it natively, as the
    policy says (`sandbox = "native"`)."""
    from shim.cargo.workspace import child_env
    from shim.errors import CratecageError
    from shim.files import cache_root
    from shim.macro import server
    from shim.macro.compile import compile_macro_crate
    from shim.macro.trampoline import compile_trampoline
    from shim.sandbox import enforce
    from shim.toolchain.first_use import require_wasm

    package, version = environ.get("CARGO_PKG_NAME", args.crate_name or "?"), environ.get("CARGO_PKG_VERSION", "?")
    grant, policy = enforce.grant("macro", package, version, environ)
    if grant is not None and grant.native and policy is not None:
        from shim.untrusted import shown

        print(f"cratecage: warning: the proc macros of {package} {version} run natively, outside the sandbox "
              f"(`sandbox = \"native\"` in {shown(str(policy.source))})", file=sys.stderr)
        from pathlib import Path

        from shim.cargo import layout
        from shim.sandbox import audit

        out_dir = os.path.realpath(os.path.join(os.getcwd(), args.out_dir or "."))
        audit.native(Path(layout.state_dir(out_dir)), "macro", package, version, str(policy.source))
        return None
    try:
        guest = compile_macro_crate(chain, args, expanded, environ)
        tc = require_wasm(chain[-1], f"proc-macro crate {package} {version}", environ)
        launcher = os.path.join(os.path.dirname(guest.wasm), SERVER_LAUNCHER)
        server.write_launcher(launcher, wasm=guest.wasm, module_cache=str(cache_root(environ) / "modules"),
                              package=package, version=version, rustc=tc.compiler.rustc,
                              sysroot=tc.compiler.sysroot, package_dir=environ.get("CARGO_MANIFEST_DIR", ""),
                              built_for=child_env(environ))
    except CratecageError as err:
        print(err.render(), file=sys.stderr)
        return err.exit_code or 1
    started = time.monotonic()
    try:
        return compile_trampoline(chain, args, expanded, environ, macros=guest.macros, sources=guest.sources,
                                  launcher=launcher, env_lines=guest.env_lines)
    finally:
        trace.event(environ, kind="macro-trampoline", crate=package, seconds=round(time.monotonic() - started, 3))
