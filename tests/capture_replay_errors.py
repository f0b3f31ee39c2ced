"""Capture what rustc prints when a build-dependency's wasm compile fails, for tests/compile/test_replay_errors.py.

Each scenario compiles a few crates for wasm32-wasip1 the way shim.compile.replay does (the wasm sysroot, the std
facade as `--extern std=`, a private `-L dependency=` directory), then one compile that fails, and keeps
that compile's JSON diagnostics (error level) in `tests/data/replay_errors/<scenario>.<release>.jsonl`.
Temporary paths are replaced by `$TMP`, so the files are the same on every machine. Run it once per
toolchain (`.venv/bin/python tests/capture_replay_errors.py [RUSTC] [--other RUSTC]`; RUSTC defaults to
the selected one; the nightly: `$(rustup which --toolchain nightly-2026-10-29 rustc)`; `--other` names the
other one, whose wasm rlib the first then cannot load, E0514). The scenario `real_ppv_lite86`
needs zerocopy 0.8 and ppv-lite86 0.2 in the cargo registry (any build of fixtures/build-dep-graphs
downloads them).

Scenarios, by the class shim.compile.replay_errors should find:
  crate graph (cratecage's fault): a facade dependency a `no_std` crate cannot find, reached by a call
  (E0460) or by a `use` (E0463 for the dependency itself); a native proc macro missing from the search
  path (E0463); a dependency compiled for the host (E0461) or by another rustc (E0514); a real zerocopy +
  ppv-lite86 pair (rustc's first error is an E0432 that is only the consequence; the first KEPT errors are
  kept);
  native-only API: `std::os::unix`, a module configured out for the target;
  target dependency: a crate that cargo gives the crate only for wasm targets (getrandom 0.2's `wasi`);
  other: a compile-time assertion that `usize` is 64 bits.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

OUT = Path(__file__).resolve().parent / "data" / "replay_errors"
JSON = ("--error-format=json", "--json=diagnostic-rendered-ansi")  # as shim.compile.replay asks
KEPT = 12  # errors kept of a compile (and its last line, "aborting due to N previous errors")

DOCLINK = "#![no_std]\n/// Like [std::io::Read], for bytes.\npub fn first(b: &[u8]) -> u8 { b[0] }\n"
# name -> [(crate name, source, extra args, for wasm?)]: the last compile is the one that fails; the
# wasm rlibs go to the `-L dependency=` directory, native libraries elsewhere (named by --extern only).
SCENARIOS: dict[str, list[tuple[str, str, list[str], bool]]] = {
    "facade_dep_by_call": [
        ("doclink", DOCLINK, [], True),
        ("user", "#![no_std]\npub fn answer() -> u8 { doclink::first(&[42]) }\n", ["--extern", "doclink"], True),
    ],
    "facade_dep_by_use": [
        ("doclink", DOCLINK, [], True),
        ("user", "#![no_std]\nuse doclink::first;\npub fn answer() -> u8 { first(&[42]) }\n",
         ["--extern", "doclink"], True),
    ],
    "proc_macro_missing": [
        ("answer_macro", "extern crate proc_macro;\nuse proc_macro::TokenStream;\n#[proc_macro]\n"
         "pub fn answer(_: TokenStream) -> TokenStream { \"42\".parse().unwrap() }\n",
         ["--crate-type", "proc-macro", "--extern", "proc_macro", "-C", "prefer-dynamic"], False),
        ("reexport", "pub use answer_macro::answer;\n", ["--extern", "answer_macro"], True),
        ("user", "pub fn get() -> u32 { reexport::answer!() }\n", ["--extern", "reexport"], True),
    ],
    "host_rlib": [
        ("native", "pub fn two() -> u32 { 2 }\n", [], False),
        ("user", "pub fn four() -> u32 { native::two() * 2 }\n", ["--extern", "native"], True),
    ],
    "unix_api": [
        ("user", "use std::os::unix::fs::PermissionsExt;\n"
         "pub fn mode(p: &str) -> u32 { std::fs::metadata(p).unwrap().permissions().mode() }\n", [], True),
    ],
    "configured_out": [
        ("user", "#[cfg(target_os = \"linux\")]\npub mod general { pub struct FdSet; }\n"
         "pub use crate::general::FdSet;\n", [], True),
    ],
    "target_dependency": [  # getrandom 0.2's wasi backend: its `wasi` dependency is for wasi targets only
        ("user", "use wasi::random_get;\npub fn fill(buf: &mut [u8]) -> bool {\n"
         "    unsafe { random_get(buf.as_mut_ptr(), buf.len()).is_ok() }\n}\n", [], True),
    ],
    "pointer_width": [
        ("user", "const _: () = assert!(core::mem::size_of::<usize>() == 8, \"64-bit only\");\n", [], True),
    ],
}


def main(rustc: str | None, other: str | None) -> None:
    from shim.toolchain import compiler as toolchain
    from shim.toolchain import facade

    tc = toolchain.resolve(rustc=rustc)
    if not tc.ready:
        raise SystemExit(f"{tc.compiler.rustc}: no wasm32-wasip1 ({tc.how})")
    release = tc.compiler.release
    std = str(facade.facade_rlib(tc))
    OUT.mkdir(parents=True, exist_ok=True)
    for name, steps in SCENARIOS.items():
        with tempfile.TemporaryDirectory() as tmp:
            stderr = _scenario(tc, std, Path(tmp), steps)
            _save(OUT / f"{name}.{release}.jsonl", stderr, tmp)
    with tempfile.TemporaryDirectory() as tmp:
        _save(OUT / f"real_ppv_lite86.{release}.jsonl", _real_ppv_lite86(tc, std, Path(tmp)), tmp)
    if other:
        with tempfile.TemporaryDirectory() as tmp:
            _save(OUT / f"other_rustc.{release}.jsonl", _other_rustc(tc, toolchain.resolve(rustc=other), std,
                                                                      Path(tmp)), tmp)


def _scenario(tc, std: str, tmp: Path, steps) -> str:
    deps, own = tmp / "deps", tmp / "own"
    deps.mkdir()
    own.mkdir()
    built: dict[str, Path] = {}
    stderr = ""
    for i, (crate, source, extra, wasm) in enumerate(steps):
        src = tmp / f"{crate}.rs"
        src.write_text(source)
        args: list[str] = []
        it = iter(extra)
        for word in it:
            if word == "--extern" and (dep := next(it)) in built:
                args += ["--extern", f"{dep}={built[dep]}"]
            elif word == "--extern":
                args += ["--extern", dep]
            else:
                args.append(word)
        if "--crate-type" not in args:
            args += ["--crate-type", "rlib"]
        out = deps if wasm else own  # native libraries are found by their --extern path only
        if wasm:
            args += ["--target", "wasm32-wasip1", "--sysroot", tc.wasm_sysroot, "--extern", f"std={std}"]
        argv = [tc.compiler.rustc, "--crate-name", crate, "--edition", "2021", str(src), *args, "-L",
                f"dependency={deps}", "--out-dir", str(out), *JSON, "-C", f"metadata={crate}"]
        done = subprocess.run(argv, capture_output=True, text=True, env=toolchain_env())
        produced = sorted(out.glob(f"lib{crate}.*"))
        if i < len(steps) - 1:
            if done.returncode != 0 or not produced:
                raise SystemExit(f"step {crate} should build:\n{done.stderr}")
            built[crate] = produced[0]
        else:
            if done.returncode == 0:
                raise SystemExit(f"{crate} should fail to compile")
            stderr = done.stderr
    return stderr


def _real_ppv_lite86(tc, std: str, tmp: Path) -> str:
    """zerocopy 0.8 (no_std, its intra-doc links to std) and ppv-lite86 0.2 without std, as a replay of
    rand_chacha's graph compiles them."""
    registry = Path(os.environ.get("CARGO_HOME", Path.home() / ".cargo")) / "registry" / "src"
    zerocopy = sorted(glob.glob(str(registry / "*" / "zerocopy-0.8.*" / "src" / "lib.rs")))
    ppv = sorted(glob.glob(str(registry / "*" / "ppv-lite86-0.2.*" / "src" / "lib.rs")))
    if not zerocopy or not ppv:
        raise SystemExit("zerocopy 0.8 and ppv-lite86 0.2 are not in the cargo registry: build "
                         "fixtures/build-dep-graphs first")
    common = ["--edition", "2021", "--crate-type", "lib", "--target", "wasm32-wasip1", "--sysroot",
              tc.wasm_sysroot, "--extern", f"std={std}", "-L", f"dependency={tmp}", "--out-dir", str(tmp),
              "--cap-lints=allow", *JSON]
    version = Path(zerocopy[-1]).parents[1].name.rpartition("-")[2]  # its docs name it: env!
    first = subprocess.run([tc.compiler.rustc, "--crate-name", "zerocopy", zerocopy[-1], *common,
                            "--cfg", 'feature="simd"', "-C", "metadata=z"],
                           capture_output=True, text=True, env={**toolchain_env(), "CARGO_PKG_VERSION": version})
    if first.returncode != 0:
        raise SystemExit(f"zerocopy should build:\n{first.stderr[-3000:]}")
    done = subprocess.run([tc.compiler.rustc, "--crate-name", "ppv_lite86", ppv[-1], *common, "--cfg",
                           'feature="simd"', "--extern", f"zerocopy={tmp}/libzerocopy.rlib", "-C", "metadata=p"],
                          capture_output=True, text=True, env=toolchain_env())
    if done.returncode == 0:
        raise SystemExit("ppv-lite86 should fail to compile")
    return done.stderr


def _other_rustc(tc, other, std: str, tmp: Path) -> str:
    """A wasm rlib another rustc compiled (E0514)."""
    (tmp / "old.rs").write_text("#![no_std]\npub fn two() -> u32 { 2 }\n")
    (tmp / "user.rs").write_text("pub fn four() -> u32 { old::two() * 2 }\n")
    wasm = ["--edition", "2021", "--crate-type", "rlib", "--target", "wasm32-wasip1", "--out-dir", str(tmp), *JSON]
    first = subprocess.run([other.compiler.rustc, "--crate-name", "old", str(tmp / "old.rs"), *wasm, "--sysroot",
                            other.wasm_sysroot], capture_output=True, text=True, env=toolchain_env())
    if first.returncode != 0:
        raise SystemExit(f"old should build:\n{first.stderr}")
    done = subprocess.run([tc.compiler.rustc, "--crate-name", "user", str(tmp / "user.rs"), *wasm, "--sysroot",
                           tc.wasm_sysroot, "--extern", f"std={std}", "--extern", f"old={tmp}/libold.rlib"],
                          capture_output=True, text=True, env=toolchain_env())
    if done.returncode == 0:
        raise SystemExit("user should fail to compile")
    return done.stderr


def toolchain_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("RUSTC", "CARGO_", "RUSTFLAGS"))}


def _save(path: Path, stderr: str, tmp: str) -> None:
    kept = []
    for line in stderr.splitlines():
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if isinstance(msg, dict) and msg.get("level") == "error":
            kept.append(line.replace(os.path.realpath(tmp), "$TMP").replace(tmp, "$TMP"))
    if len(kept) > KEPT + 1:
        kept = kept[:KEPT] + kept[-1:]
    path.write_text("\n".join(kept) + "\n")
    print(f"{path.name}: {len(kept)} errors, first: {json.loads(kept[0])['message'] if kept else '-'}")


if __name__ == "__main__":
    import argparse

    cli = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    cli.add_argument("rustc", nargs="?", help="the compiler (default: the selected toolchain's)")
    cli.add_argument("--other", help="another toolchain's rustc, for the E0514 scenario")
    opts = cli.parse_args()
    main(opts.rustc, opts.other)
