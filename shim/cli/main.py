"""The `cratecage` program: cargo's RUSTC_WRAPPER, and a few commands for people.

    cratecage <rustc> <args...>        what cargo runs for every rustc call (shim.intercept.wrapper)
    cratecage toolchain                the rustc cargo runs here: can it compile for wasm32-wasip1?
    cratecage toolchain install        make it so now (builds also do it on first use) and select it
    cratecage toolchain env            `export` lines selecting it (for a rustc that cannot be made so)
    cratecage doctor                   toolchain, wasmtime and Landlock, one line each
    cratecage policy check             find and validate the build's policy
    cratecage init [-- cargo args]     build in warn mode, propose a cratecage.toml of the grants used
    cratecage audit [target-dir]       the last sandboxed run of each crate: grants, denials

"Which role am I?" is decided here and nowhere else: a first argument that is a known command or starts
with `-` is a command for a person; anything else is the program cargo asks us to wrap. Errors become one
`cratecage:` line and an exit code here, never a traceback.
"""

from __future__ import annotations

import sys

COMMANDS = ("audit", "doctor", "init", "policy", "toolchain", "help", "version")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    wrapping = bool(args) and args[0] not in COMMANDS and not args[0].startswith("-")
    try:
        if wrapping:
            from shim.intercept import wrapper

            return wrapper.run(args)
        if not args:
            from shim import program
            from shim.errors import UsageError

            raise UsageError(
                "no arguments: cargo runs cratecage as `cratecage <rustc> <args>`",
                hint=f"set RUSTC_WRAPPER={program.path()}, or run `{program.command('--help')}`",
            )
        from shim.startup import enable_site_packages

        enable_site_packages()
        from shim.cli import commands

        return commands.dispatch(args)
    except KeyboardInterrupt:
        print("cratecage: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        from shim.errors import CratecageError  # not before: a pass-through call never needs it

        if isinstance(err, CratecageError):
            if wrapping and err.once is not None:  # met alike by every unit cargo runs: said once per cargo run
                from shim.once import report

                report(err)
            else:
                print(err.render(), file=sys.stderr)
            return err.exit_code
        # a bug of ours: still one line, the traceback only on request
        import os

        if os.environ.get("CRATECAGE_DEBUG"):
            raise
        package = os.environ.get("CARGO_PKG_NAME") if wrapping else None
        whose = f" while compiling {package} {os.environ.get('CARGO_PKG_VERSION', '')}".rstrip() if package else ""
        print(
            f"cratecage: internal error{whose}: {type(err).__name__}: {err}"
            " (rerun with CRATECAGE_DEBUG=1 for a traceback and report it)",
            file=sys.stderr,
        )
        return 70


if __name__ == "__main__":
    sys.exit(main())
