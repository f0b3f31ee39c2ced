"""A replayed library's build script, run again for wasm32-wasip1, when its dependencies there differ.

Why: a build script tells rustc about the *target* (`CARGO_CFG_TARGET_OS`, `TARGET`): rustix's prints
`linux_raw` and friends on Linux, which select the backend that links `linux_raw_sys`, and nothing of the
kind on wasi, where it uses libc. cargo ran a build-dependency's script for the host only, so the cfgs in
its recorded compile (shim.cargo.journal) describe the host. Where a library's dependencies on wasm differ from
the host's (shim.compile.wasm_graph.plan: the sign of target-specific code), its script is run again for wasm:
  - the module is the one cratecage compiled for the host run (the script is the same program for any
    target), run by the same runner under the crate's own policy, in the sandbox, with the environment
    cargo gave the host run (shim.compile.run_record, written by shim.build.run for every run, documented
    variables only) but `TARGET=wasm32-wasip1`, the wasm target's `CARGO_CFG_*` (`rustc --print cfg`),
    and a fresh OUT_DIR of its own in the build's state directory (`<state>/wasm-out/<unit>/out`, beside an
    `output` file shaped like cargo's, so shim.cargo.env reads its `rustc-env`);
  - the replay then compiles with that OUT_DIR, and the `--cfg`s the host run printed replaced by those
    the wasm run printed (shim.compile.wasm_graph.replace_cfgs; feature cfgs stay).
Once per host run, under a lock (build scripts compiled in parallel share the library): a stamp over the
record (rewritten by each host run) and the module keeps the wasm run until the script runs again.
Libraries whose graphs agree keep the host run's output (most; see the README's Limits), so nothing is run
twice for them. A library whose host run left no record (a target directory from before this cratecage)
fails closed, naming the crate.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from typing import Mapping

from shim.cargo import layout
from shim.compile.run_record import record_path, run_unit

OUT_DIR_NAME = "wasm-out"  # <state>/wasm-out/<unit>/{out/,output,stamp}: its wasm run
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # holds shim/

if False:  # typing only
    from shim.cargo import journal
    from shim.compile import wasm_graph
    from shim.compile.replay import Replayer


def target_cfg_env(cfg_lines: list[str]) -> dict[str, str]:
    """`CARGO_CFG_*` as cargo derives them from `rustc --print cfg` lines (`key="value"` joined by commas
    per key, a bare name set to "")."""
    values: dict[str, list[str]] = {}
    for line in cfg_lines:
        key, eq, value = line.strip().partition("=")
        if not key or key == "debug_assertions":  # cargo sets that one from the profile
            continue
        values.setdefault(key, [])
        if eq:
            values[key].append(value.strip('"'))
    return {f"CARGO_CFG_{k.upper()}": ",".join(v) for k, v in values.items()}


def wasm_env(recorded: Mapping[str, str], host_env: Mapping[str, str], cfgs: Mapping[str, str],
             out_dir: str) -> dict[str, str]:
    """The environment of the wasm run: the builder's (less every variable cargo sets for a crate or a
    build script, which belong to the build script being compiled), then the host run's documented
    variables for wasm32-wasip1."""
    from shim.cargo.env import COMPILE_ENV
    from shim.cargo.script_env import RERUN_ENV, is_default_env

    env = {k: v for k, v in host_env.items() if not is_default_env(k) and k not in COMPILE_ENV}
    # not the host run's jobserver (its fds are gone), target cfgs, OUT_DIR, linker
    env.update({k: v for k, v in recorded.items() if not k.startswith("CARGO_CFG_")
                and k not in ("TARGET", "OUT_DIR", "RUSTC_LINKER", "CARGO_MAKEFLAGS")})
    if "CARGO_CFG_DEBUG_ASSERTIONS" in recorded:
        env["CARGO_CFG_DEBUG_ASSERTIONS"] = recorded["CARGO_CFG_DEBUG_ASSERTIONS"]
    env.update(cfgs)
    env["TARGET"] = "wasm32-wasip1"
    env["OUT_DIR"] = out_dir
    env[RERUN_ENV] = "1"
    return env


def printed_cfgs(output: bytes | None) -> list[str]:
    from shim.cargo.directives import parse

    return [d.value for d in parse(output or b"") if d.key == "rustc-cfg" and not d.problem]


def on_wasm(replayer: Replayer, entry: journal.Entry, pkg: wasm_graph.Package) -> journal.Entry:
    """The recorded compile of `pkg`'s library with its build script's answer for wasm32-wasip1."""
    from shim.cargo import journal
    from shim.compile import wasm_graph
    from shim.compile.argv import ReplayError

    host_out = entry.env["OUT_DIR"]
    subject = f"build-dependency {pkg.title} (of the {replayer.whose})"
    try:
        with open(record_path(host_out), "rb") as fh:
            raw_record = fh.read()
        rec = json.loads(raw_record)
    except (OSError, ValueError) as err:
        raise ReplayError(f"{subject}: its dependencies on wasm32-wasip1 differ from the host's, so its build "
                          f"script must run again for wasm, and no record says how it ran for the host",
                          hint=f"run `cargo clean -p {pkg.name}` once and build again") from err
    unit = os.path.join(layout.state_dir(host_out), OUT_DIR_NAME, run_unit(host_out))
    out_dir, output = _wasm_run(replayer, rec, _key(raw_record, record_path(host_out), rec["wasm"]), unit,
                                subject, pkg)
    host_cfgs = printed_cfgs(layout.script_output(host_out))
    argv = wasm_graph.replace_cfgs(entry.argv, host_cfgs, printed_cfgs(output))
    return journal.Entry(entry.cwd, argv, entry.raw + b"\0wasm-script\0" + output, {**entry.env, "OUT_DIR": out_dir})


def _wasm_run(replayer: Replayer, rec: Mapping, key: str, unit: str, subject: str,
              pkg: wasm_graph.Package) -> tuple[str, bytes]:
    """(its OUT_DIR, its filtered stdout) of the run for wasm32-wasip1 that `rec` describes, in `unit`:
    once per `key`, under a lock (build scripts compiled in parallel share the library)."""
    from shim import trace
    from shim.files import atomic_write

    out_dir, output_file, stamp_file = (os.path.join(unit, n) for n in ("out", "output", "stamp"))
    os.makedirs(unit, exist_ok=True)
    with open(os.path.join(unit, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        output = _fresh_output(stamp_file, output_file, key)
        if output is None:
            output = _run(replayer, rec, out_dir, subject, pkg)
            atomic_write(output_file, output)
            atomic_write(stamp_file, key)
            trace.event(replayer.environ, kind="script-rerun", crate=pkg.name, cfgs=printed_cfgs(output))
    return out_dir, output


def _key(raw_record: bytes, *files: str) -> str:
    """Of the record and its file's and the module's stat: each host run (a policy edit reruns it) makes a
    new one."""
    h = hashlib.sha256(raw_record)
    for path in files:
        try:
            st = os.stat(path)
            h.update(f"|{st.st_size}|{st.st_mtime_ns}".encode())
        except OSError:
            h.update(b"|missing")
    return h.hexdigest()


def _fresh_output(stamp_file: str, output_file: str, key: str) -> bytes | None:
    try:
        with open(stamp_file) as fh:
            if fh.read() != key:
                return None
        with open(output_file, "rb") as fh:
            return fh.read()
    except OSError:
        return None


def _run(replayer: Replayer, rec: Mapping, out_dir: str, subject: str, pkg: wasm_graph.Package) -> bytes:
    """Run the module for wasm32-wasip1 by the runner, as cargo runs a launcher; its filtered stdout."""
    from shim.compile.argv import ReplayError

    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)
    env = wasm_env(rec["env"], replayer.environ, _cfgs(replayer), out_dir)
    code = (f"import sys\nsys.path.insert(0, {ROOT!r})\nfrom shim.build.run import main_build_script\n"
            f"main_build_script({rec['wasm']!r}, {rec['rustc']!r}, {rec['sysroot']!r}, {rec['module_cache']!r})\n")
    done = subprocess.run([sys.executable, "-S", "-c", code], cwd=pkg.manifest_dir, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True)
    if done.returncode != 0:
        said = [ln for ln in done.stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
        ours = [ln for ln in said if ln.startswith("cratecage:")]
        raise ReplayError(f"{subject}: its build script, run again for wasm32-wasip1 (its dependencies differ "
                          f"there), failed: " + ((ours or said or [f"exit {done.returncode}"])[-1]))
    return done.stdout


def _cfgs(replayer: Replayer) -> dict[str, str]:
    from shim.compile.argv import ReplayError

    cmd = [replayer.rustc, "--print", "cfg", "--target", "wasm32-wasip1", "--sysroot", replayer.wasm_sysroot]
    done = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise ReplayError(f"{replayer.whose}: `rustc --print cfg --target wasm32-wasip1` "
                          f"failed: {done.stderr.strip()[-300:]}")
    return target_cfg_env(done.stdout.splitlines())


# -- the build script of a library cargo never compiled ---------------------------------------------------

def from_source(replayer: Replayer, pkg: wasm_graph.Package, features: set[str]) -> tuple[str, bytes]:
    """(its OUT_DIR, its filtered stdout) of the build script of a dependency only wasm has (libc under
    rustix's wasi backend where nothing on the host needs libc): compiled for wasm from its source like any
    build script (confined, its own grant; cached in `<state>/build/<pkg>-<hash>/`), then run for
    wasm32-wasip1 with the environment cargo would give it (`script_env`). One with build-dependencies of
    its own fails closed (shim.compile.replay uses its host compile where cargo made one)."""
    from shim.compile.argv import ReplayError
    from shim.files import cache_root

    subject = f"build script of {pkg.title}, a dependency on wasm32-wasip1 only (of the " \
              f"{replayer.whose})"
    if pkg.build_deps:
        raise ReplayError(f"{subject}: it has build-dependencies of its own and cargo never built it for the "
                          f"host: cratecage cannot compile it for wasm32-wasip1",
                          hint="add it to the build-dependencies of a crate of the workspace, so that cargo "
                               "builds it; such graphs are a README Limit")
    argv = script_argv(pkg, features)
    digest = hashlib.sha256(json.dumps([pkg.manifest_dir, pkg.version, argv, replayer.facade,
                                        replayer.wasm_sysroot]).encode()).hexdigest()[:16]
    state = os.path.dirname(replayer.wasm_deps)
    unit_name = f"{pkg.name}-{digest}"
    wasm = os.path.join(state, layout.MODULES_DIR, unit_name, "build_script_build.wasm")
    os.makedirs(os.path.dirname(wasm), exist_ok=True)
    with open(wasm + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.isfile(wasm):
            _compile_script(replayer, pkg, argv, wasm, subject)
            from shim import trace

            trace.event(replayer.environ, kind="script-from-source", crate=pkg.name)
    rec = {"wasm": wasm, "rustc": replayer.tools.rustc, "sysroot": replayer.tools.sysroot,
           "module_cache": str(cache_root(replayer.environ) / "modules"),
           "env": script_env(pkg, features, host=replayer.tools.host, rustc=replayer.tools.rustc,
                             cargo=replayer.environ.get("CARGO"))}
    raw = json.dumps(rec, sort_keys=True).encode()
    return _wasm_run(replayer, rec, _key(raw, wasm), os.path.join(state, OUT_DIR_NAME, unit_name), subject, pkg)


def script_argv(pkg: wasm_graph.Package, features: set[str]) -> list[str]:
    """cargo's command line for the build script of `pkg` (its own `--out-dir`, `--emit`: wasm_argv's)."""
    argv = ["--crate-name", "build_script_build", f"--edition={pkg.edition}", pkg.build_src, "--crate-type", "bin",
            "-C", "embed-bitcode=no", "--cap-lints", "allow"]
    for feature in sorted(features):
        argv += ["--cfg", f'feature="{feature}"']
    return argv


def script_env(pkg: wasm_graph.Package, features: set[str], *, host: str, rustc: str,
               cargo: str | None) -> dict[str, str]:
    """What cargo documents that it gives a build script, for a dev build of `pkg` (TARGET, CARGO_CFG_*,
    OUT_DIR: `wasm_env`)."""
    from shim.compile.wasm_graph import synth_env

    env = {k: v for k, v in synth_env(pkg, cargo).items() if k != "CARGO_CRATE_NAME"}
    env.update({f"CARGO_FEATURE_{f.upper().replace('-', '_')}": "1" for f in features})
    if pkg.links:
        env["CARGO_MANIFEST_LINKS"] = pkg.links
    env.update(HOST=host, NUM_JOBS="1", OPT_LEVEL="0", DEBUG="true", PROFILE="debug", RUSTC=rustc)
    return env


def _compile_script(replayer: Replayer, pkg: wasm_graph.Package, argv: list[str], wasm: str, subject: str) -> None:
    """Compile a build script for wasm into `wasm`, as shim.build.script does cargo's (its grant, confined)."""
    from shim.compile import replay_errors, wasm_rustc
    from shim.compile.argv import STACK_SIZE_ARG, ReplayError, wasm_argv
    from shim.compile.dirs import CompileDirs
    from shim.compile.wasm_graph import synth_env
    from shim.sandbox import enforce
    from shim.toolchain import facade

    grant, _policy = enforce.grant("build", pkg.name, pkg.version, replayer.environ, pkg.manifest_dir)
    scope = wasm_rustc.Scope(subject=subject, package=pkg.name, version=pkg.version, manifest_dir=pkg.manifest_dir,
                             out_dir=None, build_dir=os.path.dirname(wasm), sources=(pkg.build_src,),
                             cargo_vars=synth_env(pkg, replayer.environ.get("CARGO")), grant=grant)
    with CompileDirs(os.path.dirname(replayer.wasm_deps)) as dirs:
        full, _dropped = wasm_argv(argv, wasm_sysroot=replayer.wasm_sysroot, facade=replayer.facade,
                                   out_dir=dirs.out, wasm_deps=dirs.deps, extern_map={}, emit="dep-info,link",
                                   lints_capped=True, extra_codegen=(STACK_SIZE_ARG, *facade.LINK_ARGS))
        done = wasm_rustc.run(replayer.tools, scope, full, cwd=pkg.manifest_dir, dirs=dirs, inputs=[],
                              host_env=replayer.environ, dep_info=dirs.dep_info("build_script_build"), stream=False)
        for message in done.messages(subject):
            print(message, file=sys.stderr)
        built = os.path.join(dirs.out, os.path.basename(wasm))
        if done.returncode != 0 or not os.path.isfile(built):
            found = replay_errors.diagnose(done.stderr, replay_errors.target_dependencies(pkg.manifest_dir))
            raise ReplayError(f"{subject} does not compile for wasm32-wasip1: " + found.error.replace("\n", "\n    "))
        os.replace(built, wasm)
