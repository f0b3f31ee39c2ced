"""Compiling for wasm32-wasip1 what cargo compiled natively: a build script and its dependency closure.

`wasm_argv` turns a recorded rustc command line into one for the sandbox, by two tables:
  - `FLAG_ACTIONS`: what happens to each rustc flag (keep, drop, or replaced by cratecage's own value);
  - `CODEGEN_ACTIONS`: which `-C` options are host-only (target-cpu, linker, link-arg, relocation-model,
    incremental, ...) and are dropped (notes/cargo-and-rustc.md, "Hazards when replaying host units").
Every compile gets `--target wasm32-wasip1 --sysroot <wasm sysroot>` and `--extern std=<facade>` (so all
crates of one wasm graph agree on `std::process::Command`), and its `--extern`s and `-L dependency=` point
at the wasm copies. Proc-macro externs stay native: rustc loads them for any target.

The facade's directory (it holds the facade alone) is a `-L dependency=` of every compile too. `--extern`
puts `std` in the extern prelude even of a `#![no_std]` crate, which natively has none there; an intra-doc
link such as zerocopy's `[std::io::Read]` then loads the facade, and the crate's rlib depends on it. A
`no_std` crate that uses it (ppv-lite86) never loads std itself, so rustc looks for that dependency by its
hash on the search path, found only the wasm sysroot's real std and stopped (E0460, or E0463 "can't find
crate for `zerocopy`"). On the search path, the dependency resolves to the same facade rlib (one crate
identity for every compile: shim.facade), wherever it was recorded; a crate compiled against the real std
still finds that in the sysroot, by its own hash. The faithful alternative, `--extern noprelude:std=...`
(std only for crates that ask for it, as natively), needs `-Z unstable-options`, which stable rustc refuses;
and which crates ask for std cannot be known before compiling (`#![cfg_attr(..., no_std)]`, `extern crate
std` under a feature).

Which libraries a replay links are wasm32-wasip1's (`_as_on_wasm`): where a library's dependencies there
differ from the host's (shim.wasm_graph: `cargo metadata --filter-platform`, once per Cargo.lock), its
host-only `--extern`s are dropped, a wasm-only dependency is compiled from its downloaded source with a
command line like cargo's (`_from_source`; one with a build script from its host compile, the script run
again for wasm), and a library with a build script gets that script's answer for wasm32-wasip1
(shim.script_rerun). Where they agree (most libraries), the recorded compile is used as it is.

`Replayer.wasm_rlib` replays a library (and first its own dependencies) from the journal (shim.journal) into
`<target>/cratecage/wasm-deps/`, once per artifact under a file lock, again whenever the native rlib, its
recorded command line or what its compile may read and see changes, or when a file it published no longer
has the sha256 its stamp records (`_fresh`: whatever replaced it is never linked). No compile reads or
writes wasm-deps itself (shim.compile_dirs): each gets hard links to its own closure (`closure`) and a
private output directory, from which cratecage publishes the rlib (no rmeta: nothing reads one); the
dep-info, which holds the values of the variables the compile read, stays private and is dropped.
Each replay is a confined compile (shim.wasm_rustc) with the library's own package directory, OUT_DIR,
recorded cargo variables, its build script's `rustc-env` and its own grant
(`[permissions.build.<library package>]`); the values its native compile read (`# env-dep:` lines of the
native `.d`) are never copied. Replays run one after another inside the build-script unit's own jobserver
token (the wrapper is that unit); their diagnostics are ours to read, not cargo's: lints are capped and
only a failure is reported, with the crate and the error that caused it (shim.replay_errors).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from shim import compile_env, facade, journal, layout, replay_errors, trace, wasm_graph, wasm_rustc
from shim.compile_dirs import DEP_INFO_SUFFIX, CompileDirs, sha256_of
from shim.errors import CratecageError
from shim.files import atomic_write
from shim.rustc_args import RustcArgs, parse, tokens

WASM_TARGET = "wasm32-wasip1"
STACK_SIZE_ARG = "link-arg=-zstack-size=8388608"  # 8 MiB, so deep recursion behaves as natively

KEEP, DROP, OURS = "keep", "drop", "ours"
# By the flag's first name in shim.rustc_args.FLAGS; None is an input or a word the table does not know.
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


@dataclass
class WasmCompile:
    """One rustc command for wasm32-wasip1, and where its outputs go."""

    argv: list[str]
    cwd: str
    env: dict[str, str]
    dropped: list[str] = field(default_factory=list)


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


class Replayer:
    """Replays libraries for wasm for one build (one target directory), with one compiler and facade."""

    def __init__(self, *, tools: wasm_rustc.Tools, facade: str, cratecage_dir: str, environ: dict[str, str],
                 consumer: str = "?", workspace_dir: str | None = None) -> None:
        self.tools = tools
        self.rustc = tools.rustc
        self.wasm_sysroot = tools.wasm_sysroot
        self.facade = facade
        self.wasm_deps = os.path.join(cratecage_dir, "wasm-deps")
        self.environ = environ
        self.consumer = consumer  # "<package> <version>" of the build script being compiled, for messages
        self.replayed: list[str] = []  # crate names compiled by this process (tests count them)
        self._closures: dict[str, tuple[str, ...]] = {}  # wasm rlib -> the wasm rlibs it needs, transitively
        self._done: dict[str, str] = {}  # native rlib -> its wasm rlib, once per process
        self._swept = False
        # the workspace whose wasm graph (shim.wasm_graph) applies; None: the build's (shim.workspace)
        self.workspace_dir = workspace_dir
        self._graph: wasm_graph.Graph | None = None
        # (manifest dir, features) -> wasm rlib of a library cargo never compiled
        self._synthesised: dict[tuple[str, frozenset[str]], str] = {}

    def externs_for(self, recorded: list[str], stack: tuple[str, ...] = ()) -> dict[str, str]:
        """native extern path -> wasm rlib, for every library extern of a command line."""
        mapping: dict[str, str] = {}
        for _name, path in parse(recorded).externs:
            if path in self._synthesised.values():
                mapping[path] = path  # compiled from source for wasm: already the wasm rlib
            elif path and (path.endswith(".rlib") or path.endswith(".rmeta")):
                mapping[path] = self.wasm_rlib(path, stack)
        return mapping

    def closure(self, wasm_rlibs: Iterable[str]) -> list[str]:
        """The files a compile with these `--extern`s reads: them and, transitively, their own wasm rlibs
        and native proc-macro libraries."""
        out: dict[str, None] = {}
        for rlib in wasm_rlibs:
            out[rlib] = None
            out.update(dict.fromkeys(self._closures.get(rlib, ())))
        return list(out)

    def wasm_rlib(self, native: str, stack: tuple[str, ...] = (), *, rerun: bool = False) -> str:
        rlib = native[:-len(".rmeta")] + ".rlib" if native.endswith(".rmeta") else native
        name = os.path.basename(rlib)
        if rlib in stack:
            raise ReplayError(f"build script of {self.consumer}: dependency cycle while replaying {name} for wasm")
        if rlib in self._done:  # a diamond, or the new layout's `--extern x=libx.rlib --extern x=libx.rmeta`
            return self._done[rlib]
        entry = journal.load(rlib)
        if entry is None:
            raise ReplayError(
                f"build script of {self.consumer}: no record of how its build-dependency {name} was compiled, "
                f"so it cannot be compiled for wasm",
                hint="the target directory predates this cratecage: run `cargo clean` once and build again",
            )
        entry = self._as_on_wasm(entry, rlib, stack + (rlib,), rerun=rerun)
        return self._replay(entry, rlib, name, stack)

    def _replay(self, entry: journal.Entry, rlib: str, name: str, stack: tuple[str, ...], *,
                native: bool = True) -> str:
        """Compile one library for wasm (its dependencies first) unless its stamp says it is fresh. `rlib`:
        the native rlib it replays, or (`native` False) its own wasm rlib, for a library compiled from its
        source (shim.wasm_graph.synth_argv)."""
        externs = self.externs_for(entry.argv, stack + (rlib,))
        out = os.path.join(self.wasm_deps, name)
        from shim.build_script import native_externs

        # what a compile that links it reads: its wasm rlibs and the native proc macros they were built with
        # (rustc loads a dependency's proc-macro crates by the `-L dependency=` search)
        self._closures[out] = tuple(self.closure([*externs.values(), *native_externs(entry.argv, entry.cwd)]))
        scope = self._scope(entry, rlib)
        key = self._stamp(entry.raw, rlib if native else None, externs,
                          wasm_rustc.scope_key(self.tools, scope, self.environ))
        os.makedirs(self.wasm_deps, exist_ok=True)
        self._sweep()
        with open(os.path.join(self.wasm_deps, f".{name}.lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self._fresh(out, key):
                self._done[rlib] = out
                return out
            digests = self._compile(entry, externs, rlib, scope, native=native)
            if name not in digests:
                raise ReplayError(f"{scope.subject}: its wasm compile left no {name}")
            atomic_write(out + ".stamp", json.dumps({"key": key, "outputs": digests}, sort_keys=True))
        self._done[rlib] = out
        return out

    # -- the graph on wasm32-wasip1 (shim.wasm_graph) ---------------------------------------------------

    def graph(self) -> wasm_graph.Graph:
        """The build's dependency graph on wasm, read once per process (cached per Cargo.lock)."""
        if self._graph is None:
            from shim.workspace import ROOT_ENV, workspace_root_if_known

            # never the compile's cwd: cargo compiles a registry crate in its own package directory, and
            # `cargo metadata` there would read the crate's own `.cargo/config.toml` (a `rustc-wrapper`
            # it runs natively, a credential provider) and answer with the crate's graph, not the build's
            root = self.workspace_dir or workspace_root_if_known(self.environ)
            if root is None:
                raise ReplayError(f"build script of {self.consumer}: cratecage cannot tell which workspace this "
                                  f"build belongs to, so it cannot read its dependency graph for "
                                  f"{wasm_graph.WASM_TARGET}",
                                  hint=f"set {ROOT_ENV} to the absolute path of your workspace root")
            try:
                self._graph = wasm_graph.load(str(root), os.path.dirname(self.wasm_deps),
                                              cargo=self.environ.get("CARGO") or "cargo", rustc=self.rustc,
                                              environ=self.environ)
            except wasm_graph.GraphError as err:
                raise ReplayError(f"build script of {self.consumer}: {err.message}",
                                  hint="its build-dependencies are compiled for wasm32-wasip1 with their "
                                       "dependencies there; `cargo metadata` must be able to read the "
                                       "workspace (and download what only wasm needs)") from err
        return self._graph

    def _as_on_wasm(self, entry: journal.Entry, rlib: str, stack: tuple[str, ...], *,
                    rerun: bool = False) -> journal.Entry:
        """The recorded compile with the library's dependencies on wasm: host-only `--extern`s dropped,
        wasm-only ones compiled from their source and added, and its build script's answer for wasm
        (shim.script_rerun; `rerun`: even where the graphs agree); the same entry where the graphs agree
        (most libraries), so nothing is compiled or run again for them."""
        graph = self.graph()
        manifest_dir = entry.env.get("CARGO_MANIFEST_DIR")
        pkg = graph.get(manifest_dir) if manifest_dir else None
        if pkg is None:  # outside the wasm graph (a target-specific build-dependency): as on the host
            return entry
        enabled = wasm_graph.enabled_features(entry.argv)
        plan = wasm_graph.plan(parse(entry.argv).externs, wasm_graph.wasm_deps(pkg, enabled))
        if plan.agrees and not rerun:
            return entry
        if entry.env.get("OUT_DIR"):
            from shim import script_rerun

            entry = script_rerun.on_wasm(self, entry, pkg)
        added = [(name, self._from_source(graph, d, stack, wasm_graph.dep_features(pkg, enabled, name)))
                 for name, d in plan.add]
        argv = wasm_graph.without_externs(entry.argv, plan.drop)
        for name, path in added:
            argv += ["--extern", f"{name}={path}"]
        trace.event(self.environ, kind="replay-graph", crate=pkg.lib_name, dropped=list(plan.drop),
                    added=[name for name, _ in added])
        raw = entry.raw + b"\0wasm-graph\0" + json.dumps([plan.drop, added]).encode()
        return journal.Entry(entry.cwd, argv, raw, entry.env)

    def _from_source(self, graph: wasm_graph.Graph, manifest_dir: str, stack: tuple[str, ...],
                     requested: set[str]) -> str:
        """The wasm rlib of a library cargo never compiled (a dependency on wasm only) with the features its
        dependent asks for, compiled from its downloaded source like any replay (confined, its own grant),
        its own dependencies first."""
        pkg = graph[manifest_dir]
        features = wasm_graph.close_features(pkg, requested)
        done = (manifest_dir, frozenset(features))
        if done in self._synthesised:
            return self._synthesised[done]
        whose = f"build script of {self.consumer}: its build-dependencies need {pkg.title} on wasm32-wasip1 only"
        if manifest_dir in stack:
            raise ReplayError(f"{whose}: dependency cycle while compiling it for wasm")
        if pkg.lib_kind not in ("lib", "rlib"):
            raise ReplayError(f"{whose}, a {pkg.lib_kind or 'package without a library'} that cargo never "
                              f"compiled: cratecage cannot compile it for wasm32-wasip1")
        if pkg.build_script and pkg.build_deps:  # its host compile, if cargo made one, its script run for wasm
            journal_dir = os.path.join(os.path.dirname(self.wasm_deps), journal.JOURNAL_DIR)
            native = journal.find(journal_dir, manifest_dir)
            if native is not None:
                self._synthesised[done] = out = self.wasm_rlib(native, stack, rerun=True)
                return out
        script_out, output = None, b""
        if pkg.build_script:  # compiled and run from its source (shim.script_rerun.from_source): the same
            # whether or not cargo compiled it for the host, whatever the order of this build's units
            from shim import script_rerun

            script_out, output = script_rerun.from_source(self, pkg, features)
        externs = [(name, self._from_source(graph, d, stack + (manifest_dir,),
                                            wasm_graph.dep_features(pkg, features, name)))
                   for name, d in wasm_graph.wasm_deps(pkg, features)]
        name, argv = wasm_graph.synth_argv(pkg, features, externs, self.wasm_deps,
                                           cfgs=_printed_cfgs(output))
        out = os.path.join(self.wasm_deps, name)
        self._synthesised[done] = out
        env = wasm_graph.synth_env(pkg, self.environ.get("CARGO"))
        if script_out:
            env["OUT_DIR"] = script_out
        entry = journal.Entry(pkg.manifest_dir, argv, json.dumps(argv).encode() + b"\0" + output, env)
        return self._replay(entry, out, name, stack, native=False)

    def _sweep(self) -> None:
        """Dep-info that cratecage < 0.6 left in wasm-deps held the values of granted variables: gone."""
        if self._swept:
            return
        self._swept = True
        for name in os.listdir(self.wasm_deps):
            if name.endswith(DEP_INFO_SUFFIX):
                try:
                    os.unlink(os.path.join(self.wasm_deps, name))
                except OSError:
                    pass

    def _scope(self, entry: journal.Entry, rlib: str) -> wasm_rustc.Scope:
        """The library's own package, OUT_DIR, environment and grant (shim.wasm_rustc says why its own)."""
        from shim import enforce

        args = parse(entry.argv)
        package = entry.env.get("CARGO_PKG_NAME") or args.crate_name or os.path.basename(rlib)
        version = entry.env.get("CARGO_PKG_VERSION", "?")
        manifest_dir = entry.env.get("CARGO_MANIFEST_DIR") or entry.cwd
        grant, _policy = enforce.grant("build", package, version, self.environ, manifest_dir)
        out_dir = entry.env.get("OUT_DIR")
        return wasm_rustc.Scope(
            subject=f"build-dependency {package} {version} (of the build script of {self.consumer})",
            package=package, version=version, manifest_dir=manifest_dir,
            out_dir=out_dir, build_dir=os.path.dirname(rlib),
            sources=tuple(os.path.join(entry.cwd, i) for i in args.inputs), cargo_vars=entry.env, grant=grant,
            rustc_env=compile_env.script_rustc_env(out_dir))

    def _stamp(self, raw: bytes, rlib: str | None, externs: dict[str, str], scope_key: str) -> str:
        h = hashlib.sha256(raw)
        try:
            st = os.stat(rlib or "")
            h.update(f"|{st.st_size}|{st.st_mtime_ns}".encode())
        except OSError:
            h.update(b"|missing" if rlib else b"|from source")
        h.update(f"|{self.facade}|{self.wasm_sysroot}|{scope_key}".encode())
        for dep in sorted(externs.values()):
            try:
                h.update(Path(dep + ".stamp").read_bytes())
            except OSError:
                h.update(dep.encode())
        return h.hexdigest()

    @staticmethod
    def _fresh(out: str, key: str) -> bool:
        """The stamp's key matches, and every output it lists still has the sha256 it had when published
        (a replaced rlib is compiled again, never linked)."""
        try:
            stamp = json.loads(Path(out + ".stamp").read_text())
        except (OSError, ValueError):
            return False
        outputs = stamp.get("outputs") if isinstance(stamp, dict) and stamp.get("key") == key else None
        if not isinstance(outputs, dict) or os.path.basename(out) not in outputs:
            return False
        for name, digest in outputs.items():
            if os.sep in name or name.startswith("."):
                return False
            try:
                if sha256_of(os.path.join(os.path.dirname(out), name)) != digest:
                    return False
            except OSError:
                return False
        return True

    def _compile(self, entry: journal.Entry, externs: dict[str, str], rlib: str,
                 scope: wasm_rustc.Scope, *, native: bool = True) -> dict[str, str]:
        """Compile into a private directory, then publish the outputs (never the dep-info) into wasm-deps;
        file name -> sha256 of each."""
        from shim.build_script import native_externs

        args = parse(entry.argv)
        with CompileDirs(os.path.dirname(self.wasm_deps)) as dirs:
            linked = dirs.link(self.closure(externs.values()))
            argv, dropped = wasm_argv(entry.argv, wasm_sysroot=self.wasm_sysroot, facade=self.facade,
                                      out_dir=dirs.out, wasm_deps=dirs.deps,
                                      extern_map={native: linked[wasm] for native, wasm in externs.items()},
                                      emit="dep-info,link", lints_capped=True,
                                      extra_codegen=facade.LINK_ARGS)  # a cdylib crate type links here
            done = wasm_rustc.run(self.tools, scope, argv, cwd=entry.cwd, dirs=dirs,
                                  inputs=native_externs(entry.argv, entry.cwd), host_env=self.environ,
                                  dep_info=dirs.dep_info(layout.output_stem(args)), stream=False)
            digests = dirs.publish(self.wasm_deps) if done.returncode == 0 else {}
        for message in done.messages(scope.subject):
            print(message, file=sys.stderr)
        crate = args.crate_name or os.path.basename(rlib)
        if dropped:
            trace.event(self.environ, kind="replay-dropped", crate=crate, flags=dropped)
        if done.returncode != 0:
            if native and any(d.fatal for d in done.denials):
                forget_native(rlib, args, entry.env.get("CARGO_PKG_NAME", ""))
            refused = " (refused at compile time, see the cratecage: lines above)" if done.denials else ""
            found = replay_errors.diagnose(done.stderr, replay_errors.target_dependencies(scope.manifest_dir))
            cause = "" if found.kind == replay_errors.OTHER else f"{found.cause}\n    "
            raise ReplayError(
                f"{scope.subject} does not compile for wasm32-wasip1{refused}: {cause}"
                + found.error.replace("\n", "\n    "),
                hint=replay_errors.hint(found, self.consumer.split(" ")[0]),
            )
        self.replayed.append(crate)
        trace.event(self.environ, kind="replay", crate=crate, rlib=os.path.basename(rlib))
        return digests


def _printed_cfgs(output: bytes) -> list[str]:
    from shim.script_rerun import printed_cfgs

    return printed_cfgs(output) if output else []


def forget_native(rlib: str, args: RustcArgs, package: str) -> None:
    """Remove cargo's native build of a library whose wasm replay was refused a file or variable: cargo
    compiled it natively, unconfined, before anyone knew it was a build-dependency, so its rlib, metadata,
    dep-info, cached diagnostics and incremental state hold what the wasm compile just refused (a host
    file's bytes, a variable's value). The build fails anyway; cargo compiles the library again next time."""
    import glob
    import shutil

    out_dir = os.path.dirname(rlib)
    stem = layout.output_stem(args)
    for path in (rlib, rlib[:-len(".rlib")] + ".rmeta", os.path.join(out_dir, stem + ".d")):
        try:
            os.unlink(path)
        except OSError:
            pass
    incremental = args.codegen_value("incremental") or os.path.join(layout.profile_dir(out_dir), "incremental")
    doomed = glob.glob(os.path.join(incremental, f"{glob.escape(args.crate_name or '')}-*"))
    fingerprint = layout.fingerprint_dir(out_dir, package, args.extra_filename)
    if fingerprint:
        doomed.append(fingerprint)
    for directory in doomed:
        shutil.rmtree(directory, ignore_errors=True)
