"""Compiling for wasm32-wasip1 what cargo compiled natively: a build script and its dependency closure.

`wasm_argv` (shim.compile.argv) turns a recorded rustc command line into one for the sandbox.
Every compile gets `--target wasm32-wasip1 --sysroot <wasm sysroot>` and `--extern std=<facade>` (so all
crates of one wasm graph agree on `std::process::Command`), and its `--extern`s and `-L dependency=` point
at the wasm copies. Proc-macro externs stay native: rustc loads them for any target.

The facade's directory (it holds the facade alone) is a `-L dependency=` of every compile too. `--extern`
puts `std` in the extern prelude even of a `#![no_std]` crate, which natively has none there; an intra-doc
link such as zerocopy's `[std::io::Read]` then loads the facade, and the crate's rlib depends on it. A
`no_std` crate that uses it (ppv-lite86) never loads std itself, so rustc looks for that dependency by its
hash on the search path, found only the wasm sysroot's real std and stopped (E0460, or E0463 "can't find
crate for `zerocopy`"). On the search path, the dependency resolves to the same facade rlib (one crate
identity for every compile: shim.toolchain.facade), wherever it was recorded; a crate compiled against the real std
still finds that in the sysroot, by its own hash. The faithful alternative, `--extern noprelude:std=...`
(std only for crates that ask for it, as natively), needs `-Z unstable-options`, which stable rustc refuses;
and which crates ask for std cannot be known before compiling (`#![cfg_attr(..., no_std)]`, `extern crate
std` under a feature).

Which libraries a replay links are wasm32-wasip1's (`_as_on_wasm`): where a library's dependencies there
differ from the host's (shim.compile.wasm_graph: `cargo metadata --filter-platform`, once per Cargo.lock), its
host-only `--extern`s are dropped, a wasm-only dependency is compiled from its downloaded source with a
command line like cargo's (`_from_source`; one with a build script from its host compile, the script run
again for wasm), and a library with a build script gets that script's answer for wasm32-wasip1
(shim.compile.script_rerun). Where they agree (most libraries), the recorded compile is used as it is.

`Replayer.wasm_rlib` replays a library (and first its own dependencies) from the journal (shim.cargo.journal) into
`<target>/cratecage/wasm-deps/`, once per artifact under a file lock, again whenever the native rlib, its
recorded command line or what its compile may read and see changes, or when a file it published no longer
has the sha256 its stamp records (`_fresh`: whatever replaced it is never linked). A registry library's
replay is kept per user too (shim.compile.shared_cache, keyed by content: the native rlib, the command line,
the toolchain, the grant, its wasm dependencies' keys): a clean build copies it instead of compiling. No compile reads or
writes wasm-deps itself (shim.compile.dirs): each gets hard links to its own closure (`closure`) and a
private output directory, from which cratecage publishes the rlib (no rmeta: nothing reads one); the
dep-info, which holds the values of the variables the compile read, stays private and is dropped.
Each replay is a confined compile (shim.compile.wasm_rustc) with the library's own package directory, OUT_DIR,
recorded cargo variables, its build script's `rustc-env` and its own grant
(`[permissions.build.<library package>]`); the values its native compile read (`# env-dep:` lines of the
native `.d`) are never copied. Replays run one after another inside the build-script unit's own jobserver
token (the wrapper is that unit); their diagnostics are ours to read, not cargo's: lints are capped and
only a failure is reported, with the crate and the error that caused it (shim.compile.replay_errors).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Iterable

from shim import trace
from shim.cargo import env as compile_env
from shim.cargo import journal, layout
from shim.cargo.rustc_args import RustcArgs, parse
from shim.compile import shared_cache, wasm_graph, wasm_rustc
from shim.compile.argv import ReplayError, wasm_argv
from shim.compile.dirs import DEP_INFO_SUFFIX, CompileDirs, sha256_of
from shim.files import atomic_write
from shim.toolchain import facade


class Replayer:
    """Replays libraries for wasm for one build (one target directory), with one compiler and facade."""

    def __init__(self, *, tools: wasm_rustc.Tools, facade: str, cratecage_dir: str, environ: dict[str, str],
                 consumer: str = "?", workspace_dir: str | None = None, proc_macro: str | None = None) -> None:
        self.tools = tools
        self.rustc = tools.rustc
        self.wasm_sysroot = tools.wasm_sysroot
        self.facade = facade
        # `proc_macro`: the wasm `proc_macro` rlib every library is linked with, for a proc-macro crate's closure
        # (shim.macro.compile). Those rlibs differ from a build script's (proc-macro2 finds a working
        # `proc_macro`), so they are kept apart, in wasm-deps-macro.
        self.proc_macro = proc_macro
        self.wasm_deps = os.path.join(cratecage_dir, "wasm-deps-macro" if proc_macro else "wasm-deps")
        self.environ = environ
        self.consumer = consumer  # "<package> <version>" of the build script being compiled, for messages
        self.whose = f"proc-macro crate {consumer}" if proc_macro else f"build script of {consumer}"
        self.replayed: list[str] = []  # crate names compiled by this process (tests count them)
        self._closures: dict[str, tuple[str, ...]] = {}  # wasm rlib -> the wasm rlibs it needs, transitively
        self._done: dict[str, str] = {}  # native rlib -> its wasm rlib, once per process
        self._swept = False
        # the workspace whose wasm graph (shim.compile.wasm_graph) applies; None: the build's (shim.cargo.workspace)
        self.workspace_dir = workspace_dir
        self._graph: wasm_graph.Graph | None = None
        # (manifest dir, features) -> wasm rlib of a library cargo never compiled
        self._synthesised: dict[tuple[str, frozenset[str]], str] = {}
        self._roots: shared_cache.Roots | None = None
        from shim.files import cache_dir

        self.cache = cache_dir(environ)  # the per-user cache of wasm compiles (shim.compile.shared_cache)

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
            raise ReplayError(f"{self.whose}: dependency cycle while replaying {name} for wasm")
        if rlib in self._done:  # a diamond, or the new layout's `--extern x=libx.rlib --extern x=libx.rmeta`
            return self._done[rlib]
        entry = journal.load(rlib)
        if entry is None:
            raise ReplayError(
                f"{self.whose}: no record of how its build-dependency {name} was compiled, "
                f"so it cannot be compiled for wasm",
                hint="the target directory predates this cratecage: run `cargo clean` once and build again",
            )
        entry = self._as_on_wasm(entry, rlib, stack + (rlib,), rerun=rerun)
        return self._replay(entry, rlib, name, stack)

    def _replay(self, entry: journal.Entry, rlib: str, name: str, stack: tuple[str, ...], *,
                native: bool = True) -> str:
        """Compile one library for wasm (its dependencies first) unless its stamp says it is fresh. `rlib`:
        the native rlib it replays, or (`native` False) its own wasm rlib, for a library compiled from its
        source (shim.compile.wasm_graph.synth_argv)."""
        externs = self.externs_for(entry.argv, stack + (rlib,))
        out = os.path.join(self.wasm_deps, name)
        from shim.cargo.rustc_args import native_externs

        # what a compile that links it reads: its wasm rlibs and the native proc macros they were built with
        # (rustc loads a dependency's proc-macro crates by the `-L dependency=` search)
        self._closures[out] = tuple(self.closure([*externs.values(), *native_externs(entry.argv, entry.cwd)]))
        scope = self._scope(entry, rlib)
        scope_key = wasm_rustc.scope_key(self.tools, scope, self.environ)
        key = self._stamp(entry.raw, rlib if native else None, externs, scope_key)
        os.makedirs(self.wasm_deps, exist_ok=True)
        self._sweep()
        with open(os.path.join(self.wasm_deps, f".{name}.lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self._fresh(out, key):
                self._done[rlib] = out
                return out
            neutral = self._shared_key(entry, rlib, externs, scope_key, scope.manifest_dir) if native else None
            shared, kept = shared_cache.lookup(self.cache, neutral, self.roots(), self.wasm_deps)
            if kept is not None and name in kept[0]:
                digests = kept[0]
                trace.event(self.environ, kind="replay-kept", crate=entry.env.get("CARGO_CRATE_NAME", name),
                            rlib=name)
            else:
                digests, env_lines = self._compile(entry, externs, rlib, scope, native=native)
                if name not in digests:
                    raise ReplayError(f"{scope.subject}: its wasm compile left no {name}")
                shared = shared_cache.keep(self.cache, neutral, shared, self.roots(), env_lines, self.wasm_deps,
                                           digests)
            atomic_write(out + ".stamp", json.dumps({"key": key, "outputs": digests, "shared": shared},
                                                    sort_keys=True))
        self._done[rlib] = out
        return out

    # -- the graph on wasm32-wasip1 (shim.compile.wasm_graph) ---------------------------------------------------

    def graph(self) -> wasm_graph.Graph:
        """The build's dependency graph on wasm, read once per process (cached per Cargo.lock)."""
        if self._graph is None:
            from shim.cargo.workspace import ROOT_ENV, workspace_root_if_known

            # never the compile's cwd: cargo compiles a registry crate in its own package directory, and
            # `cargo metadata` there would read the crate's own `.cargo/config.toml` (a `rustc-wrapper`
            # it runs natively, a credential provider) and answer with the crate's graph, not the build's
            root = self.workspace_dir or workspace_root_if_known(self.environ)
            if root is None:
                raise ReplayError(f"{self.whose}: cratecage cannot tell which workspace this "
                                  f"build belongs to, so it cannot read its dependency graph for "
                                  f"{wasm_graph.WASM_TARGET}",
                                  hint=f"set {ROOT_ENV} to the absolute path of your workspace root")
            try:
                self._graph = wasm_graph.load(str(root), os.path.dirname(self.wasm_deps),
                                              cargo=self.environ.get("CARGO") or "cargo", rustc=self.rustc,
                                              environ=self.environ)
            except wasm_graph.GraphError as err:
                raise ReplayError(f"{self.whose}: {err.message}",
                                  hint="its build-dependencies are compiled for wasm32-wasip1 with their "
                                       "dependencies there; `cargo metadata` must be able to read the "
                                       "workspace (and download what only wasm needs)") from err
        return self._graph

    def _as_on_wasm(self, entry: journal.Entry, rlib: str, stack: tuple[str, ...], *,
                    rerun: bool = False) -> journal.Entry:
        """The recorded compile with the library's dependencies on wasm: host-only `--extern`s dropped,
        wasm-only ones compiled from their source and added, and its build script's answer for wasm
        (shim.compile.script_rerun; `rerun`: even where the graphs agree); the same entry where the graphs agree
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
            from shim.compile import script_rerun

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
        whose = f"{self.whose}: its build-dependencies need {pkg.title} on wasm32-wasip1 only"
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
        if pkg.build_script:  # compiled and run from its source (shim.compile.script_rerun.from_source): the same
            # whether or not cargo compiled it for the host, whatever the order of this build's units
            from shim.compile import script_rerun

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
        """The library's own package, OUT_DIR, environment and grant (shim.compile.wasm_rustc says why its own)."""
        from shim.sandbox import enforce

        args = parse(entry.argv)
        package = entry.env.get("CARGO_PKG_NAME") or args.crate_name or os.path.basename(rlib)
        version = entry.env.get("CARGO_PKG_VERSION", "?")
        manifest_dir = entry.env.get("CARGO_MANIFEST_DIR") or entry.cwd
        grant, _policy = enforce.grant("build", package, version, self.environ, manifest_dir)
        out_dir = entry.env.get("OUT_DIR")
        return wasm_rustc.Scope(
            subject=f"build-dependency {package} {version} (of the {self.whose})",
            package=package, version=version, manifest_dir=manifest_dir,
            out_dir=out_dir, build_dir=os.path.dirname(rlib),
            sources=tuple(os.path.join(entry.cwd, i) for i in args.inputs), cargo_vars=entry.env, grant=grant,
            rustc_env=compile_env.script_rustc_env(out_dir))

    def _shared_key(self, entry: journal.Entry, rlib: str, externs: dict[str, str], scope_key: str,
                    manifest_dir: str) -> str | None:
        """The key of this replay in the per-user cache (shim.compile.shared_cache), or None: not a registry
        crate, or a wasm dependency without a key of its own. By content: the native rlib and the native
        proc macros it was compiled with (a trampoline's bytes name its guest's path)."""
        from shim.cargo.rustc_args import native_externs

        if not shared_cache.from_registry(manifest_dir, self.environ):
            return None
        return shared_cache.key(entry.raw, self.facade, self.wasm_sysroot, scope_key, self.proc_macro or "",
                                *shared_cache.stamped_keys(externs.values()), found=self.roots(),
                                files=[rlib, *([self.proc_macro] if self.proc_macro else []),
                                       *native_externs(entry.argv, entry.cwd),
                                       *shared_cache.out_dir_files(entry.env.get("OUT_DIR"))])

    def roots(self) -> shared_cache.Roots:
        """This build's directory and workspace, which the per-user cache's keys hold as placeholders."""
        if self._roots is None:
            from shim.cargo.workspace import WorkspaceUnknown, workspace_root_if_known

            try:
                workspace = self.workspace_dir or workspace_root_if_known(self.environ)
            except WorkspaceUnknown:
                workspace = None
            self._roots = shared_cache.roots(os.path.dirname(os.path.dirname(self.wasm_deps)),
                                             str(workspace) if workspace else None)
        return self._roots

    def _stamp(self, raw: bytes, rlib: str | None, externs: dict[str, str], scope_key: str) -> str:
        """The key of a replay's inputs: by content, never by mtime, so two clean builds write the same
        stamps (tests/macro/test_reproducible.py) and a rebuilt but identical native rlib is still fresh."""
        h = hashlib.sha256(raw)
        try:
            h.update(f"|{sha256_of(rlib or '')}".encode())
        except OSError:
            h.update(b"|missing" if rlib else b"|from source")
        h.update(f"|{self.facade}|{self.wasm_sysroot}|{scope_key}".encode())
        if self.proc_macro:  # its path names its sources' hash (shim.toolchain.shipped)
            h.update(f"|{self.proc_macro}|{os.path.getsize(self.proc_macro)}".encode())
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
                 scope: wasm_rustc.Scope, *, native: bool = True) -> tuple[dict[str, str], list[str] | None]:
        """Compile into a private directory, then publish the outputs (never the dep-info) into wasm-deps;
        (file name -> sha256 of each, the dep-info's `# env-dep:` lines)."""
        from shim.cargo.depinfo import read_dep_info
        from shim.cargo.rustc_args import native_externs

        args = parse(entry.argv)
        with CompileDirs(os.path.dirname(self.wasm_deps)) as dirs:
            linked = dirs.link([*self.closure(externs.values()), *filter(None, [self.proc_macro])])
            argv, dropped = wasm_argv(entry.argv, wasm_sysroot=self.wasm_sysroot, facade=self.facade,
                                      out_dir=dirs.out, wasm_deps=dirs.deps,
                                      extern_map={native: linked[wasm] for native, wasm in externs.items()},
                                      emit="dep-info,link", lints_capped=True,
                                      extra_codegen=facade.LINK_ARGS)  # a cdylib crate type links here
            if self.proc_macro:
                argv = without_nightly_proc_macro_cfgs(argv)
                argv += ["--extern", f"proc_macro={linked[self.proc_macro]}"]
            done = wasm_rustc.run(self.tools, scope, argv, cwd=entry.cwd, dirs=dirs,
                                  inputs=native_externs(entry.argv, entry.cwd), host_env=self.environ,
                                  dep_info=dirs.dep_info(layout.output_stem(args)), stream=False)
            digests = dirs.publish(self.wasm_deps) if done.returncode == 0 else {}
            try:
                env_lines = read_dep_info(Path(dirs.dep_info(layout.output_stem(args))))[1] if digests else []
            except OSError:
                env_lines = None  # unknown: not kept per user
        for message in done.messages(scope.subject):
            print(message, file=sys.stderr)
        crate = args.crate_name or os.path.basename(rlib)
        if dropped:
            trace.event(self.environ, kind="replay-dropped", crate=crate, flags=dropped)
        if done.returncode != 0:
            if native and any(d.fatal for d in done.denials):
                forget_native(rlib, args, entry.env.get("CARGO_PKG_NAME", ""))
            refused = " (refused at compile time, see the cratecage: lines above)" if done.denials else ""
            from shim.compile import replay_errors  # only for a failure

            found = replay_errors.diagnose(done.stderr, replay_errors.target_dependencies(scope.manifest_dir))
            cause = "" if found.kind == replay_errors.OTHER else f"{found.cause}\n    "
            raise ReplayError(
                f"{scope.subject} does not compile for wasm32-wasip1{refused}: {cause}"
                + found.error.replace("\n", "\n    "),
                hint=replay_errors.hint(found, self.consumer.split(" ")[0]),
            )
        self.replayed.append(crate)
        trace.event(self.environ, kind="replay", crate=crate, rlib=os.path.basename(rlib))
        return digests, env_lines


def _printed_cfgs(output: bytes) -> list[str]:
    from shim.compile.script_rerun import printed_cfgs

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


# Cfgs a library's build script sets when the host compiler is a nightly, each of which makes the library
# say `#![feature(...)]` of an unstable `proc_macro` API that the wasm `proc_macro` crate (shim/rust/proc_macro)
# cannot declare: proc-macro2's `proc_macro_span` and `super_unstable`. Its wasm replay uses the stable API.
NIGHTLY_PROC_MACRO_CFGS = frozenset({"proc_macro_span", "super_unstable"})


def without_nightly_proc_macro_cfgs(argv: list[str]) -> list[str]:
    out: list[str] = []
    skip = False
    for i, word in enumerate(argv):
        if skip:
            skip = False
            continue
        if word == "--cfg" and i + 1 < len(argv) and argv[i + 1] in NIGHTLY_PROC_MACRO_CFGS:
            skip = True
            continue
        if word.startswith("--cfg=") and word[len("--cfg="):] in NIGHTLY_PROC_MACRO_CFGS:
            continue
        out.append(word)
    return out
