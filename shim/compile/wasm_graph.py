"""The dependency graph of the build as wasm32-wasip1 sees it, for replaying build-dependencies there.

Why: cargo compiles a build script's library dependencies for the host, and the journal (shim.cargo.journal)
records those compiles: their `--extern`s are the *host's* dependencies. A dependency declared under
`[target.'cfg(...)'.dependencies]` differs by target: getrandom 0.2 needs `wasi` on wasm only (its code
calls `wasi::random_get` there), rustix needs `linux_raw_sys` on Linux only and `libc`/`errno` on wasi. So
the replay (shim.compile.replay) asks this graph, per replayed package, which libraries it links on wasm
(`Package.deps`) and, for a dependency cargo never compiled, how to compile it from its downloaded source
(its lib target, edition and features).

The graph is `cargo metadata --format-version 1 --filter-platform wasm32-wasip1 --locked` of the build's
workspace (shim.cargo.workspace.find_workspace_root: where the user started cargo; a registry crate is compiled
in its own package directory, whose metadata would be another graph), run with the build's own cargo
(`$CARGO`) and the real rustc (no wrapper at all, none of the config files' either), never in a directory
of a dependency's (its `.cargo/config.toml` would apply: an unknown workspace fails closed), offline
first (and only, for a `cargo build --offline`, which cargo tells no rustc), and reduced to
`Graph`. It is cached in the build's state directory (`<state>/wasm-graph/<hash of the workspace
directory>.json`, shim.cargo.layout.state_dir), once per Cargo.lock: the cache holds the sha256 of Cargo.lock and
of every local package's Cargo.toml (a feature edit changes no lock), checked on each use. Cost (2 shared
cores): `cargo metadata` ~60 ms for fixtures/wasm-graph, 0.5-0.8 s for the compat corpus (175 packages on
wasm); the cached read 3 ms. Only build-script compiles that replay libraries read it; the pass-through
path never does.

`plan` is the graph logic proper: given a library's host `--extern`s and its wasm dependencies, which to
keep, which to drop (host only) and which to add (wasm only). The resolve's features are unified over the
whole graph, so optional dependencies follow the features of the compile at hand (`wasm_deps`), and a
library compiled from source gets the features its dependent asks for (`dep_features`, `close_features`).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import subprocess
from typing import Iterable, Mapping

from shim.errors import CratecageError
from shim.files import atomic_write
from shim.record import field_names, record

WASM_TARGET = "wasm32-wasip1"
CACHE_DIR = "wasm-graph"
FORMAT = 3  # of the cached file
METADATA_TIMEOUT = 600  # seconds: it may download packages only wasm needs (wasi)
# What a synthesised compile gets of cargo's per-crate variables (shim.cargo.env.COMPILE_ENV), from
# the package's metadata field.
PKG_ENV = (
    ("CARGO_PKG_AUTHORS", "authors"), ("CARGO_PKG_DESCRIPTION", "description"),
    ("CARGO_PKG_HOMEPAGE", "homepage"), ("CARGO_PKG_LICENSE", "license"),
    ("CARGO_PKG_LICENSE_FILE", "license_file"), ("CARGO_PKG_README", "readme"),
    ("CARGO_PKG_REPOSITORY", "repository"), ("CARGO_PKG_RUST_VERSION", "rust_version"),
)


class GraphError(CratecageError):
    """The wasm32-wasip1 dependency graph of the build could not be read."""


@record(frozen=True)
class Package:
    """One package of the wasm graph: what a replay needs to know of it."""

    manifest_dir: str
    name: str
    version: str
    lib_name: str  # the lib target's crate name (`-` as `_`); "" without a library
    lib_kind: str  # "lib", "rlib", "proc-macro", ...
    src_path: str
    edition: str
    features: tuple[str, ...]
    build_script: bool
    links: str
    deps: tuple[tuple[str, str], ...]  # (extern name, manifest dir) of its normal dependencies on wasm
    env: tuple[tuple[str, str], ...]  # PKG_ENV values
    build_src: str = ""  # its build script's source file
    build_deps: bool = False  # whether that script has build-dependencies
    feature_table: tuple[tuple[str, tuple[str, ...]], ...] = ()  # its `[features]`
    # extern name -> (the name features use for it, optional, default features, features asked for)
    declared: tuple[tuple[str, tuple[str, bool, bool, tuple[str, ...]]], ...] = ()

    @property
    def title(self) -> str:
        return f"{self.name} {self.version}"


Graph = Mapping[str, Package]  # manifest dir -> package


def from_metadata(meta: Mapping) -> dict[str, Package]:
    """The reduced graph of `cargo metadata --filter-platform` output (its `resolve` decides the deps)."""
    by_id = {p["id"]: p for p in meta.get("packages", [])}
    graph: dict[str, Package] = {}
    for node in (meta.get("resolve") or {}).get("nodes", []):
        pkg = by_id.get(node["id"])
        if pkg is None:
            continue
        deps = []
        for dep in node.get("deps", []):
            target = by_id.get(dep.get("pkg"))
            # a normal dependency (kind null); dev- and build-dependencies are not linked into the library
            if target is not None and any(k.get("kind") is None for k in dep.get("dep_kinds", [])):
                deps.append((dep["name"], os.path.dirname(target["manifest_path"])))
        lib = next((t for t in pkg.get("targets", []) if _is_lib(t)), None)
        build = next((t for t in pkg.get("targets", []) if "custom-build" in t.get("kind", [])), None)
        env = []
        for var, key in PKG_ENV:
            value = pkg.get(key)
            if isinstance(value, list):
                value = ":".join(value)
            if value:
                env.append((var, str(value)))
        manifest_dir = os.path.dirname(pkg["manifest_path"])
        declared = {ext: _declaration(pkg, ext, by_id[dep_id]["name"])
                    for ext, dep_id in ((d["name"], d.get("pkg")) for d in node.get("deps", [])) if dep_id in by_id}
        graph[manifest_dir] = Package(
            manifest_dir=manifest_dir, name=pkg["name"], version=pkg["version"],
            lib_name=lib["name"].replace("-", "_") if lib else "", lib_kind=lib["kind"][0] if lib else "",
            src_path=lib["src_path"] if lib else "", edition=(lib or pkg).get("edition", "2015"),
            features=tuple(node.get("features", [])), build_script=build is not None, links=pkg.get("links") or "",
            deps=tuple(sorted(deps)), env=tuple(env), build_src=build["src_path"] if build else "",
            build_deps=any(k.get("kind") == "build" for d in node.get("deps", []) for k in d.get("dep_kinds", [])),
            feature_table=tuple(sorted((k, tuple(v)) for k, v in (pkg.get("features") or {}).items())),
            declared=tuple(sorted(declared.items())))
    return graph


def _declaration(pkg: Mapping, ext: str, dep_name: str) -> tuple[str, bool, bool, tuple[str, ...]]:
    """How `pkg` declares its normal dependency linked as `ext` (package `dep_name`): (the name its
    features use, optional, default features, features), over every `[target.*]` table. Optional where
    its untargeted declarations are (zerocopy declares zerocopy-derive optional, and again under the
    never-true `cfg(any())`), else where all are."""
    decls = [d for d in pkg.get("dependencies", []) if d.get("kind") is None and d["name"] == dep_name
             and (d.get("rename") or dep_name).replace("-", "_") in (ext, dep_name.replace("-", "_"))]
    if not decls:
        return ext, False, True, ()
    untargeted = [d for d in decls if d.get("target") is None] or decls
    return (decls[0].get("rename") or dep_name, all(d.get("optional") for d in untargeted),
            any(d.get("uses_default_features", True) for d in decls),
            tuple(sorted({f for d in decls for f in d.get("features", [])})))


# -- features: which optional dependencies a compile activates, what a dependency gets ------------------

def enabled_features(argv: list[str]) -> set[str]:
    """The features a recorded compile enables (`--cfg feature="x"`)."""
    from shim.cargo.rustc_args import parse

    return {c[len('feature="'):-1] for c in parse(argv).cfgs if c.startswith('feature="') and c.endswith('"')}


def close_features(pkg: Package, requested: Iterable[str]) -> set[str]:
    """`requested` and every feature they enable in the package's `[features]` table."""
    table = dict(pkg.feature_table)
    out: set[str] = set()
    todo = list(requested)
    while todo:
        feature = todo.pop()
        if feature in out or feature not in table and feature not in _optional_keys(pkg):
            continue
        out.add(feature)
        todo += [f for f in table.get(feature, ()) if not f.startswith("dep:") and "/" not in f]
    return out


def _optional_keys(pkg: Package) -> set[str]:
    return {key for _ext, (key, optional, _d, _f) in pkg.declared if optional}


def _activated(pkg: Package, enabled: set[str]) -> set[str]:
    """The names (as features use them) of optional dependencies that `enabled` features turn on."""
    table = dict(pkg.feature_table)
    on = {f for f in enabled if f in _optional_keys(pkg) and not any(f"dep:{f}" in v for v in table.values())}
    for feature in enabled:
        for item in table.get(feature, ()):
            if item.startswith("dep:"):
                on.add(item[4:])
            elif "/" in item and not item.split("/", 1)[0].endswith("?"):
                on.add(item.split("/", 1)[0])
    return on


def wasm_deps(pkg: Package, enabled: set[str]) -> list[tuple[str, str]]:
    """Its dependencies on wasm for a compile with `enabled` features: the resolve's, less optional ones
    those features do not turn on (the resolve's features are unified over the whole graph: zerocopy
    has `derive` there for one user, not for the build-dependency cargo compiled)."""
    declared = dict(pkg.declared)
    on = _activated(pkg, enabled)
    return [(ext, d) for ext, d in pkg.deps
            if not declared.get(ext, (ext, False, True, ()))[1] or declared[ext][0] in on]


def dep_features(pkg: Package, enabled: set[str], ext: str) -> set[str]:
    """The features `pkg`, compiled with `enabled`, asks of its dependency `ext` (before closing)."""
    key, _optional, default, features = dict(pkg.declared).get(ext, (ext, False, True, ()))
    out = set(features) | ({"default"} if default else set())
    for feature in enabled:
        for item in dict(pkg.feature_table).get(feature, ()):
            name, slash, wanted = item.partition("/")
            if slash and name.rstrip("?") == key:
                out.add(wanted)
    return out


def _is_lib(target: Mapping) -> bool:
    return any(k in ("lib", "rlib", "dylib", "proc-macro") for k in target.get("kind", []))


@record(frozen=True)
class Plan:
    """How a library's host `--extern`s become its wasm ones."""

    drop: tuple[str, ...]  # extern names linked on the host only
    add: tuple[tuple[str, str], ...]  # (extern name, manifest dir) linked on wasm only

    @property
    def agrees(self) -> bool:
        return not self.drop and not self.add


def plan(host_externs: Iterable[tuple[str, str | None]], wasm_deps: Iterable[tuple[str, str]]) -> Plan:
    """Compare a recorded compile's `--extern name[=path]` with the package's wasm dependencies. An extern
    without a path (`proc_macro`) is the compiler's own, never a package: always kept."""
    host = {name for name, path in host_externs if path}
    wasm = dict(wasm_deps)
    return Plan(drop=tuple(sorted(host - set(wasm))),
                add=tuple(sorted((name, d) for name, d in wasm.items() if name not in host)))


# -- reading it, once per Cargo.lock ----------------------------------------------------------------------

def load(workspace_dir: str, state_dir: str, *, cargo: str, rustc: str,
         environ: Mapping[str, str]) -> dict[str, Package]:
    """The wasm graph of the workspace cargo builds from `workspace_dir`, cached in `state_dir`."""
    cache = os.path.join(state_dir, CACHE_DIR,
                         hashlib.sha256(os.path.realpath(workspace_dir).encode()).hexdigest()[:16] + ".json")
    os.makedirs(os.path.dirname(cache), exist_ok=True)
    with open(cache + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel build-script compiles run cargo metadata once
        cached = _read_cache(cache)
        if cached is not None:
            return cached
        meta = _metadata(workspace_dir, cargo=cargo, rustc=rustc, environ=environ)
        graph = from_metadata(meta)
        inputs = [os.path.join(meta.get("workspace_root", workspace_dir), "Cargo.lock")]
        inputs += [os.path.join(p.get("manifest_path")) for p in meta.get("packages", []) if p.get("source") is None]
        atomic_write(cache, json.dumps({"format": FORMAT, "inputs": {p: _digest(p) for p in inputs},
                                        "graph": [_as_row(p) for p in graph.values()]}))
    return graph


def _as_row(p: Package) -> list:
    return json.loads(json.dumps([getattr(p, name) for name in field_names(Package)]))


def _from_row(row: list) -> Package:
    return Package(*(_tuples(v) for v in row))


def _tuples(value: object) -> object:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def _read_cache(cache: str) -> dict[str, Package] | None:
    try:
        with open(cache) as fh:
            data = json.load(fh)
        if data.get("format") != FORMAT:
            return None
        if any(_digest(path) != digest for path, digest in data["inputs"].items()):
            return None
        return {row[0]: _from_row(row) for row in data["graph"]}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _digest(path: str) -> str:
    try:
        with open(path, "rb") as fh:
            return hashlib.sha256(fh.read()).hexdigest()
    except OSError:
        return "missing"


def metadata_env(environ: Mapping[str, str], rustc: str) -> dict[str, str]:
    """cargo's environment for `cargo metadata`: the build's, calling the real rustc directly (its target
    queries are no build: they need no wrapper). The wrappers are set empty, not removed: cargo then runs
    none, where without the variables it would run a `build.rustc-wrapper` of the config files natively."""
    env = dict(environ)
    env.update(RUSTC=rustc, RUSTC_WRAPPER="", RUSTC_WORKSPACE_WRAPPER="")
    return env


def _metadata(workspace_dir: str, *, cargo: str, rustc: str, environ: Mapping[str, str]) -> Mapping:
    """`cargo metadata` offline first (no network where every package wasm needs is downloaded, as after
    most builds), then online (it downloads what only wasm needs, such as `wasi`) unless the build is
    offline (`_offline`)."""
    cmd = [cargo, "metadata", "--format-version", "1", "--filter-platform", WASM_TARGET, "--locked"]
    env = metadata_env(environ, rustc)
    try:
        done = subprocess.run([*cmd, "--offline"], cwd=workspace_dir, env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=METADATA_TIMEOUT)
        if done.returncode != 0 and not _offline(environ):
            done = subprocess.run(cmd, cwd=workspace_dir, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                                  timeout=METADATA_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise GraphError(f"could not read the build's dependency graph for {WASM_TARGET} (`cargo metadata`): "
                         f"{err}") from err
    if done.returncode != 0:
        lines = [ln for ln in done.stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
        why = next((ln for ln in lines if ln.startswith("error")), lines[-1] if lines else f"exit {done.returncode}")
        raise GraphError(f"could not read the build's dependency graph for {WASM_TARGET} (`cargo metadata "
                         f"--filter-platform {WASM_TARGET} --locked` in {workspace_dir}): {why}")
    try:
        return json.loads(done.stdout)
    except ValueError as err:
        raise GraphError(f"`cargo metadata` printed no JSON: {err}") from err


def _offline(environ: Mapping[str, str]) -> bool:
    """Whether the build stays off the network: CARGO_NET_OFFLINE, or a cargo started with `--offline` or
    `--frozen` (shim.cargo.workspace.offline_requested: cargo tells its children neither)."""
    from shim.cargo.workspace import offline_requested

    return environ.get("CARGO_NET_OFFLINE") in ("true", "1") or offline_requested(environ)


# -- command lines ----------------------------------------------------------------------------------------

def without_externs(argv: list[str], names: Iterable[str]) -> list[str]:
    """`argv` less its `--extern` of each of `names` (both spellings, either modifier)."""
    from shim.cargo.rustc_args import tokens

    drop = set(names)
    out: list[str] = []
    for flag, value, words in tokens(argv):
        if flag == "--extern" and (value or "").partition("=")[0].rsplit(":", 1)[-1] in drop:
            continue
        out.extend(words)
    return out


def replace_cfgs(argv: list[str], host: Iterable[str], wasm: Iterable[str]) -> list[str]:
    """`argv` with the `--cfg`s a build script printed for the host (`host`) replaced by those it printed
    for wasm32-wasip1 (`wasm`); feature cfgs, which cargo adds itself, stay."""
    from shim.cargo.rustc_args import tokens

    printed = {c for c in host if not c.startswith("feature=")}
    out: list[str] = []
    for flag, value, words in tokens(argv):
        if flag == "--cfg" and value in printed:
            continue
        out.extend(words)
    for cfg in wasm:
        out += ["--cfg", cfg]
    return out


def synth_argv(pkg: Package, features: Iterable[str], externs: Iterable[tuple[str, str]], out_dir: str, *,
               cfgs: Iterable[str] = ()) -> tuple[str, list[str]]:
    """(file name of its rlib, the rustc command line cargo would give the library of `pkg`) for a package
    cargo never compiled (it is a dependency on wasm only): its crate name and edition, `features` as
    cfgs, `--extern name=path` of each of `externs`, lints capped as for any dependency. The `-C metadata`
    is a hash of all that (and the package), so a feature or dependency change is another rlib."""
    body = ["--crate-name", pkg.lib_name, f"--edition={pkg.edition}", pkg.src_path, "--crate-type", "lib",
            "--emit=dep-info,metadata,link", "-C", "embed-bitcode=no", "--cap-lints", "allow"]
    for feature in sorted(features):
        body += ["--cfg", f'feature="{feature}"']
    for cfg in cfgs:  # its build script's, run for wasm
        body += ["--cfg", cfg]
    for name, path in sorted(externs):
        body += ["--extern", f"{name}={path}"]
    digest = hashlib.sha256(json.dumps([pkg.manifest_dir, pkg.version, body]).encode()).hexdigest()[:16]
    argv = body + ["-C", f"metadata={digest}", "-C", f"extra-filename=-{digest}", "--out-dir", out_dir,
                   "-L", f"dependency={out_dir}"]
    return f"lib{pkg.lib_name}-{digest}.rlib", argv


def synth_env(pkg: Package, cargo: str | None) -> dict[str, str]:
    """The variables cargo sets for a crate's compile (shim.cargo.env.COMPILE_ENV), from the metadata."""
    core, _, _build = pkg.version.partition("+")
    numbers, _, pre = core.partition("-")
    major, minor, patch = (numbers.split(".") + ["0", "0", "0"])[:3]
    env = {"CARGO_PKG_NAME": pkg.name, "CARGO_PKG_VERSION": pkg.version, "CARGO_PKG_VERSION_MAJOR": major,
           "CARGO_PKG_VERSION_MINOR": minor, "CARGO_PKG_VERSION_PATCH": patch, "CARGO_PKG_VERSION_PRE": pre,
           "CARGO_MANIFEST_DIR": pkg.manifest_dir, "CARGO_MANIFEST_PATH": os.path.join(pkg.manifest_dir, "Cargo.toml"),
           "CARGO_CRATE_NAME": pkg.lib_name, **dict(pkg.env)}
    if cargo:
        env["CARGO"] = cargo
    return env
