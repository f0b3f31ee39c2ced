"""A proc-macro crate compiled for wasm32-wasip1: the guest module the macro server runs (PROTOCOL.md).

For a proc-macro unit (what cargo asked rustc for, as shim.build.script gets a build script):
  1. the crate root is rewritten (shim.macro.rewrite: its macros found, their attributes blanked, the
     export call appended), with the unit's `--cfg`s and the host's own to decide any `cfg`;
  2. the rewritten root is written into a *mirror* of the root's directory, `<unit>/mirror/<real path of
     that directory>`: every directory from `/` down to it is a real one holding symbolic links to all the
     original's entries but the next one down, so `mod x;`, `#[path]` and `include_str!("../../x")` find
     what they find natively (the kernel resolves `..` through real directories, as for the original).
     `--remap-path-prefix <mirror>=/` gives diagnostics, `file!()` and panic locations the original paths;
  3. the crate's dependency closure is replayed for wasm from the journal (shim.compile.replay, into
     wasm-deps-macro: every library linked with the wasm `proc_macro` crate), and the root compiled as a
     `cdylib` (`--crate-type proc-macro` is not a wasm crate type) with the same edition, cfgs, features and
     `-C metadata`, `--extern proc_macro=<wasm proc_macro rlib>` and the std facade, confined like every wasm
     compile (shim.compile.wasm_rustc: the crate's package and its `[permissions.build.<pkg>]` grant, as for
     any library's compile-time reads; the mirror is one of its exact inputs). Its diagnostics go to cargo.
     The root itself is read by cratecage for the rewrite, so only where that compile could read it
     (`read_root`: a `[lib] path` or a link out of the package is refused, as a build script's is);
  4. the module is moved to `<state>/macro/<unit>/<stem>.wasm` (shim.cargo.layout.macro_module_path) and
     the crate's own sources are read from the compile's dep-info, mirror paths mapped back to the originals
     (the trampoline's `.d` lists them).
Nothing here runs natively but the confined rustc: a crate that does not compile for wasm is a
`MacroCompileError`, one `cratecage:` line naming it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, NamedTuple

from shim import trace
from shim.cargo import env as compile_env
from shim.cargo import layout
from shim.cargo.rustc_args import RustcArgs, native_externs, tokens
from shim.compile import wasm_rustc
from shim.compile import shared_cache
from shim.compile.argv import wasm_argv
from shim.compile.dirs import sha256_of
from shim.errors import CratecageError
from shim.macro.rewrite import Macro, find_macros, parse_cfgs

if False:  # typing only
    from shim.compile.replay import Replayer
    from shim.toolchain.compiler import Toolchain

MIRROR = "mirror"


class MacroCompileError(CratecageError):
    """A proc-macro crate that cannot be compiled for wasm32-wasip1."""


class Guest(NamedTuple):
    wasm: str  # the module, in the unit's cratecage state directory
    sources: list[str]  # the macro crate's own source files, original paths (for the trampoline's `.d`)
    macros: list[Macro]  # what the crate root declares, in order (shim.macro.rewrite)
    env_lines: list[str]  # the compile's `# env-dep:` lines of variables it could see


def default_proc_macro(tc: Toolchain) -> str:
    """The wasm `proc_macro` rlib of a toolchain (shim/rust/proc_macro/, built once per toolchain)."""
    from shim.toolchain import proc_macro

    return str(proc_macro.proc_macro_rlib(tc))


def compile_macro_crate(chain: list[str], args: RustcArgs, expanded: list[str], environ: dict[str, str], *,
                        proc_macro_rlib: Callable[[Toolchain], str] = default_proc_macro) -> Guest:
    """The guest module of one proc-macro unit (module docstring); raises MacroCompileError."""
    from shim.compile.replay import Replayer
    from shim.confine.fsview import tag_build_state
    from shim.sandbox import enforce
    from shim.toolchain import facade
    from shim.toolchain.first_use import require_wasm

    pkg, version = environ.get("CARGO_PKG_NAME", "?"), environ.get("CARGO_PKG_VERSION", "?")
    subject = f"proc-macro crate {pkg} {version}"
    if len(args.inputs) != 1:
        raise MacroCompileError(f"{subject}: rustc was given {len(args.inputs)} crate roots, cratecage expects one")
    tc = require_wasm(chain[-1], subject, environ)
    assert tc.wasm_sysroot is not None
    facade_rlib = str(facade.facade_rlib(tc))
    pm_rlib = proc_macro_rlib(tc)
    cwd = os.getcwd()
    root = os.path.join(cwd, args.inputs[0])
    out_dir = os.path.realpath(os.path.join(cwd, args.out_dir or "."))
    stem = layout.output_stem(args)
    state = layout.state_dir(out_dir)
    wasm = layout.macro_module_path(state, out_dir, stem)
    unit_dir = os.path.dirname(wasm)
    os.makedirs(unit_dir, exist_ok=True)
    tag_build_state(state)

    grant, _policy = enforce.grant("build", pkg, version, environ)
    own_out = environ.get("OUT_DIR")  # its build script's output (rustversion's version.expr), as for a library
    scope = wasm_rustc.Scope(subject=subject, package=pkg, version=version,
                             manifest_dir=environ.get("CARGO_MANIFEST_DIR") or cwd, out_dir=own_out,
                             build_dir=out_dir, sources=(root,), cargo_vars=environ, grant=grant,
                             rustc_env=compile_env.script_rustc_env(own_out))
    text = read_root(scope, root, environ)
    rewritten = find_macros(text, f"{pkg} {version}", lambda: host_cfgs(tc.compiler.rustc, args))
    mirror_top = os.path.join(unit_dir, MIRROR)

    tools = wasm_rustc.Tools(rustc=tc.compiler.rustc, sysroot=tc.compiler.sysroot, wasm_sysroot=tc.wasm_sysroot,
                             facade_dir=os.path.dirname(facade_rlib), host=tc.compiler.host)
    replayer = Replayer(tools=tools, facade=facade_rlib, cratecage_dir=state, environ=dict(environ),
                        consumer=f"{pkg} {version}", proc_macro=pm_rlib)
    started = time.monotonic()
    externs = replayer.externs_for(expanded)  # its closure first: a ReplayError names the library
    replays_s = time.monotonic() - started
    try:
        recorded = guest_argv(expanded, args.inputs[0], build_mirror(mirror_top, root, rewritten.text))
        deps, env_lines = _compile(tools, scope, replayer, recorded, externs, pm_rlib, mirror_top=mirror_top,
                                   stem=stem, wasm=wasm, environ=environ, expanded=expanded,
                                   relative_root=not os.path.isabs(args.inputs[0]))
    finally:
        shutil.rmtree(mirror_top, ignore_errors=True)  # links to everything above the crate: not kept
    trace.event(environ, kind="macro-guest", crate=pkg, replayed=replayer.replayed, replays_s=round(replays_s, 3),
                compile_s=round(time.monotonic() - started - replays_s, 3))
    return Guest(wasm, original_sources(deps, mirror_top, cwd), list(rewritten.macros),
                 wasm_rustc.visible_env_lines(env_lines, scope))


def _compile(tools: wasm_rustc.Tools, scope: wasm_rustc.Scope, replayer: Replayer, recorded: list[str],
             externs: dict[str, str], pm_rlib: str, *, mirror_top: str, stem: str, wasm: str,
             environ: dict[str, str], expanded: list[str], relative_root: bool) -> tuple[list[str], list[str]]:
    """The confined wasm compile of the mirrored root; the module moved to `wasm`; (dep-info files,
    `# env-dep:` lines)."""
    from shim.cargo.depinfo import read_dep_info
    from shim.compile.dirs import CompileDirs
    from shim.toolchain import facade

    cwd = os.getcwd()
    with CompileDirs(os.path.dirname(replayer.wasm_deps)) as dirs:
        neutral = _shared_key(tools, scope, replayer, recorded, externs, pm_rlib, expanded, environ)
        shared, kept = shared_cache.lookup(replayer.cache, neutral, replayer.roots(), dirs.out)
        if kept is not None and f"{stem}.wasm" in kept[0] and _listing(kept[1]):
            os.replace(os.path.join(dirs.out, f"{stem}.wasm"), wasm)
            trace.event(environ, kind="macro-guest-kept", crate=scope.package)
            found = replayer.roots()  # kept with placeholders for the roots (shim.compile.shared_cache)
            return ([shared_cache.restore(d, found) for d in kept[1]["deps"]],
                    [shared_cache.restore(line, found) for line in kept[1]["env_lines"]])
        linked = dirs.link([*replayer.closure(externs.values()), pm_rlib])
        argv, _dropped = wasm_argv(recorded, wasm_sysroot=tools.wasm_sysroot, facade=replayer.facade,
                                   out_dir=dirs.out, wasm_deps=dirs.deps,
                                   extern_map={n: linked[w] for n, w in externs.items()}, emit="dep-info,link",
                                   lints_capped=False, extra_codegen=facade.LINK_ARGS, json_diagnostics=True)
        argv += ["--extern", f"proc_macro={linked[pm_rlib]}", *remap_args(mirror_top, cwd, relative_root)]
        done = wasm_rustc.run(tools, scope, argv, cwd=cwd, dirs=dirs,
                              inputs=[mirror_top, *native_externs(expanded, cwd)], host_env=environ,
                              dep_info=dirs.dep_info(stem), stream=True)
        for message in done.messages(scope.subject):
            print(message, file=sys.stderr)
        if done.returncode != 0:
            refused = ", refused at compile time (the cratecage: lines above)" if done.denials else ""
            raise MacroCompileError(f"{scope.subject} does not compile for wasm32-wasip1{refused}, so its macros "
                                    "cannot run in the sandbox (rustc's errors above)",
                                    hint=f"a `sandbox = \"native\"` entry in [permissions.macro.{scope.package}] "
                                         "runs it natively, unsandboxed")
        built = os.path.join(dirs.out, f"{stem}.wasm")
        if not os.path.isfile(built):
            raise MacroCompileError(f"{scope.subject}: its wasm compile left no {stem}.wasm")
        deps, env_lines = read_dep_info(Path(dirs.dep_info(stem)))
        found = replayer.roots()
        shared_cache.keep(replayer.cache, neutral, shared, found, env_lines, dirs.out,
                          {f"{stem}.wasm": sha256_of(built)},
                          {"deps": [shared_cache.neutral(d, found) for d in deps],
                           "env_lines": [shared_cache.neutral(line, found) for line in env_lines]})
        os.replace(built, wasm)
        return deps, env_lines


def _shared_key(tools: wasm_rustc.Tools, scope: wasm_rustc.Scope, replayer: Replayer, recorded: list[str],
                externs: dict[str, str], pm_rlib: str, expanded: list[str], environ: dict[str, str]) -> str | None:
    """The guest's key in the per-user cache of wasm compiles (shim.compile.shared_cache), or None: a macro
    crate not from a registry, or a dependency replayed without a key. The mirrored root's text is the
    rewritten one (the command line names it, in this build's directory: a placeholder in the key); its
    other sources are the registry's, unchanging."""
    from shim.cargo.rustc_args import native_externs

    if not shared_cache.from_registry(scope.manifest_dir, environ):
        return None
    root = next((w for n, _v, words in tokens(recorded) if n is None for w in words), "")
    return shared_cache.key("macro guest", "\0".join(recorded), replayer.facade, tools.wasm_sysroot,
                            wasm_rustc.scope_key(tools, scope, environ),
                            *shared_cache.stamped_keys(externs.values()), found=replayer.roots(),
                            files=[root, pm_rlib, *native_externs(expanded, os.getcwd()),
                                   *shared_cache.out_dir_files(scope.out_dir)])


def _listing(extra: dict) -> bool:
    return (isinstance(extra.get("deps"), list) and isinstance(extra.get("env_lines"), list)
            and all(isinstance(x, str) for x in [*extra["deps"], *extra["env_lines"]]))


def read_root(scope: wasm_rustc.Scope, root: str, environ: dict[str, str]) -> str:
    """The crate root's text. cratecage reads it itself, unconfined, and the compile reads the rewritten copy
    in the mirror: so only a root the confined compile could read (shim.compile.wasm_rustc.source_denial), else
    `[lib] path = "/home/me/.ssh/id_rsa"` or a `src/lib.rs` linked to it would be compiled into the guest,
    and quoted by rustc's errors."""
    denial = wasm_rustc.source_denial(scope, root, environ)
    if denial is not None:
        print(denial.render_for(scope.subject), file=sys.stderr)
        raise MacroCompileError(f"{scope.subject}: its crate root was refused (the cratecage: line above), so its "
                                "macros cannot run in the sandbox")
    try:
        return Path(root).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise MacroCompileError(f"{scope.subject}: cannot read its crate root: {err}") from None


def remap_args(mirror_top: str, cwd: str, relative_root: bool) -> list[str]:
    """Paths in the mirror shown as the originals, as cargo gave them: a crate root cargo named relative to
    the cwd (a workspace member) keeps its files relative, as natively (the last matching prefix wins)."""
    out = [f"--remap-path-prefix={mirror_top}=/"]
    if relative_root:
        out.append(f"--remap-path-prefix={mirror_top}{os.path.realpath(cwd)}/=")
    return out


def guest_argv(expanded: list[str], root: str, mirrored_root: str) -> list[str]:
    """cargo's command line for a cdylib built from the mirror: the crate root replaced, `--crate-type
    proc-macro` made `cdylib`, the sysroot's `--extern proc_macro` dropped (the wasm one is added)."""
    out: list[str] = []
    for name, value, words in tokens(expanded):
        if name is None and words == [root]:
            out.append(mirrored_root)
        elif name == "--crate-type":
            out += ["--crate-type", "cdylib"]
        elif name == "--extern" and (value or "").partition("=")[0].strip() == "proc_macro":
            continue
        else:
            out += words
    return out


def host_cfgs(rustc: str, args: RustcArgs) -> frozenset[str]:
    """The cfgs the native compile of the unit sees: its `--cfg`s and the host's `rustc --print cfg`."""
    done = subprocess.run([rustc, "--print", "cfg"], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise MacroCompileError(f"`{rustc} --print cfg` failed: {done.stderr.strip()[:200]}")
    return parse_cfgs([*args.cfgs, *done.stdout.splitlines()])


def build_mirror(top: str, root: str, text: str) -> str:
    """Write the mirror of `root`'s directory under `top` (module docstring, 2), with `text` as the root;
    returns the mirrored root's path."""
    shutil.rmtree(top, ignore_errors=True)
    real_dir = os.path.realpath(os.path.dirname(os.path.abspath(root)))
    parts = [p for p in real_dir.split(os.sep) if p]
    here, there = top, os.sep
    os.makedirs(top)
    for depth in range(len(parts) + 1):
        nxt = parts[depth] if depth < len(parts) else None
        try:
            entries = os.listdir(there)
        except OSError as err:
            raise MacroCompileError(f"cannot list {there} to mirror the crate root's directory: {err}") from None
        for entry in entries:
            if entry == nxt or (nxt is None and entry == os.path.basename(root)):
                continue
            os.symlink(os.path.join(there, entry), os.path.join(here, entry))
        if nxt is not None:
            here, there = os.path.join(here, nxt), os.path.join(there, nxt)
            os.mkdir(here)
    mirrored = os.path.join(here, os.path.basename(root))
    Path(mirrored).write_text(text, encoding="utf-8")
    return mirrored


def original_sources(deps: list[str], mirror_top: str, cwd: str) -> list[str]:
    """The dep-info's files as the originals: a path in the mirror loses the mirror's prefix (the mirror
    repeats the real path below it)."""
    out: list[str] = []
    for dep in deps:
        path = os.path.normpath(os.path.join(cwd, dep))
        if path == mirror_top or path.startswith(mirror_top + os.sep):
            path = os.path.normpath(os.sep + os.path.relpath(path, mirror_top))
        if path not in out:
            out.append(path)
    return out
