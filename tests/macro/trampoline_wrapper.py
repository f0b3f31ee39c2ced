"""A test-only RUSTC_WRAPPER: the proc-macro crate named by TRAMPOLINE_CRATE is replaced by its trampoline
(shim.macro.trampoline, with the macro list of TRAMPOLINE_MACROS, JSON, and the server launcher
TRAMPOLINE_LAUNCHER); every other call runs rustc as it is. It stands in for shim.macro.unit, whose guest
compile and server are other pieces."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from shim.cargo.rustc_args import expand_argfiles, parse, split_chain  # noqa: E402


def main() -> int:
    chain, rest = split_chain(sys.argv[1:], cargo_env=True)
    expanded = expand_argfiles(rest)
    args = parse(expanded)
    if "proc-macro" not in args.crate_types or args.crate_name != os.environ.get("TRAMPOLINE_CRATE"):
        os.execvp(chain[0], [*chain, *rest])
    from shim.macro.trampoline import compile_trampoline

    macros = [tuple(m[:3]) + (tuple(m[3]),) for m in json.loads(os.environ["TRAMPOLINE_MACROS"])]
    root = os.path.dirname(os.path.abspath(args.input))
    sources = [os.path.join(root, name) for name in sorted(os.listdir(root)) if name.endswith(".rs")]
    return compile_trampoline(chain, args, expanded, dict(os.environ), macros=macros, sources=sources,
                              launcher=os.environ["TRAMPOLINE_LAUNCHER"])


if __name__ == "__main__":
    sys.exit(main())
