"""The wrapper's answer to a build-script compile: a wasm module, a launcher in the binary's place, a `.d`.

Cargo asked rustc for `<out-dir>/<crate-name><extra-filename>` (notes/cargo-and-rustc.md §7; the new build-dir
layout's `<out-dir>` is `build/<pkg>/<H>/out` and has no extra-filename: shim.cargo.layout). Instead:
  1. the build script's library dependencies are replayed for wasm32-wasip1 (shim.compile.replay);
  2. the script itself is compiled for wasm32-wasip1 with the same edition, cfgs, features and
     `-C metadata`, linked with an 8 MiB stack, into `<build dir>/cratecage/build/<pkg>-<H>/`; its diagnostics go
     to cargo as usual (minus artifact notifications, which would name the wasm file). That rustc is
     confined and sees only the package's documented variables and its grants (shim.compile.wasm_rustc), and of
     the wasm rlibs only its own closure; it writes a private directory (shim.compile.dirs), from which
     the module is moved into place: what it refused becomes `cratecage:` lines naming the policy entry;
  3. a launcher is written where cargo expects the binary: a Python script that runs the module with
     shim.build.run when cargo executes it;
  4. the `.d` dep-info lists the original sources plus the runner's own sources, the facade's and the
     policy file (all of which existed before the compile started; the `.wasm`, written during it, would
     make every later build dirty, so it is not listed), and `# env-dep:` lines only of variables the
     compile could see (`visible_env_lines`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from shim.cargo import layout
from shim.compile.dirs import CompileDirs
from shim.cargo.depinfo import read_dep_info, write_dep_info
from shim.cargo.rustc_args import native_externs
from shim.files import atomic_write
from shim.compile.replay import Replayer
from shim.compile.argv import wasm_argv
from shim.compile.argv import STACK_SIZE_ARG
from shim.compile.wasm_rustc import visible_env_lines
from shim.cargo.rustc_args import RustcArgs

if False:  # typing only
    from shim.compile import wasm_rustc

# The rooms whose modules shape a build script's wasm compile or run: editing one recompiles and reruns the
# build scripts (the commands and the pass-through path do neither).
RUNNER_ROOMS = ("build", "compile", "sandbox", "host", "confine", "toolchain", "policy", "cargo", "shim")


def _launcher_text(*, python: str, root: str, wasm: str, rustc: str, sysroot: str, module_cache: str) -> str:
    return (
        f"#!{python} -S\n"
        "# cratecage: this build script runs as WebAssembly in a sandbox; the module is\n"
        f"# {wasm}\n"
        "import sys\n"
        "sys.dont_write_bytecode = False\n"
        f"sys.path.insert(0, {root!r})\n"
        "from shim.build.run import main_build_script\n"
        f"main_build_script({wasm!r}, {rustc!r}, {sysroot!r}, {module_cache!r})\n"
    )


def runner_sources() -> list[str]:
    package = Path(__file__).resolve().parent.parent
    return sorted(str(p) for p in package.rglob("*.py")
                  if p.parent.name in RUNNER_ROOMS and "__pycache__" not in p.parts)


def compile_build_script(chain: list[str], args: RustcArgs, expanded: list[str],
                         environ: dict[str, str]) -> int:
    from shim.sandbox import enforce
    from shim.toolchain import facade
    from shim.compile import wasm_rustc
    from shim.toolchain.first_use import require_wasm
    from shim.files import cache_root

    rustc = chain[-1]
    pkg, version = environ.get("CARGO_PKG_NAME", "?"), environ.get("CARGO_PKG_VERSION", "?")
    # The policy is read before anything runs: a malformed one stops the build here, at the first unit.
    grant, policy = enforce.grant("build", pkg, version, environ)
    if grant is not None and grant.native and policy is not None:
        return compile_native(chain, args, expanded, environ, str(policy.source))
    tc = require_wasm(rustc, f"build script of {pkg} {version}", environ)
    assert tc.wasm_sysroot is not None
    facade_rlib = str(facade.facade_rlib(tc))
    cwd = os.getcwd()
    out_dir = Path(cwd, args.out_dir or ".").resolve()
    stem = layout.output_stem(args)
    cc_dir = layout.state_dir(str(out_dir))
    wasm = Path(layout.module_path(cc_dir, str(out_dir), stem))
    unit_dir = wasm.parent
    unit_dir.mkdir(parents=True, exist_ok=True)
    from shim.confine.fsview import tag_build_state

    tag_build_state(cc_dir)  # other crates' journal, audit and wasm rlibs: hidden from every build script

    tools = wasm_rustc.Tools(rustc=tc.compiler.rustc, sysroot=tc.compiler.sysroot, wasm_sysroot=tc.wasm_sysroot,
                             facade_dir=os.path.dirname(facade_rlib), host=tc.compiler.host)
    replayer = Replayer(tools=tools, facade=facade_rlib, cratecage_dir=cc_dir, environ=dict(environ), consumer=f"{pkg} {version}")
    externs = replayer.externs_for(expanded)
    scope = wasm_rustc.Scope(subject=f"build script of {pkg} {version}", package=pkg, version=version,
                             manifest_dir=environ.get("CARGO_MANIFEST_DIR") or cwd, out_dir=None,
                             build_dir=str(out_dir), sources=tuple(str(Path(cwd, i)) for i in args.inputs),
                             cargo_vars=environ, grant=grant)
    with CompileDirs(cc_dir) as dirs:  # its closure of wasm rlibs only; its dep-info private (shim.compile.dirs)
        linked = dirs.link(replayer.closure(externs.values()))
        argv, _dropped = wasm_argv(expanded, wasm_sysroot=tc.wasm_sysroot, facade=facade_rlib, out_dir=dirs.out,
                                   wasm_deps=dirs.deps, extern_map={n: linked[w] for n, w in externs.items()},
                                   emit="dep-info,link", lints_capped=False,
                                   extra_codegen=(STACK_SIZE_ARG, *facade.LINK_ARGS), json_diagnostics=True)
        done = wasm_rustc.run(tools, scope, argv, cwd=cwd, dirs=dirs, inputs=native_externs(expanded, cwd),
                              host_env=environ, dep_info=dirs.dep_info(stem), stream=True)
        for message in done.messages(scope.subject):
            print(message, file=sys.stderr)
        if done.returncode != 0:
            from shim.compile.replay_errors import explain_script_failure

            explained = explain_script_failure(scope.subject, done.stderr, pkg)
            if explained:
                print(explained, file=sys.stderr)
            return done.returncode
        built = Path(dirs.out, wasm.name)
        if not built.is_file():
            print(f"cratecage: {scope.subject}: its wasm compile left no {wasm.name}", file=sys.stderr)
            return 1
        os.replace(built, wasm)
        deps, env_lines = read_dep_info(Path(dirs.dep_info(stem)))
    (unit_dir / f"{stem}.d").unlink(missing_ok=True)  # where cratecage < 0.6 left it, values and all

    root = str(Path(__file__).resolve().parent.parent.parent)  # the directory holding shim/
    launcher = out_dir / stem
    atomic_write(launcher, _launcher_text(
        python=sys.executable, root=root, wasm=str(wasm), rustc=tc.compiler.rustc, sysroot=tc.compiler.sysroot,
        module_cache=str(cache_root(environ) / "modules")), mode=0o755)
    deps = [str(Path(cwd, d)) if not os.path.isabs(d) else d for d in deps]
    extra = runner_sources() + [str(p) for p in facade.facade_sources()]
    if policy is not None and policy.source:
        extra.append(str(policy.source))  # a grant edit changes what the compile may read and see
    write_dep_info(out_dir / f"{stem}.d", [str(launcher), str(out_dir / f"{stem}.d")], deps + extra,
                   visible_env_lines(env_lines, scope))
    return 0


def compile_native(chain: list[str], args: RustcArgs, expanded: list[str], environ: dict[str, str],
                   policy_file: str) -> int:
    """`sandbox = "native"`: the one escape hatch. The script is compiled as cargo asked, but beside the
    launcher, which names the exemption in every build's output before running it."""
    from shim.cargo.rustc_args import tokens

    cwd = os.getcwd()
    out_dir = Path(cwd, args.out_dir or ".").resolve()
    stem = layout.output_stem(args)
    native_dir = Path(layout.unit_state_dir(layout.state_dir(str(out_dir)), str(out_dir), kind="native"))
    native_dir.mkdir(parents=True, exist_ok=True)
    argv: list[str] = []
    for name, _value, words in tokens(expanded):
        argv.extend(["--out-dir", str(native_dir)] if name == "--out-dir" else words)
    pkg = environ.get("CARGO_PKG_NAME", "?")
    from shim.sandbox import audit

    audit.native(Path(layout.state_dir(str(out_dir))), "build", pkg, environ.get("CARGO_PKG_VERSION", "?"),
                 policy_file)
    note = f"cratecage: build script of {pkg} runs natively, unsandboxed (sandbox = \"native\" in {policy_file})"
    print(note, file=sys.stderr)
    done = subprocess.run([*chain, *argv], cwd=cwd, env=environ, close_fds=False)
    if done.returncode != 0:
        return done.returncode
    launcher = out_dir / stem
    atomic_write(launcher, "#!/bin/sh\n"
                      f"echo 'cargo:warning={note}'\n"
                      f"exec '{native_dir / stem}' \"$@\"\n", mode=0o755)
    deps, env_lines = read_dep_info(native_dir / f"{stem}.d")
    deps = [str(Path(cwd, d)) if not os.path.isabs(d) else d for d in deps]
    write_dep_info(out_dir / f"{stem}.d", [str(launcher), str(out_dir / f"{stem}.d")], deps, env_lines)
    return 0
